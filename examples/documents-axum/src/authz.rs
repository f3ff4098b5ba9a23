//! All of this app's authorization (with the fenced lines of `lib.rs` and
//! `documents_shared::authz`).

use axum::{
    Json,
    extract::{FromRef, State},
    response::{IntoResponse, Response},
};
use cerbos_axum::{
    Authorizer, Authz, CerbosRejection, Declaration, Loaded, PermissionMap, Resource, authorize,
    declaration,
};
use documents_shared::{
    Document,
    authz::{CREATE, Found, LIST, list_json, readable, with_permissions},
};
use serde_json::Value;

use crate::{AppState, answer};

impl FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

/// The one loader of the guards and `#[authorize]`.
pub(crate) async fn load(document: Resource, state: AppState) -> Found {
    documents_shared::authz::load(&state.db, document.id())
}

/// `GET /documents/{id}`: the row loaded once, and the permission map.
#[authorize(kind = "document", actions = ["read"], permissions = ["update", "delete"],
            load = load, state = AppState)]
pub(crate) async fn show(Loaded(doc): Loaded<Document>, map: PermissionMap) -> Json<Value> {
    Json(with_permissions(&doc, map))
}

/// `GET /documents`: the readable documents, filtered in SQL from the
/// plan, each with its `update`/`delete` permissions (one PDP call each).
pub(crate) async fn list(
    State(state): State<AppState>,
    authz: Authz,
) -> Result<Response, CerbosRejection> {
    let plan = authz.plan(LIST.kind, LIST.actions.iter().copied()).await?;
    let documents = match readable(&state.db, plan.filter()) {
        Ok(documents) => documents,
        Err(refused) => return Ok(answer(refused)),
    };
    let resources = documents.iter().map(Document::resource);
    let permissions = authz.permissions(resources, LIST.permissions.iter().copied());
    Ok(Json(list_json(&documents, permissions.await?)).into_response())
}

/// Everything this app asks the PDP, for `cerbos_testkit::PolicyCoverage`.
pub fn declarations() -> [Declaration; 3] {
    [declaration!(show), LIST, CREATE]
}
