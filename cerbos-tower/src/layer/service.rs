//! [`CerbosService`]: the middleware.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::Service;

use super::{
    Pdp, PrincipalResolver, ResourceResolver, ResponseBody, ResponseFuture,
    config::{Route, Shared},
};

/// Middleware that authorizes each request with the PDP before the inner
/// service sees it; see the [module docs](super).
///
/// Made by [`CerbosLayer`](super::CerbosLayer).
pub struct CerbosService<S, P, R, RR> {
    inner: S,
    shared: Arc<Shared<P, R>>,
    route: Arc<Route<RR>>,
}

impl<S, P, R, RR> CerbosService<S, P, R, RR> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<P, R>>, route: Arc<Route<RR>>) -> Self {
        CerbosService {
            inner,
            shared,
            route,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, giving the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, R, RR> Clone for CerbosService<S, P, R, RR> {
    fn clone(&self) -> Self {
        CerbosService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            route: self.route.clone(),
        }
    }
}

impl<S: fmt::Debug, P, R, RR> fmt::Debug for CerbosService<S, P, R, RR> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosService")
            .field("inner", &self.inner)
            .field("resource", &std::any::type_name::<RR>())
            .field("actions", &self.route.actions)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody, P, R, RR> Service<Request<B>> for CerbosService<S, P, R, RR>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    P: Pdp,
    R: PrincipalResolver,
    RR: ResourceResolver,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, P, R, RR>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready is the one that gets the
        // request; a clone takes its place here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(inner, request, self.shared.clone(), self.route.clone())
    }
}
