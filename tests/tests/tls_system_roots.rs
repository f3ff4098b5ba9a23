//! `https://` without a custom CA trusts the platform's root store: a PDP
//! whose certificate chains to a CA in the store (here through
//! `SSL_CERT_FILE`, which the platform loader honours) is reached, and one
//! whose CA is not in it is refused. Before, no root at all was enabled and
//! every such handshake failed.
//!
//! The store is read from the environment, which a test cannot change in
//! its own process without `unsafe`: the test runs itself again as a child
//! process with `SSL_CERT_FILE` set.

mod common;

use std::process::Command;

use cerbos_testkit::Pdp;
use cerbos_tower::Client;
use common::policy_dir;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const CHILD: &str = "CERBOS_TLS_ROOTS_CHILD_ENDPOINT";
const EXPECT: &str = "CERBOS_TLS_ROOTS_CHILD_EXPECT";

/// A CA and a server certificate for `localhost` signed by it (PEM).
fn ca_and_server() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

#[tokio::test]
async fn https_without_a_custom_ca_trusts_the_system_store() {
    if let Ok(endpoint) = std::env::var(CHILD) {
        return child(&endpoint).await;
    }
    let (ca, cert, key) = ca_and_server();
    let dir = std::env::temp_dir().join(format!("cerbos-tls-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let (cert, key, ca_file) = (
        write("server.pem", &cert),
        write("server.key", &key),
        write("ca.pem", &ca),
    );
    let other_ca = write("other-ca.pem", &ca_and_server().0);
    let pdp = Pdp::builder(policy_dir())
        .tls(cert, key, None)
        .start()
        .expect("PDP starts with TLS");
    let endpoint = pdp.grpc_endpoint().replace("127.0.0.1", "localhost");

    for (store, expect) in [(&ca_file, "trusted"), (&other_ca, "refused")] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "https_without_a_custom_ca_trusts_the_system_store",
                "--nocapture",
            ])
            .env(CHILD, &endpoint)
            .env(EXPECT, expect)
            .env("SSL_CERT_FILE", store)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{expect}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "the child ran the check"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// In the child: a client with no TLS settings at all.
async fn child(endpoint: &str) {
    let client = Client::builder(endpoint).build().unwrap();
    let answer = client
        .check_resources(common::alicia_edits_own_album())
        .await;
    match std::env::var(EXPECT).as_deref() {
        Ok("trusted") => {
            let response = answer.expect("a PDP whose CA is in the system store is trusted");
            assert!(response.results()[0].is_allowed("edit"));
        }
        Ok("refused") => {
            let err = answer.expect_err("a PDP whose CA is not in the store is refused");
            assert!(err.is_unavailable(), "{err:?}");
        }
        other => panic!("unknown expectation {other:?}"),
    }
}
