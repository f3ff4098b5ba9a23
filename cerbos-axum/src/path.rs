//! [`PathResource`]: the resource id from the route's path parameter.

use std::{
    future::{Future, Ready, ready},
    sync::Arc,
};

use axum::extract::{MatchedPath, OriginalUri};
use cerbos_tower::{
    Resource,
    adapter::PathParamsExt,
    layer::{Load, PathTemplate, ResolveError, ResourceResolver},
};
use http::request::Parts;

/// A resource of a fixed kind whose id is a parameter of the axum route
/// that matched, optionally completed by a loader (typically the row from
/// your database, whose columns become the resource's attributes).
///
/// It reads the route template from axum's [`MatchedPath`] and the full
/// path from [`OriginalUri`], so it works the same inside
/// `Router::nest` (where the URI the layer sees has lost its prefix). The
/// id is the parameter named `id`, or the route's only parameter, or the
/// one named with [`id_param`](Self::id_param).
///
/// Use it through [`CerbosExt::guard`](crate::CerbosExt::guard), or with
/// [`CerbosExt::guard_with`](crate::CerbosExt::guard_with) for a loader.
#[derive(Clone, Debug)]
pub struct PathResource {
    kind: Arc<str>,
    param: Option<Arc<str>>,
}

impl PathResource {
    /// A resource of `kind`.
    pub fn new(kind: impl Into<String>) -> Self {
        PathResource {
            kind: kind.into().into(),
            param: None,
        }
    }

    /// Completes the resource with `loader`, which receives the resource
    /// (kind and id) and returns it with attributes, `Ok(None)` if it does
    /// not exist (404), or an error.
    pub fn load<F, Fut>(self, loader: F) -> Load<Self, F>
    where
        F: Fn(Resource) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Resource>, ResolveError>> + Send + 'static,
    {
        Load::new(self, loader)
    }

    /// Takes the id from the parameter `name` instead.
    pub fn id_param(mut self, name: impl Into<String>) -> Self {
        self.param = Some(name.into().into());
        self
    }

    /// The kind and the id parameter.
    pub(crate) fn parts(&self) -> (Arc<str>, Option<Arc<str>>) {
        (self.kind.clone(), self.param.clone())
    }

    fn resource(&self, parts: &Parts) -> Result<Resource, ResolveError> {
        resource_from_path(parts, &self.kind, self.param.as_deref())
    }
}

/// The resource of `kind` whose id is the path parameter `param` (or the
/// `id` parameter, or the only one) of the route that matched.
pub(crate) fn resource_from_path(
    parts: &Parts,
    kind: &str,
    param: Option<&str>,
) -> Result<Resource, ResolveError> {
    let matched = parts
        .extensions
        .get::<MatchedPath>()
        .ok_or_else(|| ResolveError::not_found("no MatchedPath: the request matched no route"))?;
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |uri| uri.0.path());
    let template = PathTemplate::new(matched.as_str()).map_err(ResolveError::internal)?;
    let params = template
        .match_path(path)
        .ok_or_else(|| ResolveError::bad_request("the path does not match its route"))?;
    let id = params.resource_id(param);
    let Some(id) = id else {
        return Err(ResolveError::internal(format!(
            "route {} has no path parameter for the {kind} id: name it `{{id}}`, or use \
             PathResource::id_param",
            matched.as_str()
        )));
    };
    Ok(Resource::new(kind, id))
}

impl ResourceResolver for PathResource {
    type Future = Ready<Result<Resource, ResolveError>>;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        ready(self.resource(parts))
    }

    fn kind(&self) -> Option<&str> {
        Some(&self.kind)
    }
}
