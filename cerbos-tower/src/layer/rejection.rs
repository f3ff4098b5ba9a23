//! Rejections: what a request that may not proceed gets instead.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};

use super::{Decision, ResolveError, ResolveErrorKind};

/// Why a request was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The principal could not be resolved, or the PDP refused the bearer
    /// token sent as aux data (default 401).
    Unauthenticated,
    /// A resolver found the request malformed (default 400).
    BadRequest,
    /// The resource does not exist (default 404).
    NotFound,
    /// A resolver failed (default 500).
    ResolverFailed,
    /// The PDP did not allow every required action (default 403).
    Denied,
    /// The PDP gave no usable answer (default 503 Service Unavailable: the
    /// server is sick, the client may retry; 403 or another status with
    /// [`unreachable_status`](super::CerbosBuilder::unreachable_status)).
    Unreachable,
}

/// A request the layer did not let through.
///
/// The default response is the [status](Self::status) with its standard
/// reason phrase as a plain-text body (`Forbidden`), or, with
/// [`CerbosBuilder::problem_json`](super::CerbosBuilder::problem_json), an
/// RFC 9457 `application/problem+json` body
/// (`{"type":"about:blank","title":"Forbidden","status":403}`). gRPC
/// requests (`content-type: application/grpc…`) get an empty gRPC answer
/// with the matching `grpc-status` (`PERMISSION_DENIED`, `UNAUTHENTICATED`,
/// `UNAVAILABLE`, …) either way. Nothing about the policies, the PDP or its
/// errors is ever in it. Replace it with
/// [`CerbosBuilder::on_rejection`](super::CerbosBuilder::on_rejection).
pub struct Rejection {
    pub(crate) kind: RejectionKind,
    pub(crate) status: StatusCode,
    pub(crate) decision: Option<Box<Decision>>,
    pub(crate) cause: Option<Cause>,
    /// The default response is `application/problem+json`.
    pub(crate) problem_json: bool,
    /// The request's method had no actions (a configuration gap, or a CORS
    /// preflight): logged when the rejection is rendered, where the
    /// request's headers tell a preflight apart.
    pub(crate) unmapped_method: Option<Method>,
}

pub(crate) enum Cause {
    Resolver(ResolveError),
    Pdp(String),
}

impl Rejection {
    /// A rejection of `kind` with its default status.
    pub(crate) fn new(
        kind: RejectionKind,
        decision: Option<Decision>,
        cause: Option<String>,
    ) -> Rejection {
        let status = match kind {
            RejectionKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            RejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            RejectionKind::NotFound => StatusCode::NOT_FOUND,
            RejectionKind::ResolverFailed => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::Denied => StatusCode::FORBIDDEN,
            RejectionKind::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        };
        Rejection {
            kind,
            status,
            decision: decision.map(Box::new),
            cause: cause.map(Cause::Pdp),
            problem_json: false,
            unmapped_method: None,
        }
    }

    /// The rejection of a request whose `what` resolver failed with `err`.
    pub(crate) fn from_resolver(err: ResolveError, what: &'static str) -> Rejection {
        let kind = match err.kind() {
            ResolveErrorKind::Unauthenticated => RejectionKind::Unauthenticated,
            ResolveErrorKind::BadRequest => RejectionKind::BadRequest,
            ResolveErrorKind::NotFound => RejectionKind::NotFound,
            ResolveErrorKind::Internal => RejectionKind::ResolverFailed,
        };
        if kind == RejectionKind::ResolverFailed {
            tracing::error!(error = %err, "the Cerbos {what} resolver failed: request rejected");
        } else {
            tracing::debug!(error = %err, ?kind, "the Cerbos {what} resolver rejected the request");
        }
        Rejection {
            cause: Some(Cause::Resolver(err)),
            ..Rejection::new(kind, None, None)
        }
    }

    /// A bug in the layer's own state: a 500, logged.
    pub(crate) fn internal(message: &'static str) -> Rejection {
        tracing::error!("Cerbos layer: {message}");
        Rejection::new(
            RejectionKind::ResolverFailed,
            None,
            Some(message.to_owned()),
        )
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status of the default response.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The decision, when the PDP was asked: [`RejectionKind::Denied`],
    /// [`RejectionKind::Unreachable`], and [`RejectionKind::Unauthenticated`]
    /// for a refused bearer token.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_deref()
    }

    /// The resolver's error, for the resolver rejections.
    pub fn resolve_error(&self) -> Option<&ResolveError> {
        match &self.cause {
            Some(Cause::Resolver(err)) => Some(err),
            _ => None,
        }
    }

    /// What went wrong, for logs: the resolver's error, or why the PDP's
    /// answer was unusable. Never send it to the client.
    pub fn cause(&self) -> Option<String> {
        match &self.cause {
            Some(Cause::Resolver(err)) => Some(err.to_string()),
            Some(Cause::Pdp(message)) => Some(message.clone()),
            None => None,
        }
    }

    /// The default response described on [`Rejection`]: plain text, or
    /// `application/problem+json` if the layer was built with
    /// [`CerbosBuilder::problem_json`](super::CerbosBuilder::problem_json).
    pub fn default_response(&self, parts: &Parts) -> Response<Bytes> {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let mut response = Response::new(Bytes::new());
        let is_grpc = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if is_grpc {
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(grpc_code(self.status)));
            headers.insert("grpc-message", HeaderValue::from_static(reason));
        } else if self.problem_json {
            *response.status_mut() = self.status;
            // RFC 9457: `about:blank` problems carry the reason phrase as
            // their title; the phrases are plain ASCII without quotes or
            // backslashes, so no escaping is needed.
            *response.body_mut() = Bytes::from(format!(
                "{{\"type\":\"about:blank\",\"title\":\"{reason}\",\"status\":{}}}",
                self.status.as_u16()
            ));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
        } else {
            *response.status_mut() = self.status;
            *response.body_mut() = Bytes::from_static(reason.as_bytes());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        response
    }

    /// Logs the denial of a request whose method has no actions: a CORS
    /// preflight (`OPTIONS` with `Access-Control-Request-Method`) at DEBUG,
    /// since a browser sends one before many cross-origin requests, and any
    /// other method as an ERROR, a configuration gap.
    pub(crate) fn log_unmapped_method(&self, parts: &Parts) {
        let Some(method) = &self.unmapped_method else {
            return;
        };
        let kind = self.decision().map_or("", Decision::resource_kind);
        let preflight = *method == Method::OPTIONS
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            tracing::debug!(
                %method,
                kind,
                "CORS preflight: the Cerbos check has no actions for OPTIONS: denied \
                 without asking the PDP (answer preflights with a CORS layer outside this one)"
            );
        } else {
            tracing::error!(
                %method,
                kind,
                "the Cerbos check has no actions for this method: denied without asking the PDP"
            );
        }
    }
}

impl From<ResolveError> for Rejection {
    /// The rejection the layer makes when a resolver (of the principal or
    /// of the resource) fails with `err`.
    fn from(err: ResolveError) -> Self {
        Rejection::from_resolver(err, "principal or resource")
    }
}

/// The gRPC status code for an HTTP status, as in the gRPC HTTP mapping.
fn grpc_code(status: StatusCode) -> u16 {
    match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::NOT_FOUND => 5,
        StatusCode::FORBIDDEN => 7,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 13,
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("decision", &self.decision)
            .field("cause", &self.cause())
            .finish()
    }
}

/// Turns a [`Rejection`] into the response sent to the client.
///
/// Implemented by `Fn(Rejection, &Parts) -> Response<Bytes>` closures; set
/// with [`CerbosBuilder::on_rejection`](super::CerbosBuilder::on_rejection).
pub trait OnRejection: Send + Sync + 'static {
    /// The response for `rejection`; `parts` are the rejected request's.
    fn on_rejection(&self, rejection: Rejection, parts: &Parts) -> Response<Bytes>;
}

impl<F> OnRejection for F
where
    F: Fn(Rejection, &Parts) -> Response<Bytes> + Send + Sync + 'static,
{
    fn on_rejection(&self, rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        self(rejection, parts)
    }
}
