//! All of this app's authorization (with the fenced lines of `lib.rs` and
//! `documents_shared::authz`).

use axum::{Json, response::IntoResponse};
use cerbos_axum::{Declaration, Loaded, PermissionMap, Resource, WithPermissions};
use cerbos_axum::{authorize, declaration};
use documents_shared::{Document, authz::CREATE, authz::Found, authz::LIST};

use crate::AppState;

/// The one loader of the guards and `#[authorize]`.
pub(crate) async fn load(document: Resource, state: AppState) -> Found {
    documents_shared::authz::load(&state.db, document.id())
}

/// `GET /documents/{id}`: the row loaded once, and the permission map.
#[authorize(kind = "document", actions = ["read"], permissions = ["update", "delete"],
            load = load, state = AppState)]
pub(crate) async fn show(Loaded(doc): Loaded<Document>, map: PermissionMap) -> impl IntoResponse {
    Json(WithPermissions::new(doc, map))
}

/// Everything this app asks the PDP, for `cerbos_testkit::PolicyCoverage`.
pub fn declarations() -> [Declaration; 3] {
    [declaration!(show), LIST, CREATE]
}
