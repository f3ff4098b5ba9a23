//! The checks: [`Authorization`] (app-wide), the [`CerbosGuard`]
//! middleware, the [`Authz`] extractor and the one behind `#[authorize]`.

use std::{fmt, future::Future, marker::PhantomData, rc::Rc};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::EitherBody,
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    web,
};
use bytes::Bytes;
use cerbos_tower::{
    Principal, Resource,
    adapter::{AuthorizerExt, loaded},
    layer::{
        ActionSet, Actions, Authorizer, Cerbos, ConfigError, Decision, Pdp, PrincipalResolver,
        Rejection, RejectionKind, ResolveError, Subject,
    },
};
use futures_util::future::LocalBoxFuture;
use http::request::Parts;

use crate::resolve::{ResourceResolver, resource_from_path};

/// What every check of an application shares: the core [`Authorizer`]
/// (PDP, principal resolver, fail-closed rules, bypass, rejection
/// responses). Cheap to clone and `Send + Sync`: make one before
/// `HttpServer::new` and clone it into each worker's `App` (one PDP client,
/// one connection pool, for all workers).
///
/// Register it with `App::app_data(authorization.clone())` for the
/// [`Authz`] extractor and `#[authorize]`; make middleware with
/// [`guard`](Self::guard).
///
/// The principal of a request is found by the resolver configured on the
/// [`Cerbos`] (`Cerbos::builder(client).principal(..)`), the same one for
/// the middleware, `#[authorize]` and [`Authz`], and the same as in the
/// tower layer and cerbos-axum. It reads an `http::request::Parts` made
/// from the `HttpRequest`: its method, URI, version and headers, and in its
/// extensions the [`Principal`] your authentication middleware put into
/// actix's request extensions, if any (what the default resolver,
/// `PrincipalFromExtensions`, reads).
#[derive(Clone)]
pub struct Authorization {
    authorizer: Authorizer,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization").finish_non_exhaustive()
    }
}

impl Authorization {
    /// From a core [`Cerbos`]: its PDP, its principal resolver and the
    /// rest of its configuration.
    pub fn new<P: Pdp, R: PrincipalResolver>(cerbos: &Cerbos<P, R>) -> Self {
        Authorization {
            authorizer: cerbos.authorizer(),
        }
    }

    /// Middleware for `App::wrap`, `Scope::wrap` or `Resource::wrap` that
    /// checks `actions` (`["read"]`, [`Actions::crud()`], …) on the
    /// resource from `resource`. Fails on an invalid action list.
    pub fn guard<R: ResourceResolver>(
        &self,
        resource: R,
        actions: impl Into<Actions>,
    ) -> Result<CerbosGuard<R>, ConfigError> {
        Ok(CerbosGuard {
            authorization: self.clone(),
            resource: Rc::new(resource),
            actions: Rc::new(actions.into().build()?),
        })
    }

    /// The subject of `req`, from the core's principal resolver (which
    /// also adds the bearer token of `BearerJwt` and the request id).
    async fn subject(&self, req: &HttpRequest) -> Result<Subject, CerbosRejection> {
        let parts = http_parts(req).map_err(|err| self.reject(err.into(), req))?;
        self.authorizer
            .subject(&parts)
            .await
            .map_err(|rejection| self.render(rejection, &parts))
    }

    fn reject(&self, rejection: Rejection, req: &HttpRequest) -> CerbosRejection {
        let head = http_parts(req).unwrap_or_else(|_| http::Request::new(()).into_parts().0);
        self.render(rejection, &head)
    }

    fn render(&self, rejection: Rejection, head: &Parts) -> CerbosRejection {
        let kind = rejection.kind();
        let decision = rejection.decision().cloned();
        let response = self.authorizer.render(rejection, head);
        CerbosRejection {
            kind,
            decision,
            response,
        }
    }

    /// Resolves the principal and the resource of `req` and checks
    /// `actions` in one PDP call.
    async fn authorize<F>(
        &self,
        req: &HttpRequest,
        resource: LocalBoxFuture<'static, Result<Resource, ResolveError>>,
        check: impl FnOnce(Authorizer, Subject, Resource) -> F,
    ) -> Result<Allowed, CerbosRejection>
    where
        F: Future<Output = Result<Decision, Rejection>>,
    {
        let subject = self.subject(req).await?;
        let resource = resource.await.map_err(|err| self.reject(err.into(), req))?;
        let principal = subject.principal().clone();
        let decision = check(self.authorizer.clone(), subject, resource.clone())
            .await
            .map_err(|rejection| self.reject(rejection, req))?;
        Ok(Allowed {
            decision,
            principal,
            resource,
        })
    }
}

/// What an allowed request carries into the handler.
struct Allowed {
    decision: Decision,
    principal: Principal,
    resource: Resource,
}

impl Allowed {
    fn insert_into(self, req: &HttpRequest) {
        let mut extensions = req.extensions_mut();
        extensions.insert(self.decision.permissions());
        extensions.insert(self.decision);
        extensions.insert(self.principal);
        extensions.insert(self.resource);
    }
}

/// The request's method as an `http` 1 method. actix's methods are `http`
/// 0.2 ones, whose tokens are all valid `http` 1 methods, so this is `None`
/// only in theory.
fn http_method(req: &HttpRequest) -> Option<http::Method> {
    http::Method::from_bytes(req.method().as_str().as_bytes()).ok()
}

/// The `http` 1 request head of an actix request, for the core's principal
/// resolver and rejection handler: method, URI, version, headers, and the
/// [`Principal`] of actix's request extensions in its extensions. A part
/// that does not convert (only in theory: actix's are `http` 0.2 types with
/// the same rules) is a bad request, never guessed or left out.
fn http_parts(req: &HttpRequest) -> Result<Parts, ResolveError> {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method =
        http_method(req).ok_or_else(|| ResolveError::bad_request("unreadable request method"))?;
    parts.uri = req
        .uri()
        .to_string()
        .parse()
        .map_err(|_| ResolveError::bad_request("unreadable request URI"))?;
    parts.version = http_version(req.version());
    parts.headers.reserve(req.headers().len());
    for (name, value) in req.headers() {
        let name = http::HeaderName::from_bytes(name.as_str().as_bytes())
            .map_err(|_| ResolveError::bad_request("unreadable header name"))?;
        let value = http::HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| ResolveError::bad_request("unreadable header value"))?;
        parts.headers.append(name, value);
    }
    if let Some(principal) = req.extensions().get::<Principal>() {
        parts.extensions.insert(principal.clone());
    }
    Ok(parts)
}

/// An actix (`http` 0.2) version as an `http` 1 one.
fn http_version(version: actix_web::http::Version) -> http::Version {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => http::Version::HTTP_09,
        Version::HTTP_10 => http::Version::HTTP_10,
        Version::HTTP_2 => http::Version::HTTP_2,
        Version::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

/// A request the Cerbos checks rejected, with the same response the tower
/// layer would send (its status, or the custom rejection handler's
/// response). An actix [`ResponseError`].
pub struct CerbosRejection {
    kind: RejectionKind,
    decision: Option<Decision>,
    response: http::Response<Bytes>,
}

impl CerbosRejection {
    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The decision, when the PDP was asked.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    fn to_response(&self) -> HttpResponse {
        let status = actix_web::http::StatusCode::from_u16(self.response.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::FORBIDDEN);
        let mut response = HttpResponse::build(status);
        for (name, value) in self.response.headers() {
            response.append_header((name.as_str(), value.as_bytes()));
        }
        response.body(self.response.body().clone())
    }
}

impl fmt::Debug for CerbosRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosRejection")
            .field("kind", &self.kind)
            .field("status", &self.response.status())
            .field("decision", &self.decision)
            .finish()
    }
}

impl fmt::Display for CerbosRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request rejected by Cerbos: {:?}", self.kind)
    }
}

impl ResponseError for CerbosRejection {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.response.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::FORBIDDEN)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// Middleware that authorizes every request with one `CheckResources`
/// call before the inner service sees it; made by
/// [`Authorization::guard`]. Allowed requests carry the [`Decision`], the
/// [`PermissionMap`](cerbos_tower::layer::PermissionMap), the `Principal`
/// and the `Resource` in their extensions.
pub struct CerbosGuard<R> {
    authorization: Authorization,
    resource: Rc<R>,
    actions: Rc<ActionSet>,
}

impl<R> Clone for CerbosGuard<R> {
    fn clone(&self) -> Self {
        CerbosGuard {
            authorization: self.authorization.clone(),
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
            let method = http_method(&http_req);
            let resource = guard.resource.resolve_resource(&http_req);
            let actions = guard.actions.clone();
            let outcome = guard
                .authorization
                .authorize(
                    &http_req,
                    resource,
                    |authorizer, subject, resource| async move {
                        // A method the check cannot read is a bad request,
                        // never taken for another one.
                        let Some(method) = method else {
                            return Err(
                                ResolveError::bad_request("unreadable request method").into()
                            );
                        };
                        authorizer
                            .authorize_actions(&subject, resource, &method, &actions)
                            .await
                    },
                )
                .await;
            match outcome {
                Ok(allowed) => {
                    allowed.insert_into(&http_req);
                    drop(http_req);
                    Ok(service.call(req).await?.map_into_left_body())
                }
                Err(rejection) => Ok(req
                    .into_response(rejection.to_response())
                    .map_into_right_body()),
            }
        })
    }
}

/// Checks made in a handler, for decisions that need data only the handler
/// has: the principal is resolved when the extractor runs (a 401 and the
/// like reject the request before the handler); each
/// [`check`](Self::check) or [`require`](Self::require) is one
/// `CheckResources` call with all its actions. Needs the
/// [`Authorization`] in the app data.
#[derive(Clone)]
pub struct Authz {
    authorization: Authorization,
    subject: Subject,
    req: HttpRequest,
}

impl fmt::Debug for Authz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn authorization(req: &HttpRequest) -> Result<Authorization, actix_web::Error> {
    req.app_data::<Authorization>()
        .or_else(|| {
            req.app_data::<web::Data<Authorization>>()
                .map(|d| d.get_ref())
        })
        .cloned()
        .ok_or_else(|| {
            tracing::error!("no cerbos_actix::Authorization in the app data");
            actix_web::error::ErrorInternalServerError(
                "cerbos_actix::Authorization was not found in the app data. Perhaps you forgot \
                 to register it with `App::app_data(authorization.clone())`?",
            )
        })
}

impl FromRequest for Authz {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let authorization = authorization(&req)?;
            let subject = authorization.subject(&req).await?;
            Ok(Authz {
                authorization,
                subject,
                req,
            })
        })
    }
}

impl Authz {
    /// The principal of the request.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Checks `actions` on `resource` in one PDP call; allowed only if
    /// every action is (its permissions tell them apart). Fail-closed: a
    /// PDP that cannot be asked gives an unreachable (not allowed)
    /// decision.
    pub async fn check<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Decision {
        self.authorization
            .authorizer
            .check(&self.subject, resource, actions)
            .await
    }

    /// Like [`check`](Self::check), but a request that may not do all of
    /// `actions` is the rejection the middleware would have made.
    pub async fn require<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Decision, CerbosRejection> {
        self.authorization
            .authorizer
            .require(&self.subject, resource, actions)
            .await
            .map_err(|rejection| self.authorization.reject(rejection, &self.req))
    }
}

/// What `#[authorize(...)]` declares about a handler. Implemented by the
/// attribute; not meant to be implemented by hand.
#[doc(hidden)]
pub trait Spec {
    const KIND: &'static str;
    const ACTIONS: &'static [&'static str];
    const PERMISSIONS: &'static [&'static str];
    const ID_PARAM: Option<&'static str>;

    fn load(
        resource: Resource,
        req: HttpRequest,
    ) -> impl Future<Output = Result<Option<Resource>, ResolveError>> + 'static;
}

/// The extractor `#[authorize(...)]` gives a handler in place of its
/// arguments: it resolves the principal and the resource and asks the PDP,
/// rejects like the middleware, puts the decision, permissions, principal
/// and resource into the request extensions, and only then runs the
/// handler's own extractors `T` (actix would otherwise run them all at
/// once, before the decision is known).
pub struct Authorized<M, T = ()>(T, PhantomData<fn() -> M>);

impl<M, T> Authorized<M, T> {
    /// The handler's own arguments.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<M, T> fmt::Debug for Authorized<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorized")
    }
}

impl<M: Spec + 'static, T: FromRequest + 'static> FromRequest for Authorized<M, T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let authorization = authorization(&req)?;
            let resource = match resource_from_path(&req, M::KIND, M::ID_PARAM, None) {
                Ok(resource) => {
                    let loading = M::load(resource, req.clone());
                    Box::pin(async move { loaded(loading.await) }) as LocalBoxFuture<'static, _>
                }
                Err(err) => Box::pin(std::future::ready(Err(err))),
            };
            let allowed = authorization
                .authorize(&req, resource, |authorizer, subject, resource| async move {
                    authorizer
                        .authorize(
                            &subject,
                            resource,
                            M::ACTIONS.iter().copied(),
                            M::PERMISSIONS.iter().copied(),
                        )
                        .await
                })
                .await?;
            allowed.insert_into(&req);
            let args = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Authorized(args, PhantomData))
        })
    }
}
