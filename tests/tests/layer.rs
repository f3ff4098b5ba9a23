//! The tower layer against the real PDP, with the contact-directory
//! policies (`examples/policies/contact.yaml`): through an axum router, a tonic gRPC
//! server and a plain `service_fn`; 10,000 randomized requests compared
//! with the policy's expected decisions; one PDP call per request; faults.

mod common;

use common::contacts::*;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Extension, Router, body::Body, routing::get};
use cerbos_proto::grpc::health::v1::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};
use cerbos_testkit::Pdp as TestPdp;
use cerbos_tower::{
    CheckResources, Client, Resource,
    layer::{
        Actions, BearerJwt, Cerbos, Decision, Pdp, PermissionMap, PrincipalResolver, Reason,
        ResolveError, ResourceFromPath, ResourceResolver,
    },
};
use http::{Method, Request, Response, StatusCode, request::Parts};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The contact whose id is the path parameter, loaded from `db`.
fn contact_from_path(db: Db) -> impl ResourceResolver {
    ResourceFromPath::new("contact", "/contacts/{id}")
        .unwrap()
        .load(move |resource: Resource| std::future::ready(load_contact(&db, resource)))
}

/// The contact named by the `x-contact-id` header (for gRPC, whose paths
/// carry no id).
fn contact_from_header(db: Db) -> impl ResourceResolver {
    move |parts: &Parts| {
        let id = parts
            .headers
            .get("x-contact-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let loaded = load_contact(&db, Resource::new("contact", id))
            .and_then(|c| c.ok_or_else(|| ResolveError::not_found("no such contact")));
        std::future::ready(loaded)
    }
}

/// A PDP that counts its calls.
fn counting(client: Client) -> (impl Pdp, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let pdp = move |request: CheckResources| {
        counter.fetch_add(1, Ordering::SeqCst);
        client.check(request)
    };
    (pdp, calls)
}

// ---------------------------------------------------------------------------
// The three kinds of service.

/// The permission map as the JSON body.
async fn show(
    Extension(permissions): Extension<PermissionMap>,
    Extension(decision): Extension<Decision>,
) -> String {
    assert!(decision.is_allowed());
    serde_json::to_string(&permissions).unwrap()
}

/// A `Cerbos` of `pdp` with the principal named by the `x-user` header.
fn users_cerbos<P: Pdp>(pdp: P) -> Cerbos<P, impl PrincipalResolver> {
    Cerbos::builder(pdp)
        .principal(principal_from_header)
        .build()
        .unwrap()
}

/// An axum app: `/contacts/{id}` protected (the action follows the
/// method, the permission map has read/update/delete), `/health` not.
fn axum_app<P: Pdp, R: PrincipalResolver>(cerbos: &Cerbos<P, R>, db: Db) -> Router {
    let layer = cerbos
        .layer(
            contact_from_path(db),
            Actions::crud().with_permissions(["read", "update", "delete"]),
        )
        .unwrap();
    Router::new()
        .route("/contacts/{id}", get(show).put(show).delete(show))
        .route_layer(layer)
        .route("/health", get(|| async { "ok" }))
}

fn http_request(method: &Method, path: &str, user: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("x-user", user)
        .body(Body::empty())
        .unwrap()
}

async fn call(app: &Router, method: &Method, path: &str, user: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(http_request(method, path, user))
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn action_of(method: &Method) -> &'static str {
    match *method {
        Method::GET => "read",
        Method::PUT => "update",
        Method::DELETE => "delete",
        _ => unreachable!(),
    }
}

/// The JSON the handler answers for `user` on `contact`.
fn expected_permissions(user: &User, contact: &Contact) -> serde_json::Value {
    serde_json::from_str(&permissions_json(user, contact)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_router_every_user_contact_and_method() {
    let db = contacts(12, 7);
    let (pdp, calls) = counting(common::contact_client());
    let cerbos = users_cerbos(pdp);
    let app = axum_app(&cerbos, db.clone());
    let mut checked = 0;
    for user in &USERS {
        for (id, contact) in db.iter() {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let (status, body) =
                    call(&app, &method, &format!("/contacts/{id}"), user.name).await;
                let allowed = expected(user, contact, action_of(&method));
                let want = if allowed {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(
                    status, want,
                    "{} {method} contact {id} {contact:?}",
                    user.name
                );
                if allowed {
                    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(
                        got,
                        expected_permissions(user, contact),
                        "{} {id}",
                        user.name
                    );
                } else {
                    assert_eq!(body, "Forbidden");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        checked,
        "one PDP call per request"
    );

    // Unknown user: 401; unknown contact: 404; unknown path: 404; none of
    // them asks the PDP.
    assert_eq!(
        call(&app, &Method::GET, "/contacts/1", "mallory").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, &Method::GET, "/contacts/999", "john").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, &Method::GET, "/nowhere", "john").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(calls.load(Ordering::SeqCst), checked);
    // axum's `route_layer` wraps the route's whole method router, so a
    // method it does not serve is checked (here as `create`) before axum
    // answers 405; a principal without `create` gets 403 instead.
    assert_eq!(
        call(&app, &Method::POST, "/contacts/1", "john").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&app, &Method::POST, "/contacts/1", "geri").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(calls.load(Ordering::SeqCst), checked + 2);
}

/// 10,000 requests from 32 concurrent tasks, random users (one unknown),
/// contacts (some absent) and methods: every status and permission map is
/// what the policy says, and the PDP is called exactly once per request
/// that gets as far as the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_requests_match_the_policy() {
    const TASKS: u64 = 32;
    const PER_TASK: u64 = 10_000 / TASKS + 1;
    let db = contacts(60, 42);
    let (pdp, calls) = counting(common::contact_client());
    let cerbos = users_cerbos(pdp);
    let app = axum_app(&cerbos, db.clone());
    let names = ["alice", "john", "sarah", "geri", "mallory"];
    let methods = [Method::GET, Method::PUT, Method::DELETE];
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (app, db) = (app.clone(), db.clone());
            let methods = methods.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (task + 1));
                let (mut mismatches, mut checks, mut total) = (Vec::new(), 0usize, 0usize);
                for _ in 0..PER_TASK {
                    let name = names[rng.below(names.len() as u64) as usize];
                    let id = 1 + rng.below(66); // 61..=66 do not exist
                    let method = &methods[rng.below(3) as usize];
                    let (status, body) = call(&app, method, &format!("/contacts/{id}"), name).await;
                    total += 1;
                    let (want, perms) = match (user_by_name(name), db.get(&id.to_string())) {
                        (None, _) => (StatusCode::UNAUTHORIZED, None),
                        (Some(_), None) => (StatusCode::NOT_FOUND, None),
                        (Some(user), Some(contact)) => {
                            checks += 1;
                            if expected(user, contact, action_of(method)) {
                                (StatusCode::OK, Some(expected_permissions(user, contact)))
                            } else {
                                (StatusCode::FORBIDDEN, None)
                            }
                        }
                    };
                    let got = perms
                        .as_ref()
                        .map(|_| serde_json::from_str(&body).unwrap_or_default());
                    if status != want || got != perms {
                        mismatches.push(format!("{name} {method} {id}: {status} {body}"));
                    }
                }
                (mismatches, checks, total)
            })
        })
        .collect();
    let (mut mismatches, mut checks, mut total) = (Vec::new(), 0, 0);
    for task in tasks {
        let (m, c, t) = task.await.unwrap();
        mismatches.extend(m);
        checks += c;
        total += t;
    }
    assert!(total >= 10_000);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        checks,
        "exactly one PDP call per checked request"
    );
    assert!(checks > 6_500, "most requests reach the check ({checks})");
}

/// The PDP's own log shows one `CheckResources` per request, whatever the
/// number of actions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_check_resources_call_on_the_wire_per_request() {
    let pdp = TestPdp::builder(common::contact_policy_dir())
        .log_level("info")
        .start()
        .unwrap();
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let cerbos = users_cerbos(client);
    let db = contacts(5, 1);
    let layer = cerbos
        .layer(
            contact_from_path(db),
            Actions::require(["read"])
                .with_permissions(["update", "delete", "create", "share", "archive"]),
        )
        .unwrap();
    let app = Router::new()
        .route("/contacts/{id}", get(show))
        .route_layer(layer);
    // The PDP logs each handled call (twice, with the same call id):
    // count the distinct call ids of handled CheckResources calls.
    let handled = |logs: String| {
        logs.lines()
            .filter(|l| {
                l.contains("\"Handled request\"")
                    && l.contains("\"grpc.method\":\"CheckResources\"")
            })
            .filter_map(|l| {
                l.split("\"call_id\":\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let before = handled(pdp.logs());
    for i in 0..25 {
        let (status, _) = call(
            &app,
            &Method::GET,
            &format!("/contacts/{}", 1 + i % 5),
            "alice",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // The PDP writes its log asynchronously: wait for the last lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = handled(pdp.logs()) - before;
        if seen >= 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = pdp.logs();
    let tail: Vec<&str> = logs.lines().rev().take(5).collect();
    assert_eq!(seen, 25, "PDP log ends with:\n{tail:#?}");
}

/// A gRPC health service standing in for an application's gRPC service.
#[derive(Clone)]
struct Serving;

#[tonic::async_trait]
impl Health for Serving {
    async fn check(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, tonic::Status>>;

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("watch"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_server_protected_by_the_layer() {
    let db = contacts(12, 7);
    let (pdp, calls) = counting(common::contact_client());
    let cerbos = users_cerbos(pdp);
    let layer = cerbos
        .layer(contact_from_header(db.clone()), ["read"])
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(HealthServer::new(Serving))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check = |user: &str, contact: &str| {
        let mut health = HealthClient::new(channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest::default());
        request
            .metadata_mut()
            .insert("x-user", user.parse().unwrap());
        request
            .metadata_mut()
            .insert("x-contact-id", contact.parse().unwrap());
        async move { health.check(request).await }
    };
    let mut checked = 0;
    for user in &USERS {
        for (id, contact) in db.iter() {
            let answer = check(user.name, id).await;
            if expected(user, contact, "read") {
                assert_eq!(
                    answer.unwrap().into_inner().status,
                    ServingStatus::Serving as i32
                );
            } else {
                let status = answer.unwrap_err();
                assert_eq!(
                    status.code(),
                    tonic::Code::PermissionDenied,
                    "{} {id}",
                    user.name
                );
                assert_eq!(status.message(), "Forbidden");
            }
            checked += 1;
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), checked);
    assert_eq!(
        check("mallory", "1").await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        check("john", "999").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_service_fn_protected_by_the_layer() {
    let db = contacts(12, 7);
    let cerbos = users_cerbos(common::contact_client());
    let service = ServiceBuilder::new()
        .layer(
            cerbos
                .layer(contact_from_path(db.clone()), Actions::crud())
                .unwrap(),
        )
        .service(service_fn(|request: Request<String>| async move {
            let reason = request.extensions().get::<Decision>().map(Decision::reason);
            assert_eq!(reason, Some(Reason::Allowed));
            Ok::<_, Infallible>(Response::new(String::from("handled")))
        }));
    for user in &USERS {
        for (id, contact) in db.iter() {
            let request = Request::builder()
                .method(Method::DELETE)
                .uri(format!("/contacts/{id}"))
                .header("x-user", user.name)
                .body(String::new())
                .unwrap();
            let response = service.clone().oneshot(request).await.unwrap();
            let allowed = expected(user, contact, "delete");
            assert_eq!(
                response.status() == StatusCode::OK,
                allowed,
                "{} {id}",
                user.name
            );
            assert_eq!(response.into_body().is_rejection(), !allowed);
        }
    }
}

/// The bearer token goes to the PDP as aux data and policies read its
/// claims; a token the PDP cannot verify is a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_jwt_through_axum() {
    let (pdp, _dir) = common::pdp_with_jwt_key_set();
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let cerbos = Cerbos::builder(client)
        .principal(BearerJwt::new(principal_from_header).key_set_id("local"))
        .build()
        .unwrap();
    let layer = cerbos
        .layer(
            ResourceFromPath::new("expense", "/expenses/{id}").unwrap(),
            ["approve"],
        )
        .unwrap();
    let app = Router::new()
        .route("/expenses/{id}", get(|| async { "approved" }))
        .route_layer(layer);
    let approve = |token: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = http_request(&Method::GET, "/expenses/e1", "john");
            if let Some(token) = token {
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            app.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(
        approve(Some(common::jwt(common::JWT_SECRET, "Finance"))).await,
        StatusCode::OK
    );
    assert_eq!(
        approve(Some(common::jwt(common::JWT_SECRET, "Sales"))).await,
        StatusCode::FORBIDDEN
    );
    let forged = common::jwt(b"some other key entirely, also 256 bits long!!", "Finance");
    assert_eq!(approve(Some(forged)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(approve(None).await, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------
// Faults.

/// `count` concurrent requests alternating between an allowed and a denied
/// read; each answer's status and how long it took.
async fn burst(
    app: &Router,
    count: usize,
    denied_contact: &str,
) -> Vec<(bool, StatusCode, Duration)> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let app = app.clone();
            let allowed = i % 2 == 0;
            let (user, path) = if allowed {
                ("alice", "/contacts/1".to_owned())
            } else {
                ("geri", format!("/contacts/{denied_contact}"))
            };
            tokio::spawn(async move {
                let started = Instant::now();
                let (status, _) = call(&app, &Method::GET, &path, user).await;
                (allowed, status, started.elapsed())
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn decided(allowed: bool) -> StatusCode {
    if allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    }
}

/// A contact geri may not read.
fn denied_for_geri(db: &Db) -> String {
    let geri = user_by_name("geri").unwrap();
    db.iter()
        .find(|(_, c)| !expected(geri, c, "read"))
        .map(|(id, _)| id.clone())
        .expect("a contact geri may not read")
}

/// The contact app with a client of `endpoint` and the default status for
/// an unreachable PDP (503), and a contact geri may not read.
fn fault_app(endpoint: &str, timeout: Duration, connect_timeout: Duration) -> (Router, String) {
    let client = Client::builder(endpoint)
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .build()
        .unwrap();
    let cerbos = Cerbos::builder(client)
        .principal(principal_from_header)
        .build()
        .unwrap();
    let db = contacts(12, 7);
    let denied = denied_for_geri(&db);
    (axum_app(&cerbos, db), denied)
}

/// Waits until the app's decisions come from the PDP again (at most 10 s).
async fn until_decided(app: &Router) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = call(app, &Method::GET, "/contacts/1", "alice").await;
        if status == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "no decisions: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every answer of a burst while the PDP is up is the policy's decision.
fn assert_decided(answers: Vec<(bool, StatusCode, Duration)>) {
    for (allowed, status, took) in answers {
        assert_eq!(status, decided(allowed), "allowed={allowed}, took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdp_killed_during_traffic_denies_as_unreachable_then_recovers() {
    // The client's default: the test machine may be busy with other tests,
    // and a PDP that is up must never be reported unreachable.
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut pdp = TestPdp::start(common::contact_policy_dir()).unwrap();
    let (app, denied) = fault_app(&pdp.grpc_endpoint(), TIMEOUT, Duration::from_secs(1));

    // Up: exact decisions.
    until_decided(&app).await;
    assert_decided(burst(&app, 64, &denied).await);

    // Traffic keeps flowing while the PDP is killed: every answer is the
    // right decision or 503, never a wrong decision.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background: Vec<_> = (0..4)
        .map(|_| {
            let (app, stop, denied) = (app.clone(), stop.clone(), denied.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    seen.extend(burst(&app, 2, &denied).await);
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::block_in_place(|| pdp.stop()).unwrap();

    // Down: every request is 503 (Unreachable) within the timeout, and
    // routes without the layer keep serving.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (_, status, took) in burst(&app, 64, &denied).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < TIMEOUT, "took {took:?}");
    }
    assert_eq!(
        call(&app, &Method::GET, "/health", "nobody").await.0,
        StatusCode::OK
    );

    // Back: decisions recover without touching the app.
    tokio::task::block_in_place(|| pdp.restart()).unwrap();
    until_decided(&app).await;
    assert_decided(burst(&app, 64, &denied).await);

    stop.store(true, Ordering::SeqCst);
    let mut outage = 0;
    for task in background {
        for (allowed, status, _) in task.await.unwrap() {
            assert!(
                status == decided(allowed) || status == StatusCode::SERVICE_UNAVAILABLE,
                "allowed={allowed} got {status}"
            );
            outage += usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    assert!(outage > 0, "the background traffic saw the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdp_that_never_answers_is_denied_within_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let (app, denied) = fault_app(&format!("http://{addr}"), TIMEOUT, Duration::from_secs(5));
    for (_, status, took) in burst(&app, 16, &denied).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took >= TIMEOUT, "answered before the timeout: {took:?}");
        assert!(took < TIMEOUT + Duration::from_secs(1), "took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_pdp_answers_403_when_configured() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::builder(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let cerbos = Cerbos::builder(client)
        .principal(principal_from_header)
        .unreachable_status(StatusCode::FORBIDDEN)
        .build()
        .unwrap();
    let app = axum_app(&cerbos, contacts(4, 1));
    for user in ["alice", "geri"] {
        assert_eq!(
            call(&app, &Method::GET, "/contacts/1", user).await,
            (StatusCode::FORBIDDEN, "Forbidden".to_owned()),
            "{user}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_json_bodies_and_a_cors_preflight_against_the_real_pdp() {
    let db = contacts(12, 7);
    let denied = denied_for_geri(&db);
    let (pdp, calls) = counting(common::contact_client());
    let cerbos = Cerbos::builder(pdp)
        .principal(principal_from_header)
        .problem_json()
        .build()
        .unwrap();
    let app = axum_app(&cerbos, db);
    let response = app
        .clone()
        .oneshot(http_request(
            &Method::GET,
            &format!("/contacts/{denied}"),
            "geri",
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"type": "about:blank", "title": "Forbidden", "status": 403})
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Allowed requests are untouched.
    assert_eq!(
        call(&app, &Method::GET, "/contacts/1", "alice").await.0,
        StatusCode::OK
    );

    // A CORS preflight: no actions for OPTIONS, denied without asking the
    // PDP (and logged at DEBUG, not as an error).
    let calls_before = calls.load(Ordering::SeqCst);
    let mut preflight = http_request(&Method::OPTIONS, "/contacts/1", "alice");
    preflight.headers_mut().insert(
        http::header::ACCESS_CONTROL_REQUEST_METHOD,
        "PUT".parse().unwrap(),
    );
    preflight
        .headers_mut()
        .insert(http::header::ORIGIN, "https://app.example".parse().unwrap());
    let response = app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(calls.load(Ordering::SeqCst), calls_before);
}
