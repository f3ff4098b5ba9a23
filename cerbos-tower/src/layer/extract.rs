//! With the `axum` feature: [`PermissionMap`], [`Decision`] and
//! [`Principal`] are axum extractors that read what the layer put into the
//! request extensions.

use std::fmt;

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{StatusCode, header, request::Parts};

use super::{Decision, PermissionMap};
use crate::Principal;

/// The rejection of a [`PermissionMap`], [`Decision`] or [`Principal`]
/// extractor on a route the Cerbos layer does not protect: a 500, since
/// it is the application's bug, whose body says what to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingAuthorization {
    what: &'static str,
}

impl fmt::Display for MissingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Missing request extension: {} was not found. Perhaps you forgot to protect \
             this route with the Cerbos layer (`.route_layer(cerbos.layer(..))`) or an \
             authorization attribute?",
            self.what
        )
    }
}

impl std::error::Error for MissingAuthorization {}

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

extension_extractor!(PermissionMap, "cerbos_tower::layer::PermissionMap");
extension_extractor!(Decision, "cerbos_tower::layer::Decision");
extension_extractor!(Principal, "cerbos_tower::Principal");
