//! With the `axum` or `actix` feature: [`PermissionMap`], [`Decision`] and
//! [`Principal`] are extractors that read what the layer (or the adapter's
//! middleware) put into the request extensions.

use std::fmt;

#[cfg(feature = "axum")]
use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
#[cfg(feature = "axum")]
use http::{StatusCode, header, request::Parts};

#[cfg(any(feature = "axum", feature = "actix"))]
use super::{Decision, PermissionMap};
#[cfg(any(feature = "axum", feature = "actix"))]
use crate::Principal;

/// The rejection of a [`PermissionMap`], [`Decision`] or [`Principal`]
/// extractor on a route that Cerbos does not protect: a 500, since it is
/// the application's bug, whose body says what to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingAuthorization {
    what: &'static str,
}

impl fmt::Display for MissingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Missing request extension: {} was not found. Perhaps you forgot to protect \
             this route with the Cerbos layer (axum: `.route_layer(cerbos.layer(..))`; \
             actix-web: `.wrap(authorization.guard(..))`) or an authorization attribute?",
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
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response()
    }
}

#[cfg(feature = "axum")]
macro_rules! extension_extractor {
    ($ty:ty, $name:literal) => {
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = MissingAuthorization;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                parts
                    .extensions
                    .get::<$ty>()
                    .cloned()
                    .ok_or(MissingAuthorization { what: $name })
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                parts: &mut Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok(parts.extensions.get::<$ty>().cloned())
            }
        }
    };
}

#[cfg(feature = "axum")]
extension_extractor!(PermissionMap, "cerbos_tower::layer::PermissionMap");
#[cfg(feature = "axum")]
extension_extractor!(Decision, "cerbos_tower::layer::Decision");
#[cfg(feature = "axum")]
extension_extractor!(Principal, "cerbos_tower::Principal");

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

#[cfg(feature = "actix")]
macro_rules! actix_extractor {
    ($ty:ty, $name:literal) => {
        impl actix_web::FromRequest for $ty {
            type Error = MissingAuthorization;
            type Future = std::future::Ready<Result<Self, Self::Error>>;

            fn from_request(
                req: &actix_web::HttpRequest,
                _: &mut actix_web::dev::Payload,
            ) -> Self::Future {
                use actix_web::HttpMessage;
                std::future::ready(
                    req.extensions()
                        .get::<$ty>()
                        .cloned()
                        .ok_or(MissingAuthorization { what: $name }),
                )
            }
        }
    };
}

#[cfg(feature = "actix")]
actix_extractor!(PermissionMap, "cerbos_tower::layer::PermissionMap");
#[cfg(feature = "actix")]
actix_extractor!(Decision, "cerbos_tower::layer::Decision");
#[cfg(feature = "actix")]
actix_extractor!(Principal, "cerbos_tower::Principal");
