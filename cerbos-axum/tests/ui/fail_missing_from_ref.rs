use axum::{Router, routing::get};
use cerbos_axum::{PermissionMap, authorize};

#[derive(Clone)]
struct AppState {
    authorizer: cerbos_axum::Authorizer,
}

#[authorize(kind = "contact", actions = ["read"], state = AppState)]
async fn show(permissions: PermissionMap) -> String {
    format!("{}", permissions.is_allowed("read"))
}

fn main() {
    let _: Router<AppState> = Router::new().route("/contacts/{id}", get(show));
}
