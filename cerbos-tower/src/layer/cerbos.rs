//! [`Cerbos`]: what every protected route shares (the PDP, the principal
//! resolver, the rejection settings), built with [`CerbosBuilder`].

use std::{fmt, sync::Arc};

use http::StatusCode;

use super::{
    Actions, Annotations, CerbosLayer, ConfigError, OnRejection, Pdp, PrincipalFromExtension,
    PrincipalFromExtensions, PrincipalResolver, ResourceResolver,
    config::{Route, Shared},
};

/// The environment variables that name the deployment environment, by
/// common convention; with any of them set to one of
/// [`PRODUCTION_VALUES`] (ignoring ASCII case and surrounding spaces), the
/// environment is production and a bypass is refused.
pub const PRODUCTION_VARIABLES: &[&str] = &[
    "ENV",
    "ENVIRONMENT",
    "APP_ENV",
    "RUST_ENV",
    "NODE_ENV",
    "DEPLOY_ENV",
];

/// The values of [`PRODUCTION_VARIABLES`] that mean production.
pub const PRODUCTION_VALUES: &[&str] = &["production", "prod"];

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
            .field("problem_json", &self.shared.problem_json)
            .field("custom_rejection", &self.shared.on_rejection.is_some())
            .field("bypass", &self.shared.bypass)
            .field("annotations", &self.shared.annotations)
            .field("forward_trace", &self.shared.forward_trace)
            .finish()
    }
}

/// Builds a [`Cerbos`]; see [`Cerbos::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct CerbosBuilder<P, R = PrincipalFromExtensions> {
    pdp: P,
    principal: R,
    unreachable_status: StatusCode,
    problem_json: bool,
    on_rejection: Option<Box<dyn OnRejection>>,
    allow_bypass: bool,
    production: Vec<(String, String)>,
    annotations: Option<Annotations>,
    forward_trace: bool,
}

impl<P, R> fmt::Debug for CerbosBuilder<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosBuilder")
            .field("unreachable_status", &self.unreachable_status)
            .field("problem_json", &self.problem_json)
            .field("allow_bypass", &self.allow_bypass)
            .field("production", &self.production)
            .field("annotations", &self.annotations)
            .field("forward_trace", &self.forward_trace)
            .finish_non_exhaustive()
    }
}

impl<P: Pdp> Cerbos<P> {
    /// Starts the configuration with the PDP to ask (usually a
    /// [`Client`](crate::Client)) and, until
    /// [`principal`](CerbosBuilder::principal) says otherwise, the
    /// principal that the authentication layer put into the request
    /// extensions.
    pub fn builder(pdp: P) -> CerbosBuilder<P> {
        CerbosBuilder {
            pdp,
            principal: PrincipalFromExtensions,
            unreachable_status: StatusCode::SERVICE_UNAVAILABLE,
            problem_json: false,
            on_rejection: None,
            allow_bypass: false,
            production: PRODUCTION_VARIABLES
                .iter()
                .flat_map(|variable| {
                    PRODUCTION_VALUES
                        .iter()
                        .map(|value| ((*variable).to_owned(), (*value).to_owned()))
                })
                .collect(),
            annotations: None,
            forward_trace: false,
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
            problem_json: self.problem_json,
            on_rejection: self.on_rejection,
            allow_bypass: self.allow_bypass,
            production: self.production,
            annotations: self.annotations,
            forward_trace: self.forward_trace,
        }
    }

    /// The principal derived from the application's own user type `T`,
    /// which its authentication layer puts into the request extensions:
    ///
    /// ```
    /// # use cerbos_tower::{Client, Principal, layer::Cerbos};
    /// #[derive(Clone)]
    /// struct CurrentUser { id: u64, admin: bool, department: String }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rt = tokio::runtime::Runtime::new()?;
    /// # let _guard = rt.enter();
    /// # let client = Client::builder("http://127.0.0.1:3593").build()?;
    /// let cerbos = Cerbos::builder(client)
    ///     .principal_from_extension(|user: &CurrentUser| {
    ///         Principal::new(user.id.to_string(), [if user.admin { "admin" } else { "user" }])
    ///             .with_attr("department", user.department.as_str())
    ///     })
    ///     .build()?;
    /// # let _ = cerbos; Ok(()) }
    /// ```
    ///
    /// A request without a `T` is a 500, logged at ERROR with the type's
    /// name: the application's authentication did not run before the
    /// Cerbos layer (see [`PrincipalFromExtension`]).
    pub fn principal_from_extension<T, F>(
        self,
        map: F,
    ) -> CerbosBuilder<P, PrincipalFromExtension<T, F>>
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(&T) -> crate::Principal + Send + Sync + 'static,
    {
        self.principal(PrincipalFromExtension::new(map))
    }

    /// The status of the response when the PDP gives no usable answer
    /// (down, slow, or answering nonsense): 503 Service Unavailable (the
    /// default), so that clients and load balancers see a sick server and
    /// may retry, or, for example, 403 to answer as for a denial. Must be a
    /// 4xx or 5xx status. No `Retry-After` header is sent: the layer cannot
    /// know when the PDP will be back. Whatever the status, the request
    /// never reaches the inner service.
    pub fn unreachable_status(mut self, status: StatusCode) -> Self {
        self.unreachable_status = status;
        self
    }

    /// Makes the default rejection bodies RFC 9457 problem details:
    /// `content-type: application/problem+json` and
    /// `{"type":"about:blank","title":"Forbidden","status":403}` (the
    /// status and its reason phrase, nothing about the PDP, the policies
    /// or the cause) instead of the plain-text reason phrase. gRPC requests
    /// keep their gRPC statuses. A custom
    /// [`on_rejection`](Self::on_rejection) handler's
    /// [`Rejection::default_response`](super::Rejection::default_response)
    /// follows this setting too.
    pub fn problem_json(mut self) -> Self {
        self.problem_json = true;
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
    /// production", where a bypass is refused. Every one of
    /// [`PRODUCTION_VARIABLES`] set to `production` or `prod` always counts
    /// (`ENV=prod`, `RUST_ENV=production`, `NODE_ENV=production`, …; values
    /// compare ignoring ASCII
    /// case).
    pub fn production_when(
        mut self,
        variable: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.production.push((variable.into(), value.into()));
        self
    }

    /// Fills the audit annotations (`request_context.annotations`) of
    /// every `CheckResources` and `PlanResources` call made for a request
    /// (by the layer and by the [`Authorizer`](super::Authorizer)) from the
    /// request: its route, method, request id and trace id, plus fixed
    /// ones; see [`Annotations`]. The PDP's decision log (with audit
    /// enabled) records them with each decision. Nothing of the principal
    /// is annotated.
    ///
    /// ```
    /// use cerbos_tower::{Client, layer::{Annotations, Cerbos}};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::builder("http://127.0.0.1:3593").build()?;
    /// let cerbos = Cerbos::builder(client)
    ///     .annotate(Annotations::new().with("app", "contacts"))
    ///     .build()?;
    /// // Decision log: "requestContext": {"annotations": {"route": "/contacts/{id}",
    /// //   "method": "GET", "request_id": "…", "trace_id": "…", "app": "contacts"}}
    /// # let _ = cerbos; Ok(()) }
    /// ```
    pub fn annotate(mut self, annotations: Annotations) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// Forwards the request's W3C trace context (a valid `traceparent`
    /// header, and its `tracestate`) to the PDP with every call made for
    /// it, so that the PDP's spans join the request's trace. A missing,
    /// repeated or malformed `traceparent` is not forwarded (the client's
    /// own [`trace_context`](crate::ClientBuilder::trace_context) provider,
    /// if any, applies then).
    pub fn forward_trace_context(mut self) -> Self {
        self.forward_trace = true;
        self
    }

    /// Checks the configuration and builds the [`Cerbos`].
    pub fn build(self) -> Result<Cerbos<P, R>, ConfigError> {
        self.build_with_env(|name| std::env::var(name).ok())
    }

    pub(crate) fn build_with_env(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Cerbos<P, R>, ConfigError> {
        if !(self.unreachable_status.is_client_error() || self.unreachable_status.is_server_error())
        {
            return Err(ConfigError::new(format!(
                "unreachable_status must be a 4xx or 5xx status, not {}",
                self.unreachable_status
            )));
        }
        let bypass = self.allow_bypass && {
            if let Some((variable, value)) = self.production.iter().find(|(variable, value)| {
                env(variable).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
            }) {
                return Err(ConfigError::new(format!(
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
        let annotations = self.annotations.map(Annotations::compile).transpose()?;
        Ok(Cerbos {
            shared: Arc::new(Shared {
                annotations,
                forward_trace: self.forward_trace,
                pdp: self.pdp,
                principal: self.principal,
                unreachable_status: self.unreachable_status,
                problem_json: self.problem_json,
                on_rejection: self.on_rejection,
                bypass,
                kinds: Arc::default(),
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
    ) -> Result<CerbosLayer<P, R, RR>, ConfigError> {
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
