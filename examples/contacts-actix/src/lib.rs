//! The contact directory on actix-web: the same routes and rules as
//! `contacts-axum`, each authorized by Cerbos.
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

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web,
};
use cerbos_actix::{
    Authorizer, Authz, CerbosRejection, Declaration, PermissionMap, ResolveError, Resource,
    authorize, declaration,
};
use contacts_shared::{CREATE, Contact, Db, LIST, NewContact, list_json, write_answer};
use serde_json::json;

/// Registers the routes, the app data and authentication on `config`;
/// `authorizer` (`cerbos.authorizer()`) is shared by all workers.
pub fn configure(authorizer: Authorizer, db: Db) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(authorizer)
            .app_data(web::Data::new(db))
            .service(
                // One resource per path, so that a method it does not
                // serve is a 405 (not a 404), and HEAD is answered like GET
                // (without the body), as axum does.
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(authenticate))
                    .service(web::resource("/contacts").route(get_or_head().to(list)))
                    .service(web::resource("/contacts/new").route(web::post().to(create)))
                    .service(
                        web::resource("/contacts/{id}")
                            .route(get_or_head().to(show))
                            .route(web::put().to(update))
                            .route(web::delete().to(remove)),
                    ),
            );
    }
}

/// A route for GET and HEAD requests.
fn get_or_head() -> actix_web::Route {
    use actix_web::guard;
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// HTTP Basic: the user's principal into the extensions, or 401.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let user = req.app_data::<web::Data<Db>>().and_then(|db| {
        db.basic_auth(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    });
    match user {
        Some(user) => {
            req.extensions_mut().insert(user.principal());
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        None => {
            let response = HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"contacts\""))
                .body("Unauthorized");
            Ok(req.into_response(response))
        }
    }
}

fn status(code: StatusCode) -> HttpResponse {
    HttpResponse::build(code).body(code.canonical_reason().unwrap_or_default())
}

fn db(req: &HttpRequest) -> Result<web::Data<Db>, ResolveError> {
    req.app_data::<web::Data<Db>>()
        .cloned()
        .ok_or_else(|| ResolveError::internal("no Db in the app data"))
}

/// The stored contact as the resource to check; absent: 404.
async fn load_contact(
    contact: Resource,
    req: HttpRequest,
) -> Result<Option<Resource>, ResolveError> {
    let row = db(&req)?
        .contact(contact.id())
        .map_err(ResolveError::internal)?;
    Ok(row.map(|c| c.resource()))
}

async fn list(db: web::Data<Db>, authz: Authz) -> Result<HttpResponse, CerbosRejection> {
    let plan = authz.plan(LIST.kind, LIST.actions.iter().copied()).await?;
    let contacts = match db.listed(plan.filter()) {
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
    Ok(HttpResponse::Ok().json(list_json(&contacts, permissions)))
}

#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load_contact)]
async fn show(
    db: web::Data<Db>,
    path: web::Path<String>,
    permissions: PermissionMap,
) -> HttpResponse {
    match db.contact(&path.into_inner()) {
        Ok(Some(contact)) => {
            let mut body = contact.to_json();
            body["permissions"] = json!(permissions);
            HttpResponse::Ok().json(body)
        }
        Ok(None) => status(StatusCode::NOT_FOUND),
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn create(
    db: web::Data<Db>,
    authz: Authz,
    body: web::Bytes,
) -> Result<HttpResponse, CerbosRejection> {
    let new = match NewContact::parse(&body) {
        Ok(new) => new,
        Err(why) => return Ok(HttpResponse::BadRequest().body(why)),
    };
    authz
        .require(new.resource("new"), CREATE.actions.iter().copied())
        .await?;
    Ok(answer(write_answer(db.insert_checked(&new), 201, |c| {
        c.to_json()
    })))
}

/// A checked write's status and JSON body as a response.
fn answer((code, body): (u16, serde_json::Value)) -> HttpResponse {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(body)
}

// The write applies only if the stored row is still the one the check saw
// (the checked `Resource`, with the row as attributes, is in the request
// extensions): a concurrent change is a 409, never a write on a stale
// decision.
#[authorize(kind = "contact", actions = ["update"], load = load_contact)]
async fn update(
    db: web::Data<Db>,
    checked: web::ReqData<Resource>,
    body: web::Bytes,
) -> HttpResponse {
    let new = match NewContact::parse(&body) {
        Ok(new) => new,
        Err(why) => return HttpResponse::BadRequest().body(why),
    };
    answer(write_answer(db.update_checked(&checked, &new), 200, |c| {
        c.to_json()
    }))
}

#[authorize(kind = "contact", actions = ["delete"], load = load_contact)]
async fn remove(db: web::Data<Db>, checked: web::ReqData<Resource>) -> HttpResponse {
    let deleted = db.delete_checked(&checked);
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
