//! [`ResponseFuture`]: resolve the principal, resolve the resource, ask the
//! PDP, then (only if allowed) call the inner service.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use http::{Request, Response, StatusCode, request::Parts};
use pin_project_lite::pin_project;
use tower::Service;
use tracing::field::Empty;

use super::{
    ActionSpec, CerbosLayer, Decision, Pdp, PrincipalResolver, Reason, Rejection, RejectionKind,
    ResolveError, ResolveErrorKind, ResourceResolver, ResponseBody, decision::ActionOutcome,
    rejection::Cause,
};
use crate::{AuxData, CheckResources, CheckResourcesResponse, Principal, Resource};

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
        layer: CerbosLayer<P, R, RR>,
        principal: Option<Principal>,
        aux_data: Option<AuxData>,
        check: Option<Pending>,
    }
}

/// What the check in flight needs to make its decision.
pub(crate) struct Pending {
    resource: Resource,
    actions: Arc<[ActionSpec]>,
    request_id: String,
    span: tracing::Span,
    started: Instant,
    /// A JWT went with the check as aux data.
    sent_jwt: bool,
}

impl<S, B, P, R, RR> ResponseFuture<S, B, P, R, RR>
where
    S: Service<Request<B>>,
    P: Pdp,
    R: PrincipalResolver,
    RR: ResourceResolver,
{
    pub(crate) fn new(inner: S, request: Request<B>, layer: CerbosLayer<P, R, RR>) -> Self {
        let (parts, body) = request.into_parts();
        let fut = layer.shared.principal.resolve_principal(&parts);
        ResponseFuture {
            state: State::Principal { fut },
            inner: Some(inner),
            parts,
            body: Some(body),
            layer,
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
                        Err(err) => break resolver_rejection(err, "principal"),
                    };
                    match this.layer.shared.principal.aux_data(this.parts) {
                        Ok(aux) => *this.aux_data = aux,
                        Err(err) => break resolver_rejection(err, "principal"),
                    }
                    *this.principal = Some(principal);
                    let fut = this.layer.route.resource.resolve_resource(this.parts);
                    this.state.set(State::Resource { fut });
                    continue;
                }
                StateProj::Resource { fut } => {
                    let resource = match ready!(fut.poll(cx)) {
                        Ok(resource) => resource,
                        Err(err) => break resolver_rejection(err, "resource"),
                    };
                    let layer = &*this.layer;
                    let request_id = request_id(this.parts);
                    let Some(actions) = layer.route.actions.for_method(&this.parts.method) else {
                        break no_actions_for_method(&this.parts.method, &resource, request_id);
                    };
                    if layer.shared.bypass {
                        (bypassed(&resource, actions, request_id), resource)
                    } else {
                        // The handler gets the principal in the extensions;
                        // when the resolver took it from there (the usual
                        // case), the check can have it without a copy.
                        let principal = if layer.shared.principal.is_from_extensions() {
                            this.principal.take()
                        } else {
                            this.principal.clone()
                        };
                        let Some(principal) = principal else {
                            break internal_error("the principal is missing after resolution");
                        };
                        let (fut, pending) = begin_check(
                            &layer.shared.pdp,
                            principal,
                            this.aux_data.take(),
                            resource,
                            actions.clone(),
                            request_id,
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
                        break internal_error("the check finished without a pending request");
                    };
                    match finish_check(pending, answer) {
                        Ok(allowed) => allowed,
                        Err(rejection) => break rejection,
                    }
                }
                StateProj::Done => {
                    break internal_error("the response future was polled after completion");
                }
            };
            // Allowed (or bypassed): only now does the inner service see
            // the request.
            let (Some(mut inner), Some(body)) = (this.inner.take(), this.body.take()) else {
                break internal_error("the inner service was already called");
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
        let response = this.layer.shared.render(rejection, this.parts);
        Poll::Ready(Ok(response.map(ResponseBody::rejection)))
    }
}

/// Starts a check of `actions` on `resource`: the PDP's future, and what
/// [`finish_check`] needs.
pub(crate) fn begin_check<P: Pdp>(
    pdp: &P,
    principal: Principal,
    aux_data: Option<AuxData>,
    resource: Resource,
    actions: Arc<[ActionSpec]>,
    request_id: String,
) -> (P::Future, Pending) {
    let mut check = CheckResources::new(principal).request_id(&request_id);
    check.push(resource.clone(), actions.iter().map(|a| &*a.action));
    let sent_jwt = aux_data.is_some();
    if let Some(aux) = aux_data {
        check = check.aux_data(aux);
    }
    let span = tracing::debug_span!(
        "cerbos_check",
        kind = resource.kind(),
        actions = ?ActionNames(&actions),
        request_id = %request_id,
        reason = Empty,
        cerbos_call_id = Empty,
        duration_us = Empty,
    );
    let fut = span.in_scope(|| pdp.check(check));
    let pending = Pending {
        resource,
        actions,
        request_id,
        span,
        started: Instant::now(),
        sent_jwt,
    };
    (fut, pending)
}

/// Decides on the PDP's answer: the decision and the resource if every
/// required action is allowed, else the rejection.
pub(crate) fn finish_check(
    pending: Pending,
    answer: crate::Result<CheckResourcesResponse>,
) -> Result<(Decision, Resource), Rejection> {
    // The PDP refuses a JWT that fails verification (bad signature,
    // expired, unknown key set) with INVALID_ARGUMENT: the client is not
    // authenticated.
    let bad_jwt = pending.sent_jwt && matches!(answer, Err(crate::Error::InvalidArgument { .. }));
    let (decision, cause) = evaluate(
        &pending.resource,
        &pending.actions,
        answer,
        pending.request_id,
    );
    log_decision(&decision, cause.as_deref(), &pending.span, pending.started);
    match decision.reason {
        Reason::Allowed | Reason::Bypassed => Ok((decision, pending.resource)),
        Reason::Unreachable if bad_jwt => Err(rejection(
            RejectionKind::Unauthenticated,
            Some(decision),
            cause,
        )),
        Reason::Unreachable => Err(rejection(RejectionKind::Unreachable, Some(decision), cause)),
        Reason::Denied => Err(rejection(RejectionKind::Denied, Some(decision), None)),
    }
}

/// The denial of a request whose method has no actions configured: a
/// configuration gap, logged as an error; the PDP is not asked.
pub(crate) fn no_actions_for_method(
    method: &http::Method,
    resource: &Resource,
    request_id: String,
) -> Rejection {
    tracing::error!(
        %method,
        kind = resource.kind(),
        "the Cerbos check has no actions for this method: denied without asking the PDP"
    );
    let decision = decision(resource, &[], Reason::Denied, request_id);
    rejection(RejectionKind::Denied, Some(decision), None)
}

/// The decision of a bypassed check, logged.
pub(crate) fn bypassed(
    resource: &Resource,
    actions: &[ActionSpec],
    request_id: String,
) -> Decision {
    tracing::warn!(
        kind = resource.kind(),
        actions = ?ActionNames(actions),
        "Cerbos authorization BYPASSED: the PDP was not asked"
    );
    decision(resource, actions, Reason::Bypassed, request_id)
}

/// The request id for the PDP: the request's `x-request-id` if it is a
/// reasonable one (1 to 128 visible ASCII characters), else a new one.
pub(crate) fn request_id(parts: &Parts) -> String {
    valid_request_id(
        parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    )
}

/// `id` if it is 1 to 128 visible ASCII characters, else a new id.
pub(crate) fn valid_request_id(id: Option<&str>) -> String {
    id.filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(crate::new_request_id, str::to_owned)
}

pub(crate) fn decision(
    resource: &Resource,
    actions: &[ActionSpec],
    reason: Reason,
    request_id: String,
) -> Decision {
    Decision {
        reason,
        resource_kind: resource.kind().to_owned(),
        resource_id: resource.id().to_owned(),
        actions: actions
            .iter()
            .map(|a| ActionOutcome {
                action: a.action.clone(),
                required: a.required,
                effect: None,
            })
            .collect(),
        cerbos_call_id: String::new(),
        request_id,
    }
}

/// Turns the PDP's answer into a decision, fail-closed: anything but an
/// explicit ALLOW for every required action denies, and an answer that is
/// not about exactly this resource and these actions is `Unreachable`.
/// The second value is why the answer was unusable, for the log.
pub(crate) fn evaluate(
    resource: &Resource,
    actions: &[ActionSpec],
    answer: crate::Result<CheckResourcesResponse>,
    request_id: String,
) -> (Decision, Option<String>) {
    let mut decision = decision(resource, actions, Reason::Unreachable, request_id);
    let response = match answer {
        Ok(response) => response,
        Err(err) => return (decision, Some(err.to_string())),
    };
    decision.cerbos_call_id = response.cerbos_call_id().to_owned();
    let result = match response.results() {
        [result] if result.kind() == resource.kind() && result.id() == resource.id() => result,
        [result] => {
            return (
                decision,
                Some(format!(
                    "the PDP answered for resource {} {:?} instead of {} {:?}",
                    result.kind(),
                    result.id(),
                    resource.kind(),
                    resource.id()
                )),
            );
        }
        results => {
            return (
                decision,
                Some(format!(
                    "the PDP answered {} results instead of 1",
                    results.len()
                )),
            );
        }
    };
    let mut missing = None;
    let mut allowed = true;
    for outcome in &mut decision.actions {
        outcome.effect = result.effect(&outcome.action);
        match outcome.effect {
            None if outcome.required => missing = Some(outcome.action.clone()),
            Some(effect) if outcome.required => allowed &= effect.is_allow(),
            _ => {}
        }
    }
    if let Some(action) = missing {
        return (
            decision,
            Some(format!(
                "the PDP gave no effect for the required action {action:?}"
            )),
        );
    }
    decision.reason = if allowed {
        Reason::Allowed
    } else {
        Reason::Denied
    };
    (decision, None)
}

fn log_decision(decision: &Decision, cause: Option<&str>, span: &tracing::Span, started: Instant) {
    let duration_us = started.elapsed().as_micros() as u64;
    span.record("reason", decision.reason.as_str());
    span.record("cerbos_call_id", decision.cerbos_call_id.as_str());
    span.record("duration_us", duration_us);
    let _entered = span.enter();
    let (kind, id) = (
        decision.resource_kind.as_str(),
        decision.resource_id.as_str(),
    );
    match decision.reason {
        Reason::Allowed => tracing::debug!(kind, id, duration_us, "Cerbos allowed the request"),
        Reason::Denied => tracing::info!(kind, id, duration_us, "Cerbos denied the request"),
        _ => tracing::warn!(
            kind,
            id,
            duration_us,
            error = cause.unwrap_or(""),
            "no usable answer from the Cerbos PDP: request denied"
        ),
    }
}

pub(crate) fn rejection(
    kind: RejectionKind,
    decision: Option<Decision>,
    cause: Option<String>,
) -> Rejection {
    let status = match kind {
        RejectionKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        RejectionKind::BadRequest => StatusCode::BAD_REQUEST,
        RejectionKind::NotFound => StatusCode::NOT_FOUND,
        RejectionKind::ResolverFailed => StatusCode::INTERNAL_SERVER_ERROR,
        RejectionKind::Denied | RejectionKind::Unreachable => StatusCode::FORBIDDEN,
    };
    Rejection {
        kind,
        status,
        decision: decision.map(Box::new),
        cause: cause.map(Cause::Pdp),
    }
}

pub(crate) fn resolver_rejection(err: ResolveError, what: &'static str) -> Rejection {
    let kind = match err.kind() {
        ResolveErrorKind::Unauthenticated => RejectionKind::Unauthenticated,
        ResolveErrorKind::BadRequest => RejectionKind::BadRequest,
        ResolveErrorKind::NotFound => RejectionKind::NotFound,
        ResolveErrorKind::Internal => RejectionKind::ResolverFailed,
    };
    if kind == RejectionKind::ResolverFailed {
        tracing::error!(error = %err, "the Cerbos {what} resolver failed: request rejected");
    } else {
        tracing::debug!(error = %err, ?kind, "the Cerbos {what} resolver rejected the request");
    }
    Rejection {
        cause: Some(Cause::Resolver(err)),
        ..rejection(kind, None, None)
    }
}

pub(crate) fn internal_error(message: &'static str) -> Rejection {
    tracing::error!("Cerbos layer: {message}");
    rejection(
        RejectionKind::ResolverFailed,
        None,
        Some(message.to_owned()),
    )
}

/// Debug-formats action names for logs.
struct ActionNames<'a>(&'a [ActionSpec]);

impl fmt::Debug for ActionNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|a| &*a.action))
            .finish()
    }
}
