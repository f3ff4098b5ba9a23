//! [`CerbosExt`]: route guards made from a [`Cerbos`]. In axum a guard is
//! the core's [`CerbosLayer`]; attach it with `route_layer`.

use cerbos_tower::{
    adapter::guard_kind,
    layer::{Actions, Cerbos, CerbosLayer, ConfigError, Pdp, PrincipalResolver, ResourceResolver},
};

use crate::PathResource;

/// Route guards on [`Cerbos`] for axum routers. Attach them with
/// `route_layer`, so that unmatched paths stay 404.
pub trait CerbosExt<P, R> {
    /// A guard for routes whose resource is of `kind` with the id in the
    /// route's path parameter (`{id}`, or its only parameter), checking
    /// `actions`: `["read"]`, [`Actions::crud()`], … Fails on an empty
    /// kind or an invalid action list.
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, PathResource>, ConfigError>;

    /// A guard checking `actions` on the resource that `resource` finds:
    /// a [`PathResource`] with a loader, or any [`ResourceResolver`]. The
    /// same as [`Cerbos::layer`]. Fails on an invalid action list.
    fn guard_with<RR: ResourceResolver>(
        &self,
        resource: RR,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, RR>, ConfigError>;
}

impl<P: Pdp, R: PrincipalResolver> CerbosExt<P, R> for Cerbos<P, R> {
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, PathResource>, ConfigError> {
        self.layer(PathResource::new(guard_kind(kind)?), actions)
    }

    fn guard_with<RR: ResourceResolver>(
        &self,
        resource: RR,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, RR>, ConfigError> {
        self.layer(resource, actions)
    }
}
