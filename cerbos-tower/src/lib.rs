#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
pub mod layer;

/// The Cerbos client and model, re-exported from [`cerbos_client`] so that
/// one dependency gives both the layer and the client.
#[doc(no_inline)]
pub use cerbos_client::*;

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadmeDoctests;
