//! What the tower layer costs.
//!
//! `cargo bench -p cerbos-benches --bench layer`:
//!
//! - `layer_overhead/{bare,layered}`: one request through a bare
//!   `service_fn`, and through the same service behind the layer with an
//!   instant in-process stub PDP (principal from the extensions, id from
//!   the path, one required and two extra actions). The difference is the
//!   layer's own cost per request.
//! - `end_to_end/{client,axum}/concurrency/N`: checks per second against
//!   the real PDP, calling the client directly, and sending requests
//!   through an axum router protected by the layer, at the same
//!   concurrency.

#![allow(missing_docs)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Extension, Router, body::Body, routing::get};
use cerbos_proto::cerbos::response::v1::{
    CheckResourcesResponse as WireResponse, check_resources_response as wire,
};
use cerbos_testkit::Pdp as TestPdp;
use cerbos_tower::{
    CheckResources, CheckResourcesResponse, Client, Principal, Resource,
    layer::{Actions, Cerbos, PermissionMap, ResourceFromPath},
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

fn principal(n: u64) -> Principal {
    let (id, department) = match n % 4 {
        0 => ("1", "IT"),
        1 => ("2", "Sales"),
        2 => ("3", "Sales"),
        _ => ("4", "Marketing"),
    };
    Principal::new(id, [if id == "1" { "admin" } else { "user" }])
        .with_attr("department", department)
}

fn request(n: u64) -> Request<Body> {
    let mut request = Request::builder()
        .uri(format!("/contacts/{}", n % 100))
        .body(Body::empty())
        .expect("request");
    request.extensions_mut().insert(principal(n));
    request
}

/// The answer an instant PDP gives: all three actions allowed.
fn stub_answer() -> CheckResourcesResponse {
    CheckResourcesResponse::from_proto(WireResponse {
        request_id: "r".into(),
        results: vec![wire::ResultEntry {
            resource: Some(wire::result_entry::Resource {
                id: String::new(),
                kind: "contact".into(),
                ..Default::default()
            }),
            actions: [("read", 1), ("update", 1), ("delete", 1)]
                .into_iter()
                .map(|(a, e)| (a.to_owned(), e))
                .collect(),
            ..Default::default()
        }],
        cerbos_call_id: "c".into(),
    })
}

fn layer_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bare =
        service_fn(|_: Request<Body>| ready(Ok::<_, Infallible>(Response::new(Body::empty()))));
    let template = stub_answer();
    // The stub answers for the resource it was asked about.
    let pdp =
        move |request: CheckResources| -> Ready<cerbos_tower::Result<CheckResourcesResponse>> {
            let id = request.entries()[0].resource.id().to_owned();
            let mut answer = template.results()[0].as_proto().clone();
            if let Some(resource) = answer.resource.as_mut() {
                resource.id = id;
            }
            ready(Ok(CheckResourcesResponse::from_proto(WireResponse {
                results: vec![answer],
                ..Default::default()
            })))
        };
    let cerbos = Cerbos::builder(pdp).build().expect("cerbos");
    let layer = cerbos
        .layer(
            ResourceFromPath::new("contact", "/contacts/{id}").expect("template"),
            Actions::require(["read"]).with_permissions(["update", "delete"]),
        )
        .expect("layer");
    let layered = layer.layer(bare);

    let mut group = c.benchmark_group("layer_overhead");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("bare", |b| {
        b.iter(|| {
            n += 1;
            let response = rt.block_on(bare.oneshot(request(n))).expect("bare");
            assert!(response.status().is_success());
        })
    });
    group.bench_function("layered", |b| {
        b.iter(|| {
            n += 1;
            let response = rt
                .block_on(layered.clone().oneshot(request(n)))
                .expect("layered");
            assert!(response.status().is_success());
        })
    });
    group.finish();
}

/// Runs `total` requests from `concurrency` tasks with `one`.
async fn run<F, Fut>(one: F, concurrency: u64, total: u64) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (one, counter) = (one.clone(), counter.clone());
            tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    one(n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    started.elapsed()
}

/// Contact `n` (0 to 99), with attributes.
fn contact(n: u64) -> Resource {
    Resource::new("contact", n.to_string())
        .with_attr("owner_id", ((n / 4) % 4 + 1).to_string())
        .with_attr("is_active", !n.is_multiple_of(3))
        .with_attr("marketing_opt_in", n.is_multiple_of(2))
}

fn end_to_end(c: &mut Criterion) {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pdp = TestPdp::start(&policies).expect("PDP");
    let client = rt
        .block_on(Client::builder(pdp.grpc_endpoint()).connect())
        .expect("client connects");
    let cerbos = Cerbos::builder(client.clone()).build().expect("cerbos");
    let layer = cerbos
        .layer(
            move |parts: &http::request::Parts| {
                let id = parts.uri.path().rsplit('/').next().unwrap_or_default();
                ready(Ok(contact(id.parse().unwrap_or_default())))
            },
            Actions::require(["read"]).with_permissions(["update", "delete"]),
        )
        .expect("layer");
    let app: Router = Router::new()
        .route(
            "/contacts/{id}",
            get(|Extension(p): Extension<PermissionMap>| async move { p.len().to_string() }),
        )
        .route_layer(layer);

    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for concurrency in [1u64, 16, 64] {
        group.bench_with_input(
            BenchmarkId::new("client", concurrency),
            &concurrency,
            |b, &conc| {
                b.to_async(&rt).iter_custom(|iters| {
                    let client = client.clone();
                    let one = move |n: u64| {
                        let client = client.clone();
                        async move {
                            let request = CheckResources::new(principal(n))
                                .resource(contact(n % 100), ["read", "update", "delete"]);
                            client.check_resources(request).await.expect("check");
                        }
                    };
                    run(one, conc, iters)
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("axum", concurrency),
            &concurrency,
            |b, &conc| {
                b.to_async(&rt).iter_custom(|iters| {
                    let app = app.clone();
                    let one = move |n: u64| {
                        let app = app.clone();
                        async move {
                            let status = app.oneshot(request(n)).await.expect("axum").status();
                            assert!(status.is_success() || status == http::StatusCode::FORBIDDEN);
                        }
                    };
                    run(one, conc, iters)
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, layer_overhead, end_to_end);
criterion_main!(benches);
