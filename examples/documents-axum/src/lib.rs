//! A documents API on axum, as an application has it: its own
//! authentication (a bearer token mapped to a [`CurrentUser`] in the
//! request extensions) and five routes:
//!
//! - `GET /documents`: the documents the user may `read`, filtered in SQL
//!   from a `PlanResources` answer, each with the user's `update`/`delete`
//!   permissions on it;
//! - `GET /documents/{id}`: one document (`#[authorize]`, the row loaded
//!   once) with the user's `read`/`update`/`delete` permissions on it;
//! - `POST /documents`: checked in the handler (`create`);
//! - `PUT /documents/{id}`, `DELETE /documents/{id}`: a guard on the
//!   existing routes, whose loader hands the row to the handler as
//!   `Loaded<Document>`.
//!
//! Every authorization line is in `src/authz.rs` or fenced between
//! `// cerbos {` and `// } cerbos` (or ends with `// cerbos`), so that they
//! can be counted (see the README).

mod authz;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{FromRef, Request, State},
    handler::Handler,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use cerbos_axum::PathResource; // cerbos
use cerbos_axum::{Authorizer, Authz, Cerbos, CerbosExt, CerbosRejection, Client, Loaded}; // cerbos
use documents_shared::authz::{CREATE, LIST, principal, to_sql}; // cerbos
use documents_shared::{CurrentUser, Db, Document, DocumentBody, internal_error, write_answer};
use serde_json::{Value, json};

pub use authz::declarations;
/// Why the app cannot be built: a Cerbos configuration error.
pub use cerbos_axum::cerbos_tower::layer::ConfigError;

/// What the handlers share (`FromRef`: the guards and `#[authorize]` find
/// the `Authorizer` in it).
#[derive(Clone, Debug, FromRef)] // cerbos
pub struct AppState {
    db: Db,
    authorizer: Authorizer, // cerbos
}

/// The app: routes, authentication, authorization.
pub fn app(client: Client, db: Db) -> Result<Router, ConfigError> {
    // cerbos {
    let cerbos = Cerbos::builder(client)
        .principal_from_extension(principal)
        .build()?;
    let state = AppState {
        db,
        authorizer: cerbos.authorizer(),
    };
    let (document, load) = (PathResource::new("document"), authz::load);
    let guard = |action| cerbos.guard_loaded(document.clone(), [action], state.clone(), load);
    // } cerbos
    let one = get(authz::show)
        .put(update.layer(guard("update")?)) // cerbos
        .delete(remove.layer(guard("delete")?)); // cerbos
    Ok(Router::new()
        .route("/documents", get(list).post(create))
        .route("/documents/{id}", one)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state))
}

/// The app's own authentication: the user of the bearer token into the
/// extensions, or 401.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    match state.db.bearer(header.map(|v| v.as_bytes())) {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Unauthorized",
        )
            .into_response(),
    }
}

/// A status and JSON body as a response.
fn answer((code, body): (u16, Value)) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

/// `GET /documents`: the readable documents, filtered in SQL from the
/// plan, each with its `update`/`delete` permissions (one PDP call).
async fn list(
    State(state): State<AppState>,
    authz: Authz, // cerbos
) -> Result<Response, CerbosRejection> {
    let filter = authz.plan_with(LIST.kind, LIST.actions, to_sql).await?; // cerbos
    let documents = match state.db.list(|query| filter.apply(query)) {
        Ok(documents) => documents,
        Err(err) => return Ok(answer(internal_error(&err))),
    };
    let actions = LIST.permissions; // cerbos
    let rows = authz.with_permissions(documents, Document::resource, actions); // cerbos
    Ok(Json(rows.await?).into_response())
}

/// `POST /documents`: `create` checked in the handler.
async fn create(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    authz: Authz, // cerbos
    body: Bytes,
) -> Result<Response, CerbosRejection> {
    let new = match DocumentBody::parse(&body) {
        Ok(body) => body.new_document(&user),
        Err(why) => return Ok((StatusCode::BAD_REQUEST, why).into_response()),
    };
    authz.require(new.resource(), CREATE.actions).await?; // cerbos
    Ok(answer(match state.db.insert(&new) {
        Ok(created) => (201, created.to_json()),
        Err(err) => internal_error(&err),
    }))
}

/// Behind the `update` guard: the row it loaded, read once.
async fn update(
    State(state): State<AppState>,
    Loaded(document): Loaded<Document>, // cerbos
    body: Bytes,
) -> Response {
    let body = match DocumentBody::parse(&body) {
        Ok(body) if body.department.is_some() => Err("`department` cannot be changed".into()),
        parsed => parsed,
    };
    match body {
        Ok(body) => answer(write_answer(state.db.update(&document, &body), 200, |d| {
            d.to_json()
        })),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// Behind the `delete` guard: the row it loaded, read once.
async fn remove(
    State(state): State<AppState>,
    Loaded(document): Loaded<Document>, // cerbos
) -> Response {
    let deleted = state.db.delete(&document);
    answer(write_answer(deleted, 200, |id| json!({ "deleted": id })))
}
