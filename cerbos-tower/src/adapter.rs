//! What the framework adapters (`cerbos-axum`, `cerbos-actix`) build on,
//! and what a third-party adapter for another framework needs: the rules
//! that must be the same in every framework, so that no adapter
//! re-implements them. Applications do not need this module.
//!
//! - [`id_param`]: which path parameter holds the resource id;
//! - [`guard_kind`]: the resource kind a guard checks, never empty;
//! - [`loaded`]: what a loader's answer means (`Ok(None)` is a 404);
//! - [`AuthorizerExt`]: a route's [`ActionSet`] checked for a method, and
//!   the request head a later rejection needs;
//! - [`PathParamsExt`]: the resource id among a template's parameters;
//! - [`authorize_request`]: the whole check of a guard or of
//!   `#[authorize]` (principal, resource, one PDP call), giving the
//!   [`Allowed`] request's extensions or a [`RenderedRejection`];
//! - [`HandlerChecks`]: what an in-handler `Authz` extractor holds and does
//!   (checks, query plans, per-row permissions);
//! - [`RenderedRejection`]: a rejection rendered as the layer would, which
//!   an adapter's `CerbosRejection` wraps to give it its framework's
//!   response type;
//! - [`Declaration`]: what `#[authorize(...)]` declares about a handler.
//!
//! The principal is always the one configured on
//! [`Cerbos`](crate::layer::Cerbos): an adapter whose requests are not
//! `http::Request`s builds an `http::request::Parts` for
//! [`Authorizer::subject`] (as `cerbos-actix` does), so no resolver is ever
//! re-implemented or dropped.

use std::{fmt, future::Future, sync::Arc};

use bytes::Bytes;
use http::request::Parts;

use crate::{
    Principal, Resource,
    layer::{
        ActionSet, Authorizer, ConfigError, Decision, PathParams, PermissionMap, Plan, Rejection,
        RejectionKind, ResolveError, Subject, WithPermissions,
    },
};

/// The value of the path parameter that holds a resource id, among
/// `(name, value)` pairs: the one named `name` when given, otherwise the
/// one named `id`, otherwise the only parameter. The one rule for every
/// path resolver.
///
/// ```
/// use cerbos_tower::adapter::id_param;
/// assert_eq!(id_param([("team", "a"), ("id", "7")], None), Some("7"));
/// assert_eq!(id_param([("team", "a"), ("slug", "x")], Some("slug")), Some("x"));
/// assert_eq!(id_param([("team", "a"), ("slug", "x")], None), None, "ambiguous");
/// ```
pub fn id_param<'a, T>(
    params: impl IntoIterator<Item = (&'a str, T)>,
    name: Option<&str>,
) -> Option<T> {
    crate::layer::id_param(params, name)
}

/// The resource kind of a guard (`CerbosExt::guard(kind, ..)` in every
/// adapter): an empty or blank kind is a configuration error.
///
/// ```
/// use cerbos_tower::adapter::guard_kind;
/// assert_eq!(guard_kind("contact").unwrap(), "contact");
/// assert!(guard_kind(" ").is_err());
/// ```
pub fn guard_kind(kind: impl Into<String>) -> Result<String, ConfigError> {
    let kind = kind.into();
    if kind.trim().is_empty() {
        return Err(ConfigError::new("the resource kind must not be empty"));
    }
    Ok(kind)
}

/// What a loader's answer means for the request: the resource, a 404 for
/// `Ok(None)` (nothing has that id), or the loader's own error.
pub fn loaded(answer: Result<Option<Resource>, ResolveError>) -> Result<Resource, ResolveError> {
    crate::layer::loaded(answer)
}

/// Why a loader's `Ok(None)` is a 404.
const NOTHING_LOADED: &str = "the loader found no resource";

/// What a loader found: the [`Resource`] with its attributes, or the
/// resource and the application's typed row `(Resource, T)`, which the
/// adapters hand to the handler (`Loaded<T>`) so that the row is read once.
pub trait LoaderOutput: Send + 'static {
    /// The typed row (`Infallible` for a loader that returns only the
    /// resource).
    type Row: Clone + Send + Sync + 'static;

    /// The resource, and the row if there is one.
    fn into_parts(self) -> (Resource, Option<Self::Row>);
}

impl LoaderOutput for Resource {
    type Row = std::convert::Infallible;

    fn into_parts(self) -> (Resource, Option<Self::Row>) {
        (self, None)
    }
}

impl<T: Clone + Send + Sync + 'static> LoaderOutput for (Resource, T) {
    type Row = T;

    fn into_parts(self) -> (Resource, Option<T>) {
        (self.0, Some(self.1))
    }
}

/// [`loaded`] for a loader that may also return its typed row: the
/// resource and the row, a 404 for `Ok(None)`, or the loader's error.
///
/// ```
/// use cerbos_tower::{Resource, adapter::loaded_row, layer::{ResolveError, ResolveErrorKind}};
/// let found: Result<Option<(Resource, u32)>, ResolveError> = Ok(Some((Resource::new("doc", "1"), 7)));
/// assert_eq!(loaded_row(found).unwrap().1, Some(7));
/// let missing: Result<Option<(Resource, u32)>, ResolveError> = Ok(None);
/// assert_eq!(loaded_row(missing).unwrap_err().kind(), ResolveErrorKind::NotFound);
/// ```
#[allow(clippy::type_complexity)]
pub fn loaded_row<O: LoaderOutput>(
    answer: Result<Option<O>, ResolveError>,
) -> Result<(Resource, Option<O::Row>), ResolveError> {
    match answer? {
        Some(found) => Ok(found.into_parts()),
        None => Err(ResolveError::not_found(NOTHING_LOADED)),
    }
}

/// Copies what the principal resolver configured on
/// [`Cerbos`](crate::layer::Cerbos) reads (the [`Principal`], or the
/// application's user type of
/// [`principal_from_extension`](crate::layer::CerbosBuilder::principal_from_extension))
/// from actix's request extensions into the `http::request::Parts` an
/// adapter builds for [`Authorizer::subject`].
#[cfg(feature = "actix")]
pub fn copy_actix_extensions(
    authorizer: &Authorizer,
    from: &actix_web::dev::Extensions,
    to: &mut http::Extensions,
) {
    authorizer.copy_actix_extensions(from, to);
}

/// The route pattern actix matched, or will match from a middleware on
/// `App` or `Scope` (`HttpRequest::match_pattern`), into the request head
/// `to`, when the calls are annotated: the `route` annotation is then the
/// pattern (`/contacts/{id}`), not the path.
#[cfg(feature = "actix")]
pub fn actix_route(
    authorizer: &Authorizer,
    req: &actix_web::HttpRequest,
    to: &mut http::Extensions,
) {
    if authorizer.annotates()
        && let Some(pattern) = req.match_pattern()
    {
        to.insert(crate::layer::MatchedRoute(pattern));
    }
}

/// The [`Authorizer`]'s entry points for adapters.
pub trait AuthorizerExt {
    /// Checks a route's `actions` for `method` on `resource`, as the layer
    /// does: the decision if every required action is allowed, the
    /// [`Rejection`] otherwise (a method without actions is denied without
    /// asking the PDP).
    fn authorize_actions(
        &self,
        subject: &Subject,
        resource: Resource,
        method: &http::Method,
        actions: &ActionSet,
    ) -> impl Future<Output = Result<Decision, Rejection>> + Send;

    /// What [`Authorizer::render`] needs of a request's head, kept for a
    /// rejection made after the request's parts are gone (an in-handler
    /// check): all headers only when a custom rejection handler may read
    /// them, otherwise just `content-type`, so that an extractor does not
    /// copy every header of every request.
    fn rejection_head(&self, parts: &http::request::Parts) -> http::request::Parts;
}

impl AuthorizerExt for Authorizer {
    fn authorize_actions(
        &self,
        subject: &Subject,
        resource: Resource,
        method: &http::Method,
        actions: &ActionSet,
    ) -> impl Future<Output = Result<Decision, Rejection>> + Send {
        Authorizer::authorize_actions(self, subject, resource, method, actions)
    }

    fn rejection_head(&self, parts: &http::request::Parts) -> http::request::Parts {
        Authorizer::rejection_head(self, parts)
    }
}

/// [`PathParams`] for path resolvers.
pub trait PathParamsExt {
    /// The resource id: see [`id_param`].
    fn resource_id(&self, name: Option<&str>) -> Option<&str>;
}

impl PathParamsExt for PathParams {
    fn resource_id(&self, name: Option<&str>) -> Option<&str> {
        PathParams::resource_id(self, name)
    }
}

/// A [`Rejection`] rendered by an [`Authorizer`]: the response the layer
/// would send (its status, or the custom rejection handler's response),
/// with the kind and the decision kept for the handler. An adapter's
/// `CerbosRejection` wraps it and turns the response into its framework's.
/// (Boxed: an `Err` stays one pointer wide.)
pub struct RenderedRejection(Box<Rendered>);

struct Rendered {
    kind: RejectionKind,
    decision: Option<Decision>,
    response: http::Response<Bytes>,
}

impl RenderedRejection {
    /// Renders `rejection` for the request whose head is `head`.
    pub fn new(authorizer: &Authorizer, rejection: Rejection, head: &Parts) -> Self {
        let kind = rejection.kind();
        let decision = rejection.decision().cloned();
        RenderedRejection(Box::new(Rendered {
            kind,
            decision,
            response: authorizer.render(rejection, head),
        }))
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.0.kind
    }

    /// The status of the response.
    pub fn status(&self) -> http::StatusCode {
        self.0.response.status()
    }

    /// The decision, when the PDP was asked.
    pub fn decision(&self) -> Option<&Decision> {
        self.0.decision.as_ref()
    }

    /// The response.
    pub fn response(&self) -> &http::Response<Bytes> {
        &self.0.response
    }

    /// The response, for the framework to send.
    pub fn into_response(self) -> http::Response<Bytes> {
        self.0.response
    }
}

impl fmt::Debug for RenderedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedRejection")
            .field("kind", &self.0.kind)
            .field("status", &self.status())
            .field("decision", &self.0.decision)
            .finish()
    }
}

impl fmt::Display for RenderedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request rejected by Cerbos: {:?}", self.0.kind)
    }
}

impl std::error::Error for RenderedRejection {}

/// What `#[authorize(...)]` declares about a handler: the resource kind,
/// the actions that must all be allowed, the extra actions for the
/// [`PermissionMap`], and the path parameter with the id (`None`: `id`, or
/// the only parameter).
#[derive(Clone, Copy, Debug)]
pub struct Declaration {
    /// The resource kind.
    pub kind: &'static str,
    /// The actions that must all be allowed.
    pub actions: &'static [&'static str],
    /// The extra actions asked for the [`PermissionMap`].
    pub permissions: &'static [&'static str],
    /// The path parameter that holds the resource id.
    pub id_param: Option<&'static str>,
}

impl Declaration {
    /// A declaration of `actions` (all required) on `kind`, with no
    /// permission-map actions and the default id parameter: what an
    /// in-handler check or a listing asks, as a constant.
    ///
    /// ```
    /// use cerbos_tower::adapter::Declaration;
    /// const LIST: Declaration = Declaration::new("contact", &["read"]).with_permissions(&["update"]);
    /// assert_eq!(LIST.asked().collect::<Vec<_>>(), [("contact", "read"), ("contact", "update")]);
    /// ```
    pub const fn new(kind: &'static str, actions: &'static [&'static str]) -> Self {
        Declaration {
            kind,
            actions,
            permissions: &[],
            id_param: None,
        }
    }

    /// The same declaration with `permissions`, the extra actions asked
    /// for a [`PermissionMap`] (a page's per-row permissions, say).
    pub const fn with_permissions(mut self, permissions: &'static [&'static str]) -> Self {
        self.permissions = permissions;
        self
    }

    /// Every `(kind, action)` the declaration can ask the PDP about: the
    /// required actions, then the permission-map actions. For
    /// `cerbos_testkit::PolicyCoverage`.
    ///
    /// ```
    /// use cerbos_tower::adapter::Declaration;
    /// let show = Declaration { kind: "contact", actions: &["read"], permissions: &["update"], id_param: None };
    /// assert_eq!(show.asked().collect::<Vec<_>>(), [("contact", "read"), ("contact", "update")]);
    /// ```
    pub fn asked(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        let kind = self.kind;
        self.actions
            .iter()
            .chain(self.permissions)
            .map(move |action| (kind, *action))
    }
}

/// The actions a request needs.
#[derive(Clone, Copy, Debug)]
pub enum Required<'a> {
    /// A guard's actions, for the request's method.
    Route(&'a ActionSet),
    /// What `#[authorize(...)]` declares.
    Declared(&'a Declaration),
}

/// What an allowed request carries into the handler: the request
/// extensions an adapter inserts.
#[derive(Debug)]
pub struct Allowed {
    decision: Decision,
    principal: Principal,
    resource: Resource,
}

impl Allowed {
    /// The values for the request extensions, in the order the layer
    /// inserts them: the permission map, the decision, the principal and
    /// the resource.
    pub fn into_extensions(self) -> (PermissionMap, Decision, Principal, Resource) {
        (
            self.decision.permissions(),
            self.decision,
            self.principal,
            self.resource,
        )
    }
}

/// The check of a guard or of `#[authorize]`, as the layer makes it:
/// resolves the principal from `head` with the resolver configured on
/// `Cerbos`, then awaits `resource` (which the adapter resolves from its
/// request), then asks the PDP about every `required` action in one call.
/// Every failure is rendered for `head`: 401 for no principal, the
/// resolver's status, 403 for a denial, and so on.
pub async fn authorize_request(
    authorizer: &Authorizer,
    head: &Parts,
    resource: impl Future<Output = Result<Resource, ResolveError>>,
    required: Required<'_>,
) -> Result<Allowed, RenderedRejection> {
    let reject = |rejection: Rejection| RenderedRejection::new(authorizer, rejection, head);
    let subject = authorizer.subject(head).await.map_err(reject)?;
    let resource = resource.await.map_err(|err| reject(err.into()))?;
    let decision = match required {
        Required::Route(actions) => {
            authorizer
                .authorize_actions(&subject, resource.clone(), &head.method, actions)
                .await
        }
        Required::Declared(declared) => {
            authorizer
                .authorize(
                    &subject,
                    resource.clone(),
                    declared.actions.iter().copied(),
                    declared.permissions.iter().copied(),
                )
                .await
        }
    };
    let decision = decision.map_err(reject)?;
    Ok(Allowed {
        decision,
        principal: subject.principal().clone(),
        resource,
    })
}

/// The in-handler checks of a request (what an adapter's `Authz` extractor
/// holds): the resolved principal, and the request head a later rejection
/// needs ([`AuthorizerExt::rejection_head`]).
#[derive(Clone)]
pub struct HandlerChecks {
    authorizer: Authorizer,
    subject: Subject,
    head: Arc<Parts>,
}

impl fmt::Debug for HandlerChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerChecks")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl HandlerChecks {
    /// Resolves the principal of the request whose head is `head`; a
    /// request without one is rejected (401 and the like).
    pub async fn resolve(authorizer: Authorizer, head: &Parts) -> Result<Self, RenderedRejection> {
        let subject = authorizer
            .subject(head)
            .await
            .map_err(|rejection| RenderedRejection::new(&authorizer, rejection, head))?;
        let head = Arc::new(authorizer.rejection_head(head));
        Ok(HandlerChecks {
            authorizer,
            subject,
            head,
        })
    }

    /// The principal of the request.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// [`Authorizer::check`] for the request's principal.
    pub async fn check<A: AsRef<str>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Decision {
        self.authorizer
            .check(&self.subject, resource, actions)
            .await
    }

    /// [`Authorizer::require`] for the request's principal, its rejection
    /// rendered as the layer would.
    pub async fn require<A: AsRef<str>>(
        &self,
        resource: impl IntoResource,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Decision, RenderedRejection> {
        let resource = resource
            .into_resource()
            .map_err(|err| self.rendered(err.into()))?;
        self.authorizer
            .require(&self.subject, resource, actions)
            .await
            .map_err(|rejection| self.rendered(rejection))
    }

    /// [`Authorizer::plan`] for the request's principal, its rejection
    /// rendered as the layer would.
    pub async fn plan<A: AsRef<str>>(
        &self,
        kind: impl Into<String>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Plan, RenderedRejection> {
        self.authorizer
            .plan(&self.subject, kind, actions)
            .await
            .map_err(|rejection| self.rendered(rejection))
    }

    /// [`Authorizer::plan_with`] for the request's principal, its
    /// rejection rendered as the layer would.
    pub async fn plan_with<A: AsRef<str>, T, E: fmt::Display>(
        &self,
        kind: impl Into<String>,
        actions: impl IntoIterator<Item = A>,
        translate: impl FnOnce(&crate::PlanFilter) -> Result<T, E>,
    ) -> Result<T, RenderedRejection> {
        self.authorizer
            .plan_with(&self.subject, kind, actions, translate)
            .await
            .map_err(|rejection| self.rendered(rejection))
    }

    /// [`Authorizer::permissions`] for the request's principal, its
    /// rejection rendered as the layer would.
    pub async fn permissions<A: AsRef<str>>(
        &self,
        resources: impl IntoIterator<Item = impl IntoResource>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Vec<PermissionMap>, RenderedRejection> {
        let resources = resources
            .into_iter()
            .map(IntoResource::into_resource)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.rendered(err.into()))?;
        self.authorizer
            .permissions(&self.subject, resources, actions)
            .await
            .map_err(|rejection| self.rendered(rejection))
    }

    /// Each of `rows` with the [`PermissionMap`] of `actions` on its
    /// `resource`, in the same order: [`permissions`](Self::permissions)
    /// for a page of rows.
    pub async fn with_permissions<T, R: IntoResource, A: AsRef<str>>(
        &self,
        rows: impl IntoIterator<Item = T>,
        resource: impl Fn(&T) -> R,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Vec<WithPermissions<T>>, RenderedRejection> {
        let rows: Vec<T> = rows.into_iter().collect();
        let permissions = self.permissions(rows.iter().map(resource), actions).await?;
        if permissions.len() != rows.len() {
            // `permissions` answers one map per resource or fails: never
            // pair a row with another row's map.
            let rejection = Rejection::internal("a permission map per row was not answered");
            return Err(self.rendered(rejection));
        }
        let rows = rows.into_iter().zip(permissions);
        Ok(rows
            .map(|(row, permissions)| WithPermissions { row, permissions })
            .collect())
    }

    /// Loads a row with the application's loader (the same one its guards
    /// and `#[authorize]` use), then [`require`](Self::require)s `actions`
    /// on the resource it returns: the row and the decision, or the
    /// rejection (404 when the loader finds nothing, 500 for a loader
    /// error, then the check's own rejections).
    pub async fn require_loaded<T, A: AsRef<str>>(
        &self,
        found: impl Future<Output = Result<Option<(Resource, T)>, ResolveError>>,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<(T, Decision), RenderedRejection> {
        let (resource, row) = match found.await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(self.rendered(ResolveError::not_found(NOTHING_LOADED).into())),
            Err(err) => return Err(self.rendered(err.into())),
        };
        let decision = self.require(resource, actions).await?;
        Ok((row, decision))
    }

    fn rendered(&self, rejection: Rejection) -> RenderedRejection {
        RenderedRejection::new(&self.authorizer, rejection, &self.head)
    }
}

/// A resource as the in-handler checks take it: a [`Resource`], or the
/// result of building one, such as a row's resource built with
/// [`Resource::with_serialized_attrs`]. An error rejects the request as a
/// resolver's would (500 for an internal one, logged), without asking the
/// PDP.
pub trait IntoResource {
    /// The resource, or why there is none.
    fn into_resource(self) -> Result<Resource, ResolveError>;
}

impl IntoResource for Resource {
    fn into_resource(self) -> Result<Resource, ResolveError> {
        Ok(self)
    }
}

impl<E: Into<ResolveError>> IntoResource for Result<Resource, E> {
    fn into_resource(self) -> Result<Resource, ResolveError> {
        self.map_err(Into::into)
    }
}

/// The methods of an adapter's `Authz(HandlerChecks)`: `subject`, `check`,
/// `require`, `plan` and `permissions`, delegating to [`HandlerChecks`]
/// with the adapter's rejection type (each adapter owns its `Authz` so
/// that it can implement the framework's extractor trait on it).
#[doc(hidden)]
#[macro_export]
macro_rules! __authz_methods {
    ($authz:ident, $rejection:ty) => {
        impl $authz {
            /// The principal of the request.
            pub fn subject(&self) -> &$crate::layer::Subject {
                self.0.subject()
            }

            /// Checks `actions` on `resource` in one PDP call; the decision
            /// is allowed only if every action is, and its
            /// [`permissions`](cerbos_tower::layer::Decision::permissions)
            /// tell them apart. Fail-closed: a PDP that cannot be asked
            /// gives an unreachable (not allowed) decision.
            pub async fn check<A: AsRef<str>>(
                &self,
                resource: $crate::Resource,
                actions: impl IntoIterator<Item = A>,
            ) -> $crate::layer::Decision {
                self.0.check(resource, actions).await
            }

            /// Like [`check`](Self::check), but a request that may not do
            /// all of `actions` is the rejection the layer would have made.
            /// `resource` may be a `Result` (a row's resource built with
            /// `with_serialized_attrs`): its error is the rejection of a
            /// failed resolver (500 for an internal one), without a PDP call.
            pub async fn require<A: AsRef<str>>(
                &self,
                resource: impl $crate::adapter::IntoResource,
                actions: impl IntoIterator<Item = A>,
            ) -> Result<$crate::layer::Decision, $rejection> {
                Ok(self.0.require(resource, actions).await?)
            }

            /// The query plan for listing the resources of `kind` on which
            /// every one of `actions` is allowed (one `PlanResources`
            /// call); its [`filter`](cerbos_tower::layer::Plan::filter)
            /// becomes the database query. Fail-closed like
            /// [`require`](Self::require), with the same rejections: a PDP
            /// that cannot be asked or cannot plan is the unreachable
            /// rejection (503 by default), rendered by the configured
            /// rejection handler; bypassed, the plan allows every resource.
            pub async fn plan<A: AsRef<str>>(
                &self,
                kind: impl Into<String>,
                actions: impl IntoIterator<Item = A>,
            ) -> Result<$crate::layer::Plan, $rejection> {
                Ok(self.0.plan(kind, actions).await?)
            }

            /// [`plan`](Self::plan), then `translate` of its filter into
            /// the listing's database query: with cerbos-sql,
            /// `authz.plan_with("document", ["read"], |filter|
            /// to_sql.filter(filter))`. A filter that `translate` refuses
            /// (a condition the query cannot express soundly) is denied
            /// (403 by default, rendered by the configured rejection
            /// handler; the error is logged, never sent).
            pub async fn plan_with<A: AsRef<str>, T, E: ::core::fmt::Display>(
                &self,
                kind: impl Into<String>,
                actions: impl IntoIterator<Item = A>,
                translate: impl FnOnce(&$crate::PlanFilter) -> Result<T, E>,
            ) -> Result<T, $rejection> {
                Ok(self.0.plan_with(kind, actions, translate).await?)
            }

            /// The [`PermissionMap`](cerbos_tower::layer::PermissionMap) of
            /// `actions` for each of `resources` (a page's rows), in the
            /// same order, from one `CheckResources` call (chunked by the
            /// client). Each resource may be a `Result`, as for
            /// [`require`](Self::require): one error rejects the call. A denied action is `false` in its map; a PDP that
            /// cannot be asked, or a row missing from its answer, is the
            /// unreachable rejection for the whole call.
            pub async fn permissions<A: AsRef<str>>(
                &self,
                resources: impl IntoIterator<Item = impl $crate::adapter::IntoResource>,
                actions: impl IntoIterator<Item = A>,
            ) -> Result<Vec<$crate::layer::PermissionMap>, $rejection> {
                Ok(self.0.permissions(resources, actions).await?)
            }

            /// Each of `rows` (a page of a listing) with the
            /// [`PermissionMap`](cerbos_tower::layer::PermissionMap) of
            /// `actions` on its `resource` (`Document::resource`, say), in
            /// the same order, as [`permissions`](Self::permissions) asks
            /// them: one batched call, fail-closed for the whole page.
            /// Serialized, each row carries its `permissions` field.
            pub async fn with_permissions<T, R, A>(
                &self,
                rows: impl IntoIterator<Item = T>,
                resource: impl Fn(&T) -> R,
                actions: impl IntoIterator<Item = A>,
            ) -> Result<Vec<$crate::layer::WithPermissions<T>>, $rejection>
            where
                R: $crate::adapter::IntoResource,
                A: AsRef<str>,
            {
                Ok(self.0.with_permissions(rows, resource, actions).await?)
            }

            /// Awaits `found`, a call of the application's loader (the
            /// one its guards and `#[authorize]` use), then
            /// [`require`](Self::require)s `actions` on the resource it
            /// returns: the typed row and the decision. Fail-closed: the
            /// loader finding nothing is a 404, a loader error a 500, both
            /// rendered as the layer would, then the check's rejections.
            pub async fn require_loaded<T, A: AsRef<str>>(
                &self,
                found: impl ::core::future::Future<
                    Output = Result<Option<($crate::Resource, T)>, $crate::layer::ResolveError>,
                >,
                actions: impl IntoIterator<Item = A>,
            ) -> Result<(T, $crate::layer::Decision), $rejection> {
                Ok(self.0.require_loaded(found, actions).await?)
            }
        }
    };
}

/// The methods of an adapter's `CerbosRejection(RenderedRejection)`:
/// `kind`, `status`, `decision` and `From<RenderedRejection>` (each adapter
/// owns its rejection type so that it can implement the framework's
/// response trait on it).
#[doc(hidden)]
#[macro_export]
macro_rules! __rejection_methods {
    ($rejection:ident) => {
        impl $rejection {
            /// Why.
            pub fn kind(&self) -> $crate::layer::RejectionKind {
                self.0.kind()
            }

            /// The status of the response.
            pub fn status(&self) -> http::StatusCode {
                self.0.status()
            }

            /// The decision, when the PDP was asked.
            pub fn decision(&self) -> Option<&$crate::layer::Decision> {
                self.0.decision()
            }
        }

        impl From<$crate::adapter::RenderedRejection> for $rejection {
            fn from(rejection: $crate::adapter::RenderedRejection) -> Self {
                $rejection(rejection)
            }
        }
    };
}
