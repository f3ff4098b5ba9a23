//! The contact directory examples (`contacts-axum`, `contacts-actix`)
//! against the real PDP: every endpoint, every user, the tutorial's
//! expected answers. Both apps run the same scenario.

mod common;

use common::Send3;

use serde_json::{Value, json};

/// (username, user id, role, department)
const USERS: [(&str, &str, &str, &str); 4] = [
    ("alice", "1", "admin", "IT"),
    ("john", "2", "user", "Sales"),
    ("sarah", "3", "user", "Sales"),
    ("geri", "4", "user", "Marketing"),
];

/// (id, owner id, active, opted in)
const CONTACTS: [(i64, &str, bool, bool); 5] = [
    (1, "2", true, true),
    (2, "2", false, true),
    (3, "3", true, false),
    (4, "3", false, true),
    (5, "3", true, true),
];

fn can_read(user: (&str, &str, &str, &str), contact: (i64, &str, bool, bool)) -> bool {
    let (_, id, role, department) = user;
    let (_, owner, active, opt_in) = contact;
    role == "admin"
        || owner == id
        || (active && (department == "Sales" || (department == "Marketing" && opt_in)))
}

fn can_change(user: (&str, &str, &str, &str), contact: (i64, &str, bool, bool)) -> bool {
    user.2 == "admin" || contact.1 == user.1
}

fn basic(user: &str) -> String {
    // base64("<user>:") for the tutorial's users.
    let encoded = match user {
        "alice" => "YWxpY2U6",
        "john" => "am9objo=",
        "sarah" => "c2FyYWg6",
        "geri" => "Z2VyaTo=",
        _ => "bWFsbG9yeTo=", // mallory:
    };
    format!("Basic {encoded}")
}

fn ids(body: &str) -> Vec<i64> {
    let list: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

async fn scenario(send: impl Send3) {
    // Authentication.
    assert_eq!(
        send("GET", "/contacts".into(), None, String::new()).await.0,
        401
    );
    assert_eq!(
        send("GET", "/contacts".into(), Some("mallory"), String::new())
            .await
            .0,
        401
    );
    assert_eq!(
        send("GET", "/contacts/1".into(), Some("mallory"), String::new())
            .await
            .0,
        401
    );

    for user in USERS {
        // The list, filtered in SQL from the plan.
        let (status, body) = send("GET", "/contacts".into(), Some(user.0), String::new()).await;
        assert_eq!(status, 200, "{body}");
        let expected: Vec<i64> = CONTACTS
            .iter()
            .filter(|c| can_read(user, **c))
            .map(|c| c.0)
            .collect();
        assert_eq!(ids(&body), expected, "{} lists", user.0);
        let first: Value = serde_json::from_str(&body).unwrap();
        // Each listed contact carries the user's permissions on it, from
        // one batched PDP call for the page.
        for (listed, id) in first.as_array().unwrap().iter().zip(&expected) {
            let contact = CONTACTS.iter().find(|c| c.0 == *id).unwrap();
            let change = can_change(user, *contact);
            assert_eq!(
                listed["permissions"],
                json!({"update": change, "delete": change}),
                "{} lists {id}",
                user.0
            );
        }
        for key in [
            "id",
            "first_name",
            "last_name",
            "is_active",
            "marketing_opt_in",
        ] {
            assert!(first[0].get(key).is_some(), "{key} in {body}");
        }
        // Each contact, with the permissions from the same PDP call.
        for contact in CONTACTS {
            let (status, body) = send(
                "GET",
                format!("/contacts/{}", contact.0),
                Some(user.0),
                String::new(),
            )
            .await;
            if can_read(user, contact) {
                assert_eq!(status, 200, "{} reads {}", user.0, contact.0);
                let got: Value = serde_json::from_str(&body).unwrap();
                let change = can_change(user, contact);
                assert_eq!(
                    got["permissions"],
                    json!({"read": true, "update": change, "delete": change})
                );
                assert_eq!(got["id"], contact.0);
            } else {
                assert_eq!(
                    (status, body.as_str()),
                    (403, "Forbidden"),
                    "{} reads {}",
                    user.0,
                    contact.0
                );
            }
        }
        assert_eq!(
            send("GET", "/contacts/99".into(), Some(user.0), String::new())
                .await
                .0,
            404
        );
    }

    // Create: Sales and admins; a malformed body is a 400.
    let frodo =
        json!({"first_name": "frodo", "last_name": "baggins", "owner_id": "2", "company_id": "2"})
            .to_string();
    let (status, body) = send("POST", "/contacts/new".into(), Some("john"), frodo.clone()).await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (created["id"].as_i64(), created["is_active"].as_bool()),
        (Some(6), Some(true))
    );
    assert_eq!(
        send("POST", "/contacts/new".into(), Some("geri"), frodo.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        send("POST", "/contacts/new".into(), Some("alice"), frodo)
            .await
            .0,
        201
    );
    let (status, body) = send(
        "POST",
        "/contacts/new".into(),
        Some("john"),
        r#"{"first_name":"x"}"#.into(),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, "`last_name` is missing"));
    assert_eq!(
        send(
            "POST",
            "/contacts/new".into(),
            Some("john"),
            "not json".into()
        )
        .await
        .0,
        400
    );

    // Update: owners and admins.
    let nick =
        json!({"first_name": "Nick", "last_name": "Smith", "owner_id": "2", "company_id": "1",
                      "is_active": true, "marketing_opt_in": false})
        .to_string();
    assert_eq!(
        send("PUT", "/contacts/1".into(), Some("sarah"), nick.clone())
            .await
            .0,
        403
    );
    let (status, body) = send("PUT", "/contacts/1".into(), Some("john"), nick.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["last_name"],
        "Smith"
    );
    assert_eq!(
        send("PUT", "/contacts/1".into(), Some("john"), "{}".into())
            .await
            .0,
        400
    );
    assert_eq!(
        send("PUT", "/contacts/99".into(), Some("alice"), nick)
            .await
            .0,
        404
    );
    // Nick no longer opted in: geri stops seeing him.
    let (_, body) = send("GET", "/contacts".into(), Some("geri"), String::new()).await;
    assert_eq!(ids(&body), vec![5]);

    // Delete: owners and admins.
    assert_eq!(
        send("DELETE", "/contacts/2".into(), Some("sarah"), String::new())
            .await
            .0,
        403
    );
    assert_eq!(
        send("DELETE", "/contacts/2".into(), Some("john"), String::new())
            .await
            .0,
        200
    );
    assert_eq!(
        send("GET", "/contacts/2".into(), Some("john"), String::new())
            .await
            .0,
        404
    );
    let (_, body) = send("GET", "/contacts".into(), Some("john"), String::new()).await;
    assert_eq!(ids(&body), vec![1, 3, 5, 6, 7]);
    // Per-row permissions for two users on the same page: john changes
    // only his own contacts, alice (admin) every one.
    for (user, own) in [("john", vec![1, 6, 7]), ("alice", vec![1, 3, 4, 5, 6, 7])] {
        let (status, body) = send("GET", "/contacts".into(), Some(user), String::new()).await;
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        for listed in list.as_array().unwrap() {
            let change = own.contains(&listed["id"].as_i64().unwrap());
            assert_eq!(
                listed["permissions"],
                json!({"update": change, "delete": change}),
                "{user}: {listed}"
            );
        }
    }

    // HEAD is answered like GET (the servers drop the body on the wire;
    // actix's test harness keeps it); a method the route does not serve is
    // a 405, in both frameworks.
    let (status, body) = send("HEAD", "/contacts/1".into(), Some("john"), String::new()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        send("HEAD", "/contacts/3".into(), Some("geri"), String::new())
            .await
            .0,
        403
    );
    for method in ["OPTIONS", "PATCH"] {
        let (status, body) = send(method, "/contacts/1".into(), Some("john"), String::new()).await;
        assert_eq!(status, 405, "{method}: {body}");
    }

    // A new contact never takes a deleted one's id (a decision about the
    // old row must never apply to it), and a dangling owner or company is
    // the client's mistake: 422 with the reason, not a 500.
    let sam = |owner: &str, company: &str| {
        json!({"first_name": "sam", "last_name": "gamgee", "owner_id": owner, "company_id": company})
            .to_string()
    };
    let (status, body) = send("POST", "/contacts/new".into(), Some("alice"), sam("2", "2")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], 8);
    for (owner, company, field) in [("99", "2", "owner_id"), ("2", "99", "company_id")] {
        let (status, body) = send(
            "POST",
            "/contacts/new".into(),
            Some("alice"),
            sam(owner, company),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body.contains(field), "{body}");
    }
}

/// Sends requests to contacts-axum, made with `client`.
fn axum_app(client: cerbos_tower::Client) -> impl Send3 {
    let app = contacts_axum::app(client, contacts_shared::Db::seeded().unwrap()).unwrap();
    common::axum_sender(app, basic)
}

/// Sends requests to contacts-actix, made with `client`.
async fn actix_app(client: cerbos_tower::Client) -> impl Send3 {
    use actix_web::{App, test};
    let authorizer = cerbos_actix::Cerbos::builder(client)
        .build()
        .unwrap()
        .authorizer();
    let db = contacts_shared::Db::seeded().unwrap();
    let app = App::new().configure(contacts_actix::configure(authorizer, db));
    common::actix_sender(test::init_service(app).await, basic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_axum() {
    scenario(axum_app(common::contact_client())).await;
}

#[actix_web::test]
async fn contacts_actix() {
    scenario(actix_app(common::contact_client()).await).await;
}

/// The list's plan failure is rendered like every other unreachable PDP:
/// 503, the same body as a check's.
async fn unreachable_scenario(send: impl Send3) {
    for path in ["/contacts", "/contacts/1"] {
        let (status, body) = send("GET", path.into(), Some("john"), String::new()).await;
        assert_eq!(
            (status, body.as_str()),
            (503, "Service Unavailable"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_axum_unreachable_pdp() {
    unreachable_scenario(axum_app(common::unreachable_client())).await;
}

#[actix_web::test]
async fn contacts_actix_unreachable_pdp() {
    unreachable_scenario(actix_app(common::unreachable_client()).await).await;
}
