//! TLS and mTLS to the real PDP, with certificates generated in the test.

mod common;

use std::path::Path;

use cerbos_testkit::Pdp;
use cerbos_tower::{Client, TlsConfig};
use common::policy_dir;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

/// A CA, a server certificate for `cerbos.test` only, and a client certificate.
fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["cerbos.test".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client.test".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

use common::alicia_edits_own_album as request;

#[tokio::test]
async fn tls_with_a_custom_ca_and_server_name_and_mtls() {
    let ours = pki();
    let dir = std::env::temp_dir().join(format!("cerbos-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = write(&dir, "server.pem", &ours.server_cert_pem);
    let key = write(&dir, "server.key", &ours.server_key_pem);
    let ca = write(&dir, "ca.pem", &ours.ca_pem);
    let pdp = Pdp::builder(policy_dir())
        .tls(cert, key, Some(ca))
        .start()
        .expect("PDP starts with TLS");
    let endpoint = pdp.grpc_endpoint();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");

    // mTLS: our CA, the certificate's name, and a client certificate.
    let mtls = common::live_client(&endpoint)
        .tls(
            TlsConfig::new()
                .ca_certificate(&ours.ca_pem)
                .domain_name("cerbos.test")
                .identity(&ours.client_cert_pem, &ours.client_key_pem),
        )
        .build()
        .unwrap();
    let response = mtls
        .check_resources(request())
        .await
        .expect("mTLS check succeeds");
    assert!(response.results()[0].is_allowed("edit"));

    // The server name must match the certificate: 127.0.0.1 does not.
    let wrong_name = TlsConfig::new()
        .ca_certificate(&ours.ca_pem)
        .identity(&ours.client_cert_pem, &ours.client_key_pem);
    assert_refused(&endpoint, wrong_name, "name mismatch").await;

    // A server certificate from a CA we do not trust is refused.
    let untrusting = TlsConfig::new()
        .ca_certificate(pki().ca_pem)
        .domain_name("cerbos.test");
    assert_refused(&endpoint, untrusting, "untrusted server").await;

    // A client certificate from another CA is refused by the PDP.
    let stranger = pki();
    let forged = TlsConfig::new()
        .ca_certificate(&ours.ca_pem)
        .domain_name("cerbos.test")
        .identity(&stranger.client_cert_pem, &stranger.client_key_pem);
    assert_refused(&endpoint, forged, "unknown client CA").await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A client with `tls` settings cannot talk to the PDP at `endpoint`: the
/// handshake fails and the call reports the PDP unavailable.
async fn assert_refused(endpoint: &str, tls: TlsConfig, why: &str) {
    let client = Client::builder(endpoint).tls(tls).build().unwrap();
    let err = client.check_resources(request()).await.expect_err(why);
    assert!(err.is_unavailable(), "{why}: {err:?}");
}

#[test]
fn tls_settings_on_a_plain_endpoint_are_a_configuration_error() {
    let err = Client::builder("http://127.0.0.1:3593")
        .tls(TlsConfig::new())
        .build()
        .expect_err("TLS on http://");
    assert!(err.to_string().contains("https://"), "{err}");
}
