//! The client's cost per call, in instructions, against an in-process stub
//! PDP: `cerbos_client::Client` versus a raw tonic call on the same
//! generated stubs.
//!
//! `callgrind_client <client|raw> <resources> <calls>` starts a stub
//! `CerbosService` on loopback (it allows every action and echoes the
//! resources in request order), warms up, then makes `calls` checks of
//! `resources` resources each, one after the other, on a current-thread
//! runtime so that an instruction count under callgrind is deterministic.
//! `benches/callgrind.sh` runs it under callgrind for every combination and
//! prints the instructions per call (startup excluded) and the ratios.

#![allow(missing_docs)]

use std::collections::HashMap;

use cerbos_client::{
    CheckResources, Client, Principal, Resource,
    proto::cerbos::{
        engine::v1 as engine,
        request::v1 as req,
        response::v1::{self as resp, check_resources_response::ResultEntry},
        svc::v1::{
            cerbos_service_client::CerbosServiceClient,
            cerbos_service_server::{CerbosService, CerbosServiceServer},
        },
    },
};
use tonic::{
    Request, Response, Status,
    transport::{Channel, Endpoint, Server, server::TcpIncoming},
};

/// Calls made before counting starts (connection, first-use allocations).
const WARM_UP: u64 = 50;

struct StubPdp;

#[tonic::async_trait]
impl CerbosService for StubPdp {
    async fn check_resources(
        &self,
        request: Request<req::CheckResourcesRequest>,
    ) -> Result<Response<resp::CheckResourcesResponse>, Status> {
        let request = request.into_inner();
        let results = request
            .resources
            .into_iter()
            .map(|entry| {
                let resource = entry.resource.unwrap_or_default();
                ResultEntry {
                    resource: Some(resp::check_resources_response::result_entry::Resource {
                        id: resource.id,
                        kind: resource.kind,
                        ..Default::default()
                    }),
                    actions: entry.actions.into_iter().map(|a| (a, 1)).collect(),
                    ..Default::default()
                }
            })
            .collect();
        Ok(Response::new(resp::CheckResourcesResponse {
            request_id: request.request_id,
            results,
            cerbos_call_id: "call".into(),
        }))
    }

    async fn plan_resources(
        &self,
        _: Request<req::PlanResourcesRequest>,
    ) -> Result<Response<resp::PlanResourcesResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }

    async fn server_info(
        &self,
        _: Request<req::ServerInfoRequest>,
    ) -> Result<Response<resp::ServerInfoResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }
}

const ACTIONS: [&str; 2] = ["view", "edit"];

/// One check through our client, as an application writes it.
async fn client_call(client: &Client, resources: usize) {
    let mut request =
        CheckResources::new(Principal::new("alicia", ["user"]).with_attr("department", "Sales"));
    for i in 0..resources {
        request.push(
            Resource::new("album:object", format!("A{i}")).with_attr("owner", "alicia"),
            ACTIONS,
        );
    }
    let response = client.check_resources(request).await.expect("check");
    assert_eq!(response.results().len(), resources);
    for result in response.results() {
        assert!(ACTIONS.iter().all(|a| result.is_allowed(a)));
    }
}

fn string_value(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.to_owned())),
    }
}

/// The same check with the generated stubs: the request built from scratch,
/// the answer read and verified the same way.
async fn raw_call(grpc: &CerbosServiceClient<Channel>, resources: usize) {
    let request = req::CheckResourcesRequest {
        request_id: "bench".to_owned(),
        principal: Some(engine::Principal {
            id: "alicia".to_owned(),
            roles: vec!["user".to_owned()],
            attr: HashMap::from([("department".to_owned(), string_value("Sales"))]),
            ..Default::default()
        }),
        resources: (0..resources)
            .map(|i| req::check_resources_request::ResourceEntry {
                actions: ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
                resource: Some(engine::Resource {
                    kind: "album:object".to_owned(),
                    id: format!("A{i}"),
                    attr: HashMap::from([("owner".to_owned(), string_value("alicia"))]),
                    ..Default::default()
                }),
            })
            .collect(),
        ..Default::default()
    };
    let answer = grpc
        .clone()
        .check_resources(request)
        .await
        .expect("check")
        .into_inner();
    assert_eq!(answer.results.len(), resources);
    for (i, result) in answer.results.iter().enumerate() {
        let resource = result.resource.as_ref().expect("resource");
        assert!(resource.kind == "album:object" && resource.id == format!("A{i}"));
        assert!(ACTIONS.iter().all(|a| result.actions.get(*a) == Some(&1)));
    }
}

/// Serves the stub on loopback, printing its address on stdout, until
/// stdin closes.
async fn serve_stub() {
    use std::io::Write;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .expect("bind")
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().expect("address");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{addr}").expect("stdout");
    stdout.flush().expect("stdout");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    });
    Server::builder()
        .add_service(CerbosServiceServer::new(StubPdp))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stdin_closed.await;
        })
        .await
        .expect("stub server");
}

/// Where the stub runs: in this process (its cost is counted with the
/// client's) or in a child process (callgrind does not trace children, so
/// only the client side is counted).
enum Stub {
    InProcess,
    Child(std::process::Child),
}

async fn start_stub(separate: bool) -> (String, Stub) {
    if separate {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .arg("serve")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("stub process");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("stub address");
        return (format!("http://{}", line.trim()), Stub::Child(child));
    }
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .expect("bind")
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().expect("address");
    tokio::spawn(
        Server::builder()
            .add_service(CerbosServiceServer::new(StubPdp))
            .serve_with_incoming(incoming),
    );
    (format!("http://{addr}"), Stub::InProcess)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: callgrind_client <client|raw> <resources> <calls> [in-process|separate]";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.get(1).map(String::as_str) == Some("serve") {
        rt.block_on(serve_stub());
        return;
    }
    let (mode, resources, calls, separate) = match args.as_slice() {
        [_, mode, resources, calls] => (mode, resources, calls, false),
        [_, mode, resources, calls, stub] if stub == "in-process" || stub == "separate" => {
            (mode, resources, calls, stub == "separate")
        }
        _ => panic!("{usage}"),
    };
    let resources: usize = resources.parse().expect(usage);
    let calls: u64 = calls.parse().expect(usage);
    let stub = rt.block_on(async {
        let (endpoint, stub) = start_stub(separate).await;
        match mode.as_str() {
            "client" => {
                let client = Client::builder(endpoint).connect().await.expect("connect");
                for _ in 0..WARM_UP + calls {
                    client_call(&client, resources).await;
                }
            }
            "raw" => {
                let channel = Endpoint::from_shared(endpoint)
                    .expect("endpoint")
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .expect("connect");
                let grpc = CerbosServiceClient::new(channel);
                for _ in 0..WARM_UP + calls {
                    raw_call(&grpc, resources).await;
                }
            }
            _ => panic!("{usage}"),
        }
        stub
    });
    // The stub shuts down when its stdin closes, once the client's
    // connection (owned by the runtime) is gone.
    drop(rt);
    if let Stub::Child(mut child) = stub {
        drop(child.stdin.take());
        child.wait().expect("stub process");
    }
}
