//! [`CerbosRejection`]: a request the checks in a handler rejected; and
//! [`on_rejection`]: rejection responses built with axum's
//! [`IntoResponse`].

use std::{
    fmt,
    pin::pin,
    task::{Context, Poll, Waker},
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use cerbos_tower::{
    adapter::RenderedRejection,
    layer::{OnRejection, Rejection},
};
use http::{HeaderValue, StatusCode, header, request::Parts};
use http_body::Body as _;

/// A request the Cerbos checks of a handler (`#[authorize]`,
/// [`Authz`](crate::Authz)) rejected: the same response the layer would
/// send (its status, or the custom rejection handler's response). An axum
/// [`IntoResponse`].
#[derive(Debug)]
pub struct CerbosRejection(RenderedRejection);

cerbos_tower::__rejection_methods!(CerbosRejection);

impl IntoResponse for CerbosRejection {
    fn into_response(self) -> Response {
        self.0.into_response().map(axum::body::Body::from)
    }
}

/// The largest body a [`RejectionHandler`] sends: 64 KiB. A rejection
/// says why in a few words; a bigger body is a bug, answered with a 500.
pub const MAX_REJECTION_BODY: usize = 64 * 1024;

/// A rejection handler whose responses are anything axum can turn into a
/// response ([`IntoResponse`]): a `(StatusCode, String)`, an
/// `axum::Json`, your error type… Pass it to
/// [`CerbosBuilder::on_rejection`](cerbos_tower::layer::CerbosBuilder::on_rejection):
///
/// ```
/// use axum::response::IntoResponse;
/// use cerbos_axum::{Cerbos, Client, Rejection, RejectionKind};
/// use http::{StatusCode, header, request::Parts};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// let client = Client::builder("http://127.0.0.1:3593").build()?;
/// let cerbos = Cerbos::builder(client)
///     .on_rejection(cerbos_axum::on_rejection(|rejection: Rejection, _: &Parts| {
///         let message = match rejection.kind() {
///             RejectionKind::Denied => "you may not do that",
///             RejectionKind::Unreachable => "try again in a minute",
///             _ => "no",
///         };
///         (rejection.status(), [(header::CACHE_CONTROL, "no-store")], message)
///     }))
///     .build()?;
/// # let _ = cerbos; Ok(()) }
/// ```
///
/// The handler is synchronous, like the core's: the response's body must
/// be in memory (a `String`, `Bytes`, `Json`, …), at most
/// [`MAX_REJECTION_BODY`] bytes. A body that is still streaming, fails, or
/// is larger becomes a plain-text 500, logged as an error.
pub fn on_rejection<F, T>(handler: F) -> RejectionHandler
where
    F: Fn(Rejection, &Parts) -> T + Send + Sync + 'static,
    T: IntoResponse,
{
    RejectionHandler(Box::new(move |rejection, parts| {
        handler(rejection, parts).into_response()
    }))
}

/// The user's handler, its response made an axum [`Response`].
type BoxHandler = Box<dyn Fn(Rejection, &Parts) -> Response + Send + Sync>;

/// Type of the rejection handler made by [`on_rejection`].
pub struct RejectionHandler(BoxHandler);

impl fmt::Debug for RejectionHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionHandler").finish_non_exhaustive()
    }
}

impl OnRejection for RejectionHandler {
    fn on_rejection(&self, rejection: Rejection, parts: &Parts) -> http::Response<Bytes> {
        let (head, body) = (self.0)(rejection, parts).into_parts();
        match body_in_memory(body) {
            Ok(body) => http::Response::from_parts(head, body),
            Err(why) => {
                tracing::error!(
                    status = %head.status,
                    "the Cerbos rejection handler's response body {why}: answered 500 instead"
                );
                let mut response =
                    http::Response::new(Bytes::from_static(b"Internal Server Error"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
        }
    }
}

/// The bytes of a body that is already in memory, without waiting: at most
/// [`MAX_REJECTION_BODY`] of them. Else why not, for the log.
fn body_in_memory(body: Body) -> Result<Bytes, String> {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = BytesMut::new();
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(None) => return Ok(out.freeze()),
            Poll::Ready(Some(Ok(frame))) => {
                // Trailers are dropped: a rejection has none to say.
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > MAX_REJECTION_BODY {
                        return Err(format!("is larger than {MAX_REJECTION_BODY} bytes"));
                    }
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(err))) => return Err(format!("failed: {err}")),
            Poll::Pending => return Err("is not in memory (a streaming body)".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use cerbos_tower::layer::ResolveError;
    use http_body::Frame;

    use super::*;

    /// A body that is never ready, or fails at once.
    struct Odd {
        fails: bool,
    }

    impl http_body::Body for Odd {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.fails {
                Poll::Ready(Some(Err(std::io::Error::other("broken"))))
            } else {
                Poll::Pending
            }
        }
    }

    fn render(handler: &RejectionHandler) -> http::Response<Bytes> {
        let parts = http::Request::new(()).into_parts().0;
        let rejection = Rejection::from(ResolveError::unauthenticated("no user"));
        handler.on_rejection(rejection, &parts)
    }

    #[test]
    fn an_into_response_becomes_the_rejection_response() {
        let handler = on_rejection(|rejection: Rejection, _: &Parts| {
            (
                rejection.status(),
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{:?}", rejection.kind()),
            )
        });
        let response = render(&handler);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), "Unauthenticated");
        let handler = on_rejection(|_: Rejection, _: &Parts| vec![b'x'; MAX_REJECTION_BODY]);
        assert_eq!(render(&handler).body().len(), MAX_REJECTION_BODY);
    }

    #[test]
    fn a_body_not_in_memory_failing_or_too_big_is_a_plain_500() {
        let handlers = [
            on_rejection(|_: Rejection, _: &Parts| Body::new(Odd { fails: false })),
            on_rejection(|_: Rejection, _: &Parts| Body::new(Odd { fails: true })),
            on_rejection(|_: Rejection, _: &Parts| vec![b'x'; MAX_REJECTION_BODY + 1]),
        ];
        for handler in &handlers {
            let response = render(handler);
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(response.body(), "Internal Server Error");
        }
    }
}
