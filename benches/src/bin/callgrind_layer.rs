//! The tower layer's cost per request, in instructions: the same request
//! through a bare `service_fn` and through it behind the layer, with an
//! instant in-process stub PDP (as `benches/benches/layer.rs`, whose
//! wall-clock numbers this complements with deterministic counts).
//!
//! `callgrind_layer <bare|layered> <requests>` runs the requests one after
//! the other on a current-thread runtime; `benches/callgrind.sh layer`
//! prints the instructions per request (startup excluded).

#![allow(missing_docs)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
};

use cerbos_client::{CheckResources, CheckResourcesResponse, Principal};
use cerbos_proto::cerbos::response::v1::{
    CheckResourcesResponse as WireResponse, check_resources_response as wire,
};
use cerbos_tower::layer::{Actions, Cerbos, ResourceFromPath};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

fn request(n: u64) -> Request<String> {
    let mut request = Request::builder()
        .uri(format!("/contacts/{}", n % 100))
        .body(String::new())
        .expect("request");
    let (id, department) = match n % 4 {
        0 => ("1", "IT"),
        1 => ("2", "Sales"),
        2 => ("3", "Sales"),
        _ => ("4", "Marketing"),
    };
    let principal = Principal::new(id, [if id == "1" { "admin" } else { "user" }])
        .with_attr("department", department);
    request.extensions_mut().insert(principal);
    request
}

/// An instant PDP: every action the request asks about is allowed, for
/// the resource it asks about.
fn stub(request: CheckResources) -> Ready<cerbos_client::Result<CheckResourcesResponse>> {
    let results = request
        .entries()
        .iter()
        .map(|entry| wire::ResultEntry {
            resource: Some(wire::result_entry::Resource {
                id: entry.resource.id().to_owned(),
                kind: entry.resource.kind().to_owned(),
                ..Default::default()
            }),
            actions: entry.actions.iter().map(|a| (a.clone(), 1)).collect(),
            ..Default::default()
        })
        .collect();
    ready(Ok(CheckResourcesResponse::from_proto(WireResponse {
        request_id: request.request_id_ref().unwrap_or_default().to_owned(),
        results,
        cerbos_call_id: "c".into(),
    })))
}

fn main() {
    let usage = "usage: callgrind_layer <bare|layered> <requests>";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, requests] = args.as_slice() else {
        panic!("{usage}")
    };
    let requests: u64 = requests.parse().expect(usage);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bare = service_fn(|_: Request<String>| ready(Ok::<_, Infallible>(Response::new(()))));
    let cerbos = Cerbos::builder(stub).build().expect("cerbos");
    let layered = cerbos
        .layer(
            ResourceFromPath::new("contact", "/contacts/{id}").expect("template"),
            Actions::require(["read"]).with_permissions(["update", "delete"]),
        )
        .expect("layer")
        .layer(bare);
    rt.block_on(async {
        for n in 0..requests {
            let status = match mode.as_str() {
                "bare" => bare.oneshot(request(n)).await.expect("bare").status(),
                "layered" => layered
                    .clone()
                    .oneshot(request(n))
                    .await
                    .expect("layered")
                    .status(),
                _ => panic!("{usage}"),
            };
            assert!(status.is_success(), "{status}");
        }
    });
}
