//! The layer's metrics, through the `metrics` facade (feature `metrics`;
//! without it these are no-ops). Names and labels are documented in the
//! crate README.

/// Decisions of the layer and the `Authorizer`, by outcome, reason and
/// resource kind.
#[cfg(feature = "metrics")]
pub(crate) const DECISIONS: &str = "cerbos_decisions_total";
/// Query plans, by resource kind and filter kind.
#[cfg(feature = "metrics")]
pub(crate) const PLANS: &str = "cerbos_plans_total";
/// Per-row permission calls (`Authorizer::permissions`), by outcome and
/// resource kind.
#[cfg(feature = "metrics")]
pub(crate) const PERMISSIONS: &str = "cerbos_permissions_total";

/// Records one decision: `allowed` or not, why (`allowed`, `denied`,
/// `unreachable`, `unauthenticated`, `no_actions`, `bypassed`), on a
/// resource of `kind`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn decision(allowed: bool, reason: &'static str, kind: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        DECISIONS,
        "outcome" => if allowed { "allow" } else { "deny" },
        "reason" => reason,
        "resource_kind" => kind.to_owned(),
    )
    .increment(1);
}

/// Records one plan: its filter (`always_allowed`, `always_denied`,
/// `conditional`), or `unreachable`, `unauthenticated`, `bypassed`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn plan(filter: &'static str, kind: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PLANS, "filter" => filter, "resource_kind" => kind.to_owned()).increment(1);
}

/// Records one per-row permissions call for rows of `kind` (the first
/// row's): `answered`, `unreachable`, `unauthenticated` or `bypassed`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn permissions(outcome: &'static str, kind: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(PERMISSIONS, "outcome" => outcome, "resource_kind" => kind.to_owned())
        .increment(1);
}
