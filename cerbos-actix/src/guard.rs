//! [`CerbosExt`]: route guards made from a [`Cerbos`]. In actix a guard is
//! the [`CerbosGuard`] middleware, for `App::wrap`, `Scope::wrap` or
//! `Resource::wrap`.

use std::{fmt, rc::Rc};

use actix_web::{
    body::EitherBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
};
use cerbos_tower::{
    adapter::{Required, guard_kind},
    layer::{ActionSet, Actions, Authorizer, Cerbos, ConfigError, Pdp, PrincipalResolver},
};
use futures_util::future::LocalBoxFuture;

use crate::{PathResource, ResourceResolver, request::authorize};

/// Route guards on [`Cerbos`] for actix apps. A guard authorizes every
/// request with one `CheckResources` call before the wrapped service sees
/// it; make it inside `HttpServer::new`'s closure, from a `Cerbos` made
/// once before (one PDP client for all workers).
pub trait CerbosExt {
    /// A guard for routes whose resource is of `kind` with the id in the
    /// route's path parameter (`{id}`, or its only parameter), checking
    /// `actions`: `["read"]`, [`Actions::crud()`], … For `Resource::wrap`
    /// (on `App` or `Scope`, actix has not matched the route yet: use
    /// [`guard_with`](Self::guard_with) and [`PathResource::template`]).
    /// Fails on an empty kind or an invalid action list.
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosGuard<PathResource>, ConfigError>;

    /// A guard checking `actions` on the resource that `resource` finds:
    /// a [`PathResource`] with a loader or a template, or any
    /// [`ResourceResolver`]. Fails on an invalid action list.
    fn guard_with<RR: ResourceResolver>(
        &self,
        resource: RR,
        actions: impl Into<Actions>,
    ) -> Result<CerbosGuard<RR>, ConfigError>;
}

impl<P: Pdp, R: PrincipalResolver> CerbosExt for Cerbos<P, R> {
    fn guard(
        &self,
        kind: impl Into<String>,
        actions: impl Into<Actions>,
    ) -> Result<CerbosGuard<PathResource>, ConfigError> {
        self.guard_with(PathResource::new(guard_kind(kind)?), actions)
    }

    fn guard_with<RR: ResourceResolver>(
        &self,
        resource: RR,
        actions: impl Into<Actions>,
    ) -> Result<CerbosGuard<RR>, ConfigError> {
        Ok(CerbosGuard {
            authorizer: self.authorizer(),
            resource: Rc::new(resource),
            actions: Rc::new(actions.into().build()?),
        })
    }
}

/// Middleware that authorizes every request with one `CheckResources`
/// call before the inner service sees it; made by [`CerbosExt::guard`]
/// and [`CerbosExt::guard_with`]. Allowed requests carry the
/// [`Decision`](crate::Decision), the [`PermissionMap`](crate::PermissionMap),
/// the `Principal` and the `Resource` in their extensions; the others get
/// the layer's rejection.
pub struct CerbosGuard<R> {
    authorizer: Authorizer,
    resource: Rc<R>,
    actions: Rc<ActionSet>,
}

impl<R: ResourceResolver> CerbosGuard<R> {
    /// Every `(kind, action)` this guard can ask the PDP about, for
    /// `cerbos_testkit::PolicyCoverage`; `None` when its resolver has no
    /// fixed kind (a closure).
    pub fn asked(&self) -> Option<Vec<(&str, &str)>> {
        let kind = self.resource.kind()?;
        Some(
            self.actions
                .names()
                .into_iter()
                .map(|action| (kind, action))
                .collect(),
        )
    }
}

impl<R> Clone for CerbosGuard<R> {
    fn clone(&self) -> Self {
        CerbosGuard {
            authorizer: self.authorizer.clone(),
            resource: self.resource.clone(),
            actions: self.actions.clone(),
        }
    }
}

impl<R> fmt::Debug for CerbosGuard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosGuard")
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for CerbosGuard<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    R: ResourceResolver,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = CerbosGuardService<S, R>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(CerbosGuardService {
            service: Rc::new(service),
            guard: self.clone(),
        }))
    }
}

/// The service of [`CerbosGuard`].
pub struct CerbosGuardService<S, R> {
    service: Rc<S>,
    guard: CerbosGuard<R>,
}

impl<S, R> fmt::Debug for CerbosGuardService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosGuardService").finish_non_exhaustive()
    }
}

impl<S, B, R> Service<ServiceRequest> for CerbosGuardService<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    R: ResourceResolver,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let guard = self.guard.clone();
        Box::pin(async move {
            let http_req = req.request().clone();
            let resource = guard.resource.resolve_resource(&http_req);
            let required = Required::Route(&guard.actions);
            let outcome = authorize(&guard.authorizer, &http_req, resource, required).await;
            drop(http_req);
            match outcome {
                Ok(()) => Ok(service.call(req).await?.map_into_left_body()),
                Err(rejection) => Ok(req
                    .into_response(actix_web::ResponseError::error_response(&rejection))
                    .map_into_right_body()),
            }
        })
    }
}
