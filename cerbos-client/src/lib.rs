#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The wire side of checks and plans (chunking, reassembly, decoding) is
// used by the gRPC client only, but compiled and unit-tested without it too.
#[cfg(feature = "admin")]
pub mod admin;
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
#[macro_use]
mod check;
#[cfg(feature = "grpc")]
mod client;
mod error;
mod extract;
mod model;
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
mod plan;
mod serialize;
mod trace;

pub use cerbos_proto as proto;
pub use check::{CheckResources, CheckResourcesResponse, Effect, ResourceEntry, ResourceResult};
#[cfg(feature = "tls")]
pub use client::TlsConfig;
#[cfg(feature = "grpc")]
pub use client::{
    Client, ClientBuilder, HealthStatus, Resolver, RetryPolicy, ServerInfo, SystemResolver,
};
pub use error::{Error, ErrorMessage, GrpcCode, Result};
pub use extract::MissingAuthorization;
pub use model::{AttrValue, AuxData, InexactNumber, Principal, Resource};
pub use plan::{Expression, Operand, PlanFilter, PlanResources, PlanResourcesResponse};
pub use serialize::AttrError;
pub use trace::{TRACEPARENT, TRACESTATE, TraceContext};

/// A new request id, unique to this process run (a random per-process
/// prefix and a counter): what the client sends when a request names none.
pub fn new_request_id() -> String {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    };
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}-{n:08x}")
}

/// Not public API: what the extractor macros expand to.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "actix")]
    pub use actix_web;
    #[cfg(feature = "axum")]
    pub use axum_core;
    #[cfg(feature = "axum")]
    pub use http;
}
