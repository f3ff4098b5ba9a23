//! [`Load`]: a resource resolver completed by a loader (the row from the
//! database becomes the resource's attributes).

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use http::request::Parts;

use super::{ResolveError, ResourceResolver};
use crate::Resource;

/// What a loader's answer means for the request: the resource, a 404 for
/// `Ok(None)` (nothing has that id), or the loader's own error. The rule of
/// [`Load`] and of the adapters' loaders (through
/// [`crate::adapter::loaded`]).
pub(crate) fn loaded(
    answer: Result<Option<Resource>, ResolveError>,
) -> Result<Resource, ResolveError> {
    answer?.ok_or_else(|| ResolveError::not_found("the loader found no resource"))
}

/// A resource resolver completed by a loader: the inner resolver finds the
/// resource (kind and id), then the loader returns it with attributes,
/// `Ok(None)` if it does not exist (404), or an error.
///
/// Made by [`ResourceFromPath::load`](super::ResourceFromPath::load) and the adapters' path resolvers.
pub struct Load<R, F> {
    resolver: R,
    loader: Arc<F>,
}

impl<R, F> Load<R, F> {
    /// `resolver`, completed by `loader`.
    pub fn new(resolver: R, loader: F) -> Self {
        Load {
            resolver,
            loader: Arc::new(loader),
        }
    }
}

impl<R: Clone, F> Clone for Load<R, F> {
    fn clone(&self) -> Self {
        Load {
            resolver: self.resolver.clone(),
            loader: self.loader.clone(),
        }
    }
}

impl<R: fmt::Debug, F> fmt::Debug for Load<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl<R, F, Fut> ResourceResolver for Load<R, F>
where
    R: ResourceResolver,
    F: Fn(Resource) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Resource>, ResolveError>> + Send + 'static,
{
    /// Boxed: the loader stands for a database round trip.
    type Future = Pin<Box<dyn Future<Output = Result<Resource, ResolveError>> + Send>>;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        let found = self.resolver.resolve_resource(parts);
        let loader = self.loader.clone();
        Box::pin(async move { loaded(loader(found.await?).await) })
    }

    fn kind(&self) -> Option<&str> {
        self.resolver.kind()
    }
}
