//! cerbos-axum against the real PDP: the principal derived from the app's
//! own user type (`principal_from_extension`), one loader shape for the
//! guard, `#[authorize]` and the in-handler check whose row reaches the
//! handler as `Loaded<Row>` (read once per request), and a method the
//! route does not serve answered 405 by axum without asking the PDP.

mod common;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use cerbos_axum::{
    Actions, Authorizer, Authz, Cerbos, CerbosExt, CerbosRejection, Loaded, PathResource,
    PermissionMap, Principal, ResolveError, Resource, authorize,
};
use cerbos_tower::{CheckResources, layer::Pdp};
use common::contacts::*;
use http::{Method, StatusCode};
use tower::ServiceExt;

/// The application's own user type, put into the extensions by its own
/// authentication middleware.
#[derive(Clone, Debug)]
struct CurrentUser {
    id: &'static str,
    role: &'static str,
    department: &'static str,
}

#[derive(Clone)]
struct AppState {
    authorizer: Authorizer,
    db: Db,
    /// Loader calls: one database read each.
    loads: Arc<AtomicUsize>,
    /// Handler bodies that ran.
    reached: Arc<AtomicUsize>,
}

impl axum::extract::FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

/// The one loader: the resource with the row's attributes, and the row.
/// The id `broken` is a database error.
async fn load_row(
    contact: Resource,
    state: AppState,
) -> Result<Option<(Resource, Contact)>, ResolveError> {
    state.loads.fetch_add(1, Ordering::SeqCst);
    if contact.id() == "broken" {
        return Err(ResolveError::internal("the database is down"));
    }
    load_contact_row(&state.db, contact)
}

/// What the handlers answer: the row they were handed and the permissions.
fn answer(state: &AppState, row: &Contact, permissions: &PermissionMap) -> String {
    state.reached.fetch_add(1, Ordering::SeqCst);
    row_answer(row, permissions)
}

/// Behind the guard: the row comes from the guard's loader.
async fn show_guarded(
    State(state): State<AppState>,
    Loaded(row): Loaded<Contact>,
    permissions: PermissionMap,
) -> String {
    answer(&state, &row, &permissions)
}

/// The attribute, with the same loader.
#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load_row, state = AppState)]
async fn show_attributed(
    State(state): State<AppState>,
    Loaded(row): Loaded<Contact>,
    permissions: PermissionMap,
) -> String {
    answer(&state, &row, &permissions)
}

/// In the handler, with the same loader.
async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    authz: Authz,
) -> Result<String, CerbosRejection> {
    let (row, decision) = authz
        .require_loaded(
            load_row(Resource::new("contact", id), state.clone()),
            ["update"],
        )
        .await?;
    Ok(answer(&state, &row, &decision.permissions()))
}

/// The app's authentication: the user named by `x-user`, or 401.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .and_then(user_by_name);
    match user {
        Some(user) => {
            request.extensions_mut().insert(CurrentUser {
                id: user.id,
                role: user.role,
                department: user.department,
            });
            next.run(request).await
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

struct App {
    router: Router,
    state: AppState,
    pdp_calls: Arc<AtomicUsize>,
}

fn app(db: Db) -> App {
    let pdp_calls = Arc::new(AtomicUsize::new(0));
    let client = common::contact_client();
    let calls = pdp_calls.clone();
    let pdp = move |request: CheckResources| {
        calls.fetch_add(1, Ordering::SeqCst);
        Pdp::check(&client, request)
    };
    let cerbos = Cerbos::builder(pdp)
        .principal_from_extension(|user: &CurrentUser| {
            Principal::new(user.id, [user.role]).with_attr("department", user.department)
        })
        .build()
        .unwrap();
    let state = AppState {
        authorizer: cerbos.authorizer(),
        db,
        loads: Arc::new(AtomicUsize::new(0)),
        reached: Arc::new(AtomicUsize::new(0)),
    };
    let guard = || {
        cerbos
            .guard_loaded(
                PathResource::new("contact"),
                Actions::require(["read"]).with_permissions(["update", "delete"]),
                state.clone(),
                load_row,
            )
            .unwrap()
    };
    // `MethodRouter::route_layer`: the guard wraps the GET handler only,
    // so axum answers other methods 405 before it.
    let guarded = Router::new().route(
        "/guard/contacts/{id}",
        get(show_guarded).route_layer(guard()),
    );
    // `Router::route_layer` wraps the whole route, its 405 included.
    let whole_route = Router::new()
        .route("/whole/contacts/{id}", get(show_guarded))
        .route_layer(guard());
    // The same guard on a router without the app's authentication: no
    // `CurrentUser` for `principal_from_extension`.
    let unauthenticated = Router::new()
        .route("/noauth/contacts/{id}", get(show_guarded))
        .route_layer(guard());
    let router = Router::new()
        .merge(guarded)
        .merge(whole_route)
        .route("/attr/contacts/{id}", get(show_attributed))
        .route("/handler/contacts/{id}", axum::routing::post(update))
        .layer(axum::middleware::from_fn(authenticate))
        .merge(unauthenticated)
        .with_state(state.clone());
    App {
        router,
        state,
        pdp_calls,
    }
}

async fn send(app: &App, method: Method, path: &str, user: &str) -> (StatusCode, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-user", user)
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Loader calls, handler runs and PDP calls since the last look.
fn counts(app: &App) -> (usize, usize, usize) {
    (
        app.state.loads.swap(0, Ordering::SeqCst),
        app.state.reached.swap(0, Ordering::SeqCst),
        app.pdp_calls.swap(0, Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_loader_one_read_and_the_row_in_the_handler() {
    let db = contacts(10, 7);
    let app = app(db.clone());
    for user in &USERS {
        for (id, contact) in db.iter() {
            for (method, path, action) in [
                (Method::GET, format!("/guard/contacts/{id}"), "read"),
                (Method::GET, format!("/attr/contacts/{id}"), "read"),
                (Method::POST, format!("/handler/contacts/{id}"), "update"),
            ] {
                let (status, body) = send(&app, method, &path, user.name).await;
                let allowed = expected(user, contact, action);
                let (loads, reached, pdp) = counts(&app);
                assert_eq!(
                    (loads, pdp),
                    (1, 1),
                    "{path} as {}: one database read and one PDP call",
                    user.name
                );
                if allowed {
                    let permissions = if action == "read" {
                        permissions_json(user, contact)
                    } else {
                        "{\"update\":true}".to_owned()
                    };
                    assert_eq!(
                        (status, body, reached),
                        (
                            StatusCode::OK,
                            format!("owner={} {permissions}", contact.owner_id),
                            1
                        ),
                        "{path} as {}",
                        user.name
                    );
                } else {
                    assert_eq!(
                        (status, reached),
                        (StatusCode::FORBIDDEN, 0),
                        "{path} as {}",
                        user.name
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_row_is_404_a_loader_error_500_and_neither_reaches_the_handler() {
    let app = app(contacts(3, 7));
    for (method, prefix) in [
        (Method::GET, "/guard"),
        (Method::GET, "/attr"),
        (Method::POST, "/handler"),
    ] {
        for (id, status) in [
            ("404", StatusCode::NOT_FOUND),
            ("broken", StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let path = format!("{prefix}/contacts/{id}");
            let (got, _) = send(&app, method.clone(), &path, "alice").await;
            assert_eq!(got, status, "{path}");
            assert_eq!(
                counts(&app),
                (1, 0, 0),
                "{path}: one read, no handler, no PDP"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_principal_comes_from_the_apps_user_type() {
    let app = app(contacts(3, 7));
    // john (Sales) reads an active contact, as his CurrentUser says.
    let john = user_by_name("john").unwrap();
    let db = &app.state.db;
    let (id, _) = db
        .iter()
        .find(|(_, c)| expected(john, c, "read"))
        .expect("a contact john may read");
    let (status, _) = send(&app, Method::GET, &format!("/guard/contacts/{id}"), "john").await;
    assert_eq!(status, StatusCode::OK);
    counts(&app);
    // Without the app's authentication there is no CurrentUser: a 500
    // (the operator's bug), before the loader and the PDP.
    let (status, body) = send(&app, Method::GET, &format!("/noauth/contacts/{id}"), "john").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    );
    assert_eq!(counts(&app), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_the_route_does_not_serve_is_405_without_a_pdp_call() {
    let app = app(contacts(3, 7));
    for (method, path) in [
        (Method::PATCH, "/guard/contacts/1"),
        (Method::DELETE, "/guard/contacts/1"),
        (Method::PATCH, "/attr/contacts/1"),
        (Method::GET, "/handler/contacts/1"),
    ] {
        let (status, _) = send(&app, method.clone(), path, "alice").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(counts(&app), (0, 0, 0), "{method} {path}: nothing asked");
    }
    // The same route with its method: one read, one PDP call.
    let (status, _) = send(&app, Method::GET, "/guard/contacts/1", "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts(&app), (1, 1, 1));
    // What the README warns about: `Router::route_layer` wraps axum's 405
    // too, so the guard reads the row and asks the PDP first.
    let (status, _) = send(&app, Method::PATCH, "/whole/contacts/1", "alice").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(counts(&app), (1, 0, 1));
}
