//! [`CerbosRejection`]: a request the checks rejected.

use std::fmt;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use cerbos_tower::adapter::RenderedRejection;

/// A request the Cerbos checks (the guard, `#[authorize]`,
/// [`Authz`](crate::Authz)) rejected: the same response the layer would
/// send (its status, or the custom rejection handler's response). An
/// actix [`ResponseError`].
#[derive(Debug)]
pub struct CerbosRejection(RenderedRejection);

cerbos_tower::__rejection_methods!(CerbosRejection);

impl fmt::Display for CerbosRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl ResponseError for CerbosRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status().as_u16()).unwrap_or(StatusCode::FORBIDDEN)
    }

    fn error_response(&self) -> HttpResponse {
        let rendered = self.0.response();
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in rendered.headers() {
            response.append_header((name.as_str(), value.as_bytes()));
        }
        response.body(rendered.body().clone())
    }
}
