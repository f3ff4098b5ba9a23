//! Audit annotations and trace context propagation, read back from the
//! real PDP's decision log (the local `file` audit backend).

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, routing::get};
use cerbos_testkit::Pdp;
use cerbos_tower::{
    Principal, Resource, TraceContext,
    layer::{Annotations, Cerbos, Reason},
};
use http::{Request, StatusCode, request::Parts};
use serde_json::Value;
use tower::ServiceExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A PDP of the test policies writing its decision log, with the trace
/// context metadata, to a file in `dir`.
fn audited_pdp(dir: &Path) -> (Pdp, PathBuf) {
    let log = dir.join("audit.log");
    let yaml = format!(
        "audit:\n  enabled: true\n  backend: file\n  accessLogsEnabled: false\n  \
         decisionLogsEnabled: true\n  includeMetadataKeys: [\"traceparent\", \"tracestate\"]\n  \
         file:\n    path: {}\n",
        log.display()
    );
    let pdp = Pdp::builder(common::policy_dir())
        .config_yaml(yaml)
        .start()
        .expect("the real PDP starts with a decision log");
    (pdp, log)
}

/// A new directory, removed on drop.
fn temp_dir() -> common::TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = common::TempDir(
        std::env::temp_dir().join(format!("cerbos-audit-{}-{n}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    dir
}

/// The decision log entry of the call with `request_id` (waits up to 10 s
/// for the PDP to write it).
fn entry(log: &Path, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| {
                let inputs = entry
                    .pointer("/checkResources/inputs/0/requestId")
                    .or_else(|| entry.pointer("/planResources/input/requestId"));
                inputs.and_then(Value::as_str) == Some(request_id)
            });
        if let Some(entry) = found {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "no decision log entry for {request_id} in:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn annotations(entry: &Value) -> Value {
    entry
        .pointer("/requestContext/annotations")
        .cloned()
        .unwrap_or(Value::Null)
}

fn traceparent(entry: &Value) -> Option<&str> {
    entry
        .pointer("/metadata/traceparent/values/0")
        .and_then(Value::as_str)
}

#[tokio::test]
async fn the_layer_annotates_and_forwards_the_trace_and_the_decision_log_records_both() {
    let dir = temp_dir();
    let (pdp, log) = audited_pdp(&dir.0);
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let cerbos = Cerbos::builder(client)
        .annotate(Annotations::new().with("app", "audit-test"))
        .forward_trace_context()
        .build()
        .unwrap();
    let album = cerbos
        .layer(
            |parts: &Parts| {
                let id = parts.uri.path().rsplit('/').next().unwrap_or("").to_owned();
                std::future::ready(Ok(
                    Resource::new("album:object", id).with_attr("owner", "alicia")
                ))
            },
            ["view"],
        )
        .unwrap();
    let authorizer = cerbos.authorizer();
    let app = Router::new()
        .route("/albums/{id}", get(|| async { "album" }))
        .route_layer(album)
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                request
                    .extensions_mut()
                    .insert(Principal::new("alicia", ["user"]).with_attr("secret", "s3cr3t"));
                next.run(request).await
            },
        ));

    let send = |request_id: &str, traceparent: &str| {
        let request = Request::get("/albums/A1")
            .header("x-request-id", request_id)
            .header("traceparent", traceparent)
            .header("tracestate", "rojo=00f067aa0ba902b7")
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let response = send("audit-1", TRACEPARENT).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "allowed by the real PDP");
    let logged = entry(&log, "audit-1");
    assert_eq!(
        annotations(&logged),
        serde_json::json!({
            "route": "/albums/{id}",
            "method": "GET",
            "request_id": "audit-1",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "app": "audit-test",
        })
    );
    assert_eq!(traceparent(&logged), Some(TRACEPARENT), "forwarded as sent");
    assert_eq!(
        logged
            .pointer("/metadata/tracestate/values/0")
            .and_then(Value::as_str),
        Some("rojo=00f067aa0ba902b7")
    );
    assert!(
        !logged
            .pointer("/requestContext")
            .unwrap()
            .to_string()
            .contains("s3cr3t"),
        "no principal attribute in the annotations"
    );

    // A malformed traceparent is neither forwarded nor annotated.
    let response = send("audit-2", "00-NOT-A-TRACE").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let logged = entry(&log, "audit-2");
    assert_eq!(traceparent(&logged), None, "never forwarded");
    assert_eq!(annotations(&logged).get("trace_id"), None);
    assert_eq!(annotations(&logged)["request_id"], "audit-2");

    // Plans through the Authorizer carry the same annotations.
    let (mut parts, ()) = Request::get("/albums")
        .header("x-request-id", "audit-3")
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap()
        .into_parts();
    parts.extensions.insert(Principal::new("alicia", ["user"]));
    let subject = authorizer.subject(&parts).await.unwrap();
    let plan = authorizer
        .plan(&subject, "album:object", ["view"])
        .await
        .expect("a plan from the real PDP");
    assert_eq!(plan.reason(), Reason::Allowed);
    let logged = entry(&log, "audit-3");
    assert_eq!(annotations(&logged)["route"], "/albums");
    assert_eq!(
        annotations(&logged)["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(traceparent(&logged), Some(TRACEPARENT));
}

#[tokio::test]
async fn the_clients_trace_context_provider_reaches_the_pdp() {
    let dir = temp_dir();
    let (pdp, log) = audited_pdp(&dir.0);
    let sent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let client = common::live_client(pdp.grpc_endpoint())
        .trace_context(move || TraceContext::parse(sent, None))
        .build()
        .unwrap();
    let response = client
        .check_resources(common::alicia_edits_own_album().request_id("provider-1"))
        .await
        .expect("the real PDP accepts the trace context");
    assert!(response.results()[0].is_allowed("edit"));
    assert_eq!(traceparent(&entry(&log, "provider-1")), Some(sent));
}

/// actix-web: the `route` annotation is the route's pattern (not the
/// path), for a guard on the route's resource and for one on a `Scope`,
/// which runs before actix has matched the route.
#[actix_web::test]
async fn actix_annotates_the_route_pattern_from_resource_and_scope_guards() {
    use actix_web::{App, HttpRequest, test, web};
    use cerbos_actix::{CerbosExt, PathResource};

    let dir = temp_dir();
    let (pdp, log) = audited_pdp(&dir.0);
    let client = common::live_client(pdp.grpc_endpoint()).build().unwrap();
    let cerbos = cerbos_actix::Cerbos::builder(client)
        .principal(|_: &Parts| std::future::ready(Ok(Principal::new("alicia", ["user"]))))
        .annotate(Annotations::new())
        .build()
        .unwrap();
    let album = || {
        let load = |album: Resource, _: HttpRequest| {
            std::future::ready(Ok(Some(album.with_attr("owner", "alicia"))))
        };
        cerbos
            .guard_with(PathResource::new("album:object").load(load), ["view"])
            .unwrap()
    };
    let app = test::init_service(
        App::new()
            .app_data(cerbos.authorizer())
            .service(
                web::resource("/albums/{id}")
                    .wrap(album())
                    .route(web::get().to(|| async { "album" })),
            )
            .service(web::scope("/wide").wrap(album()).route(
                "/albums/{album}/photos/{id}",
                web::get().to(|| async { "photo" }),
            )),
    )
    .await;
    for (path, request_id, pattern) in [
        ("/albums/A1", "actix-1", "/albums/{id}"),
        (
            "/wide/albums/A1/photos/7",
            "actix-2",
            "/wide/albums/{album}/photos/{id}",
        ),
    ] {
        let request = test::TestRequest::get()
            .uri(path)
            .insert_header(("x-request-id", request_id))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let logged = entry(&log, request_id);
        assert_eq!(annotations(&logged)["route"], pattern, "{path}");
        assert_eq!(annotations(&logged)["method"], "GET");
    }
}
