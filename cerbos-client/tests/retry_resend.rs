//! A retry re-sends exactly the request of the first attempt.

use std::sync::{Arc, Mutex};

use cerbos_client::{
    CheckResources, Client, Principal, Resource,
    proto::cerbos::{
        request::v1 as req,
        response::v1::{self as resp, check_resources_response::ResultEntry},
        svc::v1::cerbos_service_server::{CerbosService, CerbosServiceServer},
    },
};
use tonic::{Request, Response, Status};

/// Answers UNAVAILABLE twice, then allows everything; keeps every request.
#[derive(Clone, Default)]
struct Flaky {
    seen: Arc<Mutex<Vec<req::CheckResourcesRequest>>>,
}

#[tonic::async_trait]
impl CerbosService for Flaky {
    async fn check_resources(
        &self,
        request: Request<req::CheckResourcesRequest>,
    ) -> Result<Response<resp::CheckResourcesResponse>, Status> {
        let request = request.into_inner();
        let attempt = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(request.clone());
            seen.len()
        };
        if attempt <= 2 {
            return Err(Status::unavailable("restarting"));
        }
        Ok(Response::new(resp::CheckResourcesResponse {
            request_id: request.request_id,
            results: request
                .resources
                .into_iter()
                .map(|e| {
                    let r = e.resource.unwrap_or_default();
                    ResultEntry {
                        resource: Some(resp::check_resources_response::result_entry::Resource {
                            id: r.id,
                            kind: r.kind,
                            ..Default::default()
                        }),
                        actions: e.actions.into_iter().map(|a| (a, 1)).collect(),
                        ..Default::default()
                    }
                })
                .collect(),
            cerbos_call_id: "call".into(),
        }))
    }

    async fn plan_resources(
        &self,
        _: Request<req::PlanResourcesRequest>,
    ) -> Result<Response<resp::PlanResourcesResponse>, Status> {
        Err(Status::unimplemented(""))
    }

    async fn server_info(
        &self,
        _: Request<req::ServerInfoRequest>,
    ) -> Result<Response<resp::ServerInfoResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}

#[tokio::test]
async fn every_attempt_sends_the_same_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = Flaky::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CerbosServiceServer::new(stub.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = Client::builder(format!("http://{addr}")).build().unwrap();
    let response = client
        .check_resources(
            CheckResources::new(Principal::new("alice", ["user"]).with_attr("dept", "Sales"))
                .resource(
                    Resource::new("doc", "1").with_attr("owner", "alice"),
                    ["read", "write"],
                )
                .resource(Resource::new("doc", "2"), ["read"]),
        )
        .await
        .expect("the third attempt answers");
    assert!(response.all_allowed());
    let seen = stub.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(!seen[0].request_id.is_empty());
    assert_eq!(seen[0].resources.len(), 2);
    assert!(seen.iter().all(|r| *r == seen[0]), "{seen:#?}");
    assert_eq!(response.request_id(), seen[0].request_id);
}
