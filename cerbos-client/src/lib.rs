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
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, RandomState};
        let seed = (std::process::id(), std::time::SystemTime::now());
        format!("{:016x}-", RandomState::new().hash_one(seed))
    });
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    push_hex(&mut id, COUNTER.fetch_add(1, Ordering::Relaxed));
    id
}

/// Appends `n` as `format!("{n:08x}")` would, without `format!`, which
/// costs more than the rest of a request id (made once per request the
/// layer checks).
fn push_hex(id: &mut String, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(8);
    for digit in (0..digits).rev() {
        id.push(char::from(HEX[((n >> (digit * 4)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_the_prefix_and_the_counter_in_hex() {
        for n in [
            0,
            1,
            0xf,
            0x10,
            0xffff_ffff,
            0x1_0000_0000,
            0xdead_beef_cafe,
            u64::MAX,
        ] {
            let mut id = String::new();
            super::push_hex(&mut id, n);
            assert_eq!(id, format!("{n:08x}"));
        }
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_ne!(a, b);
        let (prefix, counter) = a.split_once('-').unwrap();
        assert_eq!((prefix.len(), counter.len()), (16, 8), "{a}");
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()), "{a}");
        assert_eq!(
            b.split_once('-').unwrap().0,
            prefix,
            "one prefix per process"
        );
    }
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
