//! [`CerbosLayer`]: one route's authorization, as a tower [`Layer`].

use std::{fmt, sync::Arc};

use tower::Layer;

use super::{
    CerbosService,
    config::{Route, Shared},
};

/// A [`Layer`] that authorizes every request of a route with one
/// `CheckResources` call; see the [module docs](super).
///
/// Made by [`Cerbos::layer`](super::Cerbos::layer). Cheap to clone.
pub struct CerbosLayer<P, R, RR> {
    pub(crate) shared: Arc<Shared<P, R>>,
    pub(crate) route: Arc<Route<RR>>,
}

impl<P, R, RR: super::ResourceResolver> CerbosLayer<P, R, RR> {
    /// Every `(kind, action)` this layer can ask the PDP about, for
    /// `cerbos_testkit::PolicyCoverage`; `None` when its resolver has no
    /// fixed kind (a closure).
    pub fn asked(&self) -> Option<Vec<(&str, &str)>> {
        let kind = self.route.resource.kind()?;
        Some(
            self.route
                .actions
                .names()
                .into_iter()
                .map(|action| (kind, action))
                .collect(),
        )
    }
}

impl<P, R, RR> Clone for CerbosLayer<P, R, RR> {
    fn clone(&self) -> Self {
        CerbosLayer {
            shared: self.shared.clone(),
            route: self.route.clone(),
        }
    }
}

impl<P, R, RR> fmt::Debug for CerbosLayer<P, R, RR> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosLayer")
            .field("resource", &std::any::type_name::<RR>())
            .field("actions", &self.route.actions)
            .finish_non_exhaustive()
    }
}

impl<S, P, R, RR> Layer<S> for CerbosLayer<P, R, RR> {
    type Service = CerbosService<S, P, R, RR>;

    fn layer(&self, inner: S) -> Self::Service {
        CerbosService::new(inner, self.shared.clone(), self.route.clone())
    }
}
