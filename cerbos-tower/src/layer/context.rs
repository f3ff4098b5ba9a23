//! What the layer takes from a request for the PDP call besides the
//! question: audit annotations ([`Annotations`]) and the trace context to
//! forward.

use std::sync::Arc;

use http::{HeaderName, request::Parts};

use super::ConfigError;
use crate::{AttrValue, CheckResources, PlanResources, TRACEPARENT, TRACESTATE, TraceContext};

/// The audit annotations the layer fills from each request
/// (`request_context.annotations` of its `CheckResources` and
/// `PlanResources` calls), so that the PDP's decision log records which
/// route, method, request and trace made each call; see
/// [`CerbosBuilder::annotate`](super::CerbosBuilder::annotate).
///
/// | key | value |
/// |---|---|
/// | `route` | the matched route template (axum's `MatchedPath` with the `axum` feature; the route's pattern under `cerbos-actix`, also from a guard on a `Scope` or `App`), else the request path |
/// | `method` | the HTTP method |
/// | `request_id` | the request id header (`x-request-id` by default), when it has 1 to 128 visible ASCII characters |
/// | `trace_id` | the trace id of the incoming, valid, W3C `traceparent` |
/// | your keys | the fixed values given with [`with`](Self::with) (the app's name, …) |
///
/// A value the request does not have is left out, never made up. Nothing
/// of the principal (attributes, JWT) is ever annotated.
///
/// ```
/// use cerbos_tower::layer::Annotations;
///
/// let annotations = Annotations::new()
///     .request_id_header("x-correlation-id")
///     .with("app", "contacts");
/// # let _ = annotations;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Annotations {
    request_id_header: String,
    fixed: Vec<(String, AttrValue)>,
}

impl Default for Annotations {
    fn default() -> Self {
        Annotations::new()
    }
}

impl Annotations {
    /// The route, method, request id (from `x-request-id`) and trace id.
    pub fn new() -> Self {
        Annotations {
            request_id_header: "x-request-id".to_owned(),
            fixed: Vec::new(),
        }
    }

    /// Reads the request id from this header instead of `x-request-id`.
    pub fn request_id_header(mut self, name: impl Into<String>) -> Self {
        self.request_id_header = name.into();
        self
    }

    /// Adds a fixed annotation, sent with every call (the app's name, its
    /// version, the deployment, …).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.fixed.push((key.into(), value.into()));
        self
    }

    pub(crate) fn compile(self) -> Result<AnnotationRules, ConfigError> {
        let request_id_header =
            HeaderName::try_from(self.request_id_header.as_str()).map_err(|_| {
                ConfigError::new(format!(
                    "Annotations::request_id_header: {:?} is not a valid header name",
                    self.request_id_header
                ))
            })?;
        for (key, _) in &self.fixed {
            if key.is_empty() || REQUEST_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::new(format!(
                    "Annotations::with: the key {key:?} is empty or taken by the request's \
                     annotations ({REQUEST_KEYS:?}); choose another key"
                )));
            }
        }
        Ok(AnnotationRules {
            request_id_header,
            fixed: self.fixed.into(),
        })
    }
}

/// The keys the layer fills from the request.
const REQUEST_KEYS: [&str; 4] = ["route", "method", "request_id", "trace_id"];

/// [`Annotations`], checked.
#[derive(Debug)]
pub(crate) struct AnnotationRules {
    request_id_header: HeaderName,
    fixed: Arc<[(String, AttrValue)]>,
}

/// What a PDP call made for a request carries besides the question: the
/// annotations and the trace context to forward (empty, and unallocated,
/// when neither is configured).
#[derive(Clone, Debug, Default)]
pub(crate) struct CallContext {
    annotations: Vec<(&'static str, String)>,
    fixed: Option<Arc<[(String, AttrValue)]>>,
    forward: Option<TraceContext>,
}

impl CallContext {
    /// The context of the request with head `parts`.
    pub(crate) fn of(
        parts: &Parts,
        annotations: Option<&AnnotationRules>,
        forward_trace: bool,
    ) -> CallContext {
        if annotations.is_none() && !forward_trace {
            return CallContext::default();
        }
        let trace = incoming_trace(parts);
        let mut context = CallContext::default();
        if let Some(rules) = annotations {
            context.annotations.push(("route", route(parts)));
            context
                .annotations
                .push(("method", parts.method.as_str().to_owned()));
            let request_id = parts
                .headers
                .get(&rules.request_id_header)
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
                });
            if let Some(id) = request_id {
                context.annotations.push(("request_id", id.to_owned()));
            }
            if let Some(trace) = &trace {
                context
                    .annotations
                    .push(("trace_id", trace.trace_id().to_owned()));
            }
            if !rules.fixed.is_empty() {
                context.fixed = Some(rules.fixed.clone());
            }
        }
        if forward_trace {
            context.forward = trace;
        }
        context
    }

    /// Adds the annotations and trace headers to a check.
    pub(crate) fn apply_check(&self, mut check: CheckResources) -> CheckResources {
        for (key, value) in self.annotations() {
            check = check.annotation(key, value);
        }
        for (name, value) in self.headers() {
            check = check.header(name, value);
        }
        check
    }

    /// Adds the annotations and trace headers to a plan.
    pub(crate) fn apply_plan(&self, mut plan: PlanResources) -> PlanResources {
        for (key, value) in self.annotations() {
            plan = plan.annotation(key, value);
        }
        for (name, value) in self.headers() {
            plan = plan.header(name, value);
        }
        plan
    }

    fn annotations(&self) -> impl Iterator<Item = (String, AttrValue)> + '_ {
        let fixed = self.fixed.iter().flat_map(|f| f.iter().cloned());
        self.annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::from(v.as_str())))
            .chain(fixed)
    }

    fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.forward.iter().flat_map(|trace| {
            std::iter::once((TRACEPARENT, trace.traceparent()))
                .chain(trace.tracestate().map(|state| (TRACESTATE, state)))
        })
    }
}

/// The request's trace context, if its `traceparent` is valid (one header
/// each; a repeated `traceparent` is ambiguous and ignored).
fn incoming_trace(parts: &Parts) -> Option<TraceContext> {
    let mut parents = parts.headers.get_all(TRACEPARENT).iter();
    let parent = parents.next()?.to_str().ok()?;
    if parents.next().is_some() {
        return None;
    }
    // Several tracestate headers are one list, comma-joined.
    let states: Vec<&str> = parts
        .headers
        .get_all(TRACESTATE)
        .iter()
        .map(|v| v.to_str())
        .collect::<Result<_, _>>()
        .ok()?;
    let state = states.join(",");
    TraceContext::parse(parent, (!state.is_empty()).then_some(state.as_str()))
}

/// The route template an adapter found for a framework without axum's
/// `MatchedPath` (actix's `match_pattern`), in the request head: the
/// `route` annotation.
#[derive(Clone, Debug)]
pub(crate) struct MatchedRoute(pub(crate) String);

/// The matched route template, else the path.
fn route(parts: &Parts) -> String {
    if let Some(MatchedRoute(route)) = parts.extensions.get::<MatchedRoute>() {
        return route.clone();
    }
    #[cfg(feature = "axum")]
    if let Some(matched) = parts.extensions.get::<axum::extract::MatchedPath>() {
        return matched.as_str().to_owned();
    }
    parts.uri.path().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder()
            .method("PUT")
            .uri("/contacts/7?x=1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn keys(context: &CallContext) -> Vec<(String, String)> {
        context
            .annotations()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    #[test]
    fn annotations_come_from_the_request_and_are_left_out_when_absent() {
        let rules = Annotations::new()
            .with("app", "contacts")
            .compile()
            .unwrap();
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let with_all = parts(&[("x-request-id", "req-1"), ("traceparent", traceparent)]);
        let context = CallContext::of(&with_all, Some(&rules), false);
        assert_eq!(
            keys(&context),
            [
                ("route", "/contacts/7"),
                ("method", "PUT"),
                ("request_id", "req-1"),
                ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                ("app", "contacts"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            context.headers().count(),
            0,
            "not forwarded unless configured"
        );

        // A malformed traceparent and a blank request id are left out.
        let bad = parts(&[("x-request-id", ""), ("traceparent", "00-zz")]);
        let context = CallContext::of(&bad, Some(&rules), true);
        let names: Vec<_> = keys(&context).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["route", "method", "app"]);
        assert_eq!(context.headers().count(), 0, "never forwarded");
    }

    #[test]
    fn forwarding_sends_the_valid_incoming_trace_context_only() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let request = parts(&[
            ("traceparent", traceparent),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ]);
        let context = CallContext::of(&request, None, true);
        let headers: Vec<_> = context.headers().collect();
        assert_eq!(
            headers,
            [
                ("traceparent", traceparent),
                ("tracestate", "rojo=1,congo=2")
            ]
        );
        assert_eq!(context.annotations().count(), 0);
        // Two traceparents: ambiguous, not forwarded.
        let twice = parts(&[("traceparent", traceparent), ("traceparent", traceparent)]);
        assert_eq!(CallContext::of(&twice, None, true).headers().count(), 0);
    }

    #[test]
    fn bad_annotation_settings_are_configuration_errors() {
        let err = Annotations::new()
            .request_id_header("bad header")
            .compile()
            .unwrap_err();
        assert!(err.message().contains("request_id_header"), "{err}");
        let err = Annotations::new().with("route", "x").compile().unwrap_err();
        assert!(err.message().contains("route"), "{err}");
    }
}
