//! The contact directory on axum: the routes, each authorized by Cerbos.
//!
//! - `GET /contacts`: the contacts the user may `read`, filtered in SQL from
//!   a `PlanResources` answer, each with the user's `update`/`delete`
//!   permissions on it (one PDP call for the page);
//! - `GET /contacts/{id}`: one contact and the user's `read`/`update`/`delete`
//!   permissions on it (one PDP call); 404 if absent, 403 if not readable;
//! - `POST /contacts/new` (`create`), `PUT /contacts/{id}` (`update`),
//!   `DELETE /contacts/{id}` (`delete`).
//!
//! Users authenticate with HTTP Basic (the password is ignored); an
//! unknown user gets 401.

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{FromRef, Path, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use cerbos_axum::{
    Authorizer, Authz, Cerbos, CerbosRejection, Client, Declaration, PermissionMap, ResolveError,
    Resource, authorize, declaration,
};
use contacts_shared::{CREATE, Contact, Db, LIST, NewContact, list_json, write_answer};
use serde_json::json;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    authorizer: Authorizer,
    db: Db,
}

impl FromRef<AppState> for Authorizer {
    fn from_ref(state: &AppState) -> Authorizer {
        state.authorizer.clone()
    }
}

/// The app: routes, authentication, authorization.
pub fn app(
    client: Client,
    db: Db,
) -> Result<Router, cerbos_axum::cerbos_tower::layer::ConfigError> {
    // The principal is the one `authenticate` puts into the extensions.
    let cerbos = Cerbos::builder(client).build()?;
    let state = AppState {
        authorizer: cerbos.authorizer(),
        db,
    };
    Ok(Router::new()
        .route("/contacts", get(list))
        .route("/contacts/new", post(create))
        .route("/contacts/{id}", get(show).put(update).delete(remove))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state))
}

/// HTTP Basic: the user's principal into the extensions, or 401.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match state.db.basic_auth(header) {
        Some(user) => {
            request.extensions_mut().insert(user.principal());
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"contacts\"")],
            "Unauthorized",
        )
            .into_response(),
    }
}

fn status(code: StatusCode) -> Response {
    (code, code.canonical_reason().unwrap_or_default()).into_response()
}

/// The stored contact as the resource to check; absent: 404.
async fn load_contact(
    contact: Resource,
    state: &AppState,
) -> Result<Option<Resource>, ResolveError> {
    let row = state
        .db
        .contact(contact.id())
        .map_err(ResolveError::internal)?;
    Ok(row.map(|c| c.resource()))
}

async fn list(State(state): State<AppState>, authz: Authz) -> Result<Response, CerbosRejection> {
    let plan = authz.plan(LIST.kind, LIST.actions.iter().copied()).await?;
    let contacts = match state.db.listed(plan.filter()) {
        Ok(contacts) => contacts,
        Err(code) => {
            return Ok(status(
                StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN),
            ));
        }
    };
    let resources = contacts.iter().map(Contact::resource);
    let permissions = authz
        .permissions(resources, LIST.permissions.iter().copied())
        .await?;
    Ok(Json(list_json(&contacts, permissions)).into_response())
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"],
            load = load_contact, state = AppState)]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    permissions: PermissionMap,
) -> Response {
    match state.db.contact(&id) {
        Ok(Some(contact)) => {
            let mut body = contact.to_json();
            body["permissions"] = json!(permissions);
            Json(body).into_response()
        }
        Ok(None) => status(StatusCode::NOT_FOUND),
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn create(
    State(state): State<AppState>,
    authz: Authz,
    body: Bytes,
) -> Result<Response, CerbosRejection> {
    let new = match NewContact::parse(&body) {
        Ok(new) => new,
        Err(why) => return Ok((StatusCode::BAD_REQUEST, why).into_response()),
    };
    authz
        .require(new.resource("new"), CREATE.actions.iter().copied())
        .await?;
    let written = state.db.insert_checked(&new);
    Ok(answer(write_answer(written, 201, |c| c.to_json())))
}

/// A checked write's status and JSON body as a response.
fn answer((code, body): (u16, serde_json::Value)) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

// The write applies only if the stored row is still the one the check saw
// (the checked `Resource`, with the row as attributes, is in the request
// extensions): a concurrent change is a 409, never a write on a stale
// decision.
#[authorize(kind = "contact", actions = ["update"], load = load_contact, state = AppState)]
async fn update(
    State(state): State<AppState>,
    Extension(checked): Extension<Resource>,
    body: Bytes,
) -> Response {
    let new = match NewContact::parse(&body) {
        Ok(new) => new,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    answer(write_answer(
        state.db.update_checked(&checked, &new),
        200,
        |c| c.to_json(),
    ))
}

#[authorize(kind = "contact", actions = ["delete"], load = load_contact, state = AppState)]
async fn remove(
    State(state): State<AppState>,
    Extension(checked): Extension<Resource>,
) -> Response {
    let deleted = state.db.delete_checked(&checked);
    answer(write_answer(deleted, 200, |id| json!({ "deleted": id })))
}

/// Everything this app can ask the PDP about: the declarations of its
/// `#[authorize]` handlers and of its in-handler checks, for a test that
/// checks them against the policies (`cerbos_testkit::PolicyCoverage`).
pub fn declarations() -> [Declaration; 5] {
    [
        declaration!(show),
        declaration!(update),
        declaration!(remove),
        LIST,
        CREATE,
    ]
}
