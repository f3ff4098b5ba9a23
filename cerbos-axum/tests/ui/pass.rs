use axum::{Router, routing::get};
use cerbos_axum::{Authorizer, PermissionMap, Resource, ResolveError, authorize};

#[derive(Clone)]
struct AppState {
    authorizer: Authorizer,
}

impl axum::extract::FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

async fn load(contact: Resource, _state: &AppState) -> Result<Option<Resource>, ResolveError> {
    Ok(Some(contact.with_attr("owner_id", "2")))
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update"], load = load, state = AppState)]
async fn show(permissions: PermissionMap) -> String {
    format!("{permissions:?}")
}

#[authorize(kind = "contact", actions = ["delete"], id = "contact")]
pub async fn delete() -> &'static str {
    "deleted"
}

#[allow(dead_code)]
fn app(authorizer: Authorizer) -> Router {
    Router::new()
        .route("/contacts/{id}", get(show))
        .route("/teams/{team}/contacts/{contact}", get(delete))
        .with_state(AppState { authorizer })
}

fn main() {}
