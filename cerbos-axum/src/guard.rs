//! [`CerbosExt::guard`]: a layer for routes whose resource id is a path
//! parameter.

use cerbos_tower::layer::{Actions, Cerbos, CerbosLayer, ConfigError, Pdp, PrincipalResolver};

use crate::PathResource;

/// Shortcuts on [`Cerbos`] for axum routers.
pub trait CerbosExt<P, R> {
    /// A layer for routes whose resource is of `kind` with the id in the
    /// route's path parameter (`{id}`, or its only parameter), checking
    /// `actions`: `["read"]`, [`Actions::crud()`], … Attach it with
    /// `route_layer`.
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, PathResource>, ConfigError>;
}

impl<P: Pdp, R: PrincipalResolver> CerbosExt<P, R> for Cerbos<P, R> {
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, PathResource>, ConfigError> {
        let kind = kind.into();
        if kind.trim().is_empty() {
            return Err(ConfigError::new("the resource kind must not be empty"));
        }
        self.layer(PathResource::new(kind), actions)
    }
}
