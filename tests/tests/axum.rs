//! cerbos-axum against the real PDP with the contact-directory policies:
//! guards, extractors, the `#[authorize]` attribute, in-handler checks,
//! nested routers, rejections, and a PDP that is down.

mod common;

use axum::{
    Router,
    body::Body,
    extract::{FromRef, Path, State},
    routing::get,
};
use bytes::Bytes;
use cerbos_axum::{
    Actions, Authorizer, Authz, Cerbos, CerbosExt, CerbosRejection, Decision, PathResource,
    PermissionMap, Principal, Reason, Rejection, ResolveError, Resource, authorize,
};
use common::contacts::*;
use http::{Method, Request, Response, StatusCode, request::Parts};
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    authorizer: Authorizer,
    db: Db,
}

impl FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

/// The contact's row as attributes, for `#[authorize(load = ...)]`.
async fn load_from_state(
    contact: Resource,
    state: &AppState,
) -> Result<Option<Resource>, ResolveError> {
    let db = state.db.clone();
    load_contact(&db, contact)
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load_from_state, state = AppState)]
async fn show_contact(
    Path(id): Path<String>,
    permissions: PermissionMap,
    decision: Decision,
) -> String {
    assert_eq!(decision.reason(), Reason::Allowed);
    format!("{id} {}", serde_json::to_string(&permissions).unwrap())
}

/// No loader: the policy only sees the id (admins pass, others do not).
#[authorize(kind = "contact", actions = ["delete"])]
async fn delete_by_id(principal: Principal) -> String {
    format!("deleted by {}", principal.id())
}

/// In-handler: the id is in the body.
async fn archive(
    State(state): State<AppState>,
    authz: Authz,
    body: String,
) -> Result<String, CerbosRejection> {
    let contact = load_contact(&state.db, Resource::new("contact", body.trim()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Resource::new("contact", "absent"));
    let decision = authz.check(contact.clone(), ["read", "update"]).await;
    let allowed = decision.permissions();
    authz.require(contact, ["update"]).await?;
    Ok(format!(
        "read={} update={}",
        allowed.is_allowed("read"),
        allowed.is_allowed("update")
    ))
}

/// Reads what the layer left; `Option` where absence is legitimate.
async fn extracted(permissions: PermissionMap, decision: Decision, principal: Principal) -> String {
    format!(
        "{} {} {}",
        principal.id(),
        decision.resource_id(),
        serde_json::to_string(&permissions).unwrap()
    )
}

/// A list page: the plan for `kind`, then the permissions of every row
/// (ids 1..) from one batched call.
async fn page(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    authz: Authz,
) -> Result<String, CerbosRejection> {
    let plan = authz.plan(kind, ["read"]).await?;
    Ok(page_body(
        &state.db,
        plan,
        authz
            .permissions(rows(&state.db), ["read", "update", "delete"])
            .await?,
    ))
}

/// A list page's SQL filter, from a translator that maps only
/// `is_active`: a plan that reads another attribute is refused, so the
/// page is denied (403, rendered by the rejection handler), never run
/// unfiltered.
async fn sql_page(Path(kind): Path<String>, authz: Authz) -> Result<String, CerbosRejection> {
    let to_sql = cerbos_sql::PlanToSql::new(cerbos_sql::Dialect::Sqlite)
        .attrs("contact", [("is_active", cerbos_sql::ColumnType::Bool)]);
    let filter = authz
        .plan_with(kind, ["read"], |plan| to_sql.filter(plan))
        .await?;
    Ok(format!("may match: {}", filter.may_match()))
}

/// The rows of a page, in id order, with their attributes.
fn rows(db: &Db) -> Vec<Resource> {
    (1..=db.len())
        .map(|id| {
            load_contact(db, Resource::new("contact", id.to_string()))
                .unwrap()
                .unwrap()
        })
        .collect()
}

/// What a page answers: the plan's filter, then each row's permissions.
fn page_body(db: &Db, plan: cerbos_tower::layer::Plan, maps: Vec<PermissionMap>) -> String {
    assert_eq!(maps.len(), db.len());
    let filter = match plan.filter() {
        cerbos_tower::PlanFilter::AlwaysAllowed => "always_allowed",
        cerbos_tower::PlanFilter::AlwaysDenied => "always_denied",
        cerbos_tower::PlanFilter::Conditional(_) => "conditional",
    };
    let maps: Vec<String> = maps
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect();
    format!("{filter} {}", maps.join(";"))
}

/// What a page should answer for `user` with a plan for `kind`.
fn expected_page(db: &Db, user: &User, kind: &str) -> String {
    let filter = match (kind, user.role) {
        ("contact", "admin") => "always_allowed",
        ("contact", _) => "conditional",
        _ => "always_denied",
    };
    let maps: Vec<String> = (1..=db.len())
        .map(|id| permissions_json(user, &db[&id.to_string()]))
        .collect();
    format!("{filter} {}", maps.join(";"))
}

async fn optional(permissions: Option<PermissionMap>) -> String {
    format!("{}", permissions.is_some())
}

fn app(
    cerbos: &Cerbos<cerbos_axum::Client, impl cerbos_tower::layer::PrincipalResolver>,
    db: Db,
) -> Router {
    let state = AppState {
        authorizer: cerbos.authorizer(),
        db: db.clone(),
    };
    let loaded = {
        let db = db.clone();
        PathResource::new("contact").load(move |r| std::future::ready(load_contact(&db, r)))
    };
    let guarded = Router::new()
        .route("/contacts/{id}", get(extracted))
        .route_layer(
            cerbos
                .guard_with(
                    loaded,
                    Actions::require(["read"]).with_permissions(["update", "delete"]),
                )
                .unwrap(),
        );
    let by_id = Router::new()
        .route("/ids/{id}", get(extracted))
        .route_layer(cerbos.guard("contact", ["delete"]).unwrap());
    Router::new()
        .nest("/api", guarded)
        .merge(by_id)
        .route("/attr/contacts/{id}", get(show_contact))
        .route("/attr/delete/{contact}", get(delete_by_id))
        .route("/archive", axum::routing::post(archive))
        .route("/page/{kind}", get(page))
        .route("/sql/{kind}", get(sql_page))
        .route("/unprotected", get(extracted))
        .route("/optional", get(optional))
        .with_state(state)
}

fn cerbos_for(
    endpoint: &str,
) -> Cerbos<cerbos_axum::Client, impl cerbos_tower::layer::PrincipalResolver> {
    let client = common::live_client(endpoint).build().unwrap();
    Cerbos::builder(client)
        .principal(principal_from_header)
        .build()
        .unwrap()
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    user: &str,
    body: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-user", user)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_extractors_attribute_and_in_handler_checks() {
    let db = contacts(10, 3);
    let app = app(
        &cerbos_for(&common::contact_pdp().grpc_endpoint()),
        db.clone(),
    );
    for user in &USERS {
        for (id, contact) in db.iter() {
            let read = expected(user, contact, "read");
            // Guard with a loader, under `Router::nest`; extractors.
            let (status, body) = send(
                &app,
                Method::GET,
                &format!("/api/contacts/{id}"),
                user.name,
                "",
            )
            .await;
            if read {
                assert_eq!(
                    (status, body),
                    (
                        StatusCode::OK,
                        format!("{} {id} {}", user.id, permissions_json(user, contact))
                    )
                );
            } else {
                assert_eq!(
                    (status, body.as_str()),
                    (StatusCode::FORBIDDEN, "Forbidden"),
                    "{} {id}",
                    user.name
                );
            }
            // The attribute, with a loader from the state.
            let (status, body) = send(
                &app,
                Method::GET,
                &format!("/attr/contacts/{id}"),
                user.name,
                "",
            )
            .await;
            if read {
                assert_eq!(
                    (status, body),
                    (
                        StatusCode::OK,
                        format!("{id} {}", permissions_json(user, contact))
                    )
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{} {id}", user.name);
            }
            // In-handler checks.
            let (status, body) = send(&app, Method::POST, "/archive", user.name, id).await;
            if expected(user, contact, "update") {
                assert_eq!(
                    (status, body),
                    (StatusCode::OK, format!("read={read} update=true"))
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN);
            }
        }
        // A list page: Authz::plan, and Authz::permissions for every row
        // in one call; an unknown kind plans to nothing.
        for kind in ["contact", "unknown_kind"] {
            let path = format!("/page/{kind}");
            let (status, body) = send(&app, Method::GET, &path, user.name, "").await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, expected_page(&db, user, kind)),
                "{} {path}",
                user.name
            );
        }
        // Authz::plan_with: admins' plan needs no column, users' reads
        // `owner_id`, which this translator does not map: denied.
        for (kind, expected) in [
            (
                "contact",
                if user.role == "admin" {
                    Some("may match: true")
                } else {
                    None
                },
            ),
            ("unknown_kind", Some("may match: false")),
        ] {
            let path = format!("/sql/{kind}");
            let (status, body) = send(&app, Method::GET, &path, user.name, "").await;
            match expected {
                Some(expected) => assert_eq!((status, body.as_str()), (StatusCode::OK, expected)),
                None => assert_eq!(
                    (status, body.as_str()),
                    (StatusCode::FORBIDDEN, "Forbidden")
                ),
            }
        }
        // The guard and the attribute without attributes: only admins delete.
        let admin = user.role == "admin";
        let (status, body) = send(&app, Method::GET, "/ids/1", user.name, "").await;
        assert_eq!(status == StatusCode::OK, admin, "{}: {body}", user.name);
        let (status, body) = send(&app, Method::GET, "/attr/delete/1", user.name, "").await;
        assert_eq!(status == StatusCode::OK, admin, "{}: {body}", user.name);
        if admin {
            assert_eq!(body, format!("deleted by {}", user.id));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_statuses_and_missing_layer() {
    let db = contacts(10, 3);
    let app = app(&cerbos_for(&common::contact_pdp().grpc_endpoint()), db);
    for path in [
        "/api/contacts/1",
        "/attr/contacts/1",
        "/ids/1",
        "/attr/delete/1",
    ] {
        assert_eq!(
            send(&app, Method::GET, path, "mallory", "").await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        send(&app, Method::POST, "/archive", "mallory", "1").await.0,
        StatusCode::UNAUTHORIZED
    );
    for path in ["/api/contacts/404", "/attr/contacts/404", "/api/nowhere"] {
        assert_eq!(
            send(&app, Method::GET, path, "alice", "").await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Extractors on a route without the layer: a 500 that says what to add.
    let (status, body) = send(&app, Method::GET, "/unprotected", "alice", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("PermissionMap was not found") && body.contains("Cerbos layer"),
        "{body}"
    );
    assert_eq!(
        send(&app, Method::GET, "/optional", "alice", "").await,
        (StatusCode::OK, "false".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_rejections_and_a_pdp_that_is_down() {
    // Nothing listens on this port: every check is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = cerbos_axum::Client::builder(format!("http://127.0.0.1:{port}"))
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    // 503 for an unreachable PDP is the default.
    let cerbos = Cerbos::builder(client)
        .principal(principal_from_header)
        .on_rejection(|rejection: Rejection, _: &Parts| {
            Response::builder()
                .status(rejection.status())
                .header("content-type", "application/json")
                .body(Bytes::from(format!(
                    "{{\"error\":\"{:?}\"}}",
                    rejection.kind()
                )))
                .unwrap()
        })
        .build()
        .unwrap();
    let app = app(&cerbos, contacts(10, 3));
    for (method, path, body) in [
        (Method::GET, "/api/contacts/1", ""),
        (Method::GET, "/attr/contacts/1", ""),
        (Method::GET, "/ids/1", ""),
        (Method::GET, "/attr/delete/1", ""),
        (Method::POST, "/archive", "1"),
        (Method::GET, "/page/contact", ""),
    ] {
        let (status, body) = send(&app, method, path, "alice", body).await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"Unreachable\"}"
            ),
            "{path}"
        );
    }
    let (status, body) = send(&app, Method::GET, "/attr/contacts/1", "mallory", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, "{\"error\":\"Unauthenticated\"}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_response_rejections_and_problem_json_against_the_real_pdp() {
    let db = contacts(10, 3);
    let geri = user_by_name("geri").unwrap();
    let (denied, _) = db
        .iter()
        .find(|(_, c)| !expected(geri, c, "read") && !expected(geri, c, "update"))
        .expect("a contact geri may neither read nor update");
    let endpoint = common::contact_pdp().grpc_endpoint();

    // A rejection handler returning an axum `IntoResponse`.
    let cerbos = Cerbos::builder(common::live_client(&endpoint).build().unwrap())
        .principal(principal_from_header)
        .on_rejection(cerbos_axum::on_rejection(
            |rejection: Rejection, parts: &Parts| {
                (
                    rejection.status(),
                    [("x-rejected", format!("{:?}", rejection.kind()))],
                    format!("{} {}: no", parts.method, parts.uri.path()),
                )
            },
        ))
        .build()
        .unwrap();
    let router = app(&cerbos, db.clone());
    for path in [
        format!("/api/contacts/{denied}"),
        format!("/attr/contacts/{denied}"),
    ] {
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .uri(&path)
                    .header("x-user", "geri")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(response.headers()["x-rejected"], "Denied", "{path}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        // The guard under `Router::nest` sees the nested path.
        assert!(body.ends_with(b": no"), "{path}: {body:?}");
    }
    let (status, body) = send(&router, Method::POST, "/archive", "geri", denied).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, "POST /archive: no".to_owned())
    );
    let (status, _) = send(&router, Method::GET, "/api/contacts/1", "alice", "").await;
    assert_eq!(status, StatusCode::OK);

    // problem+json bodies, from the guard, the attribute and `Authz`.
    let cerbos = Cerbos::builder(common::live_client(&endpoint).build().unwrap())
        .principal(principal_from_header)
        .problem_json()
        .build()
        .unwrap();
    let app = app(&cerbos, db.clone());
    let problem = "{\"type\":\"about:blank\",\"title\":\"Forbidden\",\"status\":403}";
    for (method, path, body) in [
        (Method::GET, format!("/api/contacts/{denied}"), ""),
        (Method::GET, format!("/attr/contacts/{denied}"), ""),
        (Method::POST, "/archive".to_owned(), denied.as_str()),
    ] {
        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("x-user", "geri")
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(body, problem, "{path}");
    }
}
