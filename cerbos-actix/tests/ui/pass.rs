use actix_web::{App, HttpRequest, web};
use cerbos_actix::{PermissionMap, ResolveError, Resource, authorize};

async fn load(contact: Resource, _req: HttpRequest) -> Result<Option<Resource>, ResolveError> {
    Ok(Some(contact.with_attr("owner_id", "2")))
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update"], load = load)]
async fn show(permissions: PermissionMap, path: web::Path<String>) -> String {
    format!("{} {permissions:?}", path.into_inner())
}

#[authorize(kind = "contact", actions = ["delete"], id = "contact")]
pub async fn delete() -> &'static str {
    "deleted"
}

#[allow(dead_code)]
fn app() {
    let _ = App::new()
        .route("/contacts/{id}", web::get().to(show))
        .route("/teams/{team}/contacts/{contact}", web::delete().to(delete));
}

fn main() {}
