//! With the `axum` or `actix` feature: [`Principal`](crate::Principal) is
//! an extractor that reads what the Cerbos layer (or an adapter's
//! middleware) put into the request extensions; `cerbos-tower` makes its
//! `PermissionMap` and `Decision` extractors with the same macros.

use std::fmt;

#[cfg(feature = "axum")]
use axum_core::response::{IntoResponse, Response};

/// The rejection of a `PermissionMap`, `Decision` or `Principal` extractor
/// on a route that Cerbos does not protect: a 500, since it is the
/// application's bug, whose body says what to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingAuthorization {
    what: &'static str,
}

impl MissingAuthorization {
    #[doc(hidden)]
    pub const fn __new(what: &'static str) -> Self {
        MissingAuthorization { what }
    }
}

impl fmt::Display for MissingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Missing request extension: {} was not found. Perhaps you forgot to protect \
             this route with the Cerbos layer (axum: `.route_layer(cerbos.layer(..))`; \
             actix-web: `.wrap(cerbos.guard(..))`) or an authorization attribute?",
            self.what
        )
    }
}

impl std::error::Error for MissingAuthorization {}

#[cfg(feature = "axum")]
impl IntoResponse for MissingAuthorization {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response()
    }
}

/// Implements axum's `FromRequestParts` and `OptionalFromRequestParts`
/// for a type the Cerbos layer puts into the request extensions.
#[cfg(feature = "axum")]
#[doc(hidden)]
#[macro_export]
macro_rules! __axum_extension_extractor {
    ($ty:ty, $name:literal) => {
        impl<S: Send + Sync> $crate::__private::axum_core::extract::FromRequestParts<S> for $ty {
            type Rejection = $crate::MissingAuthorization;

            async fn from_request_parts(
                parts: &mut $crate::__private::http::request::Parts,
                _: &S,
            ) -> Result<Self, Self::Rejection> {
                parts
                    .extensions
                    .get::<$ty>()
                    .cloned()
                    .ok_or($crate::MissingAuthorization::__new($name))
            }
        }

        impl<S: Send + Sync> $crate::__private::axum_core::extract::OptionalFromRequestParts<S>
            for $ty
        {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                parts: &mut $crate::__private::http::request::Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok(parts.extensions.get::<$ty>().cloned())
            }
        }
    };
}

#[cfg(feature = "axum")]
__axum_extension_extractor!(crate::Principal, "cerbos_client::Principal");

#[cfg(feature = "actix")]
impl actix_web::ResponseError for MissingAuthorization {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        tracing::error!("{self}");
        actix_web::HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

/// Implements actix-web's `FromRequest` for a type the Cerbos middleware
/// puts into the request extensions.
#[cfg(feature = "actix")]
#[doc(hidden)]
#[macro_export]
macro_rules! __actix_extension_extractor {
    ($ty:ty, $name:literal) => {
        impl $crate::__private::actix_web::FromRequest for $ty {
            type Error = $crate::MissingAuthorization;
            type Future = std::future::Ready<Result<Self, Self::Error>>;

            fn from_request(
                req: &$crate::__private::actix_web::HttpRequest,
                _: &mut $crate::__private::actix_web::dev::Payload,
            ) -> Self::Future {
                use $crate::__private::actix_web::HttpMessage;
                std::future::ready(
                    req.extensions()
                        .get::<$ty>()
                        .cloned()
                        .ok_or($crate::MissingAuthorization::__new($name)),
                )
            }
        }
    };
}

#[cfg(feature = "actix")]
__actix_extension_extractor!(crate::Principal, "cerbos_client::Principal");
