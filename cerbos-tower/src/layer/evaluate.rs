//! The decision rules, shared by the layer's future and the
//! [`Authorizer`](super::Authorizer): what is asked of the PDP, and how its
//! answer becomes a [`Decision`] or a [`Rejection`]. Only an explicit
//! `EFFECT_ALLOW` for every required action, in an answer about exactly the
//! resource asked, lets a request through.

use std::{fmt, sync::Arc, time::Instant};

use http::request::Parts;
use tracing::field::Empty;

use super::{
    BoxPlanFuture, Decision, Pdp, PermissionMap, Reason, Rejection, RejectionKind,
    actions::ActionSpec, config::Shared, context::CallContext, decision::ActionOutcome,
    no_policy::KindWatch, telemetry,
};
use crate::{
    AuxData, CheckResources, CheckResourcesResponse, PlanFilter, PlanResources,
    PlanResourcesResponse, Principal, Resource,
};

/// What the check in flight needs to make its decision.
pub(crate) struct Pending {
    resource: Resource,
    actions: Arc<[ActionSpec]>,
    request_id: String,
    pub(crate) span: tracing::Span,
    started: Instant,
    /// A JWT went with the check as aux data.
    sent_jwt: bool,
    /// The check asked for meta, to find a kind no policy matches.
    watch: Option<Arc<KindWatch>>,
}

/// Starts a check of `actions` on `resource`: the PDP's future, and what
/// [`finish_check`] needs. The PDP, and the kinds whose policy coverage
/// is watched, are `shared`'s.
pub(crate) fn begin_check<P: Pdp, R>(
    shared: &Shared<P, R>,
    principal: Principal,
    aux_data: Option<AuxData>,
    resource: Resource,
    actions: Arc<[ActionSpec]>,
    request_id: String,
    context: &CallContext,
) -> (P::Future, Pending) {
    let kinds = &shared.kinds;
    let mut check = context.apply_check(CheckResources::new(principal).request_id(&request_id));
    let watch = kinds.wants_meta(resource.kind()).then(|| kinds.clone());
    if watch.is_some() {
        check = check.include_meta(true);
    }
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
    let fut = span.in_scope(|| shared.pdp.check(check));
    let pending = Pending {
        resource,
        actions,
        request_id,
        span,
        started: Instant::now(),
        sent_jwt,
        watch,
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
    if let (Some(kinds), Ok(answer)) = (&pending.watch, &answer) {
        kinds.inspect(pending.resource.kind(), answer);
    }
    let (decision, cause) = evaluate(
        &pending.resource,
        &pending.actions,
        answer,
        pending.request_id,
    );
    log_decision(&decision, cause.as_deref(), &pending.span, pending.started);
    let reason = match decision.reason {
        Reason::Unreachable if bad_jwt => "unauthenticated",
        reason => reason.as_str(),
    };
    telemetry::decision(decision.is_allowed(), reason, pending.resource.kind());
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
    telemetry::decision(false, "no_actions", resource.kind());
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
    telemetry::decision(true, "bypassed", resource.kind());
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

/// The rejection for a PDP call that gave no usable answer: unreachable,
/// or unauthenticated when a JWT went with it and the PDP refused it.
fn unusable(sent_jwt: bool, answer_err: Option<&crate::Error>, cause: String) -> Rejection {
    let bad_jwt = sent_jwt && matches!(answer_err, Some(crate::Error::InvalidArgument { .. }));
    let kind = if bad_jwt {
        RejectionKind::Unauthenticated
    } else {
        RejectionKind::Unreachable
    };
    Rejection::new(kind, None, Some(cause))
}

/// What the plan in flight needs to be checked and logged.
pub(crate) struct PendingPlan {
    kind: String,
    actions: Vec<String>,
    span: tracing::Span,
    started: Instant,
    sent_jwt: bool,
}

/// Starts a `PlanResources` call for `actions` on resources of `kind`.
pub(crate) fn begin_plan<P: Pdp>(
    pdp: &P,
    principal: Principal,
    aux_data: Option<AuxData>,
    kind: String,
    actions: Vec<String>,
    request_id: &str,
    context: &CallContext,
) -> (BoxPlanFuture, PendingPlan) {
    let mut plan = context.apply_plan(
        PlanResources::new(principal, kind.clone())
            .actions_from(actions.iter().cloned())
            .request_id(request_id),
    );
    let sent_jwt = aux_data.is_some();
    if let Some(aux) = aux_data {
        plan = plan.aux_data(aux);
    }
    let span = tracing::debug_span!(
        "cerbos_plan",
        kind = %kind,
        actions = ?actions,
        request_id = %request_id,
        reason = Empty,
        cerbos_call_id = Empty,
        duration_us = Empty,
    );
    let fut = span.in_scope(|| pdp.plan(plan));
    let pending = PendingPlan {
        kind,
        actions,
        span,
        started: Instant::now(),
        sent_jwt,
    };
    (fut, pending)
}

/// Checks the PDP's plan, fail-closed: only a plan for exactly the kind
/// and actions asked is used; anything else (an error, a plan for other
/// actions) is the unreachable rejection of a check.
pub(crate) fn finish_plan(
    pending: PendingPlan,
    answer: crate::Result<PlanResourcesResponse>,
) -> Result<PlanResourcesResponse, Rejection> {
    let duration_us = pending.started.elapsed().as_micros() as u64;
    let span = &pending.span;
    span.record("duration_us", duration_us);
    let kind = pending.kind.as_str();
    let _entered = span.enter();
    let fail = |cause: String, err: Option<&crate::Error>| {
        span.record("reason", Reason::Unreachable.as_str());
        tracing::warn!(
            kind,
            duration_us,
            error = cause.as_str(),
            "no usable query plan from the Cerbos PDP: request denied"
        );
        let rejection = unusable(pending.sent_jwt, err, cause);
        let filter = match rejection.kind {
            RejectionKind::Unauthenticated => "unauthenticated",
            _ => "unreachable",
        };
        telemetry::plan(filter, kind);
        rejection
    };
    let plan = match answer {
        Ok(plan) => plan,
        Err(err) => return Err(fail(err.to_string(), Some(&err))),
    };
    if plan.kind != pending.kind {
        let why = format!(
            "the PDP planned for kind {:?} instead of {kind:?}",
            plan.kind
        );
        return Err(fail(why, None));
    }
    if !same_actions(&plan.actions, &pending.actions) {
        let why = format!(
            "the PDP planned for actions {:?} instead of {:?}",
            plan.actions, pending.actions
        );
        return Err(fail(why, None));
    }
    let reason = match plan.filter {
        PlanFilter::AlwaysAllowed => "always_allowed",
        PlanFilter::AlwaysDenied => "always_denied",
        PlanFilter::Conditional(_) => "conditional",
    };
    span.record("reason", reason);
    telemetry::plan(reason, kind);
    span.record("cerbos_call_id", plan.cerbos_call_id.as_str());
    tracing::debug!(kind, reason, duration_us, "Cerbos planned the query");
    Ok(plan)
}

/// The same actions, in any order (the PDP may reorder them).
fn same_actions(answered: &[String], asked: &[String]) -> bool {
    answered.len() == asked.len() && asked.iter().all(|a| answered.contains(a))
}

/// Logs a bypassed plan.
pub(crate) fn bypassed_plan(kind: &str, actions: &[String]) {
    tracing::warn!(
        kind,
        ?actions,
        "Cerbos authorization BYPASSED: the PDP was not asked for a query plan"
    );
    telemetry::plan("bypassed", kind);
}

/// What the per-row check in flight needs to make its permission maps.
pub(crate) struct PendingPermissions {
    rows: Vec<(String, String)>,
    actions: Arc<[ActionSpec]>,
    span: tracing::Span,
    started: Instant,
    sent_jwt: bool,
}

/// Starts one `CheckResources` call for `actions` on every resource of
/// `resources` (the client splits it into chunks).
pub(crate) fn begin_permissions<P: Pdp>(
    pdp: &P,
    principal: Principal,
    aux_data: Option<AuxData>,
    resources: Vec<Resource>,
    actions: Arc<[ActionSpec]>,
    request_id: &str,
    context: &CallContext,
) -> (P::Future, PendingPermissions) {
    let mut check = context.apply_check(CheckResources::new(principal).request_id(request_id));
    let span = tracing::debug_span!(
        "cerbos_permissions",
        kind = resources.first().map_or("", |r| r.kind()),
        rows = resources.len(),
        actions = ?ActionNames(&actions),
        request_id = %request_id,
        reason = Empty,
        cerbos_call_id = Empty,
        duration_us = Empty,
    );
    let rows = resources
        .iter()
        .map(|r| (r.kind().to_owned(), r.id().to_owned()))
        .collect();
    for resource in resources {
        check.push(resource, actions.iter().map(|a| &*a.action));
    }
    let sent_jwt = aux_data.is_some();
    if let Some(aux) = aux_data {
        check = check.aux_data(aux);
    }
    let fut = span.in_scope(|| pdp.check(check));
    let pending = PendingPermissions {
        rows,
        actions,
        span,
        started: Instant::now(),
        sent_jwt,
    };
    (fut, pending)
}

/// The permission map of every row, in request order, fail-closed: an
/// answer with a missing, extra or misplaced row, or without an effect
/// for an action of a row, fails the whole call (unreachable).
pub(crate) fn finish_permissions(
    pending: PendingPermissions,
    answer: crate::Result<CheckResourcesResponse>,
) -> Result<Vec<PermissionMap>, Rejection> {
    let duration_us = pending.started.elapsed().as_micros() as u64;
    let span = &pending.span;
    span.record("duration_us", duration_us);
    let maps = match &answer {
        Err(err) => Err(err.to_string()),
        Ok(response) => {
            span.record("cerbos_call_id", response.cerbos_call_id());
            permission_maps(&pending.rows, &pending.actions, response)
        }
    };
    let _entered = span.enter();
    let kind = pending.rows.first().map_or("", |(kind, _)| kind.as_str());
    match maps {
        Ok(maps) => {
            telemetry::permissions("answered", kind);
            span.record("reason", Reason::Allowed.as_str());
            tracing::debug!(
                rows = maps.len(),
                duration_us,
                "Cerbos answered the permissions of every row"
            );
            Ok(maps)
        }
        Err(cause) => {
            span.record("reason", Reason::Unreachable.as_str());
            tracing::warn!(
                rows = pending.rows.len(),
                duration_us,
                error = cause.as_str(),
                "no usable answer from the Cerbos PDP for the rows' permissions: request denied"
            );
            let rejection = unusable(pending.sent_jwt, answer.as_ref().err(), cause);
            let outcome = match rejection.kind {
                RejectionKind::Unauthenticated => "unauthenticated",
                _ => "unreachable",
            };
            telemetry::permissions(outcome, kind);
            Err(rejection)
        }
    }
}

fn permission_maps(
    rows: &[(String, String)],
    actions: &[ActionSpec],
    response: &CheckResourcesResponse,
) -> Result<Vec<PermissionMap>, String> {
    let results = response.results();
    if results.len() != rows.len() {
        return Err(format!(
            "the PDP answered {} results instead of {}",
            results.len(),
            rows.len()
        ));
    }
    rows.iter()
        .zip(results)
        .enumerate()
        .map(|(row, ((kind, id), result))| {
            if result.kind() != kind || result.id() != id {
                return Err(format!(
                    "the PDP answered for resource {} {:?} instead of {kind} {id:?} (row {row})",
                    result.kind(),
                    result.id(),
                ));
            }
            actions
                .iter()
                .map(|a| match result.effect(&a.action) {
                    Some(effect) => Ok((a.action.clone(), effect.is_allow())),
                    None => Err(format!(
                        "the PDP gave no effect for the action {:?} (row {row})",
                        &*a.action
                    )),
                })
                .collect()
        })
        .collect()
}

/// The permission maps of bypassed rows (every action allowed), logged.
pub(crate) fn bypassed_permissions(
    resources: &[Resource],
    actions: &[ActionSpec],
) -> Vec<PermissionMap> {
    tracing::warn!(
        kind = resources.first().map_or("", |r| r.kind()),
        rows = resources.len(),
        actions = ?ActionNames(actions),
        "Cerbos authorization BYPASSED: the PDP was not asked"
    );
    if let Some(first) = resources.first() {
        telemetry::permissions("bypassed", first.kind());
    }
    let map: PermissionMap = actions.iter().map(|a| (a.action.clone(), true)).collect();
    vec![map; resources.len()]
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
