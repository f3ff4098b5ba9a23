//! The client against the real PDP: round trips, chunking, transports,
//! JWTs, audit annotations, per-call options, timeouts, restarts and
//! concurrency.

mod common;

use std::time::{Duration, Instant};

use cerbos_testkit::Pdp;
use cerbos_tower::{
    AuxData, CheckResources, Client, Effect, Error, HealthStatus, Operand, PlanFilter,
    PlanResources, Principal, Resource, RetryPolicy,
};
use common::{client, policy_dir, shared_pdp};
use serde_json::json;

/// The attributes of a JSON object, exactly.
fn obj(v: serde_json::Value) -> serde_json::Value {
    assert!(v.is_object(), "an object");
    v
}

#[tokio::test]
async fn check_round_trip_with_every_json_type() {
    let principal = Principal::new("p1", ["user"])
        .with_serialized_attrs(&obj(json!({
            "s": "p", "n": 7, "b": false, "tags": ["x", "y"]
        })))
        .unwrap();
    let resource = Resource::new("typed", "t1")
        .with_serialized_attrs(&obj(json!({
            "s": "héllo \"quoted\"", "n": 1.5, "i": -42, "b": true, "z": null,
            "l": [1, "a", {"k": [true]}], "o": {"k": {"deep": "v"}}
        })))
        .unwrap();
    let actions = ["string", "number", "bool", "null", "list", "object"];
    let response = client()
        .check_resources(CheckResources::new(principal).resource(resource, actions))
        .await
        .expect("check succeeds");
    let result = &response.results()[0];
    assert_eq!((result.kind(), result.id()), ("typed", "t1"));
    for action in actions {
        assert_eq!(
            result.effect(action),
            Some(Effect::Allow),
            "action {action}"
        );
    }
    assert!(!response.cerbos_call_id().is_empty());

    // The same request with one attribute of each type changed is denied.
    let principal = Principal::new("p1", ["user"])
        .with_serialized_attrs(&obj(json!({
            "s": "q", "n": 7, "b": false, "tags": ["y"]
        })))
        .unwrap();
    let resource = Resource::new("typed", "t1")
        .with_serialized_attrs(&obj(json!({
            "s": "hello", "n": 1.5, "i": -42, "b": "true", "z": 0,
            "l": [1, "b", 3], "o": {"k": {"deep": "w"}}
        })))
        .unwrap();
    let response = client()
        .check_resources(CheckResources::new(principal).resource(resource, actions))
        .await
        .expect("check succeeds");
    let result = &response.results()[0];
    for action in ["string", "bool", "null", "list", "object"] {
        assert!(!result.is_allowed(action), "action {action} must be denied");
    }
    assert!(result.is_allowed("number"));
}

#[tokio::test]
async fn check_results_come_back_per_resource_with_meta() {
    let alicia = Principal::new("alicia", ["user"]);
    let request = CheckResources::new(alicia)
        .resource(
            Resource::new("album:object", "X1")
                .with_attr("owner", "bob")
                .with_attr("public", true),
            ["view", "edit"],
        )
        .resource(
            Resource::new("album:object", "X3")
                .with_attr("owner", "alicia")
                .with_attr("public", false),
            ["view", "edit"],
        )
        .include_meta(true)
        .request_id("my-request-1");
    let response = client()
        .check_resources(request)
        .await
        .expect("check succeeds");
    assert_eq!(response.request_id(), "my-request-1");
    let [x1, x3] = response.results() else {
        panic!("two results")
    };
    assert_eq!(x1.id(), "X1");
    assert!(x1.is_allowed("view") && !x1.is_allowed("edit"));
    assert_eq!(x1.effect("edit"), Some(Effect::Deny));
    assert!(x3.is_allowed("view") && x3.is_allowed("edit"));
    assert!(
        !x3.is_allowed("delete"),
        "an action never asked about is not allowed"
    );
    let meta = x1.meta().expect("meta was asked for");
    let matched = &meta.actions["view"].matched_policy;
    assert!(matched.contains("album"), "matched policy: {matched}");
}

#[tokio::test]
async fn plan_round_trip() {
    let ann = Principal::new("ann", ["user"]);
    let plan = client()
        .plan_resources(
            PlanResources::new(ann.clone(), "document")
                .action("read")
                .include_meta(true),
        )
        .await
        .expect("plan succeeds");
    let PlanFilter::Conditional(condition) = &plan.filter else {
        panic!("a conditional plan, got {:?}", plan.filter)
    };
    let mut variables = Vec::new();
    collect_variables(condition, &mut variables);
    assert!(
        variables.contains(&"request.resource.attr.owner".to_owned()),
        "{variables:?}"
    );
    assert!(
        variables.contains(&"request.resource.attr.public".to_owned()),
        "{variables:?}"
    );
    assert!(plan.filter_debug.as_deref().is_some_and(|d| !d.is_empty()));
    assert_eq!(plan.kind, "document");

    // Two actions: only own drafts are both readable and editable.
    let plan = client()
        .plan_resources(PlanResources::new(ann.clone(), "document").actions_from(["read", "edit"]))
        .await
        .expect("plan succeeds");
    assert_eq!(plan.actions, ["read", "edit"]);
    let PlanFilter::Conditional(condition) = &plan.filter else {
        panic!("conditional")
    };
    let mut variables = Vec::new();
    collect_variables(condition, &mut variables);
    assert!(variables.contains(&"request.resource.attr.status".to_owned()));

    // A known attribute is folded into the plan.
    let plan = client()
        .plan_resources(
            PlanResources::new(ann.clone(), "document")
                .action("read")
                .with_attr("owner", "ann"),
        )
        .await
        .expect("plan succeeds");
    assert_eq!(plan.filter, PlanFilter::AlwaysAllowed);

    let admin = Principal::new("root", ["admin"]);
    let plan = client()
        .plan_resources(PlanResources::new(admin, "document").action("read"))
        .await
        .expect("plan succeeds");
    assert_eq!(plan.filter, PlanFilter::AlwaysAllowed);

    let nobody = Principal::new("guest", ["guest"]);
    let plan = client()
        .plan_resources(PlanResources::new(nobody, "document").action("read"))
        .await
        .expect("plan succeeds");
    assert_eq!(plan.filter, PlanFilter::AlwaysDenied);
}

fn collect_variables(op: &Operand, out: &mut Vec<String>) {
    match op {
        Operand::Variable(v) => out.push(v.clone()),
        Operand::Value(_) => {}
        Operand::Expression(e) => e.operands.iter().for_each(|o| collect_variables(o, out)),
    }
}

#[tokio::test]
async fn chunks_120_resources_in_order() {
    let mut request = CheckResources::new(Principal::new("u", ["user"]));
    for n in 0..120 {
        request.push(
            Resource::new("bulk", format!("b{n}")).with_attr("n", n),
            ["view"],
        );
    }
    let response = client()
        .check_resources(request)
        .await
        .expect("check succeeds");
    assert_eq!(response.results().len(), 120);
    assert_eq!(response.cerbos_call_ids().count(), 3, "50 + 50 + 20");
    for (n, result) in response.results().iter().enumerate() {
        assert_eq!(result.id(), format!("b{n}"));
        assert_eq!(result.is_allowed("view"), n % 3 == 0, "resource b{n}");
    }
}

#[tokio::test]
async fn chunks_70_actions_on_one_resource() {
    let actions: Vec<String> = (0..70)
        .map(|i| {
            if i % 2 == 0 {
                format!("even:{i}")
            } else {
                format!("odd:{i}")
            }
        })
        .collect();
    let request = CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("bulk", "first").with_attr("n", 3), ["view"])
        .resource(
            Resource::new("bulk", "many").with_attr("n", 1),
            actions.clone(),
        )
        .resource(Resource::new("bulk", "last").with_attr("n", 6), ["view"]);
    let response = client()
        .check_resources(request)
        .await
        .expect("check succeeds");
    let ids: Vec<_> = response.results().iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["first", "many", "last"]);
    let many = &response.results()[1];
    assert_eq!(many.actions().count(), 70);
    for action in &actions {
        assert_eq!(
            many.is_allowed(action),
            action.starts_with("even:"),
            "{action}"
        );
    }
    assert!(response.results()[0].is_allowed("view"));
    assert!(response.results()[2].is_allowed("view"));
}

#[tokio::test]
async fn a_request_over_the_server_limit_is_an_invalid_argument() {
    // The client is told the server allows 100 resources; the PDP says no.
    let client = common::live_client(shared_pdp().grpc_endpoint())
        .max_resources_per_request(100)
        .build()
        .expect("client builds");
    let mut request = CheckResources::new(Principal::new("u", ["user"]));
    for n in 0..51 {
        request.push(
            Resource::new("bulk", format!("b{n}")).with_attr("n", n),
            ["view"],
        );
    }
    let err = client
        .check_resources(request)
        .await
        .expect_err("over the limit");
    let Error::InvalidArgument { message } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("exceeds"), "{message}");
}

#[tokio::test]
async fn server_info_and_health() {
    let client = client();
    assert_eq!(
        client.server_info().await.expect("server info").version,
        cerbos_testkit::CERBOS_VERSION
    );
    assert_eq!(
        client.health().await.expect("health"),
        HealthStatus::Serving
    );
}

#[tokio::test]
async fn unix_socket_client() {
    let pdp = Pdp::builder(policy_dir())
        .grpc_on_unix_socket(true)
        .start()
        .expect("PDP starts");
    let endpoint = pdp.grpc_endpoint();
    assert!(endpoint.starts_with("unix:"), "{endpoint}");
    let client = Client::builder(endpoint)
        .connect()
        .await
        .expect("connects over the socket");
    let response = client
        .check_resources(
            CheckResources::new(Principal::new("alicia", ["user"])).resource(
                Resource::new("album:object", "X3").with_attr("owner", "alicia"),
                ["edit"],
            ),
        )
        .await
        .expect("check succeeds");
    assert!(response.results()[0].is_allowed("edit"));
}

#[tokio::test]
async fn jwt_in_aux_data_is_verified_and_read_by_policies() {
    let (pdp, _dir) = common::pdp_with_jwt_key_set();
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let check = |token: String| {
        let client = client.clone();
        async move {
            client
                .check_resources(
                    CheckResources::new(Principal::new("u", ["user"]))
                        .resource(Resource::new("expense", "e1"), ["approve"])
                        .aux_data(AuxData::jwt(token).with_key_set_id("local")),
                )
                .await
        }
    };
    let finance = common::jwt(common::JWT_SECRET, "Finance");
    assert!(check(finance).await.expect("check succeeds").results()[0].is_allowed("approve"));
    let sales = common::jwt(common::JWT_SECRET, "Sales");
    assert!(!check(sales).await.expect("check succeeds").results()[0].is_allowed("approve"));
    let forged = common::jwt(b"some other key entirely, also 256 bits long!!", "Finance");
    let err = check(forged)
        .await
        .expect_err("a forged JWT fails the request");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

#[tokio::test]
async fn named_jwts_are_verified_and_read_by_policies() {
    let (pdp, _dir) = common::pdp_with_jwt_key_set();
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let check = |aux_data: AuxData| {
        let client = client.clone();
        async move {
            client
                .check_resources(
                    CheckResources::new(Principal::new("u", ["user"]))
                        .resource(Resource::new("transfer", "t1"), ["approve"])
                        .aux_data(aux_data),
                )
                .await
        }
    };
    let sales = common::jwt(common::JWT_SECRET, "Sales");
    let finance = common::jwt(common::JWT_SECRET, "Finance");
    // `policies/transfer.yaml` reads both: requester in Sales, approver in Finance.
    let both = AuxData::default()
        .with_jwt("requester", sales.clone(), "local")
        .with_jwt("approver", finance.clone(), "local");
    assert!(
        !format!("{both:?}").contains(&sales),
        "Debug redacts tokens"
    );
    assert!(check(both).await.expect("check succeeds").results()[0].is_allowed("approve"));
    let swapped = AuxData::default()
        .with_jwt("requester", finance.clone(), "local")
        .with_jwt("approver", sales.clone(), "local");
    assert!(!check(swapped).await.expect("check succeeds").results()[0].is_allowed("approve"));
    let one = AuxData::default().with_jwt("requester", sales.clone(), "local");
    assert!(!check(one).await.expect("check succeeds").results()[0].is_allowed("approve"));
    // A forged named JWT fails the request, as a forged single one does.
    let forged = common::jwt(b"some other key entirely, also 256 bits long!!", "Finance");
    let err = check(
        AuxData::default()
            .with_jwt("requester", sales.clone(), "local")
            .with_jwt("approver", forged, "local"),
    )
    .await
    .expect_err("a forged JWT fails the request");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    // The PDP rejects the single JWT and named ones together: the client
    // refuses before sending.
    let err = check(AuxData::jwt(finance).with_jwt("requester", sales, "local"))
        .await
        .expect_err("jwt and jwts together");
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}

/// Reads the PDP's decision log (one JSON entry a line) until an entry for
/// `call_id` appears.
async fn decision_log_entry(path: &std::path::Path, call_id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let entry = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|entry| entry["callId"] == call_id);
        if let Some(entry) = entry {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "no decision log entry for call {call_id} in {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn annotations_are_recorded_in_the_decision_log() {
    let dir = common::TempDir(std::env::temp_dir().join(format!(
        "cerbos-audit-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let log = dir.0.join("decisions.log");
    let pdp = Pdp::builder(policy_dir())
        .config_yaml(format!(
            "audit:\n  enabled: true\n  accessLogsEnabled: false\n  decisionLogsEnabled: true\n  \
             backend: file\n  file:\n    path: {:?}\n",
            log.display().to_string()
        ))
        .start()
        .expect("PDP starts with a decision log");
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let check = client
        .check_resources(
            common::alicia_edits_own_album()
                .annotation("app", "albums")
                .annotation("route", "PUT /albums/{id}")
                .annotation(
                    "trace",
                    common::json_attr(json!({"id": "4bf92f35", "sampled": true})),
                ),
        )
        .await
        .expect("check succeeds");
    assert!(check.results()[0].is_allowed("edit"));
    let entry = decision_log_entry(&log, check.cerbos_call_id()).await;
    assert_eq!(
        entry["requestContext"]["annotations"],
        json!({"app": "albums", "route": "PUT /albums/{id}",
               "trace": {"id": "4bf92f35", "sampled": true}}),
        "{entry}"
    );

    let plan = client
        .plan_resources(
            PlanResources::new(Principal::new("ann", ["user"]), "document")
                .action("read")
                .annotation("app", "documents")
                .annotation("page", 2),
        )
        .await
        .expect("plan succeeds");
    let entry = decision_log_entry(&log, &plan.cerbos_call_id).await;
    assert_eq!(
        entry["requestContext"]["annotations"],
        json!({"app": "documents", "page": 2}),
        "{entry}"
    );

    // Without annotations, no request context is sent.
    let check = client
        .check_resources(common::alicia_edits_own_album())
        .await
        .expect("check succeeds");
    let entry = decision_log_entry(&log, check.cerbos_call_id()).await;
    assert!(entry.get("requestContext").is_none(), "{entry}");
}

#[tokio::test]
async fn is_allowed_answers_one_action() {
    let alicia = || Principal::new("alicia", ["user"]);
    let album = |owner: &str| Resource::new("album:object", "X9").with_attr("owner", owner);
    let client = client();
    assert!(
        client
            .is_allowed(alicia(), album("alicia"), "edit")
            .await
            .unwrap()
    );
    assert!(
        !client
            .is_allowed(alicia(), album("bob"), "edit")
            .await
            .unwrap()
    );
    // An unknown action: no policy rule, not allowed.
    assert!(
        !client
            .is_allowed(alicia(), album("alicia"), "launch")
            .await
            .unwrap()
    );
    // A PDP that cannot be reached is an error, never `true` or `false`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let down = Client::builder(format!("http://{addr}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = down
        .is_allowed(alicia(), album("alicia"), "edit")
        .await
        .expect_err("unreachable");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn answers_carry_the_pdp_version_and_plans_their_matched_scopes() {
    let client = client();
    let version = client.server_info().await.expect("server info").version;
    let check = client
        .check_resources(common::alicia_edits_own_album())
        .await
        .expect("check succeeds");
    assert_eq!(check.cerbos_version(), Some(version.as_str()));
    // Split into calls: the version of the first.
    let mut split = CheckResources::new(Principal::new("alicia", ["user"]));
    for i in 0..60 {
        split.push(
            Resource::new("album:object", format!("A{i}")).with_attr("owner", "alicia"),
            ["edit"],
        );
    }
    let split = client.check_resources(split).await.expect("check succeeds");
    assert_eq!(split.cerbos_call_ids().count(), 2);
    assert_eq!(split.cerbos_version(), Some(version.as_str()));

    let ann = Principal::new("ann", ["user"]);
    let plan = client
        .plan_resources(
            PlanResources::new(ann.clone(), "document")
                .actions_from(["read", "edit"])
                .include_meta(true),
        )
        .await
        .expect("plan succeeds");
    assert_eq!(plan.cerbos_version(), Some(version.as_str()));
    // Unscoped policies: every action matched the root scope ("").
    let mut scopes: Vec<_> = plan.matched_scopes.iter().collect();
    scopes.sort();
    assert_eq!(
        scopes,
        [
            (&"edit".to_owned(), &String::new()),
            (&"read".to_owned(), &String::new())
        ]
    );
    let plan = client
        .plan_resources(PlanResources::new(ann, "document").action("read"))
        .await
        .expect("plan succeeds");
    assert!(plan.matched_scopes.is_empty(), "no meta asked");
}

#[tokio::test]
async fn timeout_fires_against_a_listener_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept connections and hold them open without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = Client::builder(format!("http://{addr}"))
        .timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .check_resources(
            CheckResources::new(Principal::new("u", ["user"]))
                .resource(Resource::new("bulk", "1"), ["view"]),
        )
        .await
        .expect_err("no answer");
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(300),
        "fired early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "fired late: {elapsed:?}");
    holder.abort();
}

#[tokio::test]
async fn eager_connect_to_a_closed_port_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::builder(format!("http://127.0.0.1:{port}"))
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn keeps_working_across_a_pdp_restart() {
    let mut pdp = Pdp::start(policy_dir()).expect("PDP starts");
    let client = common::live_client(pdp.grpc_endpoint())
        .retry(RetryPolicy {
            max_retries: 3,
            ..Default::default()
        })
        .build()
        .unwrap();
    let request = common::alicia_edits_own_album;
    assert!(client.check_resources(request()).await.unwrap().results()[0].is_allowed("edit"));
    pdp.stop().unwrap();
    let err = client
        .check_resources(request())
        .await
        .expect_err("the PDP is down");
    assert!(err.is_unavailable(), "{err:?}");
    pdp.restart().expect("PDP restarts on the same port");
    let response = client
        .check_resources(request())
        .await
        .expect("the same client works again");
    assert!(response.results()[0].is_allowed("edit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_checks_from_one_cloned_client() {
    let client = client();
    let tasks: Vec<_> = (0..1000)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let owner = if n % 2 == 0 { "alicia" } else { "bob" };
                let public = n % 3 == 0;
                let response = client
                    .check_resources(
                        CheckResources::new(Principal::new("alicia", ["user"])).resource(
                            Resource::new("album:object", format!("A{n}"))
                                .with_attr("owner", owner)
                                .with_attr("public", public),
                            ["view", "edit"],
                        ),
                    )
                    .await
                    .expect("check succeeds");
                let result = &response.results()[0];
                assert_eq!(result.id(), format!("A{n}"));
                assert_eq!(
                    result.is_allowed("view"),
                    owner == "alicia" || public,
                    "A{n} view"
                );
                assert_eq!(result.is_allowed("edit"), owner == "alicia", "A{n} edit");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task did not panic");
    }
}
