//! Wire-compatible protobuf messages and gRPC stubs for the part of the
//! [Cerbos](https://cerbos.dev) API that `cerbos-client` uses.
//!
//! The `.proto` files in this crate's `proto/` folder are the project's own,
//! with the same packages, message names, field numbers and types as the
//! Cerbos PDP, so the bytes on the wire are identical. The Rust code in
//! `src/gen` is generated from them and checked in, so depending on this crate
//! needs nothing but cargo (no `protoc`, no build script). The test
//! `tests/codegen.rs` regenerates the code with `protox` and fails if the
//! checked-in copy is stale; run it with `CERBOS_PROTO_REGENERATE=1` to update.
//!
//! Well-known types (`google.protobuf.Value`, `Struct`, `Timestamp`, …) are
//! [`prost_types`], so these messages interoperate with other prost code.
//!
//! Most users want the typed client in `cerbos-client` instead of these raw
//! messages.
//!
//! # Features
//! - `grpc`: the gRPC client stubs (tonic); without it, only the messages
//!   (prost), for crates that read Cerbos types without talking to a PDP.
//! - `server`: also the the gRPC server traits (useful for in-process
//!   stubs in tests).
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The `cerbos.*` packages.
pub mod cerbos {
    /// `cerbos.audit.*`
    pub mod audit {
        /// `cerbos.audit.v1`
        pub mod v1 {
            include!("gen/cerbos.audit.v1.rs");
        }
    }
    /// `cerbos.effect.*`
    pub mod effect {
        /// `cerbos.effect.v1`
        pub mod v1 {
            include!("gen/cerbos.effect.v1.rs");
        }
    }
    /// `cerbos.policy.*`
    pub mod policy {
        /// `cerbos.policy.v1`: policies, as the Admin API stores them.
        pub mod v1 {
            include!("gen/cerbos.policy.v1.rs");
        }
    }
    /// `cerbos.schema.*`
    pub mod schema {
        /// `cerbos.schema.v1`
        pub mod v1 {
            include!("gen/cerbos.schema.v1.rs");
        }
    }
    /// `cerbos.engine.*`
    pub mod engine {
        /// `cerbos.engine.v1`
        pub mod v1 {
            include!("gen/cerbos.engine.v1.rs");
        }
    }
    /// `cerbos.request.*`
    pub mod request {
        /// `cerbos.request.v1`
        pub mod v1 {
            include!("gen/cerbos.request.v1.rs");
        }
    }
    /// `cerbos.response.*`
    pub mod response {
        /// `cerbos.response.v1`
        pub mod v1 {
            include!("gen/cerbos.response.v1.rs");
        }
    }
    /// `cerbos.svc.*`
    pub mod svc {
        /// `cerbos.svc.v1`
        pub mod v1 {
            include!("gen/cerbos.svc.v1.rs");
        }
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every file in this
/// crate (with their imports, without comments): what a reflection library
/// such as `prost-reflect` needs for the proto3 JSON mapping of these
/// messages (cerbos-client reads policies written as JSON or YAML with it).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptors.bin");

/// The standard gRPC packages.
pub mod grpc {
    /// `grpc.health.*`
    pub mod health {
        /// `grpc.health.v1`: the standard gRPC health-checking protocol.
        pub mod v1 {
            include!("gen/grpc.health.v1.rs");
        }
    }
}
