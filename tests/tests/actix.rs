//! cerbos-actix against the real PDP with the contact-directory policies:
//! the middleware on App, Scope and Resource (and twice, nested), the
//! extractors, the attribute, in-handler checks, every status, and a PDP
//! that goes down and comes back.

mod common;

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, dev::ServiceResponse, test, web};
use cerbos_actix::{
    Authorization, Authz, Cerbos, CerbosRejection, Client, Decision, PathResource, PermissionMap,
    Principal, Reason, ResolveError, Resource, authorize,
};
use common::contacts::*;

/// The principal named by the `x-user` header; unknown: 401.
fn principal(req: &HttpRequest) -> std::future::Ready<Result<Principal, ResolveError>> {
    principal_named(req.headers().get("x-user").and_then(|v| v.to_str().ok()))
}

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

async fn optional(permissions: Option<PermissionMap>) -> String {
    permissions.is_some().to_string()
}

fn authorization(
    endpoint: &str,
    configure: impl FnOnce(
        cerbos_tower::layer::CerbosBuilder<Client>,
    ) -> cerbos_tower::layer::CerbosBuilder<Client>,
) -> Authorization {
    let client = common::live_client(endpoint).build().unwrap();
    let cerbos = configure(Cerbos::builder(client)).build().unwrap();
    Authorization::new(&cerbos).principal(principal)
}

macro_rules! app {
    ($authorization:expr, $db:expr) => {{
        let authorization: Authorization = $authorization;
        let read = cerbos_actix::Actions::require(["read"]).with_permissions(["update", "delete"]);
        test::init_service(
            App::new()
                .app_data(web::Data::new($db))
                .app_data(authorization.clone())
                // Resource::wrap: actix has matched the route, so the id
                // comes from match_info.
                .service(
                    web::resource("/contacts/{id}")
                        .wrap(
                            authorization
                                .guard(contacts_resource(), read.clone())
                                .unwrap(),
                        )
                        .route(web::get().to(extracted)),
                )
                // Scope::wrap, with a nested scope wrapped again: both
                // guards check, and valid requests pass both.
                .service(
                    web::scope("/api")
                        .wrap(authorization.guard(versioned(), ["read"]).unwrap())
                        .service(
                            web::scope("/v1")
                                .wrap(authorization.guard(versioned(), read.clone()).unwrap())
                                .route("/contacts/{id}", web::get().to(extracted)),
                        ),
                )
                .route("/attr/contacts/{id}", web::get().to(show))
                .route("/attr/delete/{contact}", web::get().to(delete_by_id))
                .route("/archive", web::post().to(archive))
                .route("/unprotected", web::get().to(extracted))
                .route("/optional", web::get().to(optional)),
        )
        .await
    }};
}

async fn call<B: actix_web::body::MessageBody>(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    method: &str,
    path: &str,
    user: &str,
    body: &str,
) -> (u16, String) {
    let req = test::TestRequest::default()
        .method(method.parse().unwrap())
        .uri(path)
        .insert_header(("x-user", user))
        .set_payload(body.to_owned())
        .to_request();
    let response = test::call_service(app, req).await;
    let status = response.status().as_u16();
    let body = test::read_body(response).await;
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[actix_web::test]
async fn middleware_extractors_attribute_and_in_handler_checks() {
    let db = contacts(10, 3);
    let app = app!(
        authorization(&common::contact_pdp().grpc_endpoint(), |b| b),
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
        let admin = user.role == "admin";
        let (status, body) = call(&app, "GET", "/attr/delete/1", user.name, "").await;
        assert_eq!(status == 200, admin, "{}: {body}", user.name);
    }
}

#[actix_web::test]
async fn statuses_and_missing_middleware() {
    let app = app!(
        authorization(&common::contact_pdp().grpc_endpoint(), |b| b),
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
        body.contains("PermissionMap was not found") && body.contains(".wrap(authorization.guard"),
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
    let authorization = authorization(&common::contact_pdp().grpc_endpoint(), |b| b);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(db.clone()))
            .wrap(
                authorization
                    .guard(
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
    let authorization = authorization(&pdp.grpc_endpoint(), |b| {
        b.unreachable_status(http::StatusCode::SERVICE_UNAVAILABLE)
            .on_rejection(
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
    let app = app!(authorization, contacts(10, 3));
    let entry_points = [
        ("GET", "/contacts/1", ""),
        ("GET", "/api/v1/contacts/1", ""),
        ("GET", "/attr/contacts/1", ""),
        ("POST", "/archive", "1"),
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
async fn authz_without_authorization_in_app_data_is_a_500() {
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
        body.contains("App::app_data(authorization.clone())"),
        "{body}"
    );
    let _ = Reason::Allowed;
}

/// A real `HttpServer` with two workers sharing one `Authorization` (one
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
    let authorization =
        Authorization::new(&Cerbos::builder(pdp).build().unwrap()).principal(principal);
    let db = contacts(10, 3);
    let server_db = db.clone();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(server_db.clone()))
            .app_data(authorization.clone())
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
