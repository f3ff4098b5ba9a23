//! What the layer's parts share: the settings of every route ([`Shared`])
//! and of one route ([`Route`]), and the configuration error.

use bytes::Bytes;
use http::{Response, StatusCode, request::Parts};

use super::{
    OnRejection, Rejection, RejectionKind,
    actions::RouteActions,
    context::{AnnotationRules, CallContext},
};

/// A configuration of the layer that cannot work, found at construction (a
/// path template without the id parameter, a route without actions, a
/// bypass in production…). The message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Cerbos layer configuration: {message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// A configuration error saying what to fix (for adapters and
    /// resolvers built on the layer).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    /// What is wrong and how to fix it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

pub(crate) struct Shared<P, R> {
    pub(crate) pdp: P,
    pub(crate) principal: R,
    pub(crate) unreachable_status: StatusCode,
    pub(crate) problem_json: bool,
    pub(crate) on_rejection: Option<Box<dyn OnRejection>>,
    pub(crate) bypass: bool,
    pub(crate) annotations: Option<AnnotationRules>,
    pub(crate) forward_trace: bool,
    /// Resource kinds that no policy matches, logged once.
    pub(crate) kinds: std::sync::Arc<super::no_policy::KindWatch>,
}

impl<P, R> Shared<P, R> {
    /// What the PDP calls for the request with head `parts` carry besides
    /// the question (annotations, trace context).
    pub(crate) fn call_context(&self, parts: &Parts) -> CallContext {
        CallContext::of(parts, self.annotations.as_ref(), self.forward_trace)
    }

    /// The response for `rejection`: the custom handler's, or the default
    /// one, with the configured status for an unreachable PDP and the
    /// configured body format.
    pub(crate) fn render(&self, mut rejection: Rejection, parts: &Parts) -> Response<Bytes> {
        rejection.log_unmapped_method(parts);
        if rejection.kind == RejectionKind::Unreachable {
            rejection.status = self.unreachable_status;
        }
        rejection.problem_json = self.problem_json;
        match &self.on_rejection {
            Some(handler) => handler.on_rejection(rejection, parts),
            None => rejection.default_response(parts),
        }
    }
}

pub(crate) struct Route<RR> {
    pub(crate) resource: RR,
    pub(crate) actions: RouteActions,
}
