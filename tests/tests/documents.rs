//! The documents examples (`documents-axum`, `documents-actix`) against
//! the real PDP: an app with its own bearer-token authentication, Cerbos
//! added with the adapters' one-liners. Both apps run the same scenario:
//! the list filtered in SQL with per-row permissions, the `#[authorize]`
//! handler with the permission map, the in-handler `create` check, the
//! loaded guards of `PUT` and `DELETE` (the loader runs once per request,
//! the row reaches the handler), 401/403/404/405, and 503 when the PDP is
//! down. Also: the authorization lines each app adds, counted.

mod common;

use common::Send3;

use documents_shared::Db;
use serde_json::{Value, json};

/// (token user, user id, role, department)
type User = (&'static str, &'static str, &'static str, &'static str);
const USERS: [User; 4] = [
    ("alice", "1", "admin", "IT"),
    ("john", "2", "user", "Sales"),
    ("sarah", "3", "user", "Sales"),
    ("geri", "4", "user", "Marketing"),
];

/// (id, owner id, department, draft, public): `documents.sql`.
type Doc = (i64, &'static str, &'static str, bool, bool);
const DOCUMENTS: [Doc; 6] = [
    (1, "2", "Sales", false, false),
    (2, "2", "Sales", true, false),
    (3, "3", "Sales", false, false),
    (4, "4", "Marketing", false, true),
    (5, "4", "Marketing", true, true),
    (6, "1", "IT", false, false),
];

/// What `examples/policies/document.yaml` decides, written independently.
fn can_read(user: User, doc: Doc) -> bool {
    let (_, id, role, department) = user;
    let (_, owner, doc_department, draft, public) = doc;
    role == "admin" || owner == id || (!draft && (doc_department == department || public))
}

fn can_change(user: User, doc: Doc) -> bool {
    user.2 == "admin" || doc.1 == user.1
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn ids(body: &str) -> Vec<i64> {
    json(body)
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

/// The same scenario for both apps; `db` is the app's database (its
/// `reads` count the loader's reads).
async fn scenario(send: impl Send3, db: Db) {
    // The app's own authentication, before any authorization.
    for user in [None, Some("mallory")] {
        for (method, path) in [
            ("GET", "/documents"),
            ("GET", "/documents/1"),
            ("PUT", "/documents/1"),
        ] {
            let (status, _) = send(method, path.into(), user, String::new()).await;
            assert_eq!(status, 401, "{method} {path} as {user:?}");
        }
    }

    for user in USERS {
        // The list: filtered in SQL from the plan, with each row's
        // permissions from one batched check.
        let (status, body) = send("GET", "/documents".into(), Some(user.0), String::new()).await;
        assert_eq!(status, 200, "{body}");
        let readable: Vec<Doc> = DOCUMENTS
            .into_iter()
            .filter(|d| can_read(user, *d))
            .collect();
        assert_eq!(
            ids(&body),
            readable.iter().map(|d| d.0).collect::<Vec<_>>(),
            "{} lists",
            user.0
        );
        for (row, doc) in json(&body).as_array().unwrap().iter().zip(&readable) {
            let change = can_change(user, *doc);
            assert_eq!(
                row["permissions"],
                json!({"update": change, "delete": change}),
                "{row}"
            );
            assert_eq!(row["owner_id"], doc.1);
        }

        // Each document through `#[authorize]`: the loader reads the row
        // once, the handler answers it with the permission map.
        for doc in DOCUMENTS {
            let reads = db.reads();
            let (status, body) = send(
                "GET",
                format!("/documents/{}", doc.0),
                Some(user.0),
                String::new(),
            )
            .await;
            assert_eq!(
                db.reads() - reads,
                1,
                "one read for {} on {}",
                user.0,
                doc.0
            );
            if can_read(user, doc) {
                assert_eq!(status, 200, "{} reads {}: {body}", user.0, doc.0);
                let change = can_change(user, doc);
                let got = json(&body);
                assert_eq!(
                    got["permissions"],
                    json!({"read": true, "update": change, "delete": change})
                );
                assert_eq!(
                    (got["id"].as_i64(), got["draft"].as_bool()),
                    (Some(doc.0), Some(doc.3))
                );
            } else {
                assert_eq!(
                    (status, body.as_str()),
                    (403, "Forbidden"),
                    "{} reads {}",
                    user.0,
                    doc.0
                );
            }
        }
        let (status, _) = send("GET", "/documents/99".into(), Some(user.0), String::new()).await;
        assert_eq!(status, 404);
    }

    // A draft is hidden from the list and 403 on GET for others in its
    // department; its owner sees it.
    let (_, body) = send("GET", "/documents".into(), Some("sarah"), String::new()).await;
    assert!(!ids(&body).contains(&2), "{body}");
    assert_eq!(
        send("GET", "/documents/2".into(), Some("sarah"), String::new())
            .await
            .0,
        403
    );
    assert_eq!(
        send("GET", "/documents/2".into(), Some("john"), String::new())
            .await
            .0,
        200
    );

    // Create, checked in the handler: in one's own department (the
    // default), or anywhere for admins; a malformed body is a 400 before
    // any check.
    let (status, body) = send(
        "POST",
        "/documents".into(),
        Some("john"),
        r#"{"title": "Q3"}"#.into(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created = json(&body);
    assert_eq!(
        (
            created["id"].as_i64(),
            created["owner_id"].as_str(),
            created["department"].as_str()
        ),
        (Some(7), Some("2"), Some("Sales"))
    );
    let elsewhere = r#"{"title": "Q3", "department": "Marketing"}"#;
    assert_eq!(
        send("POST", "/documents".into(), Some("john"), elsewhere.into()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(
        send("POST", "/documents".into(), Some("alice"), elsewhere.into())
            .await
            .0,
        201
    );
    let (status, body) = send(
        "POST",
        "/documents".into(),
        Some("john"),
        r#"{"draft": true}"#.into(),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, "`title` is missing"));

    // Update behind the loaded guard: a non-owner cannot; the owner can,
    // with the row the guard loaded (one read per request, whatever the
    // answer).
    let edit = r#"{"title": "Sales plan v2", "public": true}"#;
    let reads = db.reads();
    assert_eq!(
        send("PUT", "/documents/1".into(), Some("sarah"), edit.into()).await,
        (403, "Forbidden".into())
    );
    assert_eq!(db.reads() - reads, 1, "the guard's loader ran once");
    let reads = db.reads();
    let (status, body) = send("PUT", "/documents/1".into(), Some("john"), edit.into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(db.reads() - reads, 1, "the handler used the loaded row");
    assert_eq!(
        (
            json(&body)["title"].as_str(),
            json(&body)["public"].as_bool()
        ),
        (Some("Sales plan v2"), Some(true))
    );
    // Now public: geri (Marketing) reads it.
    assert_eq!(
        send("GET", "/documents/1".into(), Some("geri"), String::new())
            .await
            .0,
        200
    );
    assert_eq!(
        send("PUT", "/documents/99".into(), Some("alice"), edit.into())
            .await
            .0,
        404
    );
    let moved = r#"{"title": "t", "department": "IT"}"#;
    assert_eq!(
        send("PUT", "/documents/1".into(), Some("john"), moved.into()).await,
        (400, "`department` cannot be changed".into())
    );
    // Publishing the draft shows it to the department.
    let published = r#"{"title": "Sales plan, next year"}"#;
    assert_eq!(
        send("PUT", "/documents/2".into(), Some("john"), published.into())
            .await
            .0,
        200
    );
    let (_, body) = send("GET", "/documents".into(), Some("sarah"), String::new()).await;
    assert_eq!(ids(&body), [1, 2, 3, 4, 7]);

    // Delete behind its guard: owners and admins.
    let reads = db.reads();
    assert_eq!(
        send("DELETE", "/documents/3".into(), Some("geri"), String::new()).await,
        (403, "Forbidden".into())
    );
    let (status, body) = send(
        "DELETE",
        "/documents/3".into(),
        Some("sarah"),
        String::new(),
    )
    .await;
    assert_eq!((status, json(&body)), (200, json!({"deleted": 3})));
    assert_eq!(db.reads() - reads, 2, "one read per request");
    assert_eq!(
        send(
            "DELETE",
            "/documents/3".into(),
            Some("sarah"),
            String::new()
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            "DELETE",
            "/documents/6".into(),
            Some("alice"),
            String::new()
        )
        .await
        .0,
        200
    );

    // A method the route does not serve.
    assert_eq!(
        send("PATCH", "/documents/1".into(), Some("john"), String::new())
            .await
            .0,
        405
    );
}

fn bearer(user: &str) -> String {
    format!("Bearer {user}-token")
}

/// Sends requests to documents-axum, made with `client`.
fn axum_app(client: cerbos_tower::Client, db: Db) -> impl Send3 {
    common::axum_sender(documents_axum::app(client, db).unwrap(), bearer)
}

/// Sends requests to documents-actix, made with `client`.
async fn actix_app(client: cerbos_tower::Client, db: Db) -> impl Send3 {
    use actix_web::{App, test};
    let cerbos = documents_actix::cerbos(client).unwrap();
    let app = App::new().configure(documents_actix::configure(&cerbos, db).unwrap());
    common::actix_sender(test::init_service(app).await, bearer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_axum() {
    let db = Db::seeded().unwrap();
    scenario(axum_app(common::contact_client(), db.clone()), db).await;
}

#[actix_web::test]
async fn documents_actix() {
    let db = Db::seeded().unwrap();
    scenario(actix_app(common::contact_client(), db.clone()).await, db).await;
}

/// Every authorized route fails closed with 503 when the PDP is down (the
/// list's plan like the checks), and nothing is written.
async fn unreachable_scenario(send: impl Send3, db: Db) {
    for (method, path, body) in [
        ("GET", "/documents", ""),
        ("GET", "/documents/1", ""),
        ("POST", "/documents", r#"{"title": "t"}"#),
        ("PUT", "/documents/1", r#"{"title": "t"}"#),
        ("DELETE", "/documents/1", ""),
    ] {
        let (status, answer) = send(method, path.into(), Some("john"), body.into()).await;
        assert_eq!(
            (status, answer.as_str()),
            (503, "Service Unavailable"),
            "{method} {path}"
        );
    }
    let all = db.list(|_| {}).unwrap();
    assert_eq!(
        (all.len(), all[0].title.as_str()),
        (6, "Sales plan"),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_axum_unreachable_pdp() {
    let db = Db::seeded().unwrap();
    unreachable_scenario(axum_app(common::unreachable_client(), db.clone()), db).await;
}

#[actix_web::test]
async fn documents_actix_unreachable_pdp() {
    let db = Db::seeded().unwrap();
    unreachable_scenario(
        actix_app(common::unreachable_client(), db.clone()).await,
        db,
    )
    .await;
}

/// The authorization lines of `app` (non-blank, non-comment): all of its
/// `src/authz.rs` and of `documents-shared/src/authz.rs`, the lines of its
/// `lib.rs` and `main.rs` between `// cerbos {` and `// } cerbos` or ending
/// in `// cerbos`; imports (`use` items) apart. (code, imports)
fn authorization_lines(app: &str) -> (usize, usize) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let files = [
        ("documents-shared/src/authz.rs".to_owned(), true),
        (format!("{app}/src/authz.rs"), true),
        (format!("{app}/src/lib.rs"), false),
        (format!("{app}/src/main.rs"), false),
    ];
    let (mut code, mut imports) = (0, 0);
    for (file, whole) in files {
        let text = std::fs::read_to_string(examples.join(&file)).unwrap();
        let (mut fenced, mut in_use) = (false, false);
        for line in text.lines().map(str::trim) {
            match line {
                "// cerbos {" => fenced = true,
                "// } cerbos" => fenced = false,
                _ if line.is_empty() || line.starts_with("//") => {}
                _ if !(whole || fenced || line.ends_with("// cerbos")) => {}
                _ if in_use || line.starts_with("use ") || line.starts_with("pub use ") => {
                    let line = line.trim_end_matches("// cerbos").trim_end();
                    in_use = !line.ends_with(';');
                    imports += 1;
                }
                _ => code += 1,
            }
        }
        assert!(!fenced, "{file}: a fence is not closed");
    }
    (code, imports)
}

#[test]
fn the_readmes_state_the_authorization_lines_each_app_adds() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for app in ["documents-axum", "documents-actix"] {
        let (code, imports) = authorization_lines(app);
        println!("{app}: {code} lines of authorization code, {imports} lines of imports");
        let readme = std::fs::read_to_string(examples.join(app).join("README.md")).unwrap();
        let stated =
            format!("**{code} lines** of authorization code (and {imports} lines of imports)");
        assert!(
            readme.contains(&stated),
            "{app}/README.md must say: {stated}"
        );
    }
}
