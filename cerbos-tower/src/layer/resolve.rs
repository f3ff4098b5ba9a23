//! Resolvers: how the layer finds the principal and the resource of a
//! request.

use std::{
    borrow::Cow,
    fmt,
    future::{Future, Ready, ready},
    pin::Pin,
    sync::Arc,
};

use http::{header, request::Parts};

use crate::{AuxData, Error, Principal, Resource};

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

/// Wraps a principal resolver and sends the request's bearer token
/// (`Authorization: Bearer …`) to the PDP as aux data, so policies can read
/// its claims as `request.aux_data.jwt`. The PDP verifies the token against
/// its configured key sets and fails the check if it does not verify.
///
/// Without a bearer token the request is rejected with 401, unless
/// [`optional`](Self::optional) is set.
#[derive(Clone, Debug)]
pub struct BearerJwt<R> {
    inner: R,
    key_set_id: Option<String>,
    optional: bool,
}

impl<R> BearerJwt<R> {
    /// Adds the bearer token to the principal from `inner`.
    pub fn new(inner: R) -> Self {
        BearerJwt {
            inner,
            key_set_id: None,
            optional: false,
        }
    }

    /// Names the PDP key set that verifies the token.
    pub fn key_set_id(mut self, id: impl Into<String>) -> Self {
        self.key_set_id = Some(id.into());
        self
    }

    /// Lets requests without a bearer token through to the check (without
    /// aux data) instead of rejecting them with 401.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The wrapped resolver.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The aux data for a request whose `Authorization` header is `value`
    /// (for adapters whose requests are not `http` requests).
    pub fn aux_data_from_header(
        &self,
        value: Option<&[u8]>,
    ) -> Result<Option<AuxData>, ResolveError> {
        let Some(value) = value else {
            return if self.optional {
                Ok(None)
            } else {
                Err(ResolveError::unauthenticated("no Authorization header"))
            };
        };
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ResolveError::unauthenticated("the Authorization header is not a bearer token")
            })?;
        let aux = AuxData::jwt(token);
        Ok(Some(match &self.key_set_id {
            Some(id) => aux.with_key_set_id(id.clone()),
            None => aux,
        }))
    }
}

impl<R: PrincipalResolver> PrincipalResolver for BearerJwt<R> {
    type Future = R::Future;

    fn resolve_principal(&self, parts: &Parts) -> Self::Future {
        self.inner.resolve_principal(parts)
    }

    fn is_from_extensions(&self) -> bool {
        self.inner.is_from_extensions()
    }

    fn aux_data(&self, parts: &Parts) -> Result<Option<AuxData>, ResolveError> {
        let value = parts.headers.get(header::AUTHORIZATION);
        self.aux_data_from_header(value.map(|v| v.as_bytes()))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(Box<str>),
    Param(Arc<str>),
    /// `{*name}`: the rest of the path; only last.
    Rest(Arc<str>),
}

/// A route template such as `/contacts/{id}` or `/files/{*path}`, matched
/// against the request path to take parameters from it.
///
/// The template must match the path *the layer sees*: under axum's
/// `Router::nest`, that is the path without the nesting prefix. Parameter
/// values are percent-decoded.
///
/// ```
/// # use cerbos_tower::layer::PathTemplate;
/// let template = PathTemplate::new("/teams/{team}/contacts/{id}").unwrap();
/// let params = template.match_path("/teams/sales/contacts/42%2F7").unwrap();
/// assert_eq!(params.get("team"), Some("sales"));
/// assert_eq!(params.get("id"), Some("42/7"));
/// assert!(template.match_path("/teams/sales").is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PathTemplate {
    template: Arc<str>,
    segments: Arc<[Segment]>,
}

/// The parameters of a matched [`PathTemplate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathParams {
    params: Vec<(Arc<str>, String)>,
}

impl PathParams {
    /// The value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params.iter().map(|(n, v)| (&**n, v.as_str()))
    }
}

impl PathParams {
    /// The resource id: see [`id_param`].
    pub fn resource_id(&self, name: Option<&str>) -> Option<&str> {
        id_param(self.iter(), name)
    }
}

/// The value of the path parameter that holds a resource id, among
/// `(name, value)` pairs: the one named `name` when given, otherwise the
/// one named `id`, otherwise the only parameter. The one rule for every
/// path resolver (the core's and the adapters').
pub fn id_param<'a, T>(
    params: impl IntoIterator<Item = (&'a str, T)>,
    name: Option<&str>,
) -> Option<T> {
    let mut only = None;
    let mut count = 0;
    for (param, value) in params {
        match name {
            Some(name) if param == name => return Some(value),
            None if param == "id" => return Some(value),
            _ => {}
        }
        count += 1;
        only = Some(value);
    }
    match (name, count) {
        (None, 1) => only,
        _ => None,
    }
}

impl PathTemplate {
    /// Parses a template: literal segments, `{name}` for one segment and
    /// `{*name}` for the rest of the path (last only). An invalid template
    /// is an [`Error::Config`] saying what is wrong.
    pub fn new(template: &str) -> crate::Result<Self> {
        let invalid =
            |why: &str| Error::Config(format!("invalid path template {template:?}: {why}"));
        let Some(rest) = template.strip_prefix('/') else {
            return Err(invalid("it must start with '/'"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    let (rest, name) = match name.strip_prefix('*') {
                        Some(name) => (true, name),
                        None => (false, name),
                    };
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(invalid(&format!(
                            "parameter {part:?} needs a name of letters, digits and '_'"
                        )));
                    }
                    if segments
                        .iter()
                        .any(|s| matches!(s, Segment::Param(n) | Segment::Rest(n) if &**n == name))
                    {
                        return Err(invalid(&format!("parameter {name:?} appears twice")));
                    }
                    if rest && i + 1 != parts.len() {
                        return Err(invalid(&format!("{part:?} must be the last segment")));
                    }
                    if rest {
                        Segment::Rest(name.into())
                    } else {
                        Segment::Param(name.into())
                    }
                }
                None if part.contains(['{', '}']) => {
                    return Err(invalid(&format!(
                        "segment {part:?} mixes text and a parameter; a parameter must be a whole segment"
                    )));
                }
                None => Segment::Literal((*part).into()),
            };
            segments.push(segment);
        }
        Ok(PathTemplate {
            template: template.into(),
            segments: segments.into(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The names of the template's parameters.
    pub fn param_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Rest(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }

    /// Matches `path`; `None` if it does not match or a parameter is not
    /// valid percent-encoded UTF-8.
    pub fn match_path(&self, path: &str) -> Option<PathParams> {
        let mut rest = path.strip_prefix('/')?;
        let mut params = PathParams::default();
        for (i, segment) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            if let Segment::Rest(name) = segment {
                params.params.push((name.clone(), percent_decode(rest)?));
                return Some(params);
            }
            let (part, tail) = match rest.split_once('/') {
                Some((part, tail)) if !last => (part, tail),
                Some(_) => return None,
                None if last => (rest, ""),
                None => return None,
            };
            match segment {
                Segment::Literal(literal) if **literal == *part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.params.push((name.clone(), percent_decode(part)?));
                }
                _ => return None,
            }
            rest = tail;
        }
        Some(params)
    }

    /// The value of the parameter `name` in the request's path.
    pub fn param(&self, parts: &Parts, name: &str) -> Option<String> {
        let mut params = self.match_path(parts.uri.path())?;
        let i = params.params.iter().position(|(n, _)| &**n == name)?;
        Some(params.params.swap_remove(i).1)
    }
}

fn percent_decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly (`from_str_radix` alone would also
            // take a sign, as in `%+1`).
            let hex = input.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A resource of a fixed kind whose id is a parameter of the request path,
/// optionally completed by a loader (typically reading the row from a
/// database, so that its columns become the resource's attributes).
///
/// ```
/// use cerbos_tower::layer::{ResolveError, ResourceFromPath};
/// use cerbos_tower::Resource;
///
/// // The id alone: policies that need no attributes.
/// let by_id = ResourceFromPath::new("contact", "/contacts/{id}").unwrap();
///
/// // The id, then the stored row's attributes; an absent row is a 404.
/// let loaded = ResourceFromPath::new("contact", "/contacts/{id}")
///     .unwrap()
///     .load(|contact: Resource| async move {
///         let owner = lookup_owner(contact.id()).await.map_err(ResolveError::internal)?;
///         Ok(owner.map(|owner| contact.with_attr("owner_id", owner)))
///     });
/// # async fn lookup_owner(_: &str) -> Result<Option<String>, std::io::Error> { Ok(None) }
/// ```
#[derive(Clone, Debug)]
pub struct ResourceFromPath {
    kind: Arc<str>,
    template: PathTemplate,
    param: Arc<str>,
}

impl ResourceFromPath {
    /// A resource of `kind` whose id is the template's `id` parameter, or
    /// its only parameter.
    pub fn new(kind: impl Into<String>, template: &str) -> crate::Result<Self> {
        let template = PathTemplate::new(template)?;
        let param = id_param(template.param_names().map(|n| (n, n)), None).map(str::to_owned);
        let Some(param) = param else {
            let why = if template.param_names().next().is_none() {
                "has no parameter for the resource id, such as {id}"
            } else {
                "has several parameters and none is named `id`: name the id parameter with \
                 ResourceFromPath::with_id_param"
            };
            return Err(Error::Config(format!(
                "path template {:?} {why}",
                template.as_str()
            )));
        };
        Self::from_template(kind, template, &param)
    }

    /// A resource of `kind` whose id is the template's parameter `param`.
    pub fn with_id_param(
        kind: impl Into<String>,
        template: &str,
        param: &str,
    ) -> crate::Result<Self> {
        Self::from_template(kind, PathTemplate::new(template)?, param)
    }

    fn from_template(
        kind: impl Into<String>,
        template: PathTemplate,
        param: &str,
    ) -> crate::Result<Self> {
        let kind = kind.into();
        if kind.trim().is_empty() {
            return Err(Error::Config("the resource kind must not be empty".into()));
        }
        if !template.param_names().any(|n| n == param) {
            return Err(Error::Config(format!(
                "path template {:?} has no parameter {{{param}}}",
                template.as_str()
            )));
        }
        Ok(ResourceFromPath {
            kind: kind.into(),
            template,
            param: param.into(),
        })
    }

    /// Completes the resource with `loader`, which receives the resource
    /// (kind and id) and returns it with attributes, `Ok(None)` if it does
    /// not exist (404), or an error.
    pub fn load<F, Fut>(self, loader: F) -> Load<Self, F>
    where
        F: Fn(Resource) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Resource>, ResolveError>> + Send + 'static,
    {
        Load::new(self, loader)
    }
    /// The resource kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The path template.
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    fn resource(&self, parts: &Parts) -> Result<Resource, ResolveError> {
        let id = self.template.param(parts, &self.param).ok_or_else(|| {
            ResolveError::not_found(format!(
                "the path does not match the template {:?}",
                self.template.as_str()
            ))
        })?;
        Ok(Resource::new(&*self.kind, id))
    }
}

impl ResourceResolver for ResourceFromPath {
    type Future = Ready<Result<Resource, ResolveError>>;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        ready(self.resource(parts))
    }
}

/// What a loader's answer means for the request: the resource, a 404 for
/// `Ok(None)` (nothing has that id), or the loader's own error. The rule of
/// [`Load`] and of the adapters' loaders.
pub fn loaded(answer: Result<Option<Resource>, ResolveError>) -> Result<Resource, ResolveError> {
    answer?.ok_or_else(|| ResolveError::not_found("the loader found no resource"))
}

/// A resource resolver completed by a loader: the inner resolver finds the
/// resource (kind and id), then the loader returns it with attributes,
/// `Ok(None)` if it does not exist (404), or an error.
///
/// Made by [`ResourceFromPath::load`] and the adapters' path resolvers.
pub struct Load<R, F> {
    resolver: R,
    loader: Arc<F>,
}

impl<R, F> Load<R, F> {
    /// `resolver`, completed by `loader`.
    pub fn new(resolver: R, loader: F) -> Self {
        Load {
            resolver,
            loader: Arc::new(loader),
        }
    }
}

impl<R: Clone, F> Clone for Load<R, F> {
    fn clone(&self) -> Self {
        Load {
            resolver: self.resolver.clone(),
            loader: self.loader.clone(),
        }
    }
}

impl<R: fmt::Debug, F> fmt::Debug for Load<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl<R, F, Fut> ResourceResolver for Load<R, F>
where
    R: ResourceResolver,
    F: Fn(Resource) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Resource>, ResolveError>> + Send + 'static,
{
    /// Boxed: the loader stands for a database round trip.
    type Future = Pin<Box<dyn Future<Output = Result<Resource, ResolveError>> + Send>>;

    fn resolve_resource(&self, parts: &Parts) -> Self::Future {
        let found = self.resolver.resolve_resource(parts);
        let loader = self.loader.clone();
        Box::pin(async move { loaded(loader(found.await?).await) })
    }
}
