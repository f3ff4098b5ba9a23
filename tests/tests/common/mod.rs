//! Shared helpers: one real PDP per test binary, started on first use.

#![allow(dead_code, unreachable_pub)]

use std::{path::PathBuf, sync::OnceLock};

use cerbos_testkit::Pdp;
use cerbos_tower::Client;

/// The policies shipped with these tests.
pub fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The PDP shared by the tests of one binary (killed when the process exits).
pub fn shared_pdp() -> &'static Pdp {
    static PDP: OnceLock<Pdp> = OnceLock::new();
    PDP.get_or_init(|| Pdp::start(policy_dir()).expect("the real Cerbos PDP starts"))
}

/// A client of the shared PDP, for the current runtime.
pub fn client() -> Client {
    Client::builder(shared_pdp().grpc_endpoint())
        .build()
        .expect("client builds")
}

/// alicia asks to edit her own album: allowed by `policies/album.yaml`.
pub fn alicia_edits_own_album() -> cerbos_tower::CheckResources {
    cerbos_tower::CheckResources::new(cerbos_tower::Principal::new("alicia", ["user"])).resource(
        cerbos_tower::Resource::new("album:object", "X3").with_attr("owner", "alicia"),
        ["edit"],
    )
}
