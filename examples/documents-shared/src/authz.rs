//! The Cerbos side of the data layer, shared by both apps: the principal
//! of a [`CurrentUser`], a [`Document`] as a resource, the loader's row,
//! the query plan as an SQL filter, and what the in-handler checks ask.
//! Every line here is authorization code, counted in each app's total
//! (see the crates' READMEs).

use cerbos_sql::{ColumnType::Bool, ColumnType::String as Text, Dialect, Filter, PlanToSql};
use cerbos_tower::layer::ResolveError;
use cerbos_tower::{AttrError, PlanFilter, Principal, Resource, adapter::Declaration};

use crate::{CurrentUser, Db, Document};

/// The list: a plan for `read`, and each row's `update` and `delete`.
pub const LIST: Declaration =
    Declaration::new("document", &["read"]).with_permissions(&["update", "delete"]);
/// What `POST /documents` requires in its handler.
pub const CREATE: Declaration = Declaration::new("document", &["create"]);

/// The Cerbos principal of the application's user.
pub fn principal(user: &CurrentUser) -> Principal {
    let principal = Principal::new(user.id.as_str(), [user.role.as_str()]);
    principal.with_attr("department", user.department.as_str())
}

impl Document {
    /// The document as a Cerbos resource: its row is its attributes.
    pub fn resource(&self) -> Result<Resource, AttrError> {
        Resource::new("document", self.id.to_string()).with_serialized_attrs(self)
    }
}

/// What the loaders of both apps return: the stored document as the
/// resource (its row as attributes) and the row; `None` (404) if absent.
pub type Found = Result<Option<(Resource, Document)>, ResolveError>;

/// The stored document `id` (see [`Found`]).
pub fn load(db: &Db, id: &str) -> Found {
    let row = db.document(id).map_err(ResolveError::internal)?;
    row.map(|row| Ok((row.resource()?, row))).transpose()
}

/// The SQL filter of a plan: the attributes are the columns of `document`.
pub fn to_sql(plan: &PlanFilter) -> Result<Filter, cerbos_sql::Error> {
    let attrs = [
        ("owner_id", Text),
        ("department", Text),
        ("draft", Bool),
        ("public", Bool),
    ];
    PlanToSql::new(Dialect::Sqlite)
        .attrs("document", attrs)
        .filter(plan)
}
