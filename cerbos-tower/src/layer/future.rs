//! [`ResponseFuture`]: resolve the principal, resolve the resource, ask the
//! PDP, then (only if allowed) call the inner service.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response, request::Parts};
use pin_project_lite::pin_project;
use tower::Service;

use super::{
    Pdp, PrincipalResolver, Rejection, ResourceResolver, ResponseBody,
    config::{Route, Shared},
    evaluate::{Pending, begin_check, bypassed, finish_check, no_actions_for_method, request_id},
};
use crate::{AuxData, Principal};

pin_project! {
    #[project = StateProj]
    enum State<PF, RF, CF, F> {
        Principal { #[pin] fut: PF },
        Resource { #[pin] fut: RF },
        Check { #[pin] fut: CF },
        Inner { #[pin] fut: F },
        Done,
    }
}

pin_project! {
    /// The response future of [`CerbosService`](super::CerbosService).
    pub struct ResponseFuture<S, B, P, R, RR>
    where
        S: Service<Request<B>>,
        P: Pdp,
        R: PrincipalResolver,
        RR: ResourceResolver,
    {
        #[pin]
        state: State<R::Future, RR::Future, P::Future, S::Future>,
        inner: Option<S>,
        parts: Parts,
        body: Option<B>,
        shared: Arc<Shared<P, R>>,
        route: Arc<Route<RR>>,
        principal: Option<Principal>,
        aux_data: Option<AuxData>,
        check: Option<Pending>,
    }
}

impl<S, B, P, R, RR> ResponseFuture<S, B, P, R, RR>
where
    S: Service<Request<B>>,
    P: Pdp,
    R: PrincipalResolver,
    RR: ResourceResolver,
{
    pub(crate) fn new(
        inner: S,
        request: Request<B>,
        shared: Arc<Shared<P, R>>,
        route: Arc<Route<RR>>,
    ) -> Self {
        let (parts, body) = request.into_parts();
        let fut = shared.principal.resolve_principal(&parts);
        ResponseFuture {
            state: State::Principal { fut },
            inner: Some(inner),
            parts,
            body: Some(body),
            shared,
            route,
            principal: None,
            aux_data: None,
            check: None,
        }
    }
}

impl<S, B, P, R, RR> fmt::Debug for ResponseFuture<S, B, P, R, RR>
where
    S: Service<Request<B>>,
    P: Pdp,
    R: PrincipalResolver,
    RR: ResourceResolver,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Principal { .. } => "resolving principal",
            State::Resource { .. } => "resolving resource",
            State::Check { .. } => "checking",
            State::Inner { .. } => "calling inner service",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody, P, R, RR> Future for ResponseFuture<S, B, P, R, RR>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    P: Pdp,
    R: PrincipalResolver,
    RR: ResourceResolver,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let rejection = loop {
            let (decision, resource) = match this.state.as_mut().project() {
                StateProj::Inner { fut } => {
                    return fut
                        .poll(cx)
                        .map(|result| result.map(|response| response.map(ResponseBody::inner)));
                }
                StateProj::Principal { fut } => {
                    let principal = match ready!(fut.poll(cx)) {
                        Ok(principal) => principal,
                        Err(err) => break Rejection::from_resolver(err, "principal"),
                    };
                    match this.shared.principal.aux_data(this.parts) {
                        Ok(aux) => *this.aux_data = aux,
                        Err(err) => break Rejection::from_resolver(err, "principal"),
                    }
                    *this.principal = Some(principal);
                    let fut = this.route.resource.resolve_resource(this.parts);
                    this.state.set(State::Resource { fut });
                    continue;
                }
                StateProj::Resource { fut } => {
                    let resource = match ready!(fut.poll(cx)) {
                        Ok(resource) => resource,
                        Err(err) => break Rejection::from_resolver(err, "resource"),
                    };
                    let shared = &**this.shared;
                    let request_id = request_id(this.parts);
                    let Some(actions) = this.route.actions.for_method(&this.parts.method) else {
                        break no_actions_for_method(&this.parts.method, &resource, request_id);
                    };
                    if shared.bypass {
                        (bypassed(&resource, actions, request_id), resource)
                    } else {
                        // The handler gets the principal in the extensions;
                        // when the resolver took it from there (the usual
                        // case), the check can have it without a copy.
                        let principal = if shared.principal.is_from_extensions() {
                            this.principal.take()
                        } else {
                            this.principal.clone()
                        };
                        let Some(principal) = principal else {
                            break Rejection::internal("the principal is missing after resolution");
                        };
                        let (fut, pending) = begin_check(
                            shared,
                            principal,
                            this.aux_data.take(),
                            resource,
                            actions.clone(),
                            request_id,
                            &shared.call_context(this.parts),
                        );
                        *this.check = Some(pending);
                        this.state.set(State::Check { fut });
                        continue;
                    }
                }
                StateProj::Check { fut } => {
                    let answer = match this.check.as_ref() {
                        Some(pending) => {
                            let _entered = pending.span.enter();
                            ready!(fut.poll(cx))
                        }
                        None => ready!(fut.poll(cx)),
                    };
                    let Some(pending) = this.check.take() else {
                        break Rejection::internal("the check finished without a pending request");
                    };
                    match finish_check(pending, answer) {
                        Ok(allowed) => allowed,
                        Err(rejection) => break rejection,
                    }
                }
                StateProj::Done => {
                    break Rejection::internal("the response future was polled after completion");
                }
            };
            // Allowed (or bypassed): only now does the inner service see
            // the request.
            let (Some(mut inner), Some(body)) = (this.inner.take(), this.body.take()) else {
                break Rejection::internal("the inner service was already called");
            };
            let mut parts = std::mem::replace(this.parts, Request::new(()).into_parts().0);
            parts.extensions.insert(decision.permissions());
            parts.extensions.insert(decision);
            parts.extensions.insert(resource);
            if let Some(principal) = this.principal.take() {
                parts.extensions.insert(principal);
            }
            let fut = inner.call(Request::from_parts(parts, body));
            this.state.set(State::Inner { fut });
        };
        this.state.set(State::Done);
        let response = this.shared.render(rejection, this.parts);
        Poll::Ready(Ok(response.map(ResponseBody::rejection)))
    }
}
