//! A documents API on actix-web, as an application has it: its own
//! authentication (a bearer token mapped to a [`CurrentUser`] in the
//! request extensions) and five routes, the same as `documents-axum`:
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

use actix_web::{
    HttpMessage, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};
use cerbos_actix::{Authz, Cerbos, CerbosExt, CerbosRejection, Client, Loaded}; // cerbos
use cerbos_actix::{PathResource, PrincipalResolver}; // cerbos
use documents_shared::authz::{CREATE, LIST, principal, to_sql}; // cerbos
use documents_shared::{CurrentUser, Db, Document, DocumentBody, internal_error, write_answer};
use serde_json::{Value, json};

pub use authz::declarations;
/// Why the app cannot be built: a Cerbos configuration error.
pub use cerbos_actix::cerbos_tower::layer::ConfigError;

// cerbos {
/// The app's Cerbos, made once for all workers: the principal is the
/// [`CurrentUser`] the app's authentication found.
pub fn cerbos(client: Client) -> Result<Cerbos<Client, impl PrincipalResolver>, ConfigError> {
    Cerbos::builder(client)
        .principal_from_extension(principal)
        .build()
}
// } cerbos

/// Registers the routes, the app data and authentication on `config`, for
/// one worker: `cerbos` (from [`cerbos()`]) and `db` are shared by all
/// workers.
pub fn configure<R: PrincipalResolver>(
    cerbos: &Cerbos<Client, R>, // cerbos
    db: Db,
) -> Result<impl FnOnce(&mut web::ServiceConfig) + use<R>, ConfigError> {
    // cerbos {
    let guard =
        |action: &str| cerbos.guard_with(PathResource::new("document").load(authz::load), [action]);
    let (update_guard, delete_guard) = (guard("update")?, guard("delete")?);
    let authorizer = cerbos.authorizer();
    // } cerbos
    Ok(move |config: &mut web::ServiceConfig| {
        config
            .app_data(authorizer) // cerbos
            .app_data(web::Data::new(db))
            .service(
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(authenticate))
                    .service(
                        web::resource("/documents")
                            .route(web::get().to(list))
                            .route(web::post().to(create)),
                    )
                    .service(
                        web::resource("/documents/{id}")
                            .route(web::get().to(authz::show))
                            .route(web::put().to(update).wrap(update_guard)) // cerbos
                            .route(web::delete().to(remove).wrap(delete_guard)), // cerbos
                    ),
            );
    })
}

/// The app's own authentication: the user of the bearer token into the
/// extensions, or 401.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let header = req.headers().get(header::AUTHORIZATION);
    let user = req
        .app_data::<web::Data<Db>>()
        .and_then(|db| db.bearer(header.map(|v| v.as_bytes())));
    match user {
        Some(user) => {
            req.extensions_mut().insert(user);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        None => {
            let response = HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .body("Unauthorized");
            Ok(req.into_response(response))
        }
    }
}

/// A status and JSON body as a response.
fn answer((code, body): (u16, Value)) -> HttpResponse {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(body)
}

/// `GET /documents`: the readable documents, filtered in SQL from the
/// plan, each with its `update`/`delete` permissions (one PDP call).
async fn list(
    db: web::Data<Db>,
    authz: Authz, // cerbos
) -> Result<HttpResponse, CerbosRejection> {
    let filter = authz.plan_with(LIST.kind, LIST.actions, to_sql).await?; // cerbos
    let documents = match db.list(|query| filter.apply(query)) {
        Ok(documents) => documents,
        Err(err) => return Ok(answer(internal_error(&err))),
    };
    let actions = LIST.permissions; // cerbos
    let rows = authz.with_permissions(documents, Document::resource, actions); // cerbos
    Ok(HttpResponse::Ok().json(rows.await?))
}

/// `POST /documents`: `create` checked in the handler.
async fn create(
    db: web::Data<Db>,
    user: web::ReqData<CurrentUser>,
    authz: Authz, // cerbos
    body: web::Bytes,
) -> Result<HttpResponse, CerbosRejection> {
    let new = match DocumentBody::parse(&body) {
        Ok(body) => body.new_document(&user),
        Err(why) => return Ok(HttpResponse::BadRequest().body(why)),
    };
    authz.require(new.resource(), CREATE.actions).await?; // cerbos
    Ok(answer(match db.insert(&new) {
        Ok(created) => (201, created.to_json()),
        Err(err) => internal_error(&err),
    }))
}

/// Behind the `update` guard: the row it loaded, read once.
async fn update(
    db: web::Data<Db>,
    Loaded(document): Loaded<Document>, // cerbos
    body: web::Bytes,
) -> HttpResponse {
    let body = match DocumentBody::parse(&body) {
        Ok(body) if body.department.is_some() => Err("`department` cannot be changed".into()),
        parsed => parsed,
    };
    match body {
        Ok(body) => answer(write_answer(db.update(&document, &body), 200, |d| {
            d.to_json()
        })),
        Err(why) => HttpResponse::BadRequest().body(why),
    }
}

/// Behind the `delete` guard: the row it loaded, read once.
async fn remove(
    db: web::Data<Db>,
    Loaded(document): Loaded<Document>, // cerbos
) -> HttpResponse {
    let deleted = db.delete(&document);
    answer(write_answer(deleted, 200, |id| json!({ "deleted": id })))
}
