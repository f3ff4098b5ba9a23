//! Cerbos authorization for axum, built on `cerbos-tower`.
//!
//! Not implemented yet: this crate only reserves its place in the
//! workspace. Until it lands, use [`cerbos_tower::Client`] directly.

pub use cerbos_tower;
