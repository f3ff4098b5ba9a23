//! With the `axum` or `actix` feature: [`PermissionMap`] and [`Decision`]
//! are extractors that read what the layer (or the adapter's middleware) put
//! into the request extensions (the `Principal` extractor is the client's).

#[cfg(any(feature = "axum", feature = "actix"))]
use super::{Decision, PermissionMap};

#[cfg(feature = "axum")]
cerbos_client::__axum_extension_extractor!(PermissionMap, "cerbos_tower::layer::PermissionMap");
#[cfg(feature = "axum")]
cerbos_client::__axum_extension_extractor!(Decision, "cerbos_tower::layer::Decision");

#[cfg(feature = "actix")]
cerbos_client::__actix_extension_extractor!(PermissionMap, "cerbos_tower::layer::PermissionMap");
#[cfg(feature = "actix")]
cerbos_client::__actix_extension_extractor!(Decision, "cerbos_tower::layer::Decision");
