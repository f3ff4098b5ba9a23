//! What the framework adapters (`cerbos-axum`, `cerbos-actix`) build on,
//! and what a third-party adapter for another framework needs: the rules
//! that must be the same in every framework, so that no adapter
//! re-implements them. Applications do not need this module.
//!
//! - [`id_param`]: which path parameter holds the resource id;
//! - [`loaded`]: what a loader's answer means (`Ok(None)` is a 404);
//! - [`AuthorizerExt`]: a route's [`ActionSet`] checked for a method, and
//!   the request head a later rejection needs;
//! - [`PathParamsExt`]: the resource id among a template's parameters.
//!
//! The principal is always the one configured on
//! [`Cerbos`](crate::layer::Cerbos): an adapter whose requests are not
//! `http::Request`s builds an `http::request::Parts` for
//! [`Authorizer::subject`] (as `cerbos-actix` does), so no resolver is ever
//! re-implemented or dropped.

use std::future::Future;

use crate::{
    Resource,
    layer::{ActionSet, Authorizer, Decision, PathParams, Rejection, ResolveError, Subject},
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

/// What a loader's answer means for the request: the resource, a 404 for
/// `Ok(None)` (nothing has that id), or the loader's own error.
pub fn loaded(answer: Result<Option<Resource>, ResolveError>) -> Result<Resource, ResolveError> {
    crate::layer::loaded(answer)
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
