//! Resolvers: how the layer finds the principal and the resource of a
//! request.

use std::{
    borrow::Cow,
    fmt,
    future::{Future, Ready, ready},
};

use http::request::Parts;

use crate::{AuxData, Principal, Resource};

mod extension;
mod jwt;
mod load;
mod path;

pub use extension::PrincipalFromExtension;
pub use jwt::BearerJwt;
pub use load::Load;
pub(crate) use load::loaded;
pub(crate) use path::id_param;
pub use path::{PathParams, PathTemplate, ResourceFromPath};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a resolver could not produce a principal or a resource, which
/// decides the rejection's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveErrorKind {
    /// The request is not authenticated (401).
    Unauthenticated,
    /// The request is malformed, for example an id that is not a number
    /// (400).
    BadRequest,
    /// The resource does not exist (404).
    NotFound,
    /// The resolver failed, for example the database is down (500).
    Internal,
}

/// A resolver's failure. The message and source are logged, never sent to
/// the client.
#[derive(Debug)]
pub struct ResolveError {
    kind: ResolveErrorKind,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl ResolveError {
    fn new(kind: ResolveErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        ResolveError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The request is not authenticated: rejected with 401.
    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ResolveErrorKind::Unauthenticated, message)
    }

    /// The request is malformed: rejected with 400.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ResolveErrorKind::BadRequest, message)
    }

    /// The resource does not exist: rejected with 404.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ResolveErrorKind::NotFound, message)
    }

    /// The resolver failed: rejected with 500.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        ResolveError {
            kind: ResolveErrorKind::Internal,
            message: Cow::Owned(source.to_string()),
            source: Some(source),
        }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> ResolveErrorKind {
        self.kind
    }
}

/// Attributes that cannot be sent exactly (see
/// [`with_serialized_attrs`](crate::Resource::with_serialized_attrs)): the
/// resolver failed (500), so that `?` works in a loader.
impl From<crate::AttrError> for ResolveError {
    fn from(err: crate::AttrError) -> Self {
        ResolveError::internal(err)
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Finds the [`Principal`] a request acts for.
///
/// Implemented by [`PrincipalFromExtensions`], by [`BearerJwt`] (which adds
/// the bearer token as aux data), and by every
/// `Fn(&Parts) -> impl Future<Output = Result<Principal, ResolveError>>`
/// closure. The future must own what it needs (`'static`): clone from the
/// parts before the `async` block.
///
/// An error rejects the request before the PDP is asked; its
/// [`ResolveErrorKind`] gives the status (usually 401).
pub trait PrincipalResolver: Send + Sync + 'static {
    /// The future of one resolution.
    type Future: Future<Output = Result<Principal, ResolveError>> + Send + 'static;

    /// Resolves the principal of the request.
    fn resolve_principal(&self, parts: &Parts) -> Self::Future;

    /// Auxiliary data (a JWT) to send to the PDP with the check. Called
    /// after [`resolve_principal`](Self::resolve_principal) succeeded.
    fn aux_data(&self, parts: &Parts) -> Result<Option<AuxData>, ResolveError> {
        let _ = parts;
        Ok(None)
    }

    /// `true` if the resolved principal is the one already in the request
    /// extensions, so the layer need not insert it again. Default `false`.
    fn is_from_extensions(&self) -> bool {
        false
    }

    /// For `cerbos-actix`, whose requests are not `http::Request`s: copies
    /// what [`resolve_principal`](Self::resolve_principal) reads from
    /// actix's request extensions into the `http` ones. By default the
    /// [`Principal`].
    #[cfg(feature = "actix")]
    #[doc(hidden)]
    fn copy_actix_extensions(&self, from: &actix_web::dev::Extensions, to: &mut http::Extensions) {
        if let Some(principal) = from.get::<Principal>() {
            to.insert(principal.clone());
        }
    }
}

impl<F, Fut> PrincipalResolver for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Principal, ResolveError>> + Send + 'static,
{
    type Future = Fut;

    fn resolve_principal(&self, parts: &Parts) -> Self::Future {
        self(parts)
    }
}

/// Finds the resource a request acts on.
///
/// Implemented by [`ResourceFromPath`] (a static kind, the id from the
/// path, optionally attributes from a loader), by [`ResourceFromExtensions`],
/// and by every
/// `Fn(&Parts) -> impl Future<Output = Result<Resource, ResolveError>>`
/// closure.
pub trait ResourceResolver: Send + Sync + 'static {
    /// The future of one resolution.
    type Future: Future<Output = Result<Resource, ResolveError>> + Send + 'static;

    /// Resolves the resource of the request.
    fn resolve_resource(&self, parts: &Parts) -> Self::Future;

    /// The resource kind, when it is fixed (a path resolver's): what
    /// [`CerbosLayer::asked`](crate::layer::CerbosLayer::asked) lists.
    /// `None` by default.
    fn kind(&self) -> Option<&str> {
        None
    }
}

impl<F, Fut> ResourceResolver for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resource, ResolveError>> + Send + 'static,
{
    type Future = Fut;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        self(parts)
    }
}

/// The [`Principal`] that the application's authentication layer put into
/// the request extensions. No principal there: 401.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrincipalFromExtensions;

impl PrincipalResolver for PrincipalFromExtensions {
    type Future = Ready<Result<Principal, ResolveError>>;

    fn resolve_principal(&self, parts: &Parts) -> Self::Future {
        ready(
            parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
                ResolveError::unauthenticated("no Principal in the request extensions")
            }),
        )
    }
}

/// The [`Resource`] that an earlier layer put into the request extensions.
/// No resource there: 500, since that is a bug in the application.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceFromExtensions;

impl ResourceResolver for ResourceFromExtensions {
    type Future = Ready<Result<Resource, ResolveError>>;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        ready(parts.extensions.get::<Resource>().cloned().ok_or_else(|| {
            ResolveError::internal(
                "no Resource in the request extensions: add the layer that inserts it \
                 before the Cerbos layer, or use another resource resolver",
            )
        }))
    }
}
