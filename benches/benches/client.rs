//! `check_resources` against the real PDP from one shared client, at
//! concurrency 1, 16 and 64, over TCP and over a Unix socket.
//!
//! `cargo bench -p cerbos-benches --bench client`. Criterion reports the time
//! per check and the throughput (checks per second) of each configuration.

#![allow(missing_docs)]

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cerbos_testkit::Pdp;
use cerbos_tower::{CheckResources, Client, Principal, Resource};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn request(n: u64) -> CheckResources {
    CheckResources::new(Principal::new("alicia", ["user"]).with_attr("department", "Sales"))
        .resource(
            Resource::new("album:object", format!("A{n}"))
                .with_attr("owner", if n.is_multiple_of(2) { "alicia" } else { "bob" })
                .with_attr("public", n.is_multiple_of(3)),
            ["view", "edit"],
        )
}

/// Runs `total` checks from `concurrency` tasks sharing `client`.
async fn run(client: &Client, concurrency: u64, total: u64) -> Duration {
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let response = client
                        .check_resources(request(n))
                        .await
                        .expect("check succeeds");
                    assert_eq!(
                        response.results()[0].is_allowed("edit"),
                        n.is_multiple_of(2)
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    started.elapsed()
}

fn check_resources(c: &mut Criterion) {
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/policies");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tcp = Pdp::start(&policies).expect("PDP on TCP");
    let unix = Pdp::builder(&policies)
        .grpc_on_unix_socket(true)
        .start()
        .expect("PDP on a Unix socket");
    for (transport, pdp) in [("tcp", &tcp), ("unix", &unix)] {
        let client = rt
            .block_on(Client::builder(pdp.grpc_endpoint()).connect())
            .expect("client connects");
        let mut group = c.benchmark_group(format!("check_resources/{transport}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(4));
        for concurrency in [1u64, 16, 64] {
            group.bench_with_input(
                BenchmarkId::new("concurrency", concurrency),
                &concurrency,
                |b, &concurrency| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let client = client.clone();
                        async move { run(&client, concurrency, iters).await }
                    });
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, check_resources);
criterion_main!(benches);
