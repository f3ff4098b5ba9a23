//! cerbos-actix against the real PDP: the principal derived from the app's
//! own user type in actix's extensions (`principal_from_extension`), one
//! loader shape for the guard, `#[authorize]` and the in-handler check
//! whose row reaches the handler as `Loaded<Row>` (read once per
//! request), and a guard on a `Scope` without any template.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix_web::{
    App, HttpMessage, HttpRequest,
    dev::{Service, ServiceResponse},
    test, web,
};
use cerbos_actix::{
    Actions, Authz, Cerbos, CerbosExt, CerbosRejection, Loaded, PathResource, PermissionMap,
    Principal, ResolveError, Resource, authorize,
};
use cerbos_tower::{CheckResources, layer::Pdp};
use common::contacts::*;

/// The application's own user type, put into actix's request extensions
/// by its own authentication middleware.
#[derive(Clone, Debug)]
struct CurrentUser {
    id: &'static str,
    role: &'static str,
    department: &'static str,
}

/// Loader calls (one database read each), handler runs, PDP calls.
#[derive(Default)]
struct Counters {
    loads: AtomicUsize,
    reached: AtomicUsize,
    pdp: Arc<AtomicUsize>,
}

impl Counters {
    /// The counts since the last look.
    fn take(&self) -> (usize, usize, usize) {
        (
            self.loads.swap(0, Ordering::SeqCst),
            self.reached.swap(0, Ordering::SeqCst),
            self.pdp.swap(0, Ordering::SeqCst),
        )
    }
}

/// The one loader: the resource with the row's attributes, and the row.
/// The id `broken` is a database error.
async fn load_row(
    contact: Resource,
    req: HttpRequest,
) -> Result<Option<(Resource, Contact)>, ResolveError> {
    let (Some(db), Some(counters)) = (
        req.app_data::<web::Data<Db>>(),
        req.app_data::<web::Data<Counters>>(),
    ) else {
        return Err(ResolveError::internal("no database in the app data"));
    };
    counters.loads.fetch_add(1, Ordering::SeqCst);
    if contact.id() == "broken" {
        return Err(ResolveError::internal("the database is down"));
    }
    load_contact_row(db, contact)
}

fn answer(counters: &Counters, row: &Contact, permissions: &PermissionMap) -> String {
    counters.reached.fetch_add(1, Ordering::SeqCst);
    row_answer(row, permissions)
}

async fn show_guarded(
    Loaded(row): Loaded<Contact>,
    permissions: PermissionMap,
    counters: web::Data<Counters>,
) -> String {
    answer(&counters, &row, &permissions)
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load_row)]
async fn show_attributed(
    Loaded(row): Loaded<Contact>,
    permissions: PermissionMap,
    counters: web::Data<Counters>,
) -> String {
    answer(&counters, &row, &permissions)
}

async fn update(
    authz: Authz,
    req: HttpRequest,
    id: web::Path<String>,
    counters: web::Data<Counters>,
) -> Result<String, CerbosRejection> {
    let (row, decision) = authz
        .require_loaded(
            load_row(Resource::new("contact", id.into_inner()), req),
            ["update"],
        )
        .await?;
    Ok(answer(&counters, &row, &decision.permissions()))
}

async fn list(counters: web::Data<Counters>) -> String {
    counters.reached.fetch_add(1, Ordering::SeqCst);
    "list".to_owned()
}

macro_rules! app {
    ($db:expr) => {{
        let counters = web::Data::new(Counters::default());
        let client = common::contact_client();
        let pdp_calls = counters.pdp.clone();
        let pdp = move |request: CheckResources| {
            pdp_calls.fetch_add(1, Ordering::SeqCst);
            Pdp::check(&client, request)
        };
        let cerbos = Cerbos::builder(pdp)
            .principal_from_extension(|user: &CurrentUser| {
                Principal::new(user.id, [user.role]).with_attr("department", user.department)
            })
            .build()
            .unwrap();
        let read = Actions::require(["read"]).with_permissions(["update", "delete"]);
        let guard = || {
            cerbos
                .guard_with(PathResource::new("contact").load(load_row), read.clone())
                .unwrap()
        };
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new($db))
                .app_data(counters.clone())
                .app_data(cerbos.authorizer())
                .service(
                    web::resource("/guard/contacts/{id}")
                        .wrap(guard())
                        .route(web::get().to(show_guarded)),
                )
                // A guard on a Scope, without a template: the id comes
                // from the pattern of the route the path matches.
                .service(
                    web::scope("/scoped")
                        .wrap(guard())
                        .route("/contacts/{id}", web::get().to(show_guarded))
                        .route("/contacts", web::get().to(list)),
                )
                .route("/attr/contacts/{id}", web::get().to(show_attributed))
                .route("/handler/contacts/{id}", web::post().to(update))
                .route("/noauth/contacts/{id}", web::get().to(show_attributed))
                // The app's authentication: the user named by `x-user`,
                // except under /noauth, which it does not cover.
                .wrap_fn(|req, service| {
                    let user = req
                        .headers()
                        .get("x-user")
                        .and_then(|v| v.to_str().ok())
                        .and_then(user_by_name);
                    if let Some(user) = user.filter(|_| !req.path().starts_with("/noauth")) {
                        req.extensions_mut().insert(CurrentUser {
                            id: user.id,
                            role: user.role,
                            department: user.department,
                        });
                    }
                    service.call(req)
                }),
        )
        .await;
        (app, counters)
    }};
}

async fn call<B: actix_web::body::MessageBody>(
    app: &impl Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    method: &str,
    path: &str,
    user: &str,
) -> (u16, String) {
    common::actix_call(app, method, path, user, "").await
}

#[actix_web::test]
async fn one_loader_one_read_and_the_row_in_the_handler() {
    let db = contacts(10, 7);
    let (app, counters) = app!(db.clone());
    for user in &USERS {
        for (id, contact) in db.iter() {
            for (method, path, action) in [
                ("GET", format!("/guard/contacts/{id}"), "read"),
                ("GET", format!("/scoped/contacts/{id}"), "read"),
                ("GET", format!("/attr/contacts/{id}"), "read"),
                ("POST", format!("/handler/contacts/{id}"), "update"),
            ] {
                let (status, body) = call(&app, method, &path, user.name).await;
                let (loads, reached, pdp) = counters.take();
                assert_eq!(
                    (loads, pdp),
                    (1, 1),
                    "{path} as {}: one database read and one PDP call",
                    user.name
                );
                if expected(user, contact, action) {
                    let permissions = if action == "read" {
                        permissions_json(user, contact)
                    } else {
                        "{\"update\":true}".to_owned()
                    };
                    assert_eq!(
                        (status, body, reached),
                        (200, format!("owner={} {permissions}", contact.owner_id), 1),
                        "{path} as {}",
                        user.name
                    );
                } else {
                    assert_eq!((status, reached), (403, 0), "{path} as {}", user.name);
                }
            }
        }
    }
}

#[actix_web::test]
async fn a_missing_row_is_404_a_loader_error_500_and_neither_reaches_the_handler() {
    let (app, counters) = app!(contacts(3, 7));
    for (method, prefix) in [
        ("GET", "/guard"),
        ("GET", "/scoped"),
        ("GET", "/attr"),
        ("POST", "/handler"),
    ] {
        for (id, status) in [("404", 404), ("broken", 500)] {
            let path = format!("{prefix}/contacts/{id}");
            let (got, _) = call(&app, method, &path, "alice").await;
            assert_eq!(got, status, "{path}");
            assert_eq!(
                counters.take(),
                (1, 0, 0),
                "{path}: one read, no handler, no PDP"
            );
        }
    }
}

#[actix_web::test]
async fn the_principal_comes_from_the_apps_user_type_in_actix_extensions() {
    let db = contacts(3, 7);
    let (app, counters) = app!(db.clone());
    let geri = user_by_name("geri").unwrap();
    for (id, contact) in db.iter() {
        let (status, _) = call(&app, "GET", &format!("/attr/contacts/{id}"), "geri").await;
        assert_eq!(status == 200, expected(geri, contact, "read"), "{id}");
    }
    counters.take();
    // Without the app's authentication there is no CurrentUser: a 500
    // (the operator's bug), before the loader and the PDP.
    let (status, _) = call(&app, "GET", "/noauth/contacts/1", "geri").await;
    assert_eq!(status, 500);
    assert_eq!(counters.take(), (0, 0, 0));
}

#[actix_web::test]
async fn a_scope_guard_needs_no_template_and_says_which_route_it_cannot_check() {
    let (app, counters) = app!(contacts(3, 7));
    // A route of the guarded scope without an id: a 500 that names the
    // route, never a pass without a check.
    let (status, _) = call(&app, "GET", "/scoped/contacts", "alice").await;
    assert_eq!(status, 500);
    assert_eq!(counters.take(), (0, 0, 0));
    // A path under the scope that matches no route: 404.
    let (status, _) = call(&app, "GET", "/scoped/nowhere/else", "alice").await;
    assert_eq!(status, 404);
    assert_eq!(counters.take(), (0, 0, 0));
    // Its routes with an id work.
    let (status, _) = call(&app, "GET", "/scoped/contacts/1", "alice").await;
    assert_eq!(status, 200);
    assert_eq!(counters.take(), (1, 1, 1));
}

/// The tenant a typed loader reads from the app data.
struct Tenant(&'static str);

/// A loader whose argument is a `web::Data` of the app data, not the
/// request: the resource of contact 1, owned by the user `2`, with the
/// tenant's name.
async fn load_for_tenant(
    contact: Resource,
    tenant: web::Data<Tenant>,
) -> Result<Option<(Resource, String)>, ResolveError> {
    let resource = contact.with_attr("owner_id", "2");
    Ok(Some((resource, tenant.0.to_owned())))
}

#[authorize(kind = "contact", actions = ["read"], load = load_for_tenant)]
async fn show_tenant(Loaded(tenant): Loaded<String>) -> String {
    tenant
}

#[actix_web::test]
async fn a_loader_takes_typed_app_data_and_its_absence_is_a_500_before_the_pdp() {
    for with_tenant in [true, false] {
        let pdp_calls = Arc::new(AtomicUsize::new(0));
        let calls = pdp_calls.clone();
        let client = common::contact_client();
        let pdp = move |request: CheckResources| {
            calls.fetch_add(1, Ordering::SeqCst);
            Pdp::check(&client, request)
        };
        let cerbos = Cerbos::builder(pdp)
            .principal(|parts: &cerbos_actix::Parts| {
                let id = parts
                    .headers
                    .get("x-user")
                    .map_or("", |v| v.to_str().unwrap_or(""));
                std::future::ready(Ok(
                    Principal::new(id, ["user"]).with_attr("department", "Sales")
                ))
            })
            .build()
            .unwrap();
        let guard = cerbos
            .guard_with(PathResource::new("contact").load(load_for_tenant), ["read"])
            .unwrap();
        let mut app = App::new().app_data(cerbos.authorizer());
        if with_tenant {
            app = app.app_data(web::Data::new(Tenant("acme")));
        }
        let app = test::init_service(
            app.service(
                web::resource("/guard/{id}")
                    .wrap(guard)
                    .route(web::get().to(|Loaded(t): Loaded<String>| async move { t })),
            )
            .route("/attr/{id}", web::get().to(show_tenant)),
        )
        .await;
        for path in ["/guard/1", "/attr/1"] {
            // The owner reads it; another user may not.
            let (owner, body) = call(&app, "GET", path, "2").await;
            let (other, _) = call(&app, "GET", path, "3").await;
            if with_tenant {
                assert_eq!((owner, body.as_str(), other), (200, "acme", 403), "{path}");
                assert_eq!(pdp_calls.swap(0, Ordering::SeqCst), 2, "{path}");
            } else {
                assert_eq!((owner, other), (500, 500), "{path}: {body}");
                assert_eq!(
                    pdp_calls.swap(0, Ordering::SeqCst),
                    0,
                    "{path}: no PDP call"
                );
            }
        }
    }
}
