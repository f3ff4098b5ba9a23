//! What the two contact directory examples share: the SQLite database
//! (`examples/contacts.sql`), HTTP Basic authentication by username, the
//! contact as a Cerbos resource, the plan-to-SQL mapping for listing, and
//! request-body parsing. The web frameworks only route and authorize.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use cerbos_sql::{Column, Dialect, PlanToSql};
use cerbos_tower::{PlanFilter, Principal, Resource, adapter::Declaration, layer::PermissionMap};
use rusqlite::{Connection, OptionalExtension, types::Value as SqlValue};
use sea_query::{Alias, Query, SqliteQueryBuilder};
use serde_json::{Value, json};

/// What the list asks in its handler: a plan for `read`, and each row's
/// `update` and `delete` permissions.
pub const LIST: Declaration = Declaration {
    kind: "contact",
    actions: &["read"],
    permissions: &["update", "delete"],
    id_param: None,
};

/// What `create` requires in its handler.
pub const CREATE: Declaration = Declaration {
    kind: "contact",
    actions: &["create"],
    permissions: &[],
    id_param: None,
};

/// The policies of the contact directory.
pub fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// The in-memory database, seeded with the tutorial's data.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    to_sql: PlanToSql,
}

/// A user: the principal of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The id (the principal id).
    pub id: String,
    /// The login name.
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
    /// The department.
    pub department: String,
}

impl User {
    /// The user as a Cerbos principal.
    pub fn principal(&self) -> Principal {
        Principal::new(self.id.as_str(), [self.role.as_str()])
            .with_attr("department", self.department.as_str())
    }
}

/// A contact row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The id.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The owning user's id.
    pub owner_id: String,
    /// The company's id.
    pub company_id: String,
    /// Active.
    pub is_active: bool,
    /// Opted in to marketing.
    pub marketing_opt_in: bool,
}

impl Contact {
    /// The contact as a Cerbos resource: its row is its attributes.
    pub fn resource(&self) -> Resource {
        self.resource_with_id(self.id.to_string())
    }

    fn resource_with_id(&self, id: String) -> Resource {
        Resource::new("contact", id)
            .with_attr("owner_id", self.owner_id.as_str())
            .with_attr("company_id", self.company_id.as_str())
            .with_attr("is_active", self.is_active)
            .with_attr("marketing_opt_in", self.marketing_opt_in)
    }

    /// The contact as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "owner_id": self.owner_id,
            "company_id": self.company_id,
            "is_active": self.is_active,
            "marketing_opt_in": self.marketing_opt_in,
        })
    }
}

/// Why a listing failed.
#[derive(Debug)]
pub enum ListError {
    /// The plan has a shape SQL cannot express soundly: deny.
    Plan(cerbos_sql::Error),
    /// The database failed.
    Db(rusqlite::Error),
}

impl ListError {
    /// The status to answer with (logged): 403 when the plan cannot be
    /// used (fail-closed), 500 when the database failed.
    pub fn status(&self) -> u16 {
        match self {
            ListError::Plan(err) => {
                tracing::error!(error = %err, "the query plan cannot be expressed in SQL: denied");
                403
            }
            ListError::Db(err) => {
                tracing::error!(error = %err, "listing contacts failed");
                500
            }
        }
    }
}

/// The JSON list of `contacts`, each with its row's `permissions` (as
/// many maps as contacts, in the same order).
pub fn list_json(contacts: &[Contact], permissions: Vec<PermissionMap>) -> Value {
    contacts
        .iter()
        .zip(permissions)
        .map(|(contact, permissions)| {
            let mut json = contact.to_json();
            json["permissions"] = json!(permissions);
            json
        })
        .collect()
}

const COLUMNS: &str =
    "id, first_name, last_name, owner_id, company_id, is_active, marketing_opt_in";

fn row_to_contact(row: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: row.get(0)?,
        first_name: row.get(1)?,
        last_name: row.get(2)?,
        owner_id: row.get(3)?,
        company_id: row.get(4)?,
        is_active: row.get(5)?,
        marketing_opt_in: row.get(6)?,
    })
}

impl Db {
    /// A new in-memory database with the tutorial's users, companies and
    /// contacts.
    pub fn seeded() -> rusqlite::Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(include_str!("../../contacts.sql"))?;
        Ok(Db::over(conn))
    }

    /// A database over `conn`, which has the contact directory's schema
    /// (`examples/contacts.sql`) and any data (the listing benchmark fills
    /// it with 10,000 contacts).
    pub fn over(conn: Connection) -> Db {
        let contact = Alias::new("contact");
        let mut to_sql = PlanToSql::new(Dialect::Sqlite);
        // Declared types: a plan constant of another CEL type is decided as
        // CEL decides it, never by SQLite's type affinity.
        let flags = ["is_active", "marketing_opt_in"];
        for column in ["owner_id", "company_id", "is_active", "marketing_opt_in"] {
            let sql = (contact.clone(), Alias::new(column));
            let declared = if flags.contains(&column) {
                Column::bool(sql)
            } else {
                Column::string(sql)
            };
            to_sql = to_sql.column(format!("request.resource.attr.{column}"), declared);
        }
        Db {
            conn: Arc::new(Mutex::new(conn)),
            to_sql,
        }
    }

    /// Every contact, by id (what a list without a query plan would read).
    pub fn all(&self) -> rusqlite::Result<Vec<Contact>> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM contact ORDER BY id"))?;
        let rows = statement.query_map([], row_to_contact)?;
        rows.collect()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The user with `username`.
    pub fn user(&self, username: &str) -> rusqlite::Result<Option<User>> {
        self.conn()
            .query_row(
                "SELECT id, username, role, department FROM user WHERE username = ?1",
                [username],
                |row| {
                    Ok(User {
                        id: row.get(0)?,
                        username: row.get(1)?,
                        role: row.get(2)?,
                        department: row.get(3)?,
                    })
                },
            )
            .optional()
    }

    /// The user named by an `Authorization: Basic …` header (the password
    /// is ignored, as in the tutorial).
    pub fn basic_auth(&self, header: Option<&[u8]>) -> Option<User> {
        let value = std::str::from_utf8(header?).ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64_decode(encoded.trim())?;
        let credentials = String::from_utf8(decoded).ok()?;
        let username = credentials.split(':').next()?;
        self.user(username).ok().flatten()
    }

    /// The contact with `id`.
    pub fn contact(&self, id: &str) -> rusqlite::Result<Option<Contact>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM contact WHERE id = ?1"),
                [id],
                row_to_contact,
            )
            .optional()
    }

    /// The contacts `plan` allows (see [`list`](Self::list)), or the
    /// status of the refusal (logged): 403 when the plan cannot be
    /// expressed in SQL (fail-closed), 500 when the database failed.
    pub fn listed(&self, plan: &PlanFilter) -> Result<Vec<Contact>, u16> {
        self.list(plan).map_err(|err| err.status())
    }

    /// The contacts the plan allows, filtered in SQL, by id.
    pub fn list(&self, plan: &PlanFilter) -> Result<Vec<Contact>, ListError> {
        let filter = self.to_sql.filter(plan).map_err(ListError::Plan)?;
        if !filter.may_match() {
            return Ok(Vec::new());
        }
        let contact = Alias::new("contact");
        let mut query = Query::select();
        for column in COLUMNS.split(", ") {
            query.column((contact.clone(), Alias::new(column)));
        }
        query
            .from(contact.clone())
            .order_by((contact, Alias::new("id")), sea_query::Order::Asc);
        filter.apply(&mut query);
        let (sql, values) = query.build(SqliteQueryBuilder);
        let params = sqlite_params(values).map_err(ListError::Db)?;
        let conn = self.conn();
        let mut statement = conn.prepare(&sql).map_err(ListError::Db)?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), row_to_contact)
            .map_err(ListError::Db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(ListError::Db)
    }

    /// Inserts a contact; returns it with its id.
    pub fn insert(&self, new: &NewContact) -> rusqlite::Result<Contact> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO contact (first_name, last_name, owner_id, company_id, is_active, marketing_opt_in)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![new.first_name, new.last_name, new.owner_id, new.company_id, new.is_active, new.marketing_opt_in],
        )?;
        Ok(new.with_id(conn.last_insert_rowid()))
    }

    /// Inserts a contact whose owner and company exist; returns it with
    /// its id (never an id used before: the table is `AUTOINCREMENT`).
    pub fn insert_checked(&self, new: &NewContact) -> rusqlite::Result<Write<Contact>> {
        let conn = self.conn();
        if let Some(why) = missing_reference(&conn, new)? {
            return Ok(Write::Invalid(why));
        }
        conn.execute(
            "INSERT INTO contact (first_name, last_name, owner_id, company_id, is_active, marketing_opt_in)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![new.first_name, new.last_name, new.owner_id, new.company_id, new.is_active, new.marketing_opt_in],
        )?;
        Ok(Write::Done(new.with_id(conn.last_insert_rowid())))
    }

    /// Replaces the fields of the contact that was authorized as `checked`
    /// (the resource the check saw, with the stored row as attributes), only
    /// if the stored row still has every checked attribute: a row changed
    /// or deleted since the check is a [`Write::Conflict`], never a write
    /// on a decision about another row.
    pub fn update_checked(
        &self,
        checked: &Resource,
        new: &NewContact,
    ) -> rusqlite::Result<Write<Contact>> {
        let Some(row) = CheckedRow::of(checked) else {
            return Ok(Write::Conflict);
        };
        let conn = self.conn();
        if let Some(why) = missing_reference(&conn, new)? {
            return Ok(Write::Invalid(why));
        }
        let changed = conn.execute(
            "UPDATE contact SET first_name = ?1, last_name = ?2, owner_id = ?3, company_id = ?4,
             is_active = ?5, marketing_opt_in = ?6
             WHERE id = ?7 AND owner_id = ?8 AND company_id = ?9 AND is_active = ?10
               AND marketing_opt_in = ?11",
            rusqlite::params![
                new.first_name,
                new.last_name,
                new.owner_id,
                new.company_id,
                new.is_active,
                new.marketing_opt_in,
                row.id,
                row.owner_id,
                row.company_id,
                row.is_active,
                row.marketing_opt_in,
            ],
        )?;
        Ok(match changed {
            1 => Write::Done(new.with_id(row.id)),
            _ => Write::Conflict,
        })
    }

    /// Deletes the contact that was authorized as `checked`, only if the
    /// stored row still has every checked attribute (else
    /// [`Write::Conflict`]).
    pub fn delete_checked(&self, checked: &Resource) -> rusqlite::Result<Write<i64>> {
        let Some(row) = CheckedRow::of(checked) else {
            return Ok(Write::Conflict);
        };
        let deleted = self.conn().execute(
            "DELETE FROM contact WHERE id = ?1 AND owner_id = ?2 AND company_id = ?3
               AND is_active = ?4 AND marketing_opt_in = ?5",
            rusqlite::params![
                row.id,
                row.owner_id,
                row.company_id,
                row.is_active,
                row.marketing_opt_in
            ],
        )?;
        Ok(match deleted {
            1 => Write::Done(row.id),
            _ => Write::Conflict,
        })
    }
}

/// The HTTP answer to a checked write: `ok` with `body` of the written
/// value, 409 when the row changed since the check, 422 with the reason for
/// an owner or company that does not exist, 500 (logged) when the database
/// failed.
pub fn write_answer<T>(
    result: rusqlite::Result<Write<T>>,
    ok: u16,
    body: impl FnOnce(T) -> Value,
) -> (u16, Value) {
    match result {
        Ok(Write::Done(value)) => (ok, body(value)),
        Ok(Write::Conflict) => (
            409,
            json!({"error": "the contact changed since it was authorized; reload and retry"}),
        ),
        Ok(Write::Invalid(why)) => (422, json!({ "error": why })),
        Err(err) => {
            tracing::error!(error = %err, "writing a contact failed");
            (500, json!({"error": "internal error"}))
        }
    }
}

/// The outcome of a write that must match what was authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write<T> {
    /// Written.
    Done(T),
    /// The row is no longer the one the decision was about (changed or
    /// deleted since the check): 409, nothing written.
    Conflict,
    /// The new contact names an owner or company that does not exist: 422
    /// with the reason, nothing written.
    Invalid(String),
}

/// The row a check was made on, from the checked resource's id and
/// attributes (`None` if they are not a contact's).
struct CheckedRow {
    id: i64,
    owner_id: String,
    company_id: String,
    is_active: bool,
    marketing_opt_in: bool,
}

impl CheckedRow {
    fn of(checked: &Resource) -> Option<CheckedRow> {
        let text = |key| checked.attr(key)?.as_str().map(str::to_owned);
        let flag = |key| checked.attr(key)?.as_bool();
        Some(CheckedRow {
            id: checked.id().parse().ok()?,
            owner_id: text("owner_id")?,
            company_id: text("company_id")?,
            is_active: flag("is_active")?,
            marketing_opt_in: flag("marketing_opt_in")?,
        })
    }
}

/// Why `new` cannot be stored: an owner or company that does not exist.
fn missing_reference(conn: &Connection, new: &NewContact) -> rusqlite::Result<Option<String>> {
    let exists = |sql: &str, id: &str| -> rusqlite::Result<bool> {
        conn.query_row(sql, [id], |_| Ok(()))
            .optional()
            .map(|row| row.is_some())
    };
    if !exists("SELECT 1 FROM user WHERE id = ?1", &new.owner_id)? {
        return Ok(Some(format!("owner_id {:?} names no user", new.owner_id)));
    }
    if !exists("SELECT 1 FROM company WHERE id = ?1", &new.company_id)? {
        return Ok(Some(format!(
            "company_id {:?} names no company",
            new.company_id
        )));
    }
    Ok(None)
}

/// The values sea-query bound for a SQLite query, as rusqlite parameters.
/// A kind of value the plan-to-SQL conversion never binds is an error, not
/// a silent `NULL`.
pub fn sqlite_params(values: sea_query::Values) -> rusqlite::Result<Vec<SqlValue>> {
    values
        .0
        .into_iter()
        .map(|value| match value {
            sea_query::Value::Bool(Some(b)) => Ok(SqlValue::Integer(i64::from(b))),
            sea_query::Value::BigInt(Some(i)) => Ok(SqlValue::Integer(i)),
            sea_query::Value::Int(Some(i)) => Ok(SqlValue::Integer(i64::from(i))),
            sea_query::Value::Double(Some(f)) => Ok(SqlValue::Real(f)),
            sea_query::Value::String(Some(s)) => Ok(SqlValue::Text(*s)),
            other => Err(rusqlite::Error::ToSqlConversionFailure(
                format!("unexpected bound value {other:?}").into(),
            )),
        })
        .collect()
}

/// The body of `POST /contacts/new` and `PUT /contacts/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewContact {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// The owning user's id.
    pub owner_id: String,
    /// The company's id.
    pub company_id: String,
    /// Active (default true).
    pub is_active: bool,
    /// Opted in to marketing (default false).
    pub marketing_opt_in: bool,
}

impl NewContact {
    /// Parses a JSON body; the error says what is wrong (sent with a 400).
    pub fn parse(body: &[u8]) -> Result<NewContact, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let object = value.as_object().ok_or("the body must be a JSON object")?;
        let text = |key: &str| -> Result<String, String> {
            match object.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(_) => Err(format!("`{key}` must be a non-empty string")),
                None => Err(format!("`{key}` is missing")),
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(format!("`{key}` must be true or false")),
            }
        };
        Ok(NewContact {
            first_name: text("first_name")?,
            last_name: text("last_name")?,
            owner_id: text("owner_id")?,
            company_id: text("company_id")?,
            is_active: flag("is_active", true)?,
            marketing_opt_in: flag("marketing_opt_in", false)?,
        })
    }

    /// The contact this body would make, as a Cerbos resource.
    pub fn resource(&self, id: &str) -> Resource {
        self.with_id(0).resource_with_id(id.to_owned())
    }

    fn with_id(&self, id: i64) -> Contact {
        Contact {
            id,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            owner_id: self.owner_id.clone(),
            company_id: self.company_id.clone(),
            is_active: self.is_active,
            marketing_opt_in: self.marketing_opt_in,
        }
    }
}

/// Standard base64 (with or without padding).
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The PDP for the examples: the one at `CERBOS_ADDR`, or a new one with
/// the contact policies. Keep the returned PDP alive.
pub fn pdp() -> Result<(Option<cerbos_testkit::Pdp>, String), Box<dyn std::error::Error>> {
    Ok(cerbos_testkit::pdp_from_env_or_start(policy_dir())?)
}

/// The address to listen on: `LISTEN_ADDR`, default `127.0.0.1:8000`.
pub fn listen_addr() -> String {
    std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(owner: &str, company: &str) -> NewContact {
        NewContact::parse(
            format!(
                r#"{{"first_name": "a", "last_name": "b", "owner_id": "{owner}", "company_id": "{company}"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_write_applies_only_to_the_row_that_was_authorized() {
        let db = Db::seeded().unwrap();
        let checked = db.contact("2").unwrap().unwrap().resource();
        // The owner changes between the check and the write.
        db.conn()
            .execute("UPDATE contact SET owner_id = '3' WHERE id = 2", [])
            .unwrap();
        assert_eq!(
            db.update_checked(&checked, &body("2", "2")).unwrap(),
            Write::Conflict
        );
        assert_eq!(db.delete_checked(&checked).unwrap(), Write::Conflict);
        assert_eq!(
            db.contact("2").unwrap().unwrap().owner_id,
            "3",
            "nothing written"
        );

        // Unchanged: written, once.
        let checked = db.contact("2").unwrap().unwrap().resource();
        let Write::Done(updated) = db.update_checked(&checked, &body("3", "1")).unwrap() else {
            panic!("unchanged row")
        };
        assert_eq!(updated.company_id, "1");
        // The decision was about the row before this update: stale now.
        assert_eq!(
            db.update_checked(&checked, &body("3", "1")).unwrap(),
            Write::Conflict
        );
        let checked = db.contact("2").unwrap().unwrap().resource();
        assert_eq!(db.delete_checked(&checked).unwrap(), Write::Done(2));
        assert_eq!(
            db.delete_checked(&checked).unwrap(),
            Write::Conflict,
            "already gone"
        );
    }

    #[test]
    fn ids_are_never_reused_and_references_must_exist() {
        let db = Db::seeded().unwrap();
        let Write::Done(first) = db.insert_checked(&body("2", "2")).unwrap() else {
            panic!("valid contact")
        };
        let checked = first.resource();
        assert_eq!(db.delete_checked(&checked).unwrap(), Write::Done(first.id));
        let Write::Done(second) = db.insert_checked(&body("3", "2")).unwrap() else {
            panic!("valid contact")
        };
        assert!(second.id > first.id, "a deleted id is not reused");
        // A decision about the deleted contact never applies to the new one.
        assert_eq!(
            db.update_checked(&checked, &body("2", "2")).unwrap(),
            Write::Conflict
        );

        for (owner, company, field) in [("99", "2", "owner_id"), ("2", "99", "company_id")] {
            match db.insert_checked(&body(owner, company)).unwrap() {
                Write::Invalid(why) => assert!(why.contains(field), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        // The database itself refuses a dangling reference too.
        assert!(db.insert(&body("99", "2")).is_err());
    }
}
