//! Shared helpers: one real PDP per test binary, started on first use.

#![allow(dead_code, unreachable_pub)]

pub mod contacts;
pub mod oracle;

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use cerbos_testkit::Pdp;
use cerbos_tower::Client;

/// The call timeout of the tests' clients of a PDP that is up. The tests
/// check decisions, not latency (the benchmarks measure that, and the
/// timeout tests use their own): on a machine busy with the rest of the
/// suite, an answer must never turn into `Unreachable`.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The policies shipped with these tests.
pub fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The contact-directory policies of the examples (`examples/policies`).
pub fn contact_policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

/// A PDP of the contact-directory policies shared by the tests of one
/// binary (killed when the process exits).
pub fn contact_pdp() -> &'static Pdp {
    static PDP: OnceLock<Pdp> = OnceLock::new();
    started(&PDP, contact_policy_dir())
}

/// A client of `contact_pdp()`, for the current runtime.
pub fn contact_client() -> Client {
    client_of(contact_pdp())
}

/// The PDP shared by the tests of one binary (killed when the process exits).
pub fn shared_pdp() -> &'static Pdp {
    static PDP: OnceLock<Pdp> = OnceLock::new();
    started(&PDP, policy_dir())
}

/// A client of the shared PDP, for the current runtime.
pub fn client() -> Client {
    client_of(shared_pdp())
}

fn started(cell: &'static OnceLock<Pdp>, policies: PathBuf) -> &'static Pdp {
    cell.get_or_init(|| Pdp::start(policies).expect("the real Cerbos PDP starts"))
}

/// A client builder for a PDP that is up, with [`LIVE_TIMEOUT`].
pub fn live_client(endpoint: impl Into<String>) -> cerbos_tower::ClientBuilder {
    Client::builder(endpoint).timeout(LIVE_TIMEOUT)
}

fn client_of(pdp: &Pdp) -> Client {
    live_client(pdp.grpc_endpoint())
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

/// The HMAC key of the local JWT key set (`pdp_with_jwt_key_set`).
pub const JWT_SECRET: &[u8] = b"an HMAC key for the integration tests, 256 bits+";

/// A PDP of the test policies with a local JWT key set `local` (HS256,
/// `JWT_SECRET`), and the temporary directory holding the key set (removed
/// on drop).
pub fn pdp_with_jwt_key_set() -> (Pdp, TempDir) {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "cerbos-jwt-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let jwks = serde_json::json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64url(JWT_SECRET)}]});
    let jwks_path = dir.0.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let pdp = Pdp::builder(policy_dir())
        .config_yaml(format!(
            "auxData:\n  jwt:\n    keySets:\n      - id: local\n        local:\n          file: {}\n",
            jwks_path.display()
        ))
        .start()
        .expect("PDP starts with a key set");
    (pdp, dir)
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An HS256 JWT signed with `secret`, for subject `u` with a `department`
/// claim, expiring in 2100.
pub fn jwt(secret: &[u8], department: &str) -> String {
    let claims = serde_json::json!({"sub": "u", "department": department, "exp": 4102444800u64});
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(tag.as_ref()))
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Sends `method path` with `body` as the user `user` (`x-user`) to an
/// actix test service: the status and the body.
pub async fn actix_call<B: actix_web::body::MessageBody>(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    method: &str,
    path: &str,
    user: &str,
    body: &str,
) -> (u16, String) {
    let req = actix_web::test::TestRequest::default()
        .method(method.parse().unwrap())
        .uri(path)
        .insert_header(("x-user", user))
        .set_payload(body.to_owned())
        .to_request();
    let response = actix_web::test::call_service(app, req).await;
    let status = response.status().as_u16();
    let body = actix_web::test::read_body(response).await;
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Sends `method path` as `user` (`None`: no credentials) with `body`
/// to an app under test: the status and the body. The examples' scenarios
/// run the same steps on their axum and actix apps through it.
pub trait Send3: Fn(&'static str, String, Option<&'static str>, String) -> Self::Fut {
    /// The answer to come.
    type Fut: std::future::Future<Output = (u16, String)>;
}

impl<F, Fut> Send3 for F
where
    F: Fn(&'static str, String, Option<&'static str>, String) -> Fut,
    Fut: std::future::Future<Output = (u16, String)>,
{
    type Fut = Fut;
}

/// A [`Send3`] for an axum router; `authorization(user)` is the value of
/// the `authorization` header.
pub fn axum_sender(app: axum::Router, authorization: fn(&str) -> String) -> impl Send3 {
    use tower::ServiceExt;
    move |method: &'static str, path: String, user: Option<&'static str>, body: String| {
        let app = app.clone();
        async move {
            let mut request = http::Request::builder().method(method).uri(path);
            if let Some(user) = user {
                request = request.header("authorization", authorization(user));
            }
            let response = app
                .oneshot(request.body(axum::body::Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    }
}

/// A [`Send3`] for an actix test service (`test::init_service`);
/// `authorization(user)` is the value of the `authorization` header.
pub fn actix_sender<S, B>(app: S, authorization: fn(&str) -> String) -> impl Send3
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    B: actix_web::body::MessageBody,
{
    use actix_web::test;
    let app = std::rc::Rc::new(app);
    move |method: &'static str, path: String, user: Option<&'static str>, body: String| {
        let app = app.clone();
        async move {
            let mut request = test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&path);
            if let Some(user) = user {
                request = request.insert_header(("authorization", authorization(user)));
            }
            let response = test::call_service(&*app, request.set_payload(body).to_request()).await;
            let status = response.status().as_u16();
            let bytes = test::read_body(response).await;
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    }
}

/// A client for a PDP that is not there (nothing listens on port 1).
pub fn unreachable_client() -> Client {
    Client::builder("http://127.0.0.1:1")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// `value` as an attribute: the tests' JSON values are exact (their
/// numbers are within ±2^53), so a failure is a bug in the test.
pub fn json_attr(value: serde_json::Value) -> cerbos_tower::AttrValue {
    cerbos_tower::AttrValue::try_from(value).expect("an exact JSON attribute")
}
