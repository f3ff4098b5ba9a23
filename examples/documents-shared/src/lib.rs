//! The data layer of the documents examples (`documents-axum`,
//! `documents-actix`), as an application has it before authorization: an
//! SQLite database through rusqlite, users who authenticate with a bearer
//! token ([`CurrentUser`]), and the documents. The Cerbos mapping of users
//! and documents is fenced off in [`authz`], so that the authorization
//! code can be counted.

pub mod authz;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use rusqlite::{Connection, OptionalExtension, ToSql};
use sea_query::{Alias, Query, SelectStatement, SqliteQueryBuilder};
use serde::Serialize;
use serde_json::{Value, json};

/// The user of a request, as the application's own authentication finds
/// it (a bearer token) and puts it into the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentUser {
    /// The user's id.
    pub id: String,
    /// `admin` or `user`.
    pub role: String,
    /// The user's department.
    pub department: String,
}

/// A document row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Document {
    /// The id.
    pub id: i64,
    /// The title.
    pub title: String,
    /// The owning user's id.
    pub owner_id: String,
    /// The department the document belongs to.
    pub department: String,
    /// Not finished: only its owner (and admins) see it.
    pub draft: bool,
    /// Readable by every user once it is not a draft.
    pub public: bool,
}

impl Document {
    /// The document as JSON.
    pub fn to_json(&self) -> Value {
        json!(self)
    }
}

/// The body of `POST /documents` and `PUT /documents/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentBody {
    /// The title (required, not blank).
    pub title: String,
    /// The department (creation only; default: the user's).
    pub department: Option<String>,
    /// A draft (default false).
    pub draft: bool,
    /// Public (default false).
    pub public: bool,
}

impl DocumentBody {
    /// Parses a JSON body; the error says what is wrong (sent with a 400).
    pub fn parse(body: &[u8]) -> Result<DocumentBody, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let object = value.as_object().ok_or("the body must be a JSON object")?;
        if let Some(key) = object
            .keys()
            .find(|key| !["title", "department", "draft", "public"].contains(&key.as_str()))
        {
            return Err(format!("unknown field `{key}`"));
        }
        let flag = |key: &str| -> Result<bool, String> {
            match object.get(key) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(format!("`{key}` must be true or false")),
            }
        };
        let title = match object.get("title") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => return Err("`title` must be a non-empty string".into()),
            None => return Err("`title` is missing".into()),
        };
        let department = match object.get("department") {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => return Err("`department` must be a non-empty string".into()),
        };
        Ok(DocumentBody {
            title,
            department,
            draft: flag("draft")?,
            public: flag("public")?,
        })
    }

    /// The document `user` would create with this body (id 0: not stored).
    pub fn new_document(&self, user: &CurrentUser) -> Document {
        Document {
            id: 0,
            title: self.title.clone(),
            owner_id: user.id.clone(),
            department: self
                .department
                .clone()
                .unwrap_or_else(|| user.department.clone()),
            draft: self.draft,
            public: self.public,
        }
    }
}

/// The database: in memory, seeded with `documents.sql`.
#[derive(Clone, Debug)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    reads: Arc<AtomicUsize>,
}

/// The condition that the stored row is still the one a decision was
/// made on: every column equal (the named parameters of [`unchanged`]).
const UNCHANGED: &str = "id = :id AND title = :title AND owner_id = :owner_id
    AND department = :department AND draft = :draft AND public = :public";

/// The parameters of [`UNCHANGED`] for `loaded`.
fn unchanged(loaded: &Document) -> [(&'static str, &dyn ToSql); 6] {
    [
        (":id", &loaded.id),
        (":title", &loaded.title),
        (":owner_id", &loaded.owner_id),
        (":department", &loaded.department),
        (":draft", &loaded.draft),
        (":public", &loaded.public),
    ]
}

const COLUMNS: [&str; 6] = ["id", "title", "owner_id", "department", "draft", "public"];

fn row_to_document(row: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: row.get(0)?,
        title: row.get(1)?,
        owner_id: row.get(2)?,
        department: row.get(3)?,
        draft: row.get(4)?,
        public: row.get(5)?,
    })
}

impl Db {
    /// A new in-memory database with the examples' users and documents.
    pub fn seeded() -> rusqlite::Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(include_str!("../documents.sql"))?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            reads: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The user whose token an `Authorization: Bearer <token>` header
    /// carries; `None` for a missing or malformed header or an unknown
    /// token (401), and for a database error (logged).
    pub fn bearer(&self, header: Option<&[u8]>) -> Option<CurrentUser> {
        let value = std::str::from_utf8(header?).ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let found = self
            .conn()
            .query_row(
                "SELECT id, role, department FROM user WHERE token = ?1",
                [token.trim()],
                |row| {
                    Ok(CurrentUser {
                        id: row.get(0)?,
                        role: row.get(1)?,
                        department: row.get(2)?,
                    })
                },
            )
            .optional();
        found.unwrap_or_else(|err| {
            tracing::error!(error = %err, "reading users failed");
            None
        })
    }

    /// The document with `id` (`None` for an id that is not a number).
    /// Counted in [`reads`](Self::reads).
    pub fn document(&self, id: &str) -> rusqlite::Result<Option<Document>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        self.conn()
            .query_row(
                &format!("SELECT {} FROM document WHERE id = ?1", COLUMNS.join(", ")),
                [id],
                row_to_document,
            )
            .optional()
    }

    /// How many times [`document`](Self::document) read one document.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// The documents of `SELECT … FROM document ORDER BY id` after
    /// `filter` added its conditions to the query.
    pub fn list(
        &self,
        filter: impl FnOnce(&mut SelectStatement),
    ) -> rusqlite::Result<Vec<Document>> {
        let document = Alias::new("document");
        let mut query = Query::select();
        for column in COLUMNS {
            query.column((document.clone(), Alias::new(column)));
        }
        query
            .from(document.clone())
            .order_by((document, Alias::new("id")), sea_query::Order::Asc);
        filter(&mut query);
        let (sql, values) = query.build(SqliteQueryBuilder);
        let params = sqlite_params(values)?;
        let conn = self.conn();
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(params), row_to_document)?;
        rows.collect()
    }

    /// Stores `new` (its id is ignored); returns it with its id, never one
    /// used before (the table is `AUTOINCREMENT`).
    pub fn insert(&self, new: &Document) -> rusqlite::Result<Document> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO document (title, owner_id, department, draft, public)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                new.title,
                new.owner_id,
                new.department,
                new.draft,
                new.public
            ],
        )?;
        Ok(Document {
            id: conn.last_insert_rowid(),
            ..new.clone()
        })
    }

    /// Sets the title and flags of `loaded` from `body`, only if the stored
    /// row is still `loaded` (the row a decision was made on): `None` if it
    /// changed or was deleted since (409), never a write on a stale
    /// decision.
    pub fn update(
        &self,
        loaded: &Document,
        body: &DocumentBody,
    ) -> rusqlite::Result<Option<Document>> {
        let new: [(&str, &dyn ToSql); 3] = [
            (":new_title", &body.title),
            (":new_draft", &body.draft),
            (":new_public", &body.public),
        ];
        let changed = self.conn().execute(
            &format!(
                "UPDATE document SET title = :new_title, draft = :new_draft, public = :new_public
                 WHERE {UNCHANGED}"
            ),
            &[&new[..], &unchanged(loaded)[..]].concat()[..],
        )?;
        Ok((changed == 1).then(|| Document {
            title: body.title.clone(),
            draft: body.draft,
            public: body.public,
            ..loaded.clone()
        }))
    }

    /// Deletes `loaded` only if the stored row is still `loaded`: `None` if
    /// it changed or was deleted since (409); its id if deleted.
    pub fn delete(&self, loaded: &Document) -> rusqlite::Result<Option<i64>> {
        let deleted = self.conn().execute(
            &format!("DELETE FROM document WHERE {UNCHANGED}"),
            &unchanged(loaded)[..],
        )?;
        Ok((deleted == 1).then_some(loaded.id))
    }
}

/// The status and JSON body of an answer that a database error turned
/// into a 500 (logged).
pub fn internal_error(err: &rusqlite::Error) -> (u16, Value) {
    tracing::error!(error = %err, "the database failed");
    (500, json!({"error": "internal error"}))
}

/// The status and JSON body of a write of `loaded` (see
/// [`Db::update`], [`Db::delete`]): `ok` with `body` of the written value,
/// 409 when the row changed since it was loaded, 500 (logged) when the
/// database failed.
pub fn write_answer<T>(
    result: rusqlite::Result<Option<T>>,
    ok: u16,
    body: impl FnOnce(T) -> Value,
) -> (u16, Value) {
    match result {
        Ok(Some(written)) => (ok, body(written)),
        Ok(None) => (
            409,
            json!({"error": "the document changed since it was read; reload and retry"}),
        ),
        Err(err) => internal_error(&err),
    }
}

/// The examples' own SQLite plumbing and startup, shared with the contact
/// directory examples: the query's bound values as rusqlite parameters,
/// the PDP (`CERBOS_ADDR`, or a new one with `examples/policies`) and
/// `LISTEN_ADDR`.
pub use contacts_shared::{listen_addr, pdp, policy_dir, sqlite_params};

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<DocumentBody, String> {
        DocumentBody::parse(json.as_bytes())
    }

    #[test]
    fn a_write_applies_only_to_the_row_that_was_loaded() {
        let db = Db::seeded().unwrap();
        let loaded = db.document("1").unwrap().unwrap();
        let edit = body(r#"{"title": "edited", "public": true}"#).unwrap();
        db.conn()
            .execute("UPDATE document SET draft = 1 WHERE id = 1", [])
            .unwrap();
        assert_eq!(db.update(&loaded, &edit).unwrap(), None, "changed since");
        assert_eq!(db.delete(&loaded).unwrap(), None, "changed since");
        let loaded = db.document("1").unwrap().unwrap();
        let updated = db.update(&loaded, &edit).unwrap().unwrap();
        assert_eq!((updated.title.as_str(), updated.public), ("edited", true));
        assert_eq!(db.delete(&loaded).unwrap(), None, "the update changed it");
        assert_eq!(db.delete(&updated).unwrap(), Some(1));
        assert_eq!(db.document("1").unwrap(), None);
        assert_eq!(db.reads(), 3);
    }

    #[test]
    fn bodies_say_what_is_wrong() {
        assert_eq!(body(r#"{"draft": true}"#), Err("`title` is missing".into()));
        assert_eq!(
            body(r#"{"title": "t", "owner_id": "2"}"#),
            Err("unknown field `owner_id`".into())
        );
        assert_eq!(
            body(r#"{"title": "t", "public": "yes"}"#),
            Err("`public` must be true or false".into())
        );
        assert!(body("[]").is_err() && body("not json").is_err());
        let user = CurrentUser {
            id: "2".into(),
            role: "user".into(),
            department: "Sales".into(),
        };
        let new = body(r#"{"title": "t"}"#).unwrap().new_document(&user);
        assert_eq!(
            (new.owner_id.as_str(), new.department.as_str()),
            ("2", "Sales")
        );
    }

    #[test]
    fn bearer_tokens_name_users() {
        let db = Db::seeded().unwrap();
        assert_eq!(
            db.bearer(Some(b"Bearer john-token")).map(|u| u.department),
            Some("Sales".into())
        );
        for header in [
            &b"Bearer nope"[..],
            b"Basic am9objo=",
            b"john-token",
            b"\xff",
        ] {
            assert_eq!(db.bearer(Some(header)), None);
        }
        assert_eq!(db.bearer(None), None);
    }
}
