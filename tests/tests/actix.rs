//! cerbos-actix against the real PDP with the contact-directory policies:
//! the middleware on App, Scope and Resource (and twice, nested), the
//! extractors, the attribute, in-handler checks, every status, a PDP
//! that goes down and comes back, and one principal resolver (configured
//! once, on `Cerbos`) for every entry point.

mod common;

use std::time::Duration;

use actix_web::{
    App, HttpMessage, HttpRequest, HttpResponse,
    dev::{Service, ServiceResponse},
    test, web,
};
use cerbos_actix::{
    Authz, BearerJwt, Cerbos, CerbosExt, CerbosRejection, Client, Decision, PathResource,
    PermissionMap, Principal, Reason, ResolveError, Resource, authorize,
};
use cerbos_tower::layer::{Pdp, PrincipalResolver};
use common::{actix_call as call, contacts::*};

/// The contact's row from the app data.
async fn load(contact: Resource, req: HttpRequest) -> Result<Option<Resource>, ResolveError> {
    let db = req
        .app_data::<web::Data<Db>>()
        .ok_or_else(|| ResolveError::internal("no db"))?;
    load_contact(db, contact)
}

fn contacts_resource() -> PathResource {
    PathResource::new("contact").load(load)
}

/// The contacts under `/api/v1`, for the scope guards (which run before
/// actix matches the route, hence the template).
fn versioned() -> PathResource {
    contacts_resource()
        .template("/api/v1/contacts/{id}")
        .unwrap()
}

async fn extracted(permissions: PermissionMap, decision: Decision, principal: Principal) -> String {
    assert!(decision.is_allowed());
    format!(
        "{} {} {}",
        principal.id(),
        decision.resource_id(),
        serde_json::to_string(&permissions).unwrap()
    )
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load)]
async fn show(permissions: PermissionMap, path: web::Path<String>) -> String {
    format!(
        "{} {}",
        path.into_inner(),
        serde_json::to_string(&permissions).unwrap()
    )
}

#[authorize(kind = "contact", actions = ["delete"])]
async fn delete_by_id(principal: Principal) -> String {
    format!("deleted by {}", principal.id())
}

async fn archive(authz: Authz, db: web::Data<Db>, body: String) -> Result<String, CerbosRejection> {
    let contact = load_contact(&db, Resource::new("contact", body.trim()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Resource::new("contact", "absent"));
    let read = authz.check(contact.clone(), ["read"]).await.is_allowed();
    authz.require(contact, ["update"]).await?;
    Ok(format!("read={read} update=true"))
}

/// A list page: the plan for `kind`, then the permissions of every row
/// (ids 1..) from one batched call.
async fn page(
    authz: Authz,
    db: web::Data<Db>,
    kind: web::Path<String>,
) -> Result<String, CerbosRejection> {
    let plan = authz.plan(kind.into_inner(), ["read"]).await?;
    let maps = authz
        .permissions(rows(&db), ["read", "update", "delete"])
        .await?;
    Ok(page_body(&db, plan, maps))
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
    permissions.is_some().to_string()
}

fn cerbos(
    endpoint: &str,
    configure: impl FnOnce(
        cerbos_tower::layer::CerbosBuilder<Client>,
    ) -> cerbos_tower::layer::CerbosBuilder<Client>,
) -> Cerbos<Client, impl PrincipalResolver> {
    let client = common::live_client(endpoint).build().unwrap();
    configure(Cerbos::builder(client))
        .principal(principal_from_header)
        .build()
        .unwrap()
}

macro_rules! app {
    ($cerbos:expr, $db:expr) => {{
        let cerbos = $cerbos;
        let read = cerbos_actix::Actions::require(["read"]).with_permissions(["update", "delete"]);
        test::init_service(
            App::new()
                .app_data(web::Data::new($db))
                .app_data(cerbos.authorizer())
                // Resource::wrap: actix has matched the route, so the id
                // comes from match_info.
                .service(
                    web::resource("/contacts/{id}")
                        .wrap(
                            cerbos
                                .guard_with(contacts_resource(), read.clone())
                                .unwrap(),
                        )
                        .route(web::get().to(extracted)),
                )
                // Scope::wrap, with a nested scope wrapped again: both
                // guards check, and valid requests pass both.
                .service(
                    web::scope("/api")
                        .wrap(cerbos.guard_with(versioned(), ["read"]).unwrap())
                        .service(
                            web::scope("/v1")
                                .wrap(cerbos.guard_with(versioned(), read.clone()).unwrap())
                                .route("/contacts/{id}", web::get().to(extracted)),
                        ),
                )
                .route("/attr/contacts/{id}", web::get().to(show))
                .route("/attr/delete/{contact}", web::get().to(delete_by_id))
                .route("/archive", web::post().to(archive))
                .route("/page/{kind}", web::get().to(page))
                .route("/unprotected", web::get().to(extracted))
                .route("/optional", web::get().to(optional)),
        )
        .await
    }};
}

#[actix_web::test]
async fn middleware_extractors_attribute_and_in_handler_checks() {
    let db = contacts(10, 3);
    let app = app!(
        cerbos(&common::contact_pdp().grpc_endpoint(), |b| b),
        db.clone()
    );
    for user in &USERS {
        for (id, contact) in db.iter() {
            let read = expected(user, contact, "read");
            for path in [format!("/contacts/{id}"), format!("/api/v1/contacts/{id}")] {
                let (status, body) = call(&app, "GET", &path, user.name, "").await;
                if read {
                    assert_eq!(
                        (status, body),
                        (
                            200,
                            format!("{} {id} {}", user.id, permissions_json(user, contact))
                        ),
                        "{path}"
                    );
                } else {
                    assert_eq!(
                        (status, body.as_str()),
                        (403, "Forbidden"),
                        "{} {path}",
                        user.name
                    );
                }
            }
            let (status, body) =
                call(&app, "GET", &format!("/attr/contacts/{id}"), user.name, "").await;
            if read {
                assert_eq!(
                    (status, body),
                    (200, format!("{id} {}", permissions_json(user, contact)))
                );
            } else {
                assert_eq!(status, 403);
            }
            let (status, body) = call(&app, "POST", "/archive", user.name, id).await;
            if expected(user, contact, "update") {
                assert_eq!((status, body), (200, format!("read={read} update=true")));
            } else {
                assert_eq!(status, 403);
            }
        }
        // A list page: Authz::plan, and Authz::permissions for every row
        // in one call; an unknown kind plans to nothing.
        for kind in ["contact", "unknown_kind"] {
            let path = format!("/page/{kind}");
            let (status, body) = call(&app, "GET", &path, user.name, "").await;
            assert_eq!(
                (status, body),
                (200, expected_page(&db, user, kind)),
                "{} {path}",
                user.name
            );
        }
        let admin = user.role == "admin";
        let (status, body) = call(&app, "GET", "/attr/delete/1", user.name, "").await;
        assert_eq!(status == 200, admin, "{}: {body}", user.name);
    }
}

#[actix_web::test]
async fn statuses_and_missing_middleware() {
    let app = app!(
        cerbos(&common::contact_pdp().grpc_endpoint(), |b| b),
        contacts(10, 3)
    );
    for path in [
        "/contacts/1",
        "/api/v1/contacts/1",
        "/attr/contacts/1",
        "/attr/delete/1",
    ] {
        assert_eq!(
            call(&app, "GET", path, "mallory", "").await.0,
            401,
            "{path}"
        );
    }
    assert_eq!(call(&app, "POST", "/archive", "mallory", "1").await.0, 401);
    for path in [
        "/contacts/404",
        "/api/v1/contacts/404",
        "/attr/contacts/404",
        "/api/nowhere",
    ] {
        assert_eq!(call(&app, "GET", path, "alice", "").await.0, 404, "{path}");
    }
    let (status, body) = call(&app, "GET", "/unprotected", "alice", "").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("PermissionMap was not found") && body.contains(".wrap(cerbos.guard"),
        "{body}"
    );
    assert_eq!(
        call(&app, "GET", "/optional", "alice", "").await,
        (200, "false".to_owned())
    );
}

#[actix_web::test]
async fn app_level_middleware_uses_the_template() {
    let db = contacts(10, 3);
    let cerbos = cerbos(&common::contact_pdp().grpc_endpoint(), |b| b);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(db.clone()))
            .wrap(
                cerbos
                    .guard_with(
                        contacts_resource().template("/contacts/{id}").unwrap(),
                        ["read"],
                    )
                    .unwrap(),
            )
            .route(
                "/contacts/{id}",
                web::get().to(|d: Decision| async move { d.resource_id().to_owned() }),
            ),
    )
    .await;
    let geri = user_by_name("geri").unwrap();
    for (id, contact) in db.iter() {
        let (status, _) = call(&app, "GET", &format!("/contacts/{id}"), "geri", "").await;
        assert_eq!(status == 200, expected(geri, contact, "read"), "{id}");
    }
    // Outside the template: not found, never let through.
    assert_eq!(call(&app, "GET", "/elsewhere", "alice", "").await.0, 404);
}

#[actix_web::test]
async fn pdp_down_then_back_with_custom_rejections() {
    let mut pdp = cerbos_testkit::Pdp::start(common::contact_policy_dir()).unwrap();
    // 503 for an unreachable PDP is the default.
    let cerbos = cerbos(&pdp.grpc_endpoint(), |b| {
        b.on_rejection(
            |rejection: cerbos_actix::Rejection, _: &http::request::Parts| {
                http::Response::builder()
                    .status(rejection.status())
                    .header("content-type", "application/json")
                    .body(bytes::Bytes::from(format!(
                        "{{\"error\":\"{:?}\"}}",
                        rejection.kind()
                    )))
                    .unwrap()
            },
        )
    });
    let app = app!(cerbos, contacts(10, 3));
    let entry_points = [
        ("GET", "/contacts/1", ""),
        ("GET", "/api/v1/contacts/1", ""),
        ("GET", "/attr/contacts/1", ""),
        ("POST", "/archive", "1"),
        ("GET", "/page/contact", ""),
    ];
    for (method, path, body) in entry_points {
        assert_eq!(
            call(&app, method, path, "alice", body).await.0,
            200,
            "{path}"
        );
    }
    pdp.stop().unwrap();
    for (method, path, body) in entry_points {
        let answer = call(&app, method, path, "alice", body).await;
        assert_eq!(
            answer,
            (503, "{\"error\":\"Unreachable\"}".to_owned()),
            "{path}"
        );
    }
    assert_eq!(
        call(&app, "GET", "/contacts/1", "mallory", "").await,
        (401, "{\"error\":\"Unauthenticated\"}".to_owned())
    );
    pdp.restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call(&app, "GET", "/contacts/1", "alice", "").await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "decisions did not recover"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    for (method, path, body) in entry_points {
        assert_eq!(
            call(&app, method, path, "alice", body).await.0,
            200,
            "{path}"
        );
    }
}

#[actix_web::test]
async fn authz_without_authorizer_in_app_data_is_a_500() {
    let app = test::init_service(App::new().route(
        "/archive",
        web::post().to(|authz: Authz| async move {
            let _ = authz;
            HttpResponse::Ok().finish()
        }),
    ))
    .await;
    let (status, body) = call(&app, "POST", "/archive", "alice", "").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("App::app_data(cerbos.authorizer())"),
        "{body}"
    );
    let _ = Reason::Allowed;
}

/// A real `HttpServer` with two workers sharing one `Authorizer` (one
/// PDP client): concurrent requests over TCP get the policy's decisions,
/// and every check goes through the shared client.
#[actix_web::test]
async fn multi_worker_server_shares_one_client() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let client = common::contact_client();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let pdp = move |request: cerbos_tower::CheckResources| {
        counter.fetch_add(1, Ordering::SeqCst);
        cerbos_tower::layer::Pdp::check(&client, request)
    };
    let authorizer = Cerbos::builder(pdp)
        .principal(principal_from_header)
        .build()
        .unwrap()
        .authorizer();
    let db = contacts(10, 3);
    let server_db = db.clone();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(server_db.clone()))
            .app_data(authorizer.clone())
            .route("/attr/contacts/{id}", web::get().to(show))
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let mut expected_checks = 0;
    let mut tasks = Vec::new();
    for round in 0..5 {
        for user in &USERS {
            for (id, contact) in db.iter() {
                let want = if expected(user, contact, "read") {
                    200
                } else {
                    403
                };
                expected_checks += 1;
                let request = format!(
                    "GET /attr/contacts/{id} HTTP/1.1\r\nhost: test\r\nx-user: {}\r\nconnection: close\r\n\r\n",
                    user.name
                );
                tasks.push(tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    stream.write_all(request.as_bytes()).await.unwrap();
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).await.unwrap();
                    let status: u16 = answer[9..12].parse().unwrap();
                    (round, status, want)
                }));
            }
        }
    }
    for task in tasks {
        let (round, status, want) = task.await.unwrap();
        assert_eq!(status, want, "round {round}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), expected_checks);
    handle.stop(true).await;
}

// ---------------------------------------------------------------------------
// One principal resolver, configured once on `Cerbos`, for every entry point.

/// A read checked in the handler.
async fn read_in_handler(
    authz: Authz,
    db: web::Data<Db>,
    path: web::Path<String>,
) -> Result<String, CerbosRejection> {
    let contact = load_contact(&db, Resource::new("contact", path.into_inner()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Resource::new("contact", "absent"));
    authz.require(contact, ["read"]).await?;
    Ok(authz.subject().principal().id().to_owned())
}

/// The three entry points on one app: the guard, `#[authorize]` and an
/// in-handler `Authz` check, each reading contacts.
fn entry_points(
    cerbos: Cerbos<impl Pdp, impl PrincipalResolver>,
    db: Db,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let guard = cerbos.guard_with(contacts_resource(), ["read"]).unwrap();
        config
            .app_data(web::Data::new(db))
            .app_data(cerbos.authorizer())
            .service(
                web::resource("/guard/contacts/{id}")
                    .wrap(guard)
                    .route(web::get().to(|p: Principal| async move { p.id().to_owned() })),
            )
            .route("/attr/contacts/{id}", web::get().to(show))
            .route("/authz/contacts/{id}", web::get().to(read_in_handler));
    }
}

/// A GET with the `x-user` header when `user` is given, none otherwise.
async fn get<B: actix_web::body::MessageBody>(
    app: &impl Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    path: &str,
    user: Option<&str>,
) -> u16 {
    let mut req = test::TestRequest::get().uri(path);
    if let Some(user) = user {
        req = req.insert_header(("x-user", user));
    }
    test::call_service(app, req.to_request())
        .await
        .status()
        .as_u16()
}

/// Every user gets the policy's answer at the guard, the attribute and
/// the in-handler check alike; an unknown user and a request without a
/// user are 401 everywhere, never 200.
async fn assert_every_entry_point_knows_the_principal<B: actix_web::body::MessageBody>(
    app: &impl Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    db: &Db,
) {
    for (id, contact) in db.iter() {
        for entry in ["guard", "attr", "authz"] {
            let path = format!("/{entry}/contacts/{id}");
            for user in &USERS {
                let want = if expected(user, contact, "read") {
                    200
                } else {
                    403
                };
                assert_eq!(
                    get(app, &path, Some(user.name)).await,
                    want,
                    "{} {path}",
                    user.name
                );
            }
            assert_eq!(
                get(app, &path, Some("mallory")).await,
                401,
                "mallory {path}"
            );
            assert_eq!(get(app, &path, None).await, 401, "no user {path}");
        }
    }
}

/// The issue-10 case: a closure resolver given to `Cerbos::builder` (over
/// `http::request::Parts`) is the one the guard, `#[authorize]` and `Authz`
/// use; `cerbos.authorizer()` and the guards drop nothing.
#[actix_web::test]
async fn principal_resolver_configured_once_reaches_every_entry_point() {
    let client = common::live_client(common::contact_pdp().grpc_endpoint())
        .build()
        .unwrap();
    let cerbos = Cerbos::builder(client)
        .principal(|parts: &http::request::Parts| {
            principal_named(parts.headers.get("x-user").and_then(|v| v.to_str().ok()))
        })
        .build()
        .unwrap();
    let db = contacts(10, 5);
    let app = test::init_service(App::new().configure(entry_points(cerbos, db.clone()))).await;
    assert_every_entry_point_knows_the_principal(&app, &db).await;
}

/// The default resolver reads the `Principal` that the app's
/// authentication middleware put into actix's request extensions.
#[actix_web::test]
async fn principal_from_the_authentication_middleware_by_default() {
    let client = common::live_client(common::contact_pdp().grpc_endpoint())
        .build()
        .unwrap();
    let cerbos = Cerbos::builder(client).build().unwrap();
    let db = contacts(10, 7);
    let app = test::init_service(
        App::new()
            .wrap_fn(|req, service| {
                let user = req
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .and_then(user_by_name);
                if let Some(user) = user {
                    req.extensions_mut().insert(
                        Principal::new(user.id, [user.role])
                            .with_attr("department", user.department),
                    );
                }
                service.call(req)
            })
            .configure(entry_points(cerbos, db.clone())),
    )
    .await;
    assert_every_entry_point_knows_the_principal(&app, &db).await;
}

/// `BearerJwt` configured once on `Cerbos`: the guard, `#[authorize]` and
/// `Authz` all send the bearer token, whose claims the policy reads; a
/// token the PDP cannot verify, or none, is a 401.
#[actix_web::test]
async fn bearer_jwt_configured_once_reaches_every_entry_point() {
    #[authorize(kind = "expense", actions = ["approve"])]
    async fn approve_by_attribute() -> &'static str {
        "approved"
    }

    async fn approve_in_handler(
        authz: Authz,
        path: web::Path<String>,
    ) -> Result<&'static str, CerbosRejection> {
        authz
            .require(Resource::new("expense", path.into_inner()), ["approve"])
            .await?;
        Ok("approved")
    }

    let (pdp, _dir) = common::pdp_with_jwt_key_set();
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let cerbos = Cerbos::builder(client)
        .principal(BearerJwt::new(principal_from_header).key_set_id("local"))
        .build()
        .unwrap();
    // The guard by kind: the id is the route's only parameter.
    let guard = cerbos.guard("expense", ["approve"]).unwrap();
    let app = test::init_service(
        App::new()
            .app_data(cerbos.authorizer())
            .service(
                web::resource("/guard/expenses/{id}")
                    .wrap(guard)
                    .route(web::get().to(|| async { "approved" })),
            )
            .route("/attr/expenses/{id}", web::get().to(approve_by_attribute))
            .route("/authz/expenses/{id}", web::get().to(approve_in_handler)),
    )
    .await;
    let forged = common::jwt(b"some other key entirely, also 256 bits long!!", "Finance");
    let cases = [
        (Some(common::jwt(common::JWT_SECRET, "Finance")), 200),
        (Some(common::jwt(common::JWT_SECRET, "Sales")), 403),
        (Some(forged), 401),
        (None, 401),
    ];
    for entry in ["guard", "attr", "authz"] {
        let path = format!("/{entry}/expenses/e1");
        for (token, want) in &cases {
            let mut req = test::TestRequest::get()
                .uri(&path)
                .insert_header(("x-user", "john"));
            if let Some(token) = token {
                req = req.insert_header(("authorization", format!("Bearer {token}")));
            }
            let status = test::call_service(&app, req.to_request()).await.status();
            assert_eq!(status.as_u16(), *want, "{path} {token:?}");
        }
    }
}

#[actix_web::test]
async fn problem_json_bodies_from_every_entry_point() {
    let db = contacts(10, 3);
    let geri = user_by_name("geri").unwrap();
    let (denied, _) = db
        .iter()
        .find(|(_, c)| !expected(geri, c, "read") && !expected(geri, c, "update"))
        .expect("a contact geri may neither read nor update");
    let denied = denied.clone();
    let cerbos = cerbos(&common::contact_pdp().grpc_endpoint(), |b| b.problem_json());
    let app = app!(cerbos, db);
    for (method, path, body) in [
        ("GET", format!("/contacts/{denied}"), ""),
        ("GET", format!("/api/v1/contacts/{denied}"), ""),
        ("GET", format!("/attr/contacts/{denied}"), ""),
        ("POST", "/archive".to_owned(), denied.as_str()),
    ] {
        let req = test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&path)
            .insert_header(("x-user", "geri"))
            .set_payload(body.to_owned())
            .to_request();
        let response = test::call_service(&app, req).await;
        assert_eq!(response.status().as_u16(), 403, "{path}");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/problem+json",
            "{path}"
        );
        let body = test::read_body(response).await;
        assert_eq!(
            body, "{\"type\":\"about:blank\",\"title\":\"Forbidden\",\"status\":403}",
            "{path}"
        );
    }
    assert_eq!(call(&app, "GET", "/contacts/1", "alice", "").await.0, 200);
}
