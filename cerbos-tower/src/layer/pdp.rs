//! The [`Pdp`] trait: how the layer asks for decisions.

use std::{future::Future, pin::Pin};

use crate::{CheckResources, CheckResourcesResponse, Client, Result};

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
pub trait Pdp: Send + Sync + 'static {
    /// The future of one check.
    type Future: Future<Output = Result<CheckResourcesResponse>> + Send + 'static;

    /// Sends one `CheckResources` request.
    fn check(&self, request: CheckResources) -> Self::Future;
}

/// The boxed future of [`Client`]'s [`Pdp`] implementation.
///
/// One allocation per request, next to a network round trip; the layer's
/// own work is allocation-light and measured with a stub PDP (see the
/// `layer` benchmark).
pub type BoxCheckFuture = Pin<Box<dyn Future<Output = Result<CheckResourcesResponse>> + Send>>;

impl Pdp for Client {
    type Future = BoxCheckFuture;

    fn check(&self, request: CheckResources) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.check_resources(request).await })
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
