//! Resources from the request path: [`PathTemplate`] (with
//! percent-decoding) and [`ResourceFromPath`].

use std::{
    future::{Future, Ready, ready},
    sync::Arc,
};

use http::request::Parts;

use super::{Load, ResolveError, ResourceResolver};
use crate::{Resource, layer::ConfigError};

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
    pub(crate) fn resource_id(&self, name: Option<&str>) -> Option<&str> {
        id_param(self.iter(), name)
    }
}

/// The value of the path parameter that holds a resource id, among
/// `(name, value)` pairs: the one named `name` when given, otherwise the
/// one named `id`, otherwise the only parameter. The one rule for every
/// path resolver (the core's and the adapters', through
/// [`crate::adapter::id_param`]).
pub(crate) fn id_param<'a, T>(
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
    /// is a [`ConfigError`] saying what is wrong.
    pub fn new(template: &str) -> Result<Self, ConfigError> {
        let invalid =
            |why: &str| ConfigError::new(format!("invalid path template {template:?}: {why}"));
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
    pub fn new(kind: impl Into<String>, template: &str) -> Result<Self, ConfigError> {
        let template = PathTemplate::new(template)?;
        let param = id_param(template.param_names().map(|n| (n, n)), None).map(str::to_owned);
        let Some(param) = param else {
            let why = if template.param_names().next().is_none() {
                "has no parameter for the resource id, such as {id}"
            } else {
                "has several parameters and none is named `id`: name the id parameter with \
                 ResourceFromPath::with_id_param"
            };
            return Err(ConfigError::new(format!(
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
    ) -> Result<Self, ConfigError> {
        Self::from_template(kind, PathTemplate::new(template)?, param)
    }

    fn from_template(
        kind: impl Into<String>,
        template: PathTemplate,
        param: &str,
    ) -> Result<Self, ConfigError> {
        let kind = kind.into();
        if kind.trim().is_empty() {
            return Err(ConfigError::new("the resource kind must not be empty"));
        }
        if !template.param_names().any(|n| n == param) {
            return Err(ConfigError::new(format!(
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

    fn kind(&self) -> Option<&str> {
        Some(&self.kind)
    }
}
