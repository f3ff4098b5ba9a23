//! cerbos-actix in a small contact directory, against the real PDP with the
//! policies in `examples/policies`: middleware on a resource, the
//! `#[authorize]` attribute, an in-handler check, and an authentication
//! middleware that puts the `Principal` into the request extensions.
//!
//! `cargo run -p actix-example` sends a few requests through the app and
//! prints the answers. With `LISTEN_ADDR=127.0.0.1:8000` it serves them over
//! HTTP instead (`curl -H 'x-user: john' localhost:8000/contacts/1`). Set
//! `CERBOS_ADDR` to use a PDP that is already running.

use std::{collections::BTreeMap, path::PathBuf};

use actix_web::{
    App, HttpMessage, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::{Next, from_fn},
    test, web,
};
use cerbos_actix::{
    Authz, Cerbos, CerbosExt, CerbosRejection, Client, PermissionMap, Principal, ResolveError,
    Resource, authorize,
};

/// A contact row: name, owner id, active, opted in to marketing.
type Contacts = BTreeMap<&'static str, (&'static str, &'static str, bool, bool)>;

/// The users of the tutorial: id, name, role, department.
const USERS: [(&str, &str, &str, &str); 4] = [
    ("1", "alice", "admin", "IT"),
    ("2", "john", "user", "Sales"),
    ("3", "sarah", "user", "Sales"),
    ("4", "geri", "user", "Marketing"),
];

/// Authentication (a stand-in): the `x-user` header names the user. An
/// unknown user gets no principal, which the Cerbos checks answer with 401.
async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let user = req
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some((id, _, role, department)) = USERS.iter().find(|u| Some(u.1) == user.as_deref()) {
        let principal = Principal::new(*id, [*role]).with_attr("department", *department);
        req.extensions_mut().insert(principal);
    }
    next.call(req).await
}

/// The contact's row as the resource's attributes; absent: 404.
async fn load_contact(
    contact: Resource,
    req: HttpRequest,
) -> Result<Option<Resource>, ResolveError> {
    let contacts = req
        .app_data::<web::Data<Contacts>>()
        .ok_or_else(|| ResolveError::internal("no contacts in the app data"))?;
    Ok(contacts
        .get(contact.id())
        .map(|(_, owner, active, opt_in)| {
            contact
                .with_attr("owner_id", *owner)
                .with_attr("is_active", *active)
                .with_attr("marketing_opt_in", *opt_in)
        }))
}

/// Shown only to who may `read` it; says whether they may edit or delete it.
#[authorize(kind = "contact", actions = ["read"], permissions = ["update", "delete"], load = load_contact)]
async fn show_contact(path: web::Path<String>, permissions: PermissionMap) -> String {
    let buttons: Vec<String> = permissions
        .iter()
        .map(|(a, allowed)| format!("{a}={allowed}"))
        .collect();
    format!(
        "contact {}; buttons: {}",
        path.into_inner(),
        buttons.join(" ")
    )
}

/// Behind the middleware: the PDP decides on the kind alone (Sales may create).
async fn new_contact(principal: Principal) -> HttpResponse {
    HttpResponse::Created().body(format!("created by user {}", principal.id()))
}

/// Decides in the handler, on contacts named in the request body.
async fn bulk_delete(
    req: HttpRequest,
    authz: Authz,
    body: String,
) -> Result<String, CerbosRejection> {
    let mut deleted = Vec::new();
    for id in body.split(',').map(str::trim) {
        let Ok(Some(contact)) = load_contact(Resource::new("contact", id), req.clone()).await
        else {
            continue;
        };
        if authz.check(contact, ["delete"]).await.is_allowed() {
            deleted.push(id.to_owned());
        }
    }
    if deleted.is_empty() {
        authz
            .require(Resource::new("contact", "none"), ["delete"])
            .await?;
    }
    Ok(format!("deleted {}", deleted.join(",")))
}

fn contacts() -> Contacts {
    [
        ("1", ("Nick Smyth", "2", true, true)),
        ("2", ("Simon Jaff", "2", false, true)),
        ("3", ("Mary Jane", "3", true, false)),
    ]
    .into_iter()
    .collect()
}

/// The app, for each worker: one `Cerbos` (one PDP client) shared.
fn app(
    cerbos: Cerbos<Client>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(cerbos.authorizer())
        .app_data(web::Data::new(contacts()))
        .route("/contacts/{id}", web::get().to(show_contact))
        .route("/contacts/delete", web::post().to(bulk_delete))
        .service(
            web::resource("/contacts/new/{id}")
                .wrap(
                    cerbos
                        .guard("contact", ["create"])
                        .expect("valid kind and actions"),
                )
                .route(web::post().to(new_contact)),
        )
        .wrap(from_fn(authenticate))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    // Keep the PDP alive until the end of main: it is killed on drop.
    let (_pdp, endpoint) = cerbos_testkit::pdp_from_env_or_start(policies)?;
    // The principal resolver is the core's: by default it reads the
    // `Principal` that `authenticate` put into the request extensions. One
    // given to `Cerbos::builder(..).principal(..)` (a closure over the
    // request head, or `BearerJwt`) would serve every check the same way.
    let cerbos = Cerbos::builder(Client::builder(&endpoint).build()?).build()?;
    for (id, (name, owner, ..)) in contacts() {
        println!("contact {id}: {name} (owner {owner})");
    }

    if let Ok(addr) = std::env::var("LISTEN_ADDR") {
        println!("listening on http://{addr} (PDP at {endpoint})");
        HttpServer::new(move || app(cerbos.clone()))
            .bind(&addr)?
            .run()
            .await?;
        return Ok(());
    }
    println!("\nPDP at {endpoint}; sending requests through the app:\n");
    let service = test::init_service(app(cerbos)).await;
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
        let request = test::TestRequest::default()
            .method(method.parse()?)
            .uri(path)
            .insert_header(("x-user", user))
            .set_payload(body)
            .to_request();
        let response = test::call_service(&service, request).await;
        let status = response.status().as_u16();
        let bytes = test::read_body(response).await;
        println!(
            "{user:>6} {method:<4} {path:<18} {body:<6} -> {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}
