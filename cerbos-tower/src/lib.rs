#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
mod client;
mod error;
pub mod layer;
pub mod model;
mod plan;

pub use cerbos_proto as proto;
pub use check::{CheckResources, CheckResourcesResponse, Effect, ResourceEntry, ResourceResult};
#[cfg(feature = "tls")]
pub use client::TlsConfig;
pub use client::{Client, ClientBuilder, HealthStatus, RetryPolicy, ServerInfo};
pub use error::{Error, Result};
pub use model::{AttrValue, AuxData, Principal, Resource};
pub use plan::{Expression, Operand, PlanFilter, PlanResources, PlanResourcesResponse};

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;
