//! All of this app's authorization (with the fenced lines of `lib.rs` and
//! `documents_shared::authz`).

use actix_web::{HttpResponse, web};
use cerbos_actix::{Declaration, Loaded, PermissionMap, Resource, WithPermissions};
use cerbos_actix::{authorize, declaration};
use documents_shared::{Db, Document, authz::CREATE, authz::Found, authz::LIST};

/// The one loader of the guards and `#[authorize]`.
pub(crate) async fn load(document: Resource, db: web::Data<Db>) -> Found {
    documents_shared::authz::load(&db, document.id())
}

/// `GET /documents/{id}`: the row loaded once, and the permission map.
#[authorize(kind = "document", actions = ["read"], permissions = ["update", "delete"], load = load)]
pub(crate) async fn show(Loaded(doc): Loaded<Document>, map: PermissionMap) -> HttpResponse {
    HttpResponse::Ok().json(WithPermissions::new(doc, map))
}

/// Everything this app asks the PDP, for `cerbos_testkit::PolicyCoverage`.
pub fn declarations() -> [Declaration; 3] {
    [declaration!(show), LIST, CREATE]
}
