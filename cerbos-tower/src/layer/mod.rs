//! A tower [`Layer`](tower::Layer) that authorizes every request with the
//! Cerbos PDP before the inner service sees it.
//!
//! For each request, [`CerbosService`]:
//!
//! 1. resolves the **principal** with a [`PrincipalResolver`] (by default
//!    the [`Principal`](crate::Principal) your authentication layer put into
//!    the request extensions; no principal → 401);
//! 2. resolves the **resource** with a [`ResourceResolver`] (the id from the
//!    path, attributes from your database, …; not found → 404);
//! 3. asks the PDP about **every action of the route in one
//!    `CheckResources` call**: the required actions and the extra actions
//!    wanted for the [`PermissionMap`];
//! 4. calls the inner service **only if every required action is an
//!    explicit `EFFECT_ALLOW`**, with the [`Decision`], the
//!    [`PermissionMap`], the `Principal` and the `Resource` in the request
//!    extensions.
//!
//! Everything else is rejected, fail-closed: a denial (403), a PDP that is
//! down, slow or answers nonsense (503 Service Unavailable, or 403 with
//! [`CerbosBuilder::unreachable_status`]), a resolver that fails (500). A
//! rejection is an `Ok` response (no `HandleErrorLayer` needed) with a
//! short, neutral body (the reason phrase as `text/plain`, or RFC 9457
//! `application/problem+json` with [`CerbosBuilder::problem_json`]); gRPC
//! requests get the matching `grpc-status`. [`CerbosBuilder::on_rejection`]
//! replaces the responses.
//!
//! A request whose method has no actions is denied without asking the PDP
//! and logged as an error (a configuration gap), except a CORS preflight
//! (`OPTIONS` with `Access-Control-Request-Method`), logged at DEBUG: put
//! a CORS layer outside this one to answer preflights.
//!
//! # With axum
//!
//! Attach the layer with `route_layer`, so that unmatched paths stay 404
//! instead of being checked; inside `Router::nest`, the path templates are
//! relative to the nested router, like its routes.
//!
//! ```no_run
//! use axum::{Extension, Router, routing::get};
//! use cerbos_tower::{
//!     Client, Principal,
//!     layer::{Actions, Cerbos, PermissionMap, ResourceFromPath},
//! };
//!
//! async fn show_contact(Extension(permissions): Extension<PermissionMap>) -> String {
//!     // `read` is allowed, or we would not be here; the buttons depend on
//!     // the extra actions.
//!     format!("edit button: {}", permissions.is_allowed("update"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("http://127.0.0.1:3593").build()?;
//! // The principal comes from the request extensions, where the
//! // authentication layer (added after, so it runs before) puts it.
//! let cerbos = Cerbos::builder(client).build()?;
//!
//! let contact = cerbos.layer(
//!     ResourceFromPath::new("contact", "/contacts/{id}")?,
//!     Actions::require(["read"]).with_permissions(["update", "delete"]),
//! )?;
//!
//! let app: Router = Router::new()
//!     .route("/contacts/{id}", get(show_contact))
//!     .route_layer(contact)
//!     .layer(axum::middleware::from_fn(
//!         |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
//!             // Your authentication goes here.
//!             request.extensions_mut().insert(Principal::new("2", ["user"]));
//!             next.run(request).await
//!         },
//!     ));
//! # let _ = app; Ok(()) }
//! ```
//!
//! # With a tonic server
//!
//! The same layer protects gRPC services; a resolver reads what it needs
//! from the request metadata (HTTP headers), and rejections are gRPC
//! statuses (`PERMISSION_DENIED`, `UNAUTHENTICATED`, …).
//!
//! ```no_run
//! use cerbos_tower::{
//!     Client, Principal, Resource,
//!     layer::{Cerbos, ResolveError},
//!     proto::grpc::health::v1::health_server::{Health, HealthServer},
//! };
//! use http::request::Parts;
//!
//! # async fn run(my_service: impl Health) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("http://127.0.0.1:3593").build()?;
//! let cerbos = Cerbos::builder(client)
//!     .principal(|parts: &Parts| {
//!         let user = parts.headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned);
//!         async move {
//!             let user = user.ok_or_else(|| ResolveError::unauthenticated("no x-user"))?;
//!             Ok(Principal::new(user, ["user"]))
//!         }
//!     })
//!     .build()?;
//! let health = cerbos.layer(
//!     |_: &Parts| std::future::ready(Ok(Resource::new("service", "health"))),
//!     ["check"],
//! )?;
//!
//! tonic::transport::Server::builder()
//!     .layer(health)
//!     .add_service(HealthServer::new(my_service))
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Checks outside the layer
//!
//! [`Cerbos::authorizer`] gives an [`Authorizer`]: the same PDP, principal
//! resolver, fail-closed evaluation, bypass and rejection responses, for a
//! handler that decides with data only it has, or for a framework adapter
//! (`cerbos-axum` and `cerbos-actix` are built on it). It does not depend
//! on the PDP's or the resolver's type, so it fits in application state.
//!
//! # Bypass for local development
//!
//! [`CerbosBuilder::allow_bypass`] lets requests through without a PDP,
//! as [`Reason::Bypassed`], only when `CERBOS_ALLOW_BYPASS=1`, never in
//! production (`build` fails), and with a warning for every request.

// Modules depend one way: `cerbos` (the builder) makes layers
// (`cerbos_layer`), a layer makes services (`service`), a service makes
// futures (`future`), a future applies the decision rules (`evaluate`, also
// used by `authorizer`), which use the plain data: `actions`, `config`,
// `decision`, `rejection`, `resolve`.
mod actions;
mod authorizer;
mod body;
mod cerbos;
mod cerbos_layer;
mod config;
mod context;
mod decision;
mod evaluate;
mod extract;
mod future;
mod no_policy;
mod pdp;
mod rejection;
mod resolve;
mod service;
mod telemetry;

pub use actions::{ActionSet, Actions};
pub use authorizer::{Authorizer, Plan, Subject};
pub use body::ResponseBody;
pub use cerbos::{
    ALLOW_BYPASS_ENV, Cerbos, CerbosBuilder, PRODUCTION_VALUES, PRODUCTION_VARIABLES,
};
pub use cerbos_layer::CerbosLayer;
pub use config::ConfigError;
pub use context::Annotations;
#[cfg(feature = "actix")]
pub(crate) use context::MatchedRoute;
pub use decision::{Decision, PermissionMap, Reason, WithPermissions};
pub use future::ResponseFuture;
pub use pdp::{BoxCheckFuture, BoxPlanFuture, Pdp};
pub use rejection::{OnRejection, Rejection, RejectionKind};
pub use resolve::{
    BearerJwt, Load, PathParams, PathTemplate, PrincipalFromExtension, PrincipalFromExtensions,
    PrincipalResolver, ResolveError, ResolveErrorKind, ResourceFromExtensions, ResourceFromPath,
    ResourceResolver,
};
pub(crate) use resolve::{id_param, loaded};
pub use service::CerbosService;

#[cfg(test)]
mod tests;
