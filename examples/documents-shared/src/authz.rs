//! The Cerbos side of the data layer, shared by both apps: the principal
//! of a [`CurrentUser`], a [`Document`] as a resource, the loader's row,
//! the query plan as an SQL filter, and what the in-handler checks ask.
//! Every line here is authorization code, counted in each app's total
//! (see the crates' READMEs).

use cerbos_sql::{Column, Dialect, PlanToSql};
use cerbos_tower::{
    PlanFilter, Principal, Resource,
    adapter::Declaration,
    layer::{PermissionMap, PrincipalFromExtension, ResolveError},
};
use sea_query::Alias;
use serde_json::{Value, json};

use crate::{CurrentUser, Db, Document, internal_error};

/// The principal resolver of both apps: [`principal`] of the
/// [`CurrentUser`] their authentication put into the extensions.
pub type FromCurrentUser = PrincipalFromExtension<CurrentUser, fn(&CurrentUser) -> Principal>;

/// What the loaders of both apps return: the stored document as the
/// resource (its row as attributes) and the row; `None` (404) if absent.
pub type Found = Result<Option<(Resource, Document)>, ResolveError>;

/// A declaration of what a handler asks about documents.
const fn document(
    actions: &'static [&'static str],
    permissions: &'static [&'static str],
) -> Declaration {
    Declaration {
        kind: "document",
        actions,
        permissions,
        id_param: None,
    }
}

/// The list: a plan for `read`, and each row's `update` and `delete`.
pub const LIST: Declaration = document(&["read"], &["update", "delete"]);
/// What `POST /documents` requires in its handler.
pub const CREATE: Declaration = document(&["create"], &[]);

/// The Cerbos principal of the application's user.
pub fn principal(user: &CurrentUser) -> Principal {
    let principal = Principal::new(user.id.as_str(), [user.role.as_str()]);
    principal.with_attr("department", user.department.as_str())
}

impl Document {
    /// The document as a Cerbos resource: its row is its attributes.
    pub fn resource(&self) -> Resource {
        Resource::new("document", self.id.to_string())
            .with_attr("owner_id", self.owner_id.as_str())
            .with_attr("department", self.department.as_str())
            .with_attr("draft", self.draft)
            .with_attr("public", self.public)
    }
}

/// The stored document `id` (see [`Found`]).
pub fn load(db: &Db, id: &str) -> Found {
    let row = db.document(id).map_err(ResolveError::internal)?;
    Ok(row.map(|row| (row.resource(), row)))
}

/// The documents `plan` allows, filtered in SQL; or the status and body
/// of the refusal: 403 when the plan has a shape SQL cannot express
/// soundly (fail-closed, logged), 500 when the database failed.
pub fn readable(db: &Db, plan: &PlanFilter) -> Result<Vec<Document>, (u16, Value)> {
    let column = |name: &'static str| (Alias::new("document"), Alias::new(name));
    let columns = [
        ("owner_id", Column::string(column("owner_id"))),
        ("department", Column::string(column("department"))),
        ("draft", Column::bool(column("draft"))),
        ("public", Column::bool(column("public"))),
    ];
    let to_sql = columns
        .into_iter()
        .fold(PlanToSql::new(Dialect::Sqlite), |to_sql, (attr, column)| {
            to_sql.column(format!("request.resource.attr.{attr}"), column)
        });
    let filter = to_sql.filter(plan).map_err(|err| {
        tracing::error!(error = %err, "the query plan cannot be expressed in SQL: denied");
        (403, json!({"error": "forbidden"}))
    })?;
    db.list(|query| filter.apply(query))
        .map_err(|err| internal_error(&err))
}

/// `document`'s JSON with its `permissions`.
pub fn with_permissions(document: &Document, permissions: PermissionMap) -> Value {
    json!({"document": document.to_json(), "permissions": permissions})
}

/// The JSON list of `documents`, each with its row's `permissions` (as
/// many maps as documents, in the same order).
pub fn list_json(documents: &[Document], permissions: Vec<PermissionMap>) -> Value {
    let rows = documents.iter().zip(permissions);
    rows.map(|(document, permissions)| with_permissions(document, permissions))
        .collect()
}
