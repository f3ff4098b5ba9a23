//! [`Authorizer`]: the layer's checks, for code outside the layer (a
//! handler that decides with data only it has, a framework adapter).

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use http::{Response, request::Parts};

use super::{
    ActionSet, Actions, Cerbos, Decision, Pdp, PermissionMap, PrincipalResolver, Reason, Rejection,
    RejectionKind,
    actions::{ActionSpec, RouteActions},
    config::Shared,
    context::CallContext,
    evaluate::{
        begin_check, begin_permissions, begin_plan, bypassed, bypassed_permissions, bypassed_plan,
        decision, finish_check, finish_permissions, finish_plan, no_actions_for_method, request_id,
    },
};
use crate::{AuxData, PlanFilter, PlanResourcesResponse, Principal, Resource};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The resolved principal of a request, ready for checks: the principal,
/// the aux data (bearer token) and the request id.
#[derive(Clone)]
pub struct Subject {
    principal: Principal,
    aux_data: Option<AuxData>,
    request_id: String,
    context: CallContext,
}

impl Subject {
    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The request id sent to the PDP with every check.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("principal", &self.principal)
            .field("aux_data", &self.aux_data)
            .field("request_id", &self.request_id)
            .finish()
    }
}

trait Erased: Send + Sync + 'static {
    fn subject<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Subject, Rejection>>;
    fn check(
        &self,
        subject: &Subject,
        resource: Resource,
        actions: Arc<[ActionSpec]>,
    ) -> BoxFuture<'static, Result<Decision, Rejection>>;
    fn plan(
        &self,
        subject: &Subject,
        kind: String,
        actions: Vec<String>,
    ) -> BoxFuture<'static, Result<Plan, Rejection>>;
    fn permissions(
        &self,
        subject: &Subject,
        resources: Vec<Resource>,
        actions: Arc<[ActionSpec]>,
    ) -> BoxFuture<'static, Result<Vec<PermissionMap>, Rejection>>;
    fn render(&self, rejection: Rejection, parts: &Parts) -> Response<Bytes>;
    fn has_custom_rejection(&self) -> bool;
    #[cfg(feature = "actix")]
    fn annotates(&self) -> bool;
    #[cfg(feature = "actix")]
    fn copy_actix_extensions(&self, from: &actix_web::dev::Extensions, to: &mut http::Extensions);
}

impl<P: Pdp, R: PrincipalResolver> Erased for Shared<P, R> {
    fn subject<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a, Result<Subject, Rejection>> {
        let principal = self.principal.resolve_principal(parts);
        Box::pin(async move {
            let principal = principal
                .await
                .map_err(|err| Rejection::from_resolver(err, "principal"))?;
            let aux_data = self
                .principal
                .aux_data(parts)
                .map_err(|err| Rejection::from_resolver(err, "principal"))?;
            Ok(Subject {
                principal,
                aux_data,
                request_id: request_id(parts),
                context: self.call_context(parts),
            })
        })
    }

    fn check(
        &self,
        subject: &Subject,
        resource: Resource,
        actions: Arc<[ActionSpec]>,
    ) -> BoxFuture<'static, Result<Decision, Rejection>> {
        let request_id = subject.request_id.clone();
        if self.bypass {
            let decision = bypassed(&resource, &actions, request_id);
            return Box::pin(std::future::ready(Ok(decision)));
        }
        let (fut, pending) = begin_check(
            self,
            subject.principal.clone(),
            subject.aux_data.clone(),
            resource,
            actions,
            request_id,
            &subject.context,
        );
        Box::pin(async move {
            let answer = fut.await;
            finish_check(pending, answer).map(|(decision, _)| decision)
        })
    }

    fn plan(
        &self,
        subject: &Subject,
        kind: String,
        actions: Vec<String>,
    ) -> BoxFuture<'static, Result<Plan, Rejection>> {
        let request_id = subject.request_id.clone();
        if self.bypass {
            bypassed_plan(&kind, &actions);
            let plan = Plan {
                filter: PlanFilter::AlwaysAllowed,
                reason: Reason::Bypassed,
                kind,
                actions,
                cerbos_call_id: String::new(),
                request_id,
                response: None,
            };
            return Box::pin(std::future::ready(Ok(plan)));
        }
        let (fut, pending) = begin_plan(
            &self.pdp,
            subject.principal.clone(),
            subject.aux_data.clone(),
            kind.clone(),
            actions.clone(),
            &request_id,
            &subject.context,
        );
        Box::pin(async move {
            let response = finish_plan(pending, fut.await)?;
            Ok(Plan {
                filter: response.filter.clone(),
                reason: Reason::Allowed,
                kind,
                actions,
                cerbos_call_id: response.cerbos_call_id.clone(),
                request_id,
                response: Some(Box::new(response)),
            })
        })
    }

    fn permissions(
        &self,
        subject: &Subject,
        resources: Vec<Resource>,
        actions: Arc<[ActionSpec]>,
    ) -> BoxFuture<'static, Result<Vec<PermissionMap>, Rejection>> {
        if resources.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        if self.bypass {
            let maps = bypassed_permissions(&resources, &actions);
            return Box::pin(std::future::ready(Ok(maps)));
        }
        let (fut, pending) = begin_permissions(
            &self.pdp,
            subject.principal.clone(),
            subject.aux_data.clone(),
            resources,
            actions,
            &subject.request_id,
            &subject.context,
        );
        Box::pin(async move { finish_permissions(pending, fut.await) })
    }

    fn render(&self, rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        Shared::render(self, rejection, parts)
    }

    #[cfg(feature = "actix")]
    fn copy_actix_extensions(&self, from: &actix_web::dev::Extensions, to: &mut http::Extensions) {
        self.principal.copy_actix_extensions(from, to);
    }

    fn has_custom_rejection(&self) -> bool {
        self.on_rejection.is_some()
    }

    #[cfg(feature = "actix")]
    fn annotates(&self) -> bool {
        self.annotations.is_some()
    }
}

/// A query plan: which resources of a kind the principal may act on, as
/// [`Authorizer::plan`] got it from the PDP (checked to be about the kind
/// and actions asked), or [`PlanFilter::AlwaysAllowed`] when authorization
/// is bypassed. Turn its [`filter`](Self::filter) into a database query
/// (with `cerbos-sql`'s `PlanToSql`, for example).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    filter: PlanFilter,
    reason: Reason,
    kind: String,
    actions: Vec<String>,
    cerbos_call_id: String,
    request_id: String,
    response: Option<Box<PlanResourcesResponse>>,
}

impl Plan {
    /// Which resources the principal may act on.
    pub fn filter(&self) -> &PlanFilter {
        &self.filter
    }

    /// The filter, by value.
    pub fn into_filter(self) -> PlanFilter {
        self.filter
    }

    /// [`Reason::Allowed`] when the PDP planned (whatever the filter),
    /// [`Reason::Bypassed`] when it was not asked.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The resource kind planned for.
    pub fn resource_kind(&self) -> &str {
        &self.kind
    }

    /// The actions planned for (every one of them is allowed on the
    /// resources the filter selects).
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// The PDP's call id; empty when it was not asked.
    pub fn cerbos_call_id(&self) -> &str {
        &self.cerbos_call_id
    }

    /// The request id sent to the PDP.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The PDP's whole answer (validation errors, policy version, …);
    /// `None` when it was not asked.
    pub fn response(&self) -> Option<&PlanResourcesResponse> {
        self.response.as_deref()
    }
}

/// A handle on a [`Cerbos`] for checks made outside the layer, with the
/// same PDP, principal resolver, fail-closed rules, bypass and rejection
/// responses. Cheap to clone; its type does not depend on the PDP or the
/// resolver, so it fits in application state.
///
/// ```
/// # use cerbos_tower::{Error, CheckResourcesResponse, CheckResources, Resource, Principal};
/// # use cerbos_tower::layer::{Cerbos, Reason};
/// # async fn run() {
/// # let pdp = |_: CheckResources| async { Err::<CheckResourcesResponse, _>(Error::Timeout(Default::default())) };
/// let authorizer = Cerbos::builder(pdp).build().unwrap().authorizer();
///
/// let (mut parts, ()) = http::Request::new(()).into_parts();
/// parts.extensions.insert(Principal::new("2", ["user"]));
/// let subject = authorizer.subject(&parts).await.unwrap();
/// // All actions in one PDP call; this PDP is down, so nothing is allowed.
/// let decision = authorizer.check(&subject, Resource::new("contact", "1"), ["read", "update"]).await;
/// assert_eq!(decision.reason(), Reason::Unreachable);
/// assert!(!decision.permissions().is_allowed("read"));
/// # }
/// ```
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<dyn Erased>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl<P: Pdp, R: PrincipalResolver> Cerbos<P, R> {
    /// A type-erased handle for checks outside the layer.
    pub fn authorizer(&self) -> Authorizer {
        Authorizer {
            inner: self.shared.clone(),
        }
    }
}

impl Authorizer {
    /// Checks the actions of `actions` for `method` on `resource`, as the
    /// layer does for a route: the decision if every required action is
    /// allowed, the [`Rejection`] otherwise (a method without actions is
    /// denied without asking the PDP).
    pub(crate) async fn authorize_actions(
        &self,
        subject: &Subject,
        resource: Resource,
        method: &http::Method,
        actions: &ActionSet,
    ) -> Result<Decision, Rejection> {
        let Some(specs) = actions.0.for_method(method) else {
            let request_id = subject.request_id.clone();
            return Err(no_actions_for_method(method, &resource, request_id));
        };
        self.inner.check(subject, resource, specs.clone()).await
    }

    /// Resolves the principal of a request (401 and the like as a
    /// [`Rejection`]).
    pub async fn subject(&self, parts: &Parts) -> Result<Subject, Rejection> {
        self.inner.subject(parts).await
    }

    /// Checks `actions` on `resource` for `subject` in one PDP call. The
    /// decision is allowed only if every action is; its
    /// [`permissions`](Decision::permissions) tell them apart. A PDP that
    /// cannot be asked gives a [`Reason::Unreachable`] decision.
    pub async fn check<A: AsRef<str>>(
        &self,
        subject: &Subject,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Decision {
        match self.require(subject, resource, actions).await {
            Ok(decision) => decision,
            Err(rejection) => match rejection.decision {
                Some(decision) => *decision,
                None => Decision {
                    reason: Reason::Denied,
                    resource_kind: String::new(),
                    resource_id: String::new(),
                    actions: Vec::new(),
                    cerbos_call_id: String::new(),
                    request_id: subject.request_id.clone(),
                },
            },
        }
    }

    /// Like [`check`](Self::check), but anything other than "every action
    /// allowed" is the [`Rejection`] the layer would have made (403 for a
    /// denial, 503 by default for a PDP that gives no usable answer, 401
    /// for a bearer token the PDP refused).
    pub async fn require<A: AsRef<str>>(
        &self,
        subject: &Subject,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Decision, Rejection> {
        self.authorize(subject, resource, actions, std::iter::empty::<&str>())
            .await
    }

    /// Checks `required` and `extra` actions on `resource` in one PDP
    /// call, as the layer does: the decision if every required action is
    /// allowed (its [`permissions`](Decision::permissions) include the
    /// extra actions), the [`Rejection`] otherwise.
    pub async fn authorize<A: AsRef<str>, E: AsRef<str>>(
        &self,
        subject: &Subject,
        resource: Resource,
        required: impl IntoIterator<Item = A>,
        extra: impl IntoIterator<Item = E>,
    ) -> Result<Decision, Rejection> {
        // The same validation and de-duplication as a layer's actions.
        let actions = Actions::require(required).with_permissions(extra).build();
        let specs = match actions.as_ref().map(|set| &set.0) {
            Ok(RouteActions::Fixed(specs)) => specs.clone(),
            _ => {
                tracing::error!(
                    kind = resource.kind(),
                    "a check needs at least one required, non-empty action: denied without asking the PDP"
                );
                let decision = decision(&resource, &[], Reason::Denied, subject.request_id.clone());
                return Err(Rejection::new(RejectionKind::Denied, Some(decision), None));
            }
        };
        self.inner.check(subject, resource, specs).await
    }

    /// Asks the PDP which resources of `kind` `subject` may do every one
    /// of `actions` on (one `PlanResources` call), for a listing filtered
    /// in the database. Fail-closed like a check: a PDP that cannot be
    /// asked, cannot plan ([`Pdp::plan`]), or answers a plan for another
    /// kind or other actions is the unreachable [`Rejection`] (503 by
    /// default; 401 for a bearer token the PDP refused); a blank kind or
    /// no action is denied (403) without asking the PDP. When bypassed,
    /// the plan is [`PlanFilter::AlwaysAllowed`], logged as a warning.
    pub async fn plan<A: AsRef<str>>(
        &self,
        subject: &Subject,
        kind: impl Into<String>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Plan, Rejection> {
        let kind = kind.into();
        let mut names: Vec<String> = Vec::new();
        for action in actions {
            let action = action.as_ref().to_owned();
            if !names.contains(&action) {
                names.push(action);
            }
        }
        if kind.trim().is_empty() || names.is_empty() || names.iter().any(|a| a.trim().is_empty()) {
            tracing::error!(
                kind = kind.as_str(),
                "a plan needs a resource kind and at least one non-empty action: denied without asking the PDP"
            );
            return Err(Rejection::new(RejectionKind::Denied, None, None));
        }
        self.inner.plan(subject, kind, names).await
    }

    /// [`plan`](Self::plan), then `translate` of the plan's filter: the
    /// database query of a listing (with cerbos-sql, `|filter|
    /// to_sql.filter(filter)`). Fail-closed like `plan`, and a filter
    /// that `translate` refuses (a condition the query language cannot
    /// express soundly) is denied: a [`RejectionKind::Denied`] rejection
    /// (403 by default), with the error logged at ERROR and kept as the
    /// rejection's [`cause`](Rejection::cause), never sent to the client.
    /// When bypassed, `translate` gets [`PlanFilter::AlwaysAllowed`].
    pub async fn plan_with<A: AsRef<str>, T, E: fmt::Display>(
        &self,
        subject: &Subject,
        kind: impl Into<String>,
        actions: impl IntoIterator<Item = A>,
        translate: impl FnOnce(&PlanFilter) -> Result<T, E>,
    ) -> Result<T, Rejection> {
        let plan = self.plan(subject, kind, actions).await?;
        translate(plan.filter()).map_err(|err| {
            tracing::error!(
                kind = plan.resource_kind(),
                error = %err,
                "the query plan cannot be translated into a query: denied"
            );
            let cause = format!("the query plan cannot be translated: {err}");
            Rejection::new(RejectionKind::Denied, None, Some(cause))
        })
    }

    /// The [`PermissionMap`] of `actions` for every one of `resources`
    /// (the rows of a page, for their edit and delete buttons), in the
    /// order of `resources`: one `CheckResources` call with every row
    /// (the client splits it into chunks within the PDP's limits). A
    /// denied action is `false` in its row's map, not a rejection.
    /// Fail-closed: a PDP that cannot be asked, or an answer with a row
    /// missing, misplaced or without an effect for an action, fails the
    /// whole call with the unreachable [`Rejection`] (503 by default). No
    /// resources: no PDP call. When bypassed, every action is allowed,
    /// logged as a warning.
    pub async fn permissions<A: AsRef<str>>(
        &self,
        subject: &Subject,
        resources: impl IntoIterator<Item = Resource>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Vec<PermissionMap>, Rejection> {
        let resources: Vec<Resource> = resources.into_iter().collect();
        let specs = match Actions::require(actions).build().map(|set| set.0) {
            Ok(RouteActions::Fixed(specs)) => specs,
            _ => {
                tracing::error!(
                    kind = resources.first().map_or("", |r| r.kind()),
                    "permissions need at least one non-empty action: denied without asking the PDP"
                );
                return Err(Rejection::new(RejectionKind::Denied, None, None));
            }
        };
        self.inner.permissions(subject, resources, specs).await
    }

    /// What [`render`](Self::render) needs of a request's head, kept for a
    /// rejection made after the request's parts are gone (an in-handler
    /// check): method, URI and version, and the headers a rejection can
    /// depend on: every header with a custom rejection handler, only
    /// `content-type` (gRPC or not) with the default responses.
    pub(crate) fn rejection_head(&self, parts: &Parts) -> Parts {
        let mut head = http::Request::new(()).into_parts().0;
        head.method = parts.method.clone();
        head.uri = parts.uri.clone();
        head.version = parts.version;
        if self.inner.has_custom_rejection() {
            head.headers = parts.headers.clone();
        } else if let Some(content_type) = parts.headers.get(http::header::CONTENT_TYPE) {
            head.headers
                .insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        head
    }

    /// The response for `rejection`: the custom rejection handler's, or
    /// the default one.
    pub fn render(&self, rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        self.inner.render(rejection, parts)
    }

    /// What the configured principal resolver reads, copied from actix's
    /// request extensions into `to` (see [`crate::adapter::copy_actix_extensions`]).
    #[cfg(feature = "actix")]
    pub(crate) fn copy_actix_extensions(
        &self,
        from: &actix_web::dev::Extensions,
        to: &mut http::Extensions,
    ) {
        self.inner.copy_actix_extensions(from, to);
    }

    /// Whether calls are annotated (so the route must be known).
    #[cfg(feature = "actix")]
    pub(crate) fn annotates(&self) -> bool {
        self.inner.annotates()
    }
}
