//! cerbos-axum in a small contact directory, against the real PDP with the
//! policies in `examples/policies`: a guard, the `#[authorize]` attribute,
//! an in-handler check, and an authentication middleware that puts the
//! `Principal` into the request extensions.
//!
//! `cargo run -p axum-example` sends a few requests through the router and
//! prints the answers. With `LISTEN_ADDR=127.0.0.1:8000` it serves them
//! over HTTP instead (`curl -H 'x-user: john' localhost:8000/contacts/1`).
//! Set `CERBOS_ADDR` to use a PDP that is already running.
//!
//! Metrics (the `metrics` feature of cerbos-axum) go to a Prometheus
//! recorder; `GET /metrics` serves them, and the demo prints them at the end.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{FromRef, Path, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use cerbos_axum::{
    Authorizer, Authz, Cerbos, CerbosExt, CerbosRejection, Client, PermissionMap, Principal,
    ResolveError, Resource, authorize,
};
use http::StatusCode;
use tower::ServiceExt;

/// A contact row.
struct Contact {
    name: &'static str,
    owner_id: &'static str,
    is_active: bool,
    marketing_opt_in: bool,
}

#[derive(Clone)]
struct AppState {
    authorizer: Authorizer,
    contacts: Arc<HashMap<&'static str, Contact>>,
}

impl FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

/// The users of the tutorial: id, name, role, department.
const USERS: [(&str, &str, &str, &str); 4] = [
    ("1", "alice", "admin", "IT"),
    ("2", "john", "user", "Sales"),
    ("3", "sarah", "user", "Sales"),
    ("4", "geri", "user", "Marketing"),
];

/// Authentication (a stand-in): the `x-user` header names the user. An
/// unknown user gets no principal, which the Cerbos checks answer with 401.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok());
    if let Some((id, _, role, department)) = USERS.iter().find(|u| Some(u.1) == user) {
        let principal = Principal::new(*id, [*role]).with_attr("department", *department);
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

/// The contact's row as the resource's attributes; absent: 404.
async fn load_contact(
    contact: Resource,
    state: &AppState,
) -> Result<Option<Resource>, ResolveError> {
    Ok(state.contacts.get(contact.id()).map(|row| {
        contact
            .with_attr("owner_id", row.owner_id)
            .with_attr("is_active", row.is_active)
            .with_attr("marketing_opt_in", row.marketing_opt_in)
    }))
}

/// Shown only to who may `read` it; says whether they may edit or delete it.
#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"],
            load = load_contact, state = AppState)]
async fn show_contact(Path(id): Path<String>, permissions: PermissionMap) -> String {
    format!("contact {id}; buttons: {}", buttons(&permissions))
}

fn buttons(permissions: &PermissionMap) -> String {
    permissions
        .iter()
        .map(|(action, allowed)| format!("{action}={allowed}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Behind a guard: the PDP decides on the kind alone (Sales may create).
async fn new_contact(principal: Principal) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        format!("created by user {}", principal.id()),
    )
}

/// Decides in the handler, on resources named in the request body.
async fn bulk_delete(
    State(state): State<AppState>,
    authz: Authz,
    body: String,
) -> Result<String, CerbosRejection> {
    let mut deleted = Vec::new();
    for id in body.split(',').map(str::trim) {
        let Ok(Some(contact)) = load_contact(Resource::new("contact", id), &state).await else {
            continue;
        };
        // One PDP call per contact: each decision stands alone.
        if authz.check(contact, ["delete"]).await.is_allowed() {
            deleted.push(id.to_owned());
        }
    }
    if deleted.is_empty() {
        // Nothing allowed: reject as the layer would.
        authz
            .require(Resource::new("contact", "none"), ["delete"])
            .await?;
    }
    Ok(format!("deleted {}", deleted.join(",")))
}

fn app(
    cerbos: &Cerbos<Client>,
    contacts: HashMap<&'static str, Contact>,
) -> Result<Router, cerbos_axum::cerbos_tower::layer::ConfigError> {
    let state = AppState {
        authorizer: cerbos.authorizer(),
        contacts: Arc::new(contacts),
    };
    // `route_layer` covers the routes added before it, and only matched
    // routes: unknown paths stay 404.
    let create = Router::new()
        .route("/contacts/new/{id}", post(new_contact))
        .route_layer(cerbos.guard("contact", ["create"])?);
    Ok(Router::new()
        .route("/contacts/{id}", get(show_contact))
        .route("/contacts/delete", post(bulk_delete))
        .merge(create)
        .with_state(state)
        .layer(middleware::from_fn(authenticate)))
}

fn contacts() -> HashMap<&'static str, Contact> {
    [
        (
            "1",
            Contact {
                name: "Nick Smyth",
                owner_id: "2",
                is_active: true,
                marketing_opt_in: true,
            },
        ),
        (
            "2",
            Contact {
                name: "Simon Jaff",
                owner_id: "2",
                is_active: false,
                marketing_opt_in: true,
            },
        ),
        (
            "3",
            Contact {
                name: "Mary Jane",
                owner_id: "3",
                is_active: true,
                marketing_opt_in: false,
            },
        ),
    ]
    .into_iter()
    .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = cerbos_testkit::pdp_from_env_or_start(policies)?;
    // The exporter is the application's choice; the libraries only use
    // the `metrics` facade.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let cerbos = Cerbos::builder(Client::builder(&endpoint).build()?).build()?;
    let mut rows: Vec<_> = contacts().into_iter().collect();
    rows.sort_by_key(|(id, _)| *id);
    for (id, contact) in rows {
        println!(
            "contact {id}: {} (owner {})",
            contact.name, contact.owner_id
        );
    }
    let scrape = prometheus.clone();
    let app = app(&cerbos, contacts())?
        .route("/metrics", get(move || std::future::ready(scrape.render())));

    if let Ok(addr) = std::env::var("LISTEN_ADDR") {
        println!("listening on http://{addr} (PDP at {endpoint})");
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(listener, app).await?;
        return Ok(());
    }
    println!("\nPDP at {endpoint}; sending requests through the router:\n");
    for (user, method, path, body) in [
        ("john", "GET", "/contacts/1", ""),
        ("geri", "GET", "/contacts/1", ""),
        ("geri", "GET", "/contacts/3", ""),
        ("sarah", "GET", "/contacts/2", ""),
        ("alice", "GET", "/contacts/2", ""),
        ("john", "GET", "/contacts/9", ""),
        ("nobody", "GET", "/contacts/1", ""),
        ("john", "POST", "/contacts/new/7", ""),
        ("geri", "POST", "/contacts/new/7", ""),
        ("john", "POST", "/contacts/delete", "1,2,3"),
        ("geri", "POST", "/contacts/delete", "1,2,3"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-user", user)
            .body(Body::from(body))?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await?;
        println!(
            "{user:>6} {method:<4} {path:<18} {body:<6} -> {} {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes)
        );
    }
    println!("\nGET /metrics (the cerbos_ lines):\n");
    for line in prometheus.render().lines() {
        if line.starts_with("cerbos_") {
            println!("{line}");
        }
    }
    Ok(())
}
