//! Metrics through the `metrics` facade, recorded by `metrics-util`'s
//! debugging recorder, for calls to the real PDP: the layer's decisions by
//! outcome and reason, plans, and the client's call counts and latency.

mod common;

use std::{collections::HashMap, time::Duration};

use axum::{Router, body::Body, routing::get};
use cerbos_tower::{
    Client, Principal, Resource, RetryPolicy,
    layer::{Cerbos, Reason},
};
use http::{Request, StatusCode, request::Parts};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;

/// The layer of a route `/albums/{owner}/{id}` requiring `edit`, asked as
/// alicia.
fn app(client: Client) -> Router {
    let cerbos = Cerbos::builder(client).build().unwrap();
    let album = cerbos
        .layer(
            |parts: &Parts| {
                let mut segments = parts.uri.path().rsplit('/');
                let id = segments.next().unwrap_or("").to_owned();
                let owner = segments.next().unwrap_or("").to_owned();
                std::future::ready(Ok(
                    Resource::new("album:object", id).with_attr("owner", owner)
                ))
            },
            ["edit"],
        )
        .unwrap();
    Router::new()
        .route("/albums/{owner}/{id}", get(|| async { "album" }))
        .route_layer(album)
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                request
                    .extensions_mut()
                    .insert(Principal::new("alicia", ["user"]));
                next.run(request).await
            },
        ))
}

async fn status(app: &Router, path: &str) -> StatusCode {
    let request = Request::get(path).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn decisions_plans_and_pdp_calls_are_counted_with_their_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let live = app(common::client());
    assert_eq!(status(&live, "/albums/alicia/A1").await, StatusCode::OK);
    assert_eq!(status(&live, "/albums/bob/B1").await, StatusCode::FORBIDDEN);
    assert_eq!(status(&live, "/albums/alicia/A2").await, StatusCode::OK);
    // Nothing listens on port 1: unreachable, 503.
    let down = Client::builder("http://127.0.0.1:1")
        .retry(RetryPolicy::none())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert_eq!(
        status(&app(down), "/albums/alicia/A3").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A plan through the Authorizer.
    let authorizer = Cerbos::builder(common::client())
        .build()
        .unwrap()
        .authorizer();
    let (mut parts, ()) = Request::get("/albums").body(()).unwrap().into_parts();
    parts.extensions.insert(Principal::new("alicia", ["user"]));
    let subject = authorizer.subject(&parts).await.unwrap();
    let plan = authorizer
        .plan(&subject, "album:object", ["view"])
        .await
        .unwrap();
    assert_eq!(plan.reason(), Reason::Allowed);
    assert!(matches!(
        plan.filter(),
        cerbos_tower::PlanFilter::Conditional(_)
    ));
    // Per-row permissions through the Authorizer: one call for two rows.
    let rows = ["A1", "B1"].map(|id| {
        let owner = if id == "A1" { "alicia" } else { "bob" };
        Resource::new("album:object", id).with_attr("owner", owner)
    });
    let maps = authorizer
        .permissions(&subject, rows, ["edit"])
        .await
        .unwrap();
    assert_eq!(
        maps.iter()
            .map(|m| m.is_allowed("edit"))
            .collect::<Vec<_>>(),
        [true, false]
    );

    // name + sorted labels -> value.
    let mut counters = HashMap::new();
    let mut histograms = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert(
                    name,
                    samples
                        .into_iter()
                        .map(|s| s.into_inner())
                        .collect::<Vec<f64>>(),
                );
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
    let decisions = "cerbos_decisions_total";
    assert_eq!(
        counter(&format!(
            "{decisions}{{outcome=allow,reason=allowed,resource_kind=album:object}}"
        )),
        2,
        "{counters:#?}"
    );
    assert_eq!(
        counter(&format!(
            "{decisions}{{outcome=deny,reason=denied,resource_kind=album:object}}"
        )),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        counter(&format!(
            "{decisions}{{outcome=deny,reason=unreachable,resource_kind=album:object}}"
        )),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        counter("cerbos_plans_total{filter=conditional,resource_kind=album:object}"),
        1,
        "{counters:#?}"
    );

    assert_eq!(
        counter("cerbos_permissions_total{outcome=answered,resource_kind=album:object}"),
        1,
        "{counters:#?}"
    );

    let calls = "cerbos_client_calls_total";
    assert_eq!(
        counter(&format!("{calls}{{method=check_resources,outcome=ok}}")),
        4,
        "{counters:#?}"
    );
    assert_eq!(
        counter(&format!(
            "{calls}{{method=check_resources,outcome=unavailable}}"
        )),
        1,
        "{counters:#?}"
    );
    assert_eq!(
        counter(&format!("{calls}{{method=plan_resources,outcome=ok}}")),
        1,
        "{counters:#?}"
    );
    let latencies =
        &histograms["cerbos_client_call_duration_seconds{method=check_resources,outcome=ok}"];
    assert_eq!(latencies.len(), 4, "one latency sample per call");
    assert!(
        latencies.iter().all(|s| *s > 0.0 && *s < 10.0),
        "latencies in seconds: {latencies:?}"
    );
}
