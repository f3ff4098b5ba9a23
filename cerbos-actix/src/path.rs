//! [`PathResource`]: the resource id from the route's path parameter; and
//! [`ResourceResolver`], how a guard finds the resource of an actix
//! request. (The principal is the core's business: the resolver configured
//! on [`Cerbos`](cerbos_tower::layer::Cerbos) reads the request's head.)

use std::{future::Future, rc::Rc, sync::Arc};

use actix_web::HttpRequest;
use cerbos_tower::{
    Resource,
    adapter::{PathParamsExt, id_param, loaded},
    layer::{ConfigError, PathTemplate, ResolveError},
};
use futures_util::future::LocalBoxFuture;

/// Finds the resource of a request, for a guard
/// ([`CerbosExt::guard_with`](crate::CerbosExt::guard_with)).
///
/// Implemented by [`PathResource`] and by `Fn(&HttpRequest) -> impl
/// Future<Output = Result<Resource, ResolveError>>` closures.
pub trait ResourceResolver: 'static {
    /// Resolves the resource of `req`.
    fn resolve_resource(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Resource, ResolveError>>;
}

impl<F, Fut> ResourceResolver for F
where
    F: Fn(&HttpRequest) -> Fut + 'static,
    Fut: Future<Output = Result<Resource, ResolveError>> + 'static,
{
    fn resolve_resource(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Resource, ResolveError>> {
        Box::pin(self(req))
    }
}

type Loader = Rc<
    dyn Fn(
        Resource,
        HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Option<Resource>, ResolveError>>,
>;

/// A resource of a fixed kind whose id is a path parameter, optionally
/// completed by a loader that reads the row (the loader gets the request,
/// for app data such as a database pool).
///
/// The id comes from actix's `match_info` (the parameter `id`, the only
/// one, or the one named with [`id_param`](Self::id_param)). A middleware
/// on `App` or `Scope` runs before actix matches the resource, so there
/// the parameters are not known yet: give the route [`template`](Self::template)
/// (`/contacts/{id}`, the full path) and the id is taken from the path.
#[derive(Clone)]
pub struct PathResource {
    kind: Arc<str>,
    param: Option<Arc<str>>,
    template: Option<PathTemplate>,
    loader: Option<Loader>,
}

impl std::fmt::Debug for PathResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathResource")
            .field("kind", &self.kind)
            .field("param", &self.param)
            .field(
                "template",
                &self.template.as_ref().map(PathTemplate::as_str),
            )
            .field("loader", &self.loader.is_some())
            .finish()
    }
}

impl PathResource {
    /// A resource of `kind`.
    pub fn new(kind: impl Into<String>) -> Self {
        PathResource {
            kind: kind.into().into(),
            param: None,
            template: None,
            loader: None,
        }
    }

    /// Takes the id from the parameter `name`.
    pub fn id_param(mut self, name: impl Into<String>) -> Self {
        self.param = Some(name.into().into());
        self
    }

    /// Matches the request path against `template` when actix has not
    /// matched the route yet (middleware on `App` or `Scope`). Fails on an
    /// invalid template.
    pub fn template(mut self, template: &str) -> Result<Self, ConfigError> {
        self.template = Some(PathTemplate::new(template)?);
        Ok(self)
    }

    /// Completes the resource with `loader`: it returns the resource with
    /// attributes, `Ok(None)` if it does not exist (404), or an error.
    pub fn load<F, Fut>(mut self, loader: F) -> Self
    where
        F: Fn(Resource, HttpRequest) -> Fut + 'static,
        Fut: Future<Output = Result<Option<Resource>, ResolveError>> + 'static,
    {
        self.loader = Some(Rc::new(move |resource, req| {
            Box::pin(loader(resource, req))
        }));
        self
    }
}

/// The resource of `kind` whose id is the path parameter `param` (or `id`,
/// or the only one), from `match_info` or else from `template`.
pub(crate) fn resource_from_path(
    req: &HttpRequest,
    kind: &str,
    param: Option<&str>,
    template: Option<&PathTemplate>,
) -> Result<Resource, ResolveError> {
    let from_info = id_param(req.match_info().iter(), param).map(str::to_owned);
    let id = match (from_info, template) {
        (Some(id), _) => id,
        (None, Some(template)) => {
            let params = template
                .match_path(req.path())
                .ok_or_else(|| ResolveError::not_found("the path does not match the template"))?;
            params
                .resource_id(param)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ResolveError::internal(format!(
                        "the template {:?} has no parameter for the {kind} id",
                        template.as_str()
                    ))
                })?
        }
        (None, None) => {
            return Err(ResolveError::internal(format!(
                "no path parameter for the {kind} id: name it {{id}} in the route, use \
                 PathResource::id_param, or, for a middleware on App or Scope, \
                 PathResource::template"
            )));
        }
    };
    Ok(Resource::new(kind, id))
}

impl ResourceResolver for PathResource {
    fn resolve_resource(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Resource, ResolveError>> {
        let resource = resource_from_path(
            req,
            &self.kind,
            self.param.as_deref(),
            self.template.as_ref(),
        );
        match (resource, &self.loader) {
            (Err(err), _) => Box::pin(std::future::ready(Err(err))),
            (Ok(resource), None) => Box::pin(std::future::ready(Ok(resource))),
            (Ok(resource), Some(loader)) => {
                let loading = loader(resource, req.clone());
                Box::pin(async move { loaded(loading.await) })
            }
        }
    }
}
