//! [`Authz`]: checks made in a handler.

use axum::extract::{FromRef, FromRequestParts};
use cerbos_tower::{adapter::HandlerChecks, layer::Authorizer};
use http::request::Parts;

use crate::CerbosRejection;

/// Checks made in a handler, for decisions that need data only the handler
/// has: the principal is resolved when the extractor runs (401 and the
/// like reject the request before the handler); each
/// [`check`](Self::check) or [`require`](Self::require) is one
/// `CheckResources` call with all its actions. A list page asks for its
/// query [`plan`](Self::plan) (one `PlanResources` call) and for the
/// [`permissions`](Self::permissions) of its rows (one `CheckResources`
/// call with every row).
///
/// Needs an [`Authorizer`] in the router state (`Authorizer: FromRef<S>`).
///
/// ```
/// use axum::{Router, routing::post};
/// use cerbos_axum::{Authz, CerbosRejection, Resource};
///
/// async fn transfer(authz: Authz, body: String) -> Result<String, CerbosRejection> {
///     // The resource exists only in the request body.
///     let account = Resource::new("account", body.trim()).with_attr("currency", "EUR");
///     let decision = authz.require(account, ["withdraw"]).await?;
///     Ok(format!("ok ({})", decision.cerbos_call_id()))
/// }
///
/// # fn app(authorizer: cerbos_axum::Authorizer) -> Router {
/// Router::new().route("/transfer", post(transfer)).with_state(authorizer)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Authz(HandlerChecks);

impl<S> FromRequestParts<S> for Authz
where
    S: Send + Sync,
    Authorizer: FromRef<S>,
{
    type Rejection = CerbosRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Authz(
            HandlerChecks::resolve(Authorizer::from_ref(state), parts).await?,
        ))
    }
}

cerbos_tower::__authz_methods!(Authz, CerbosRejection);
