//! The decision rules, shared by the layer's future and the
//! [`Authorizer`](super::Authorizer): what is asked of the PDP, and how its
//! answer becomes a [`Decision`] or a [`Rejection`]. Only an explicit
//! `EFFECT_ALLOW` for every required action, in an answer about exactly the
//! resource asked, lets a request through.

use std::{fmt, sync::Arc, time::Instant};

use http::request::Parts;
use tracing::field::Empty;

use super::{
    Decision, Pdp, Reason, Rejection, RejectionKind, actions::ActionSpec, decision::ActionOutcome,
};
use crate::{AuxData, CheckResources, CheckResourcesResponse, Principal, Resource};

/// What the check in flight needs to make its decision.
pub(crate) struct Pending {
    resource: Resource,
    actions: Arc<[ActionSpec]>,
    request_id: String,
    pub(crate) span: tracing::Span,
    started: Instant,
    /// A JWT went with the check as aux data.
    sent_jwt: bool,
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
        Reason::Unreachable if bad_jwt => Err(Rejection::new(
            RejectionKind::Unauthenticated,
            Some(decision),
            cause,
        )),
        Reason::Unreachable => Err(Rejection::new(
            RejectionKind::Unreachable,
            Some(decision),
            cause,
        )),
        Reason::Denied => Err(Rejection::new(RejectionKind::Denied, Some(decision), None)),
    }
}

/// The denial of a request whose method has no actions configured; the
/// PDP is not asked. It is logged when rendered (an error, or DEBUG for a
/// CORS preflight; see [`Rejection::log_unmapped_method`]).
pub(crate) fn no_actions_for_method(
    method: &http::Method,
    resource: &Resource,
    request_id: String,
) -> Rejection {
    let decision = decision(resource, &[], Reason::Denied, request_id);
    Rejection {
        unmapped_method: Some(method.clone()),
        ..Rejection::new(RejectionKind::Denied, Some(decision), None)
    }
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
fn valid_request_id(id: Option<&str>) -> String {
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

/// Debug-formats action names for logs.
struct ActionNames<'a>(&'a [ActionSpec]);

impl fmt::Debug for ActionNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|a| &*a.action))
            .finish()
    }
}
