//! [`PathResource`]: the resource id from the route's path parameter; and
//! [`ResourceResolver`], how a guard finds the resource of an actix
//! request. (The principal is the core's business: the resolver configured
//! on [`Cerbos`](cerbos_tower::layer::Cerbos) reads the request's head.)

use std::{future::Future, rc::Rc, sync::Arc};

use actix_web::{HttpRequest, web};
use cerbos_tower::{
    Resource,
    adapter::{LoaderOutput, PathParamsExt, id_param, loaded_row},
    layer::{ConfigError, PathTemplate, ResolveError},
};
use futures_util::future::LocalBoxFuture;

use crate::loaded::keep_row;

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

    /// The resource kind, when it is fixed ([`PathResource`]'s): what
    /// [`CerbosGuard::asked`](crate::CerbosGuard::asked) lists. `None` by
    /// default.
    fn kind(&self) -> Option<&str> {
        None
    }
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

/// A loader whose answer is already applied: the resource, its row kept
/// in the request's extensions.
type Loader =
    Rc<dyn Fn(Resource, HttpRequest) -> LocalBoxFuture<'static, Result<Resource, ResolveError>>>;

/// A resource of a fixed kind whose id is a path parameter, optionally
/// completed by a loader that reads the row (the loader gets the request,
/// for app data such as a database pool).
///
/// The id is the path parameter `id`, the only one, or the one named with
/// [`id_param`](Self::id_param). On `Resource::wrap` it comes from
/// actix's `match_info`. A middleware on `App` or `Scope` runs before
/// actix matches the route: there the guard finds the pattern of the route
/// that the path matches (`HttpRequest::match_pattern`) and reads the id
/// from it, so a guarded scope works without configuration. A path that
/// matches no route is a 404; a route of the scope without an id parameter
/// (a list) is a 500 that names the route: give it its own scope.
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

    /// Reads the id from `template` for the paths it matches, when actix
    /// has not matched the route yet (middleware on `App` or `Scope`);
    /// other paths fall back to the pattern of the route they match. Not
    /// needed since the guard finds that pattern itself; kept for routes
    /// whose pattern the guard cannot read (regex segments). Fails on an
    /// invalid template.
    pub fn template(mut self, template: &str) -> Result<Self, ConfigError> {
        self.template = Some(PathTemplate::new(template)?);
        Ok(self)
    }

    /// Completes the resource with `loader`, which gets the resource (kind
    /// and id) and what it needs of the app: a [`web::Data<T>`] of the app
    /// data (a database pool, say) or the whole [`HttpRequest`] (see
    /// [`LoaderArg`]). It returns the resource with attributes, or the
    /// resource and the application's typed row (`Ok(Some((resource,
    /// row)))`, which the handler takes as [`Loaded<Row>`](crate::Loaded):
    /// read once per request), `Ok(None)` if it does not exist (404), or
    /// an error (500). The same loader serves `#[authorize(load = ..)]` and
    /// [`Authz::require_loaded`](crate::Authz::require_loaded).
    pub fn load<F, A, Fut, O>(mut self, loader: F) -> Self
    where
        F: Fn(Resource, A) -> Fut + 'static,
        A: LoaderArg,
        Fut: Future<Output = Result<Option<O>, ResolveError>> + 'static,
        O: LoaderOutput,
    {
        self.loader = Some(Rc::new(move |resource, req| {
            let loading = A::from_request(&req).map(|arg| loader(resource, arg));
            Box::pin(async move {
                let (resource, row) = loaded_row(loading?.await)?;
                keep_row(&req, row);
                Ok(resource)
            })
        }));
        self
    }
}

/// What a loader gets besides the resource: the [`HttpRequest`], or a
/// [`web::Data<T>`] of the app data, so that a loader reads its pool
/// without digging in the request
/// (`async fn load(document: Resource, db: web::Data<Pool>)`). Missing app
/// data is a 500 that names the type, before the loader runs.
pub trait LoaderArg: Sized + 'static {
    /// The argument for the loader of `req`.
    fn from_request(req: &HttpRequest) -> Result<Self, ResolveError>;
}

impl LoaderArg for HttpRequest {
    fn from_request(req: &HttpRequest) -> Result<Self, ResolveError> {
        Ok(req.clone())
    }
}

impl<T: ?Sized + 'static> LoaderArg for web::Data<T> {
    fn from_request(req: &HttpRequest) -> Result<Self, ResolveError> {
        req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
            ResolveError::internal(format!(
                "the loader needs web::Data<{}>, which is not in the app data: add it with \
                 App::app_data(web::Data::new(..))",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// The resource of `kind` whose id is the path parameter `param` (or `id`,
/// or the only one): from `match_info` once actix has matched the route
/// (`Resource::wrap`, a handler); before that (a middleware on `App` or
/// `Scope`), from `template` when the path matches it, else from the
/// pattern of the route the path will match (actix's
/// `HttpRequest::match_pattern`). A path that matches no route is a 404; a
/// route without a parameter for the id (a list route inside a guarded
/// scope) is a 500 that says so: the guard cannot check it.
pub(crate) fn resource_from_path(
    req: &HttpRequest,
    kind: &str,
    param: Option<&str>,
    template: Option<&PathTemplate>,
) -> Result<Resource, ResolveError> {
    if let Some(id) = id_param(req.match_info().iter(), param) {
        return Ok(Resource::new(kind, id));
    }
    let from_template = template.and_then(|template| template.match_path(req.path()));
    let (params, route) = match from_template {
        Some(params) => (
            params,
            template.map(PathTemplate::as_str).map(str::to_owned),
        ),
        None => {
            let pattern = req
                .match_pattern()
                .ok_or_else(|| ResolveError::not_found("the request matches no route"))?;
            let route = PathTemplate::new(&pattern).map_err(|err| {
                ResolveError::internal(format!(
                    "the route {pattern:?} cannot be read for the {kind} id ({err}): put the \
                     guard on the route's resource (`web::resource(..).wrap(..)`)"
                ))
            })?;
            let params = route
                .match_path(req.path())
                .ok_or_else(|| ResolveError::not_found("the path does not match its route"))?;
            (params, Some(pattern))
        }
    };
    match params.resource_id(param) {
        Some(id) => Ok(Resource::new(kind, id)),
        None => Err(ResolveError::internal(format!(
            "the route {} has no path parameter for the {kind} id: name it {{id}}, use \
             PathResource::id_param, or do not put this route under the guard (a guard on \
             a Scope checks every route of the scope)",
            route.as_deref().unwrap_or("?")
        ))),
    }
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
            (Ok(resource), Some(loader)) => loader(resource, req.clone()),
        }
    }

    fn kind(&self) -> Option<&str> {
        Some(&self.kind)
    }
}
