//! What the framework adapters (`cerbos-axum`, `cerbos-actix`) build on,
//! and what a third-party adapter for another framework needs: the rules
//! that must be the same in every framework, so that no adapter
//! re-implements them. Applications do not need this module.
//!
//! - [`id_param`]: which path parameter holds the resource id;
//! - [`loaded`]: what a loader's answer means (`Ok(None)` is a 404);
//! - [`AuthorizerExt`]: a [`Subject`] from a principal the framework
//!   resolved, and a route's [`ActionSet`] checked for a method;
//! - [`BearerJwtExt`]: the bearer token of a request that is not an
//!   `http::Request` (actix-web's `HttpRequest`);
//! - [`PathParamsExt`]: the resource id among a template's parameters.

use std::future::Future;

use crate::{
    AuxData, Principal, Resource,
    layer::{
        ActionSet, Authorizer, BearerJwt, Decision, PathParams, Rejection, ResolveError, Subject,
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

/// What a loader's answer means for the request: the resource, a 404 for
/// `Ok(None)` (nothing has that id), or the loader's own error.
pub fn loaded(answer: Result<Option<Resource>, ResolveError>) -> Result<Resource, ResolveError> {
    crate::layer::loaded(answer)
}

/// The [`Authorizer`]'s entry points for adapters.
pub trait AuthorizerExt {
    /// A subject from a principal resolved by the framework, with optional
    /// aux data, and the request id to send (a new one when `request_id` is
    /// not 1 to 128 visible ASCII characters).
    fn subject_from(
        &self,
        principal: Principal,
        aux_data: Option<AuxData>,
        request_id: Option<&str>,
    ) -> Subject;

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
    fn subject_from(
        &self,
        principal: Principal,
        aux_data: Option<AuxData>,
        request_id: Option<&str>,
    ) -> Subject {
        Authorizer::subject_from(self, principal, aux_data, request_id)
    }

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

/// [`BearerJwt`] for requests that are not `http::Request`s.
pub trait BearerJwtExt {
    /// The aux data for a request whose `Authorization` header is `value`
    /// (401 without one, unless the token is optional).
    fn aux_data_from_header(&self, value: Option<&[u8]>) -> Result<Option<AuxData>, ResolveError>;
}

impl<R> BearerJwtExt for BearerJwt<R> {
    fn aux_data_from_header(&self, value: Option<&[u8]>) -> Result<Option<AuxData>, ResolveError> {
        BearerJwt::aux_data_from_header(self, value)
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
