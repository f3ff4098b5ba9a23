//! Several PDP replicas behind one client.

mod common;

use cerbos_testkit::Pdp;
use cerbos_tower::Client;
use common::policy_dir;

#[tokio::test]
async fn calls_are_balanced_across_replicas_and_survive_losing_one() {
    let first = Pdp::builder(policy_dir())
        .log_level("info")
        .start()
        .expect("PDP 1");
    let mut second = Pdp::builder(policy_dir())
        .log_level("info")
        .start()
        .expect("PDP 2");
    let client = common::live_client(first.grpc_endpoint())
        .endpoint(second.grpc_endpoint())
        .build()
        .unwrap();
    // Power-of-two-choices balancing spreads calls over ready replicas;
    // bounded: at most 1,000 calls to see both serve.
    let served = |pdp: &Pdp| pdp.logs().matches("CheckResources").count();
    let mut calls = 0;
    while calls < 1000 && (served(&first) == 0 || served(&second) == 0) {
        fifty_allowed_checks(&client, "check succeeds").await;
        calls += 50;
    }
    let (a, b) = (served(&first), served(&second));
    assert!(
        a > 0 && b > 0,
        "both replicas served calls: {a} and {b} after {calls} calls"
    );

    second.stop().unwrap();
    fifty_allowed_checks(&client, "the remaining replica answers").await;
}

/// Fifty checks that must each succeed and allow.
async fn fifty_allowed_checks(client: &Client, what: &str) {
    for _ in 0..50 {
        let response = client
            .check_resources(common::alicia_edits_own_album())
            .await
            .expect(what);
        assert!(response.results()[0].is_allowed("edit"));
    }
}
