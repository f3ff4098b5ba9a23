//! The [`Pdp`] trait: how the layer asks for decisions and query plans.

use std::{future::Future, pin::Pin};

use crate::{
    CheckResources, CheckResourcesResponse, Client, Error, GrpcCode, PlanResources,
    PlanResourcesResponse, Result,
};

/// Something that answers `CheckResources` requests.
///
/// The layer talks to the PDP only through this trait. [`Client`]
/// implements it, and so does every
/// `Fn(CheckResources) -> impl Future<Output = Result<CheckResourcesResponse>>`
/// closure, which is how tests plug in a stub PDP:
///
/// ```
/// use cerbos_tower::{CheckResources, CheckResourcesResponse, Error, layer::Pdp};
///
/// fn assert_pdp(_: impl Pdp) {}
/// // A PDP that is always down: every request through the layer is denied.
/// assert_pdp(|_request: CheckResources| async {
///     Err::<CheckResourcesResponse, _>(Error::Unavailable { message: "down".into() })
/// });
/// ```
///
/// Implementations need not verify the answer: the layer itself checks that
/// it is about the resource and actions it asked for, and denies otherwise.
///
/// Planning ([`Authorizer::plan`](super::Authorizer::plan)) is optional:
/// the default [`plan`](Self::plan) answers an error meaning "this PDP
/// cannot plan", which the [`Authorizer`](super::Authorizer) turns into an
/// unreachable rejection (503 by default), never into an allowed plan.
/// Closures only check; [`Client`] also plans.
pub trait Pdp: Send + Sync + 'static {
    /// The future of one check.
    type Future: Future<Output = Result<CheckResourcesResponse>> + Send + 'static;

    /// Sends one `CheckResources` request.
    fn check(&self, request: CheckResources) -> Self::Future;

    /// Sends one `PlanResources` request. The default answers
    /// [`Error::Status`] with gRPC's `UNIMPLEMENTED` code: this PDP cannot
    /// plan.
    fn plan(&self, request: PlanResources) -> BoxPlanFuture {
        let message = format!(
            "this Pdp cannot plan (PlanResources for {:?}): implement Pdp::plan",
            request.kind()
        );
        Box::pin(std::future::ready(Err(Error::Status {
            code: UNIMPLEMENTED,
            message,
        })))
    }
}

/// The boxed future of [`Client`]'s [`Pdp`] implementation.
///
/// One allocation per request, next to a network round trip; the layer's
/// own work is allocation-light and measured with a stub PDP (see the
/// `layer` benchmark).
pub type BoxCheckFuture = Pin<Box<dyn Future<Output = Result<CheckResourcesResponse>> + Send>>;

/// gRPC's `UNIMPLEMENTED` status code.
const UNIMPLEMENTED: GrpcCode = GrpcCode(12);

/// The boxed future of [`Pdp::plan`].
pub type BoxPlanFuture = Pin<Box<dyn Future<Output = Result<PlanResourcesResponse>> + Send>>;

impl Pdp for Client {
    type Future = BoxCheckFuture;

    fn check(&self, request: CheckResources) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.check_resources(request).await })
    }

    fn plan(&self, request: PlanResources) -> BoxPlanFuture {
        let client = self.clone();
        Box::pin(async move { client.plan_resources(request).await })
    }
}

impl<F, Fut> Pdp for F
where
    F: Fn(CheckResources) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<CheckResourcesResponse>> + Send + 'static,
{
    type Future = Fut;

    fn check(&self, request: CheckResources) -> Self::Future {
        self(request)
    }
}
