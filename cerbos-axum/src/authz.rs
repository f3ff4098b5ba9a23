//! [`Authz`]: checks made in a handler.

use axum::extract::{FromRef, FromRequestParts};
use cerbos_tower::{
    Resource,
    adapter::HandlerChecks,
    layer::{Authorizer, Decision, PermissionMap, Plan, Subject},
};
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

impl Authz {
    /// The principal of the request.
    pub fn subject(&self) -> &Subject {
        self.0.subject()
    }

    /// Checks `actions` on `resource` in one PDP call; the decision is
    /// allowed only if every action is, and its
    /// [`permissions`](Decision::permissions) tell them apart. Fail-closed:
    /// a PDP that cannot be asked gives an unreachable (not allowed)
    /// decision.
    pub async fn check<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Decision {
        self.0.check(resource, actions).await
    }

    /// Like [`check`](Self::check), but a request that may not do all of
    /// `actions` is the rejection the layer would have made.
    pub async fn require<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Decision, CerbosRejection> {
        Ok(self.0.require(resource, actions).await?)
    }

    /// The query plan for listing the resources of `kind` on which every
    /// one of `actions` is allowed (one `PlanResources` call); its
    /// [`filter`](Plan::filter) becomes the database query. Fail-closed
    /// like [`require`](Self::require), with the same rejections: a PDP
    /// that cannot be asked or cannot plan is the unreachable rejection
    /// (503 by default), rendered by the configured rejection handler;
    /// bypassed, the plan allows every resource.
    pub async fn plan<A: Into<String>>(
        &self,
        kind: impl Into<String>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Plan, CerbosRejection> {
        Ok(self.0.plan(kind, actions).await?)
    }

    /// The [`PermissionMap`] of `actions` for each of `resources` (a
    /// page's rows), in the same order, from one `CheckResources` call
    /// (chunked by the client). A denied action is `false` in its map; a
    /// PDP that cannot be asked, or a row missing from its answer, is the
    /// unreachable rejection for the whole call.
    pub async fn permissions<A: Into<String>>(
        &self,
        resources: impl IntoIterator<Item = Resource>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Vec<PermissionMap>, CerbosRejection> {
        Ok(self.0.permissions(resources, actions).await?)
    }
}
