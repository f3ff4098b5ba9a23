//! [`CerbosRejection`]: a request the checks in a handler rejected.

use axum::response::{IntoResponse, Response};
use cerbos_tower::{
    adapter::RenderedRejection,
    layer::{Decision, RejectionKind},
};

/// A request the Cerbos checks of a handler (`#[authorize]`,
/// [`Authz`](crate::Authz)) rejected: the same response the layer would
/// send (its status, or the custom rejection handler's response). An axum
/// [`IntoResponse`].
#[derive(Debug)]
pub struct CerbosRejection(RenderedRejection);

impl CerbosRejection {
    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.0.kind()
    }

    /// The status of the response.
    pub fn status(&self) -> http::StatusCode {
        self.0.status()
    }

    /// The decision, when the PDP was asked.
    pub fn decision(&self) -> Option<&Decision> {
        self.0.decision()
    }
}

impl From<RenderedRejection> for CerbosRejection {
    fn from(rejection: RenderedRejection) -> Self {
        CerbosRejection(rejection)
    }
}

impl IntoResponse for CerbosRejection {
    fn into_response(self) -> Response {
        self.0.into_response().map(axum::body::Body::from)
    }
}
