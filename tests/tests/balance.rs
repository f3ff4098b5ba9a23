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
    let client = Client::builder(first.grpc_endpoint())
        .endpoint(second.grpc_endpoint())
        .build()
        .unwrap();
    let request = common::alicia_edits_own_album;
    // Power-of-two-choices balancing spreads calls over ready replicas;
    // bounded: at most 1,000 calls to see both serve.
    let served = |pdp: &Pdp| pdp.logs().matches("CheckResources").count();
    let mut calls = 0;
    while calls < 1000 && (served(&first) == 0 || served(&second) == 0) {
        for _ in 0..50 {
            let response = client
                .check_resources(request())
                .await
                .expect("check succeeds");
            assert!(response.results()[0].is_allowed("edit"));
        }
        calls += 50;
    }
    let (a, b) = (served(&first), served(&second));
    assert!(
        a > 0 && b > 0,
        "both replicas served calls: {a} and {b} after {calls} calls"
    );

    second.stop().unwrap();
    for _ in 0..50 {
        let response = client
            .check_resources(request())
            .await
            .expect("the remaining replica answers");
        assert!(response.results()[0].is_allowed("edit"));
    }
}
