//! [`CerbosExt`]: route guards made from a [`Cerbos`]. In axum a guard is
//! the core's [`CerbosLayer`]; attach it with `route_layer`.

use std::future::Future;

use cerbos_tower::{
    Resource,
    adapter::{LoaderOutput, guard_kind},
    layer::{
        Actions, Cerbos, CerbosLayer, ConfigError, Pdp, PrincipalResolver, ResolveError,
        ResourceResolver,
    },
};

use crate::{LoadedGuard, PathResource};

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

    /// A guard checking `actions` on the resource of `resource` (a
    /// [`PathResource`]: the kind and the id parameter) completed by
    /// `loader`, which gets the resource and a clone of `state` (the
    /// router state, or what the loader needs of it) and returns
    /// `Ok(Some((resource, row)))`: the row reaches the handler as
    /// [`Loaded<Row>`](crate::Loaded), so it is read once per request.
    /// The same loader serves `#[authorize(load = .., state = S)]` and
    /// [`Authz::require_loaded`](crate::Authz::require_loaded). See
    /// [`LoadedGuard`]. Fails on an invalid action list.
    fn guard_loaded<S, F, Fut, O>(
        &self,
        resource: PathResource,
        actions: impl Into<Actions>,
        state: S,
        loader: F,
    ) -> Result<LoadedGuard<S, F>, ConfigError>
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(Resource, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<O>, ResolveError>> + Send + 'static,
        O: LoaderOutput;
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

    fn guard_loaded<S, F, Fut, O>(
        &self,
        resource: PathResource,
        actions: impl Into<Actions>,
        state: S,
        loader: F,
    ) -> Result<LoadedGuard<S, F>, ConfigError>
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(Resource, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<O>, ResolveError>> + Send + 'static,
        O: LoaderOutput,
    {
        let actions = actions.into().build()?;
        Ok(LoadedGuard::new(
            self.authorizer(),
            &resource,
            actions,
            state,
            loader,
        ))
    }
}
