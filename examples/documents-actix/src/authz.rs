//! All of this app's authorization (with the fenced lines of `lib.rs` and
//! `documents_shared::authz`).

use actix_web::{HttpRequest, HttpResponse, web};
use cerbos_actix::{
    Authz, CerbosRejection, Declaration, Loaded, PermissionMap, ResolveError, Resource, authorize,
    declaration,
};
use documents_shared::{
    Db, Document,
    authz::{CREATE, Found, LIST, list_json, readable, with_permissions},
};

use crate::answer;

/// The one loader of the guards and `#[authorize]`.
pub(crate) async fn load(document: Resource, req: HttpRequest) -> Found {
    let db = req
        .app_data::<web::Data<Db>>()
        .ok_or(ResolveError::internal("no Db"))?;
    documents_shared::authz::load(db, document.id())
}

/// `GET /documents/{id}`: the row loaded once, and the permission map.
#[authorize(kind = "document", actions = ["read"], permissions = ["update", "delete"], load = load)]
pub(crate) async fn show(Loaded(doc): Loaded<Document>, map: PermissionMap) -> HttpResponse {
    HttpResponse::Ok().json(with_permissions(&doc, map))
}

/// `GET /documents`: the readable documents, filtered in SQL from the
/// plan, each with its `update`/`delete` permissions (one PDP call each).
pub(crate) async fn list(db: web::Data<Db>, authz: Authz) -> Result<HttpResponse, CerbosRejection> {
    let plan = authz.plan(LIST.kind, LIST.actions.iter().copied()).await?;
    let documents = match readable(&db, plan.filter()) {
        Ok(documents) => documents,
        Err(refused) => return Ok(answer(refused)),
    };
    let resources = documents.iter().map(Document::resource);
    let permissions = authz.permissions(resources, LIST.permissions.iter().copied());
    Ok(HttpResponse::Ok().json(list_json(&documents, permissions.await?)))
}

/// Everything this app asks the PDP, for `cerbos_testkit::PolicyCoverage`.
pub fn declarations() -> [Declaration; 3] {
    [declaration!(show), LIST, CREATE]
}
