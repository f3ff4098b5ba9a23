//! `ClientBuilder::build` outside a Tokio runtime is an error that says
//! what to do, not a panic (tonic spawns the connection's worker).

use cerbos_client::{Client, Error};

#[test]
fn build_outside_a_runtime_is_an_error_not_a_panic() {
    let built = std::panic::catch_unwind(|| Client::builder("http://127.0.0.1:3593").build());
    let Ok(result) = built else {
        panic!("ClientBuilder::build panicked outside a runtime");
    };
    match result {
        Err(Error::Config(message)) => assert!(message.contains("Tokio runtime"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // Inside one, the same call builds.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    assert!(Client::builder("http://127.0.0.1:3593").build().is_ok());
}
