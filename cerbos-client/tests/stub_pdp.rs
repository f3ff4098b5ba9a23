//! Error mapping against an in-process stub PDP: every gRPC status and every
//! malformed answer maps to the right error, and nothing panics.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use cerbos_client::{
    AuxData, CheckResources, Client, Error, PlanFilter, PlanResources, Principal, Resource,
    RetryPolicy,
    proto::cerbos::{
        engine::v1::{
            PlanResourcesFilter,
            plan_resources_filter::{
                self, Expression, expression::Operand, expression::operand::Node,
            },
        },
        request::v1 as req,
        response::v1::{self as resp, check_resources_response::ResultEntry},
        svc::v1::cerbos_service_server::{CerbosService, CerbosServiceServer},
    },
};
use tonic::{Code, Request, Response, Status};

type CheckFn = dyn Fn(req::CheckResourcesRequest) -> Result<resp::CheckResourcesResponse, Status>
    + Send
    + Sync;
type PlanFn =
    dyn Fn(req::PlanResourcesRequest) -> Result<resp::PlanResourcesResponse, Status> + Send + Sync;

#[derive(Clone)]
struct Stub {
    check: Arc<CheckFn>,
    plan: Arc<PlanFn>,
    delay: Duration,
    calls: Arc<AtomicUsize>,
    last_metadata: Arc<std::sync::Mutex<Option<tonic::metadata::MetadataMap>>>,
}

#[tonic::async_trait]
impl CerbosService for Stub {
    async fn check_resources(
        &self,
        request: Request<req::CheckResourcesRequest>,
    ) -> Result<Response<resp::CheckResourcesResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_metadata.lock().unwrap() = Some(request.metadata().clone());
        tokio::time::sleep(self.delay).await;
        (self.check)(request.into_inner()).map(Response::new)
    }
    async fn plan_resources(
        &self,
        request: Request<req::PlanResourcesRequest>,
    ) -> Result<Response<resp::PlanResourcesResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_metadata.lock().unwrap() = Some(request.metadata().clone());
        (self.plan)(request.into_inner()).map(Response::new)
    }
    async fn server_info(
        &self,
        _: Request<req::ServerInfoRequest>,
    ) -> Result<Response<resp::ServerInfoResponse>, Status> {
        Ok(Response::new(resp::ServerInfoResponse {
            version: "stub".into(),
            ..Default::default()
        }))
    }
}

/// Answers every action of every resource with `effect`, in order.
fn echo(
    effect: i32,
) -> impl Fn(req::CheckResourcesRequest) -> Result<resp::CheckResourcesResponse, Status> {
    move |r| {
        Ok(resp::CheckResourcesResponse {
            request_id: r.request_id,
            results: r
                .resources
                .into_iter()
                .map(|e| result_for(e, effect))
                .collect(),
            cerbos_call_id: "call".into(),
        })
    }
}

fn result_for(entry: req::check_resources_request::ResourceEntry, effect: i32) -> ResultEntry {
    let resource = entry.resource.unwrap_or_default();
    ResultEntry {
        resource: Some(resp::check_resources_response::result_entry::Resource {
            id: resource.id,
            kind: resource.kind,
            ..Default::default()
        }),
        actions: entry.actions.into_iter().map(|a| (a, effect)).collect(),
        ..Default::default()
    }
}

struct Running {
    client: Client,
    calls: Arc<AtomicUsize>,
    addr: std::net::SocketAddr,
    last_metadata: Arc<std::sync::Mutex<Option<tonic::metadata::MetadataMap>>>,
}

async fn serve(
    check: Arc<CheckFn>,
    plan: Arc<PlanFn>,
    delay: Duration,
    retry: RetryPolicy,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let last_metadata = Arc::new(std::sync::Mutex::new(None));
    let stub = Stub {
        last_metadata: last_metadata.clone(),
        check,
        plan,
        delay,
        calls: calls.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CerbosServiceServer::new(stub))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // The default call timeout (2 s): generous enough that a busy test
    // machine never turns an answer into a timeout.
    let client = Client::builder(format!("http://{addr}"))
        .retry(retry)
        .build()
        .unwrap();
    Running {
        client,
        calls,
        addr,
        last_metadata,
    }
}

async fn with_check(
    check: impl Fn(req::CheckResourcesRequest) -> Result<resp::CheckResourcesResponse, Status>
    + Send
    + Sync
    + 'static,
) -> Running {
    serve(
        Arc::new(check),
        Arc::new(|_| Err(Status::unimplemented(""))),
        Duration::ZERO,
        RetryPolicy::default(),
    )
    .await
}

/// A stub PDP answering plans with `plan`; the answer's kind, actions and
/// policy version echo the request's unless `plan` set them.
async fn with_plan(
    plan: impl Fn(req::PlanResourcesRequest) -> Result<resp::PlanResourcesResponse, Status>
    + Send
    + Sync
    + 'static,
) -> Running {
    let echoing = move |request: req::PlanResourcesRequest| {
        let resource = request.resource.clone().unwrap_or_default();
        let actions = request.actions.clone();
        let mut answer = plan(request)?;
        if answer.resource_kind.is_empty() {
            answer.resource_kind = resource.kind;
        }
        if answer.actions.is_empty() {
            answer.actions = actions;
        }
        if answer.policy_version.is_empty() {
            answer.policy_version = "default".into();
        }
        Ok(answer)
    };
    serve(
        Arc::new(echo(1)),
        Arc::new(echoing),
        Duration::ZERO,
        RetryPolicy::default(),
    )
    .await
}

fn one_check() -> CheckResources {
    CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("doc", "1"), ["read", "write"])
}

/// `PermissionDenied` -> `PERMISSION_DENIED`, as the gRPC spec names codes.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[tokio::test]
async fn every_grpc_status_maps_to_an_error() {
    let cases = [
        (Code::InvalidArgument, "InvalidArgument"),
        (Code::DeadlineExceeded, "Timeout"),
        (Code::Unavailable, "Unavailable"),
        (Code::Cancelled, "Status"),
        (Code::Unknown, "Status"),
        (Code::NotFound, "Status"),
        (Code::AlreadyExists, "Status"),
        (Code::PermissionDenied, "Status"),
        (Code::ResourceExhausted, "Status"),
        (Code::FailedPrecondition, "Status"),
        (Code::Aborted, "Status"),
        (Code::OutOfRange, "Status"),
        (Code::Unimplemented, "Status"),
        (Code::Internal, "Status"),
        (Code::DataLoss, "Status"),
        (Code::Unauthenticated, "Status"),
    ];
    for (code, expected) in cases {
        let pdp = with_check(move |_| Err(Status::new(code, "boom"))).await;
        let err = pdp
            .client
            .check_resources(one_check())
            .await
            .expect_err("an error status");
        let got = match &err {
            Error::InvalidArgument { message } => {
                assert!(message.contains("boom"));
                "InvalidArgument"
            }
            Error::Timeout(_) => "Timeout",
            Error::Unavailable { .. } => "Unavailable",
            Error::Status { code: c, message } => {
                assert_eq!(c.0, code as i32);
                assert_eq!(c.to_string(), upper_snake(&format!("{code:?}")));
                assert!(message.contains("boom"));
                "Status"
            }
            other => panic!("{code:?} mapped to {other:?}"),
        };
        assert_eq!(got, expected, "{code:?} -> {err:?}");
    }
}

#[tokio::test]
async fn unavailable_is_retried_with_backoff_then_reported() {
    let pdp = with_check(|_| Err(Status::unavailable("restarting"))).await;
    let err = pdp
        .client
        .check_resources(one_check())
        .await
        .expect_err("still unavailable");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert_eq!(
        pdp.calls.load(Ordering::SeqCst),
        4,
        "one attempt and three retries"
    );
}

#[tokio::test]
async fn a_transient_unavailable_is_invisible_to_the_caller() {
    let failures = Arc::new(AtomicUsize::new(0));
    let pdp = with_check(move |r| {
        if failures.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(Status::unavailable("connection closed (GOAWAY)"))
        } else {
            echo(1)(r)
        }
    })
    .await;
    let response = pdp
        .client
        .check_resources(one_check())
        .await
        .expect("retried to success");
    assert!(response.results()[0].is_allowed("read"));
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let pdp = with_check(|_| Err(Status::internal("bug"))).await;
    pdp.client
        .check_resources(one_check())
        .await
        .expect_err("internal");
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_pdp_times_out() {
    let pdp = serve(
        Arc::new(echo(1)),
        Arc::new(|_| Err(Status::unimplemented(""))),
        Duration::from_secs(5),
        RetryPolicy::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let err = pdp
        .client
        .check_resources(one_check())
        .await
        .expect_err("too slow");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "fired early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "fired late: {elapsed:?}");
}

#[tokio::test]
async fn unknown_unspecified_and_missing_effects_deny() {
    for effect in [0, 2, 3, 4, 99, -1] {
        let pdp = with_check(echo(effect)).await;
        let response = pdp
            .client
            .check_resources(one_check())
            .await
            .expect("an answer");
        assert!(!response.results()[0].is_allowed("read"), "effect {effect}");
        assert!(!response.all_allowed());
    }
    // The PDP leaves out an action it was asked: the answer is malformed
    // (fail closed), not a partial answer.
    let pdp = with_check(|r| {
        let mut answer = echo(1)(r)?;
        answer.results[0].actions.remove("write");
        Ok(answer)
    })
    .await;
    let answer = pdp.client.check_resources(one_check()).await;
    assert!(
        matches!(answer, Err(Error::MalformedResponse(_))),
        "{answer:?}"
    );
}

#[tokio::test]
async fn malformed_check_answers_are_errors() {
    type Mangle = fn(&mut resp::CheckResourcesResponse);
    let cases: [(&str, Mangle); 5] = [
        ("no results", |a| a.results.clear()),
        ("an extra result", |a| {
            let extra = a.results[0].clone();
            a.results.push(extra);
        }),
        ("another resource's id", |a| {
            a.results[0].resource.as_mut().unwrap().id = "2".into()
        }),
        ("another kind", |a| {
            a.results[0].resource.as_mut().unwrap().kind = "folder".into()
        }),
        ("a result without its resource", |a| {
            a.results[0].resource = None
        }),
    ];
    for (name, mangle) in cases {
        let pdp = with_check(move |r| {
            let mut answer = echo(1)(r)?;
            mangle(&mut answer);
            Ok(answer)
        })
        .await;
        let err = pdp
            .client
            .check_resources(one_check())
            .await
            .expect_err(name);
        assert!(
            matches!(err, Error::MalformedResponse(_)),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test]
async fn results_out_of_order_in_a_chunk_are_errors() {
    let pdp = with_check(|r| {
        let mut answer = echo(1)(r)?;
        answer.results.reverse();
        Ok(answer)
    })
    .await;
    let mut request = CheckResources::new(Principal::new("u", ["user"]));
    for n in 0..60 {
        request.push(Resource::new("doc", n.to_string()), ["read"]);
    }
    let err = pdp
        .client
        .check_resources(request)
        .await
        .expect_err("reordered");
    assert!(matches!(err, Error::MalformedResponse(_)), "{err:?}");
}

#[tokio::test]
async fn chunked_answers_are_reassembled_in_order() {
    let pdp = with_check(echo(1)).await;
    let actions: Vec<String> = (0..70).map(|i| format!("a{i}")).collect();
    let mut request = CheckResources::new(Principal::new("u", ["user"]));
    for n in 0..120 {
        request.push(
            Resource::new("doc", n.to_string()),
            if n == 7 {
                actions.clone()
            } else {
                vec!["read".into()]
            },
        );
    }
    let response = pdp
        .client
        .check_resources(request)
        .await
        .expect("an answer");
    assert_eq!(response.results().len(), 120);
    assert_eq!(
        pdp.calls.load(Ordering::SeqCst),
        3,
        "121 pieces in chunks of 50"
    );
    for (n, result) in response.results().iter().enumerate() {
        assert_eq!(result.id(), n.to_string());
    }
    assert_eq!(response.results()[7].actions().count(), 70);
    assert!(response.all_allowed());
}

#[tokio::test]
async fn invalid_requests_are_rejected_before_sending() {
    let pdp = with_check(echo(1)).await;
    let empty = CheckResources::new(Principal::new("u", ["user"]));
    assert!(matches!(
        pdp.client.check_resources(empty).await,
        Err(Error::InvalidRequest(_))
    ));
    let no_actions = CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("doc", "1"), Vec::<String>::new());
    assert!(matches!(
        pdp.client.check_resources(no_actions).await,
        Err(Error::InvalidRequest(_))
    ));
    let no_plan_actions = PlanResources::new(Principal::new("u", ["user"]), "doc");
    assert!(matches!(
        pdp.client.plan_resources(no_plan_actions).await,
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 0);
}

fn plan_answer(filter: Option<PlanResourcesFilter>) -> resp::PlanResourcesResponse {
    resp::PlanResourcesResponse {
        filter,
        ..Default::default()
    }
}

fn var(name: &str) -> Operand {
    Operand {
        node: Some(Node::Variable(name.into())),
    }
}

#[tokio::test]
async fn plans_map_to_filters() {
    let pdp = with_plan(|_| {
        Ok(plan_answer(Some(PlanResourcesFilter {
            kind: plan_resources_filter::Kind::Conditional as i32,
            condition: Some(Operand {
                node: Some(Node::Expression(Expression {
                    operator: "eq".into(),
                    operands: vec![
                        var("request.resource.attr.owner"),
                        Operand {
                            node: Some(Node::Value(prost_types::Value {
                                kind: Some(prost_types::value::Kind::StringValue("ann".into())),
                            })),
                        },
                    ],
                })),
            }),
        })))
    })
    .await;
    let plan = pdp
        .client
        .plan_resources(PlanResources::new(Principal::new("ann", ["user"]), "doc").action("read"))
        .await
        .expect("a plan");
    let PlanFilter::Conditional(cerbos_client::Operand::Expression(e)) = plan.filter else {
        panic!()
    };
    assert_eq!(e.operator, "eq");
    assert_eq!(
        e.operands[0],
        cerbos_client::Operand::Variable("request.resource.attr.owner".into())
    );
    assert_eq!(e.operands[1], cerbos_client::Operand::Value("ann".into()));
}

#[tokio::test]
async fn malformed_plans_are_errors() {
    type Make = fn() -> resp::PlanResourcesResponse;
    let cases: [(&str, Make); 5] = [
        ("no filter", || plan_answer(None)),
        ("unspecified kind", || {
            plan_answer(Some(PlanResourcesFilter {
                kind: 0,
                condition: None,
            }))
        }),
        ("unknown kind", || {
            plan_answer(Some(PlanResourcesFilter {
                kind: 42,
                condition: None,
            }))
        }),
        ("conditional without condition", || {
            plan_answer(Some(PlanResourcesFilter {
                kind: 3,
                condition: None,
            }))
        }),
        ("empty operand deep inside", || {
            plan_answer(Some(PlanResourcesFilter {
                kind: 3,
                condition: Some(Operand {
                    node: Some(Node::Expression(Expression {
                        operator: "and".into(),
                        operands: vec![var("x"), Operand { node: None }],
                    })),
                }),
            }))
        }),
    ];
    for (name, make) in cases {
        let pdp = with_plan(move |_| Ok(make())).await;
        let err = pdp
            .client
            .plan_resources(
                PlanResources::new(Principal::new("ann", ["user"]), "doc").action("read"),
            )
            .await
            .expect_err(name);
        assert!(
            matches!(err, Error::MalformedResponse(_)),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test]
async fn bad_configuration_is_an_error_at_construction() {
    for (endpoint, hint) in [
        ("127.0.0.1:3593", "http://"),
        ("ftp://x", "http://"),
        ("", "http://"),
    ] {
        let err = Client::builder(endpoint).build().expect_err(endpoint);
        assert!(
            matches!(&err, Error::Config(m) if m.contains(hint)),
            "{endpoint}: {err}"
        );
    }
    let err = Client::builder("http://127.0.0.1:1")
        .header("bad header", "x")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("bad header"), "{err}");
    let err = Client::builder("http://127.0.0.1:1")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    let err = Client::builder("http://127.0.0.1:1")
        .max_resources_per_request(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
}

#[tokio::test]
async fn custom_headers_user_agent_and_request_ids_reach_the_pdp() {
    let pdp = with_check(echo(1)).await;
    let client = Client::builder(format!("http://{}", pdp.addr))
        .header("x-tenant", "acme")
        .user_agent("contacts-app/1.0")
        .build()
        .unwrap();
    let response = client
        .check_resources(one_check().request_id("req-7"))
        .await
        .expect("an answer");
    assert_eq!(response.request_id(), "req-7");
    let metadata = pdp
        .last_metadata
        .lock()
        .unwrap()
        .clone()
        .expect("a call arrived");
    assert_eq!(metadata.get("x-tenant").unwrap(), "acme");
    let ua = metadata
        .get("user-agent")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ua.starts_with("contacts-app/1.0"), "{ua}");
    assert!(
        metadata.get("grpc-timeout").is_some(),
        "the deadline is sent to the PDP"
    );

    // Without a request id, each call gets a fresh one.
    let a = client.check_resources(one_check()).await.unwrap();
    let b = client.check_resources(one_check()).await.unwrap();
    assert!(!a.request_id().is_empty());
    assert_ne!(a.request_id(), b.request_id());
}

#[tokio::test]
async fn a_piece_answer_cannot_override_another_with_an_action_it_was_not_asked() {
    // 70 actions on one resource: pieces of 50 and 20 actions (two entries
    // of one call). The PDP denies `a0` (asked in the first piece); the
    // answer to the second piece lies, adding `a0: ALLOW`, which it was not
    // asked about.
    let pdp = with_check(|r: req::CheckResourcesRequest| {
        let mut answer = echo(1)(r)?;
        for result in &mut answer.results {
            let first_piece = result.actions.contains_key("a0");
            result
                .actions
                .insert("a0".into(), if first_piece { 2 } else { 1 });
        }
        Ok(answer)
    })
    .await;
    let actions: Vec<String> = (0..70).map(|i| format!("a{i}")).collect();
    let request = CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("doc", "1"), actions);
    let answer = pdp.client.check_resources(request).await;
    assert!(
        matches!(answer, Err(Error::MalformedResponse(_))),
        "a lying piece must fail the call, got {answer:?}"
    );
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn entries_for_the_same_resource_go_in_separate_calls() {
    // Two entries for doc 1 with different attributes; the PDP allows only
    // the one with `v: 2`, and lies by answering every call's results in
    // reverse order. Had both entries shared a call, the reversal would
    // have given the `v: 1` entry the `v: 2` entry's ALLOW.
    let pdp = with_check(|r: req::CheckResourcesRequest| {
        let mut results: Vec<ResultEntry> = r
            .resources
            .into_iter()
            .map(|e| {
                let v2 = e
                    .resource
                    .as_ref()
                    .and_then(|res| res.attr.get("v"))
                    .is_some_and(|v| v.kind == Some(prost_types::value::Kind::NumberValue(2.0)));
                result_for(e, if v2 { 1 } else { 2 })
            })
            .collect();
        results.reverse();
        Ok(resp::CheckResourcesResponse {
            request_id: r.request_id,
            results,
            cerbos_call_id: "call".into(),
        })
    })
    .await;
    let request = CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("doc", "1").with_attr("v", 1), ["read"])
        .resource(Resource::new("doc", "1").with_attr("v", 2), ["read"]);
    let response = pdp
        .client
        .check_resources(request)
        .await
        .expect("an answer");
    assert!(!response.results()[0].is_allowed("read"));
    assert!(response.results()[1].is_allowed("read"));
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_plan_for_another_kind_action_or_version_is_malformed() {
    let always = || {
        plan_answer(Some(PlanResourcesFilter {
            kind: plan_resources_filter::Kind::AlwaysAllowed as i32,
            condition: None,
        }))
    };
    type Lie = fn(&mut resp::PlanResourcesResponse);
    let lies: [(&str, Lie); 4] = [
        ("a company/list plan for contact/read", |a| {
            a.resource_kind = "company".into();
            a.actions = vec!["list".into()];
        }),
        ("another kind", |a| a.resource_kind = "company".into()),
        ("another action", |a| a.actions = vec!["list".into()]),
        ("another policy version", |a| a.policy_version = "v9".into()),
    ];
    for (what, lie) in lies {
        let pdp = with_plan(move |_| {
            let mut answer = always();
            lie(&mut answer);
            Ok(answer)
        })
        .await;
        let plan = pdp
            .client
            .plan_resources(
                PlanResources::new(Principal::new("u", ["user"]), "contact").action("read"),
            )
            .await;
        assert!(
            matches!(plan, Err(Error::MalformedResponse(_))),
            "{what}: {plan:?}"
        );
    }
    // The honest answer is accepted.
    let pdp = with_plan(move |_| Ok(always())).await;
    let plan = pdp
        .client
        .plan_resources(PlanResources::new(Principal::new("u", ["user"]), "contact").action("read"))
        .await
        .expect("an honest plan");
    assert_eq!(plan.filter, PlanFilter::AlwaysAllowed);
}

#[tokio::test]
async fn an_answer_is_trusted_only_for_the_actions_asked() {
    // Asked `read`; the PDP answers `read: DENY` and, unasked, `delete: ALLOW`.
    let pdp = with_check(|r: req::CheckResourcesRequest| {
        let mut answer = echo(2)(r)?;
        answer.results[0].actions.insert("delete".into(), 1);
        Ok(answer)
    })
    .await;
    let request = CheckResources::new(Principal::new("u", ["user"]))
        .resource(Resource::new("doc", "1"), ["read"]);
    let answer = pdp.client.check_resources(request).await;
    assert!(
        matches!(answer, Err(Error::MalformedResponse(_))),
        "{answer:?}"
    );
}

/// The metadata of the last call the stub PDP received.
fn last_metadata(pdp: &Running) -> tonic::metadata::MetadataMap {
    pdp.last_metadata
        .lock()
        .unwrap()
        .clone()
        .expect("a call arrived")
}

/// The values of header `name` in `metadata`.
fn values(metadata: &tonic::metadata::MetadataMap, name: &str) -> Vec<String> {
    metadata
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn per_call_headers_win_over_client_wide_ones_on_every_attempt() {
    // The first attempt is UNAVAILABLE: the retry must carry the headers too.
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let pdp = with_check(move |r| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Status::unavailable("restarting"));
        }
        echo(1)(r)
    })
    .await;
    let client = Client::builder(format!("http://{}", pdp.addr))
        .header("x-tenant", "acme")
        .header("x-app", "contacts")
        .playground_instance("pg-42")
        .build()
        .unwrap();
    let response = client
        .check_resources(
            one_check()
                .header("x-tenant", "globex")
                .header("x-route", "GET /contacts"),
        )
        .await
        .expect("an answer after one retry");
    assert!(response.all_allowed());
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let metadata = last_metadata(&pdp);
    assert_eq!(values(&metadata, "x-tenant"), ["globex"], "per-call wins");
    assert_eq!(values(&metadata, "x-route"), ["GET /contacts"]);
    assert_eq!(values(&metadata, "x-app"), ["contacts"]);
    assert_eq!(values(&metadata, "playground-instance"), ["pg-42"]);
    // The stub sends no `cerbos-version` header.
    assert_eq!(response.cerbos_version(), None);

    // The next call without per-call headers sends the client-wide ones only.
    client.check_resources(one_check()).await.unwrap();
    let metadata = last_metadata(&pdp);
    assert_eq!(values(&metadata, "x-tenant"), ["acme"]);
    assert!(metadata.get("x-route").is_none());
}

#[tokio::test]
async fn plans_send_per_call_headers_and_annotations() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    let pdp = with_plan(move |r| {
        *keep.lock().unwrap() = r.request_context.clone();
        Ok(plan_answer(Some(PlanResourcesFilter {
            kind: plan_resources_filter::Kind::AlwaysAllowed as i32,
            condition: None,
        })))
    })
    .await;
    let plan = pdp
        .client
        .plan_resources(
            PlanResources::new(Principal::new("u", ["user"]), "doc")
                .action("read")
                .header("x-tenant", "globex")
                .annotation("app", "contacts")
                .annotation("ratio", f64::INFINITY),
        )
        .await
        .expect("a plan");
    assert_eq!(plan.filter, PlanFilter::AlwaysAllowed);
    assert!(plan.matched_scopes.is_empty(), "no meta, no scopes");
    assert_eq!(values(&last_metadata(&pdp), "x-tenant"), ["globex"]);
    let context = seen.lock().unwrap().clone().expect("a request context");
    let app = &context.annotations["app"];
    assert_eq!(
        app.kind,
        Some(prost_types::value::Kind::StringValue("contacts".into()))
    );
    assert_eq!(
        context.annotations["ratio"].kind,
        Some(prost_types::value::Kind::NumberValue(f64::INFINITY)),
        "a non-finite number is fine on the wire"
    );
}

#[tokio::test]
async fn invalid_per_call_headers_and_mixed_jwts_are_rejected_before_sending() {
    let pdp = with_check(echo(1)).await;
    let bad_checks = [
        one_check().header("not a name", "v"),
        one_check().header("x-ok", "line\nbreak"),
        one_check().header("x-ok", "caf\u{e9}"),
        one_check().aux_data(AuxData::jwt("t1").with_jwt("second", "t2", "")),
    ];
    for request in bad_checks {
        let shown = format!("{request:?}");
        let err = pdp.client.check_resources(request).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{shown}: {err:?}");
    }
    let plan = || PlanResources::new(Principal::new("u", ["user"]), "doc").action("read");
    let bad_plans = [
        plan().header("Bad Name", "v"),
        plan().aux_data(AuxData::jwt("t1").with_jwt("second", "t2", "")),
    ];
    for request in bad_plans {
        let err = pdp.client.plan_resources(request).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    }
    assert_eq!(pdp.calls.load(Ordering::SeqCst), 0, "nothing was sent");
    // A client-wide playground instance id must be a valid value too.
    let err = Client::builder(format!("http://{}", pdp.addr))
        .playground_instance("bad\nid")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn is_allowed_is_true_only_for_an_explicit_allow() {
    let alice = || Principal::new("alice", ["user"]);
    let doc = || Resource::new("doc", "1");
    for (effect, allowed) in [(1, true), (2, false), (3, false), (0, false), (9, false)] {
        let pdp = with_check(echo(effect)).await;
        assert_eq!(
            pdp.client.is_allowed(alice(), doc(), "read").await.unwrap(),
            allowed,
            "effect {effect}"
        );
    }
    // No effect for the action asked: malformed, an error, not `false`.
    let pdp = with_check(|r| {
        let mut answer = echo(1)(r)?;
        answer.results[0].actions.clear();
        Ok(answer)
    })
    .await;
    let err = pdp
        .client
        .is_allowed(alice(), doc(), "read")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedResponse(_)), "{err:?}");
    let pdp = with_check(|_| Err(Status::permission_denied("no"))).await;
    assert!(pdp.client.is_allowed(alice(), doc(), "read").await.is_err());
}

#[tokio::test]
async fn the_trace_context_provider_sends_traceparent_and_tracestate_unless_the_call_has_one() {
    let pdp = with_check(echo(1)).await;
    let sampled = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = sampled.clone();
    let client = Client::builder(format!("http://{}", pdp.addr))
        .trace_context(move || {
            flag.load(Ordering::SeqCst).then(|| {
                cerbos_client::TraceContext::new(
                    0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                    0x00f0_67aa_0ba9_02b7,
                    true,
                )
                .unwrap()
                .with_tracestate("rojo=00f067aa0ba902b7")
            })
        })
        .build()
        .unwrap();
    client.check_resources(one_check()).await.unwrap();
    let metadata = last_metadata(&pdp);
    assert_eq!(
        values(&metadata, "traceparent"),
        ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
    );
    assert_eq!(values(&metadata, "tracestate"), ["rojo=00f067aa0ba902b7"]);

    // A call that carries its own traceparent (the layer forwarding the
    // incoming one) keeps it, and gets no tracestate from the provider.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    client
        .check_resources(one_check().header("traceparent", own))
        .await
        .unwrap();
    let metadata = last_metadata(&pdp);
    assert_eq!(values(&metadata, "traceparent"), [own]);
    assert!(metadata.get("tracestate").is_none());

    // No current trace: nothing is sent.
    sampled.store(false, Ordering::SeqCst);
    client.check_resources(one_check()).await.unwrap();
    assert!(last_metadata(&pdp).get("traceparent").is_none());
}
