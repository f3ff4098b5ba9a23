//! Configuration: [`Cerbos`] (shared by every route) and [`CerbosLayer`]
//! (one route's resource and actions).

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{Method, Response, StatusCode, request::Parts};
use tower::Layer;

use super::{
    CerbosService, OnRejection, PrincipalFromExtensions, PrincipalResolver, Rejection,
    RejectionKind, ResourceResolver,
};
use crate::{Error, Result};

/// The environment variable that must be `1` for a configured bypass to
/// take effect.
pub const ALLOW_BYPASS_ENV: &str = "CERBOS_ALLOW_BYPASS";

/// What every route protected by Cerbos shares: the PDP, the principal
/// resolver and the rejection settings. Cheap to clone.
///
/// Make one per application with [`Cerbos::builder`], then one
/// [`CerbosLayer`] per route (or group of routes) with [`Cerbos::layer`].
/// See the [module docs](super) for a complete example.
pub struct Cerbos<P, R = PrincipalFromExtensions> {
    pub(crate) shared: Arc<Shared<P, R>>,
}

pub(crate) struct Shared<P, R> {
    pub(crate) pdp: P,
    pub(crate) principal: R,
    pub(crate) unreachable_status: StatusCode,
    pub(crate) on_rejection: Option<Box<dyn OnRejection>>,
    pub(crate) bypass: bool,
}

impl<P, R> Shared<P, R> {
    /// The response for `rejection`: the custom handler's, or the default
    /// one, with the configured status for an unreachable PDP.
    pub(crate) fn render(&self, mut rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        if rejection.kind == RejectionKind::Unreachable {
            rejection.status = self.unreachable_status;
        }
        match &self.on_rejection {
            Some(handler) => handler.on_rejection(rejection, parts),
            None => rejection.default_response(parts),
        }
    }
}

impl<P, R> Clone for Cerbos<P, R> {
    fn clone(&self) -> Self {
        Cerbos {
            shared: self.shared.clone(),
        }
    }
}

impl<P, R> fmt::Debug for Cerbos<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cerbos")
            .field("pdp", &std::any::type_name::<P>())
            .field("principal", &std::any::type_name::<R>())
            .field("unreachable_status", &self.shared.unreachable_status)
            .field("custom_rejection", &self.shared.on_rejection.is_some())
            .field("bypass", &self.shared.bypass)
            .finish()
    }
}

/// Builds a [`Cerbos`]; see [`Cerbos::builder`].
pub struct CerbosBuilder<P, R = PrincipalFromExtensions> {
    pdp: P,
    principal: R,
    unreachable_status: StatusCode,
    on_rejection: Option<Box<dyn OnRejection>>,
    allow_bypass: bool,
    production: Vec<(String, String)>,
}

impl<P, R> fmt::Debug for CerbosBuilder<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosBuilder")
            .field("unreachable_status", &self.unreachable_status)
            .field("allow_bypass", &self.allow_bypass)
            .field("production", &self.production)
            .finish_non_exhaustive()
    }
}

impl<P: super::Pdp> Cerbos<P> {
    /// Starts the configuration with the PDP to ask (usually a
    /// [`Client`](crate::Client)) and, until
    /// [`principal`](CerbosBuilder::principal) says otherwise, the
    /// principal that the authentication layer put into the request
    /// extensions.
    pub fn builder(pdp: P) -> CerbosBuilder<P> {
        CerbosBuilder {
            pdp,
            principal: PrincipalFromExtensions,
            unreachable_status: StatusCode::FORBIDDEN,
            on_rejection: None,
            allow_bypass: false,
            production: vec![
                ("ENV".into(), "production".into()),
                ("APP_ENV".into(), "production".into()),
            ],
        }
    }
}

impl<P: super::Pdp, R: PrincipalResolver> CerbosBuilder<P, R> {
    /// How the principal of a request is found.
    pub fn principal<R2: PrincipalResolver>(self, principal: R2) -> CerbosBuilder<P, R2> {
        CerbosBuilder {
            pdp: self.pdp,
            principal,
            unreachable_status: self.unreachable_status,
            on_rejection: self.on_rejection,
            allow_bypass: self.allow_bypass,
            production: self.production,
        }
    }

    /// The status of the default response when the PDP gives no usable
    /// answer: 403 (the default) or, for example, 503 so that clients and
    /// load balancers retry. Must be a 4xx or 5xx status.
    pub fn unreachable_status(mut self, status: StatusCode) -> Self {
        self.unreachable_status = status;
        self
    }

    /// Replaces the default rejection responses.
    pub fn on_rejection(mut self, handler: impl OnRejection) -> Self {
        self.on_rejection = Some(Box::new(handler));
        self
    }

    /// Asks for authorization to be bypassed, for local development
    /// without a PDP: every request that resolves a principal and a
    /// resource is let through as [`Reason::Bypassed`](super::Reason::Bypassed),
    /// with a warning in the log for each.
    ///
    /// It takes effect only if the environment variable
    /// `CERBOS_ALLOW_BYPASS` is `1` when [`build`](Self::build) runs, and
    /// `build` fails if the environment is production (see
    /// [`production_when`](Self::production_when)). It cannot be turned on
    /// later.
    pub fn allow_bypass(mut self) -> Self {
        self.allow_bypass = true;
        self
    }

    /// Adds an environment variable and value that mean "this is
    /// production", where a bypass is refused. `ENV=production` and
    /// `APP_ENV=production` always count (values compare ignoring ASCII
    /// case).
    pub fn production_when(
        mut self,
        variable: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.production.push((variable.into(), value.into()));
        self
    }

    /// Checks the configuration and builds the [`Cerbos`].
    pub fn build(self) -> Result<Cerbos<P, R>> {
        self.build_with_env(|name| std::env::var(name).ok())
    }

    pub(crate) fn build_with_env(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Cerbos<P, R>> {
        if !(self.unreachable_status.is_client_error() || self.unreachable_status.is_server_error())
        {
            return Err(Error::Config(format!(
                "unreachable_status must be a 4xx or 5xx status, not {}",
                self.unreachable_status
            )));
        }
        let bypass = self.allow_bypass && {
            if let Some((variable, value)) = self.production.iter().find(|(variable, value)| {
                env(variable).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
            }) {
                return Err(Error::Config(format!(
                    "authorization bypass is configured but {variable}={value}: \
                     bypass is refused in production; remove allow_bypass()"
                )));
            }
            let allowed = env(ALLOW_BYPASS_ENV).is_some_and(|v| v.trim() == "1");
            if allowed {
                tracing::warn!(
                    "Cerbos authorization BYPASS is ON ({ALLOW_BYPASS_ENV}=1): \
                     requests are let through without asking the PDP"
                );
            } else {
                tracing::info!(
                    "Cerbos bypass is configured but {ALLOW_BYPASS_ENV} is not 1: \
                     every request is checked"
                );
            }
            allowed
        };
        Ok(Cerbos {
            shared: Arc::new(Shared {
                pdp: self.pdp,
                principal: self.principal,
                unreachable_status: self.unreachable_status,
                on_rejection: self.on_rejection,
                bypass,
            }),
        })
    }
}

impl<P: super::Pdp, R: PrincipalResolver> Cerbos<P, R> {
    /// A layer for a route (or group of routes) whose resource comes from
    /// `resource` and that needs `actions`: `["read"]`, or an
    /// [`Actions`] value for per-method actions and extra actions.
    ///
    /// Fails if there is no required action or an action name is empty.
    pub fn layer<RR: ResourceResolver>(
        &self,
        resource: RR,
        actions: impl Into<Actions>,
    ) -> Result<CerbosLayer<P, R, RR>> {
        let route = actions.into().compile()?;
        Ok(CerbosLayer {
            shared: self.shared.clone(),
            route: Arc::new(Route {
                resource,
                actions: route,
            }),
        })
    }

    /// `true` if authorization is bypassed (see
    /// [`CerbosBuilder::allow_bypass`]).
    pub fn is_bypassed(&self) -> bool {
        self.shared.bypass
    }

    /// The PDP.
    pub fn pdp(&self) -> &P {
        &self.shared.pdp
    }
}

/// The actions a route needs, and the extra actions only computed for the
/// [`PermissionMap`](super::PermissionMap).
///
/// ```
/// use cerbos_tower::layer::Actions;
/// use http::Method;
///
/// // A detail page: needs `read`, shows edit and delete buttons when allowed.
/// let detail = Actions::require(["read"]).with_permissions(["update", "delete"]);
/// // A REST resource: the action follows the HTTP method.
/// let rest = Actions::crud();
/// // Or any mapping.
/// let custom = Actions::by_method()
///     .method(Method::GET, ["view"])
///     .method(Method::POST, ["approve", "view"]);
/// # let _ = (detail, rest, custom);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Actions {
    required: Vec<String>,
    by_method: Vec<(Method, Vec<String>)>,
    extra: Vec<String>,
}

impl Actions {
    /// Actions that must all be allowed, whatever the method.
    pub fn require<A: Into<String>>(actions: impl IntoIterator<Item = A>) -> Self {
        Actions {
            required: actions.into_iter().map(Into::into).collect(),
            ..Actions::default()
        }
    }

    /// Actions chosen by HTTP method; add methods with
    /// [`method`](Self::method). A request with a method that has no
    /// actions is denied (403) without asking the PDP.
    ///
    /// That includes CORS preflight (`OPTIONS`) requests, which carry no
    /// credentials: put the CORS middleware (tower-http's `CorsLayer`,
    /// actix-cors) outside the authorization layer, so that it answers
    /// them before they reach it.
    pub fn by_method() -> Self {
        Actions::default()
    }

    /// The usual REST mapping: `GET` and `HEAD` → `read`, `POST` →
    /// `create`, `PUT` and `PATCH` → `update`, `DELETE` → `delete`.
    pub fn crud() -> Self {
        Actions::by_method()
            .method(Method::GET, ["read"])
            .method(Method::HEAD, ["read"])
            .method(Method::POST, ["create"])
            .method(Method::PUT, ["update"])
            .method(Method::PATCH, ["update"])
            .method(Method::DELETE, ["delete"])
    }

    /// The actions required for requests with `method` (replacing earlier
    /// ones for that method). Required actions set with
    /// [`require`](Self::require) apply to every method in addition.
    pub fn method<A: Into<String>>(
        mut self,
        method: Method,
        actions: impl IntoIterator<Item = A>,
    ) -> Self {
        let actions = actions.into_iter().map(Into::into).collect();
        match self.by_method.iter_mut().find(|(m, _)| *m == method) {
            Some(entry) => entry.1 = actions,
            None => self.by_method.push((method, actions)),
        }
        self
    }

    /// Extra actions, checked in the same PDP call, that do not decide
    /// whether the request proceeds but appear in the
    /// [`PermissionMap`](super::PermissionMap).
    pub fn with_permissions<A: Into<String>>(
        mut self,
        actions: impl IntoIterator<Item = A>,
    ) -> Self {
        self.extra.extend(actions.into_iter().map(Into::into));
        self
    }

    /// Checks the actions (at least one required, no empty name) and
    /// compiles them for [`Authorizer::authorize_actions`](super::Authorizer::authorize_actions).
    pub fn build(self) -> Result<ActionSet> {
        self.compile().map(ActionSet)
    }

    fn compile(self) -> Result<RouteActions> {
        let check = |action: &String| {
            if action.trim().is_empty() {
                Err(Error::Config("an action name must not be empty".into()))
            } else {
                Ok(())
            }
        };
        self.required
            .iter()
            .chain(&self.extra)
            .chain(self.by_method.iter().flat_map(|(_, a)| a))
            .try_for_each(check)?;
        let list = |required: &[String]| -> Arc<[ActionSpec]> {
            let mut list: Vec<ActionSpec> = Vec::new();
            let mut add = |action: &String, required: bool| {
                if !list.iter().any(|a| *a.action == **action) {
                    list.push(ActionSpec {
                        action: action.as_str().into(),
                        required,
                    });
                }
            };
            required.iter().for_each(|a| add(a, true));
            self.extra.iter().for_each(|a| add(a, false));
            list.into()
        };
        if self.by_method.is_empty() {
            if self.required.is_empty() {
                return Err(Error::Config(
                    "a protected route needs at least one required action \
                     (Actions::require([\"read\"]), Actions::crud(), …)"
                        .into(),
                ));
            }
            return Ok(RouteActions::Fixed(list(&self.required)));
        }
        let mut by_method = Vec::with_capacity(self.by_method.len());
        for (method, actions) in &self.by_method {
            let all: Vec<String> = self.required.iter().chain(actions).cloned().collect();
            if all.is_empty() {
                return Err(Error::Config(format!(
                    "method {method} has no required action; leave it out to deny it"
                )));
            }
            by_method.push((method.clone(), list(&all)));
        }
        Ok(RouteActions::ByMethod(by_method))
    }
}

impl<A: Into<String>, const N: usize> From<[A; N]> for Actions {
    fn from(actions: [A; N]) -> Self {
        Actions::require(actions)
    }
}

impl<A: Into<String>> From<Vec<A>> for Actions {
    fn from(actions: Vec<A>) -> Self {
        Actions::require(actions)
    }
}

/// Validated [`Actions`], made by [`Actions::build`].
#[derive(Clone, Debug)]
pub struct ActionSet(pub(crate) RouteActions);

/// One action to check for a route.
#[derive(Clone, Debug)]
pub(crate) struct ActionSpec {
    pub(crate) action: Arc<str>,
    pub(crate) required: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum RouteActions {
    Fixed(Arc<[ActionSpec]>),
    ByMethod(Vec<(Method, Arc<[ActionSpec]>)>),
}

impl RouteActions {
    /// The actions to check for a request with `method`; `None` if the
    /// method has none (denied).
    pub(crate) fn for_method(&self, method: &Method) -> Option<&Arc<[ActionSpec]>> {
        match self {
            RouteActions::Fixed(list) => Some(list),
            RouteActions::ByMethod(map) => map.iter().find(|(m, _)| m == method).map(|(_, l)| l),
        }
    }
}

pub(crate) struct Route<RR> {
    pub(crate) resource: RR,
    pub(crate) actions: RouteActions,
}

/// A [`Layer`] that authorizes every request of a route with one
/// `CheckResources` call; see the [module docs](super).
///
/// Made by [`Cerbos::layer`]. Cheap to clone.
pub struct CerbosLayer<P, R, RR> {
    pub(crate) shared: Arc<Shared<P, R>>,
    pub(crate) route: Arc<Route<RR>>,
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
        CerbosService {
            inner,
            layer: self.clone(),
        }
    }
}
