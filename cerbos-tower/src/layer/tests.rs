//! The layer against an in-process stub PDP: the fail-closed matrix.

use std::{
    convert::Infallible,
    future::ready,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use body_collect::collect;
use bytes::Bytes;
use cerbos_proto::cerbos::response::v1::{
    CheckResourcesResponse as WireResponse, check_resources_response as wire,
};
use http::{Method, Request, Response, StatusCode, request::Parts};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::{
    CheckResources, CheckResourcesResponse, Error, PlanFilter, Principal, Resource,
    adapter::HandlerChecks,
};

/// Collects a body without extra dependencies.
mod body_collect {
    use bytes::{Bytes, BytesMut};
    use http_body::Body;
    use std::pin::pin;

    pub(super) async fn collect<B: Body<Data = Bytes>>(body: B) -> Bytes
    where
        B::Error: std::fmt::Debug,
    {
        let mut body = pin!(body);
        let mut out = BytesMut::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Ok(data) = frame.expect("body error").into_data() {
                out.extend_from_slice(&data);
            }
        }
        out.freeze()
    }
}

const ALLOW: i32 = 1;
const DENY: i32 = 2;
const NO_MATCH: i32 = 3;

/// Everything the stub PDP saw.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<CheckResources>>>,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn last(&self) -> CheckResources {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no PDP call")
    }
}

/// The well-formed answer to `request`, with `effect(action)` for each
/// action.
fn answer(request: &CheckResources, effect: impl Fn(&str) -> i32) -> CheckResourcesResponse {
    let results = request
        .entries()
        .iter()
        .map(|entry| wire::ResultEntry {
            resource: Some(wire::result_entry::Resource {
                id: entry.resource.id().to_owned(),
                kind: entry.resource.kind().to_owned(),
                ..Default::default()
            }),
            actions: entry
                .actions
                .iter()
                .map(|a| (a.clone(), effect(a)))
                .collect(),
            ..Default::default()
        })
        .collect();
    CheckResourcesResponse::from_proto(WireResponse {
        request_id: "echo".into(),
        results,
        cerbos_call_id: "call-1".into(),
    })
}

/// The answer to `request` with `effect`, its only result changed by
/// `change`.
fn mangled(
    request: &CheckResources,
    effect: impl Fn(&str) -> i32,
    change: impl FnOnce(&mut wire::ResultEntry),
) -> CheckResourcesResponse {
    let mut results: Vec<_> = answer(request, effect)
        .results()
        .iter()
        .map(|r| r.as_proto().clone())
        .collect();
    if let Some(first) = results.first_mut() {
        change(first);
    }
    CheckResourcesResponse::from_proto(WireResponse {
        results,
        ..Default::default()
    })
}

/// A stub PDP answering with `respond`, recording what it saw.
fn stub(
    respond: impl Fn(&CheckResources) -> crate::Result<CheckResourcesResponse> + Send + Sync + 'static,
) -> (impl Pdp, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let pdp = move |request: CheckResources| {
        record.calls.fetch_add(1, Ordering::SeqCst);
        let result = respond(&request);
        record.requests.lock().unwrap().push(request);
        ready(result)
    };
    (pdp, seen)
}

fn effects(f: impl Fn(&str) -> i32 + Send + Sync + 'static) -> (impl Pdp, Seen) {
    stub(move |request| Ok(answer(request, &f)))
}

/// The principal named by the `x-user` header.
fn user_header(parts: &Parts) -> std::future::Ready<Result<Principal, ResolveError>> {
    ready(
        parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(|user| Principal::new(user, ["user"]).with_attr("department", "Sales"))
            .ok_or_else(|| ResolveError::unauthenticated("no x-user")),
    )
}

/// What the handler found in the request extensions.
type Extensions = (Decision, PermissionMap, Principal, Resource);

/// The inner service: counts calls and reports what it found in the
/// extensions.
#[derive(Clone, Default)]
struct Handler {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Option<Extensions>>>,
}

impl Handler {
    fn service(
        &self,
    ) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone
    {
        let this = self.clone();
        service_fn(move |request: Request<String>| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                let ext = request.extensions();
                *this.seen.lock().unwrap() = Some((
                    ext.get::<Decision>().cloned().expect("Decision"),
                    ext.get::<PermissionMap>().cloned().expect("PermissionMap"),
                    ext.get::<Principal>().cloned().expect("Principal"),
                    ext.get::<Resource>().cloned().expect("Resource"),
                ));
                Ok::<_, Infallible>(Response::new("handled".to_owned()))
            }
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn seen(&self) -> Extensions {
        self.seen
            .lock()
            .unwrap()
            .clone()
            .expect("handler not called")
    }
}

fn request(method: Method, path: &str, user: Option<&str>) -> Request<String> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(user) = user {
        builder = builder.header("x-user", user);
    }
    builder.body(String::new()).unwrap()
}

struct Outcome {
    status: StatusCode,
    body: Bytes,
    headers: http::HeaderMap,
}

async fn send<S>(service: S, request: Request<String>) -> Outcome
where
    S: Service<Request<String>, Response = Response<ResponseBody<String>>, Error = Infallible>,
{
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Outcome {
        status: parts.status,
        headers: parts.headers,
        body: collect(body).await,
    }
}

/// A `Cerbos` with principals from `x-user` and the given PDP.
fn cerbos<P: Pdp>(pdp: P) -> Cerbos<P, impl PrincipalResolver> {
    Cerbos::builder(pdp).principal(user_header).build().unwrap()
}

fn contact() -> ResourceFromPath {
    ResourceFromPath::new("contact", "/contacts/{id}").unwrap()
}

fn detail_actions() -> Actions {
    Actions::require(["read"]).with_permissions(["update", "delete"])
}

#[tokio::test]
async fn allowed_reaches_the_handler_with_decision_permissions_principal_and_resource() {
    let (pdp, seen) = effects(|a| if a == "delete" { DENY } else { ALLOW });
    let layer = cerbos(pdp).layer(contact(), detail_actions()).unwrap();
    let handler = Handler::default();
    let mut req = request(Method::GET, "/contacts/42", Some("john"));
    req.headers_mut()
        .insert("x-request-id", "req-7".parse().unwrap());
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, "handled");
    assert_eq!(handler.calls(), 1);
    assert_eq!(seen.calls(), 1, "one PDP call for all actions");

    let sent = seen.last();
    assert_eq!(sent.principal().id(), "john");
    assert_eq!(sent.entries().len(), 1);
    assert_eq!(sent.entries()[0].resource.kind(), "contact");
    assert_eq!(sent.entries()[0].resource.id(), "42");
    assert_eq!(sent.entries()[0].actions, ["read", "update", "delete"]);

    let (decision, permissions, principal, resource) = handler.seen();
    assert_eq!(decision.reason(), Reason::Allowed);
    assert!(decision.is_allowed());
    assert_eq!(decision.request_id(), "req-7");
    assert_eq!(decision.cerbos_call_id(), "call-1");
    assert_eq!(decision.resource_kind(), "contact");
    assert_eq!(decision.resource_id(), "42");
    assert_eq!(decision.required_actions().collect::<Vec<_>>(), ["read"]);
    assert_eq!(decision.effect("delete"), Some(crate::Effect::Deny));
    assert_eq!(
        permissions.iter().collect::<Vec<_>>(),
        [("read", true), ("update", true), ("delete", false)]
    );
    assert_eq!(
        permissions.to_json(),
        serde_json::json!({"read": true, "update": true, "delete": false})
    );
    assert_eq!(principal.id(), "john");
    assert_eq!((resource.kind(), resource.id()), ("contact", "42"));
}

#[tokio::test]
async fn every_non_allow_effect_on_a_required_action_is_denied_and_never_reaches_the_handler() {
    for effect in [DENY, NO_MATCH, 0, 99, -1] {
        let (pdp, seen) = effects(move |a| if a == "read" { effect } else { ALLOW });
        let layer = cerbos(pdp).layer(contact(), detail_actions()).unwrap();
        let handler = Handler::default();
        let out = send(
            layer.layer(handler.service()),
            request(Method::GET, "/contacts/1", Some("john")),
        )
        .await;
        assert_eq!(out.status, StatusCode::FORBIDDEN, "effect {effect}");
        assert_eq!(out.body, "Forbidden");
        assert_eq!(handler.calls(), 0, "effect {effect}");
        assert_eq!(seen.calls(), 1);
    }
}

/// Runs one request through a layer whose PDP answers `respond`, with the
/// given status for unreachable PDPs, and returns the rejection the custom
/// handler saw (and the status sent).
async fn rejected_with(
    respond: impl Fn(&CheckResources) -> crate::Result<CheckResourcesResponse> + Send + Sync + 'static,
    unreachable_status: StatusCode,
) -> (StatusCode, RejectionKind, Option<Reason>, Option<String>) {
    let (pdp, _seen) = stub(respond);
    let captured = Arc::new(Mutex::new(None));
    let capture = captured.clone();
    let cerbos = Cerbos::builder(pdp)
        .principal(user_header)
        .unreachable_status(unreachable_status)
        .on_rejection(move |rejection: Rejection, parts: &Parts| {
            let response = rejection.default_response(parts);
            *capture.lock().unwrap() = Some((
                rejection.kind(),
                rejection.decision().map(Decision::reason),
                rejection.cause(),
            ));
            response
        })
        .build()
        .unwrap();
    let handler = Handler::default();
    let layer = cerbos.layer(contact(), detail_actions()).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(handler.calls(), 0, "a rejected request reached the handler");
    let (kind, reason, cause) = captured.lock().unwrap().take().expect("no rejection");
    (out.status, kind, reason, cause)
}

#[tokio::test]
async fn pdp_errors_and_malformed_answers_are_unreachable_denials() {
    let errors: Vec<(&str, Error)> = vec![
        (
            "unavailable",
            Error::Unavailable {
                message: "connection refused".into(),
            },
        ),
        ("timeout", Error::Timeout(Duration::from_millis(10))),
        (
            "invalid argument",
            Error::InvalidArgument {
                message: "bad jwt".into(),
            },
        ),
        (
            "status",
            Error::Status {
                code: crate::GrpcCode(13),
                message: "boom".into(),
            },
        ),
        ("malformed", Error::MalformedResponse("garbage".into())),
    ];
    for (name, error) in errors {
        let (status, kind, reason, cause) =
            rejected_with(move |_| Err(error.clone()), StatusCode::FORBIDDEN).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(kind, RejectionKind::Unreachable, "{name}");
        assert_eq!(reason, Some(Reason::Unreachable), "{name}");
        assert!(cause.is_some(), "{name}");
    }
    let (status, ..) = rejected_with(
        |_| {
            Err(Error::Unavailable {
                message: "down".into(),
            })
        },
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn answers_that_are_not_about_what_was_asked_are_unreachable() {
    type Mangle = fn(&CheckResources) -> crate::Result<CheckResourcesResponse>;
    let cases: [(&str, Mangle); 6] = [
        ("no results", |_| {
            Ok(CheckResourcesResponse::from_proto(WireResponse::default()))
        }),
        ("two results", |r| {
            let one = answer(r, |_| ALLOW);
            let wire = WireResponse {
                results: one
                    .results()
                    .iter()
                    .chain(one.results())
                    .map(|r| r.as_proto().clone())
                    .collect(),
                ..Default::default()
            };
            Ok(CheckResourcesResponse::from_proto(wire))
        }),
        ("other id", |r| {
            Ok(mangled(
                r,
                |_| ALLOW,
                |wire| wire.resource.as_mut().unwrap().id = "2".into(),
            ))
        }),
        ("other kind", |r| {
            Ok(mangled(
                r,
                |_| ALLOW,
                |wire| wire.resource.as_mut().unwrap().kind = "album".into(),
            ))
        }),
        ("no resource", |r| {
            Ok(mangled(r, |_| ALLOW, |wire| wire.resource = None))
        }),
        ("required action missing", |r| {
            Ok(mangled(
                r,
                |_| ALLOW,
                |wire| {
                    wire.actions.remove("read");
                },
            ))
        }),
    ];
    for (name, mangle) in cases {
        let (status, kind, reason, cause) = rejected_with(mangle, StatusCode::FORBIDDEN).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(kind, RejectionKind::Unreachable, "{name}");
        assert_eq!(reason, Some(Reason::Unreachable), "{name}");
        assert!(cause.is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_missing_extra_action_only_clears_its_permission() {
    let (pdp, _) = stub(|r| {
        Ok(mangled(
            r,
            |_| ALLOW,
            |wire| {
                wire.actions.remove("delete");
            },
        ))
    });
    let handler = Handler::default();
    let layer = cerbos(pdp).layer(contact(), detail_actions()).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let (decision, permissions, ..) = handler.seen();
    assert_eq!(decision.effect("delete"), None);
    assert_eq!(permissions.get("delete"), Some(false));
    assert!(permissions.is_allowed("update"));
}

#[tokio::test]
async fn resolver_failures_have_their_status_and_never_ask_the_pdp() {
    let (pdp, seen) = effects(|_| ALLOW);
    let cerbos = cerbos(pdp);
    let handler = Handler::default();

    // No principal: 401.
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", None),
    )
    .await;
    assert_eq!(
        (out.status, &*out.body),
        (StatusCode::UNAUTHORIZED, &b"Unauthorized"[..])
    );

    // The path does not match the template: 404.
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::NOT_FOUND);

    // A loader: absent row 404, bad id 400, failure 500.
    let loader = contact().load(|r: Resource| async move {
        match r.id() {
            "absent" => Ok(None),
            "bad" => Err(ResolveError::bad_request("not a number")),
            "db-down" => Err(ResolveError::internal(std::io::Error::other("db is down"))),
            _ => Ok(Some(r.with_attr("owner_id", "2"))),
        }
    });
    let layer = cerbos.layer(loader, ["read"]).unwrap();
    for (id, status) in [
        ("absent", StatusCode::NOT_FOUND),
        ("bad", StatusCode::BAD_REQUEST),
        ("db-down", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let out = send(
            layer.layer(handler.service()),
            request(Method::GET, &format!("/contacts/{id}"), Some("john")),
        )
        .await;
        assert_eq!(out.status, status, "{id}");
        assert!(
            !out.body.windows(7).any(|w| w == b"db is d"),
            "the cause leaked"
        );
    }
    assert_eq!(handler.calls(), 0);
    assert_eq!(seen.calls(), 0);

    // The loaded attributes reach the PDP and the handler.
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/7", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        seen.last().entries()[0].resource.attr("owner_id"),
        Some(crate::AttrValue::String("2".into()))
    );
    assert!(handler.seen().3.attr("owner_id").is_some());

    // Resource expected in the extensions but absent: 500.
    let layer = cerbos.layer(ResourceFromExtensions, ["read"]).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/x", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(out.body, "Internal Server Error");
}

#[tokio::test]
async fn principal_and_resource_from_extensions() {
    let (pdp, seen) = effects(|_| ALLOW);
    let cerbos = Cerbos::builder(pdp).build().unwrap();
    let layer = cerbos.layer(ResourceFromExtensions, ["read"]).unwrap();
    let handler = Handler::default();
    let mut req = request(Method::GET, "/anything", None);
    req.extensions_mut()
        .insert(Principal::new("sarah", ["user"]));
    req.extensions_mut().insert(Resource::new("contact", "3"));
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(seen.last().principal().id(), "sarah");
    // No principal in the extensions: 401.
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/anything", None),
    )
    .await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_tokens_go_to_the_pdp_as_aux_data() {
    let (pdp, seen) = effects(|_| ALLOW);
    let cerbos = Cerbos::builder(pdp)
        .principal(BearerJwt::new(user_header).key_set_id("local"))
        .build()
        .unwrap();
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let handler = Handler::default();
    let mut req = request(Method::GET, "/contacts/1", Some("john"));
    req.headers_mut()
        .insert("authorization", "Bearer a.b.c".parse().unwrap());
    assert_eq!(
        send(layer.layer(handler.service()), req).await.status,
        StatusCode::OK
    );
    let last = seen.last();
    let aux = last.aux_data_ref();
    assert_eq!(aux.and_then(|a| a.jwt_token()), Some("a.b.c"));
    assert_eq!(aux.and_then(|a| a.key_set_id()), Some("local"));

    for header in [
        None,
        Some("Basic am9objo="),
        Some("Bearer "),
        Some("Bearer"),
    ] {
        let mut req = request(Method::GET, "/contacts/1", Some("john"));
        if let Some(h) = header {
            req.headers_mut()
                .insert("authorization", h.parse().unwrap());
        }
        let out = send(layer.layer(handler.service()), req).await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{header:?}");
    }
    assert_eq!(seen.calls(), 1);

    // A token the PDP refuses (INVALID_ARGUMENT) is a 401, not a 403.
    let (pdp, _) = stub(|_| {
        Err(Error::InvalidArgument {
            message: "jwt expired".into(),
        })
    });
    let cerbos = Cerbos::builder(pdp)
        .principal(BearerJwt::new(user_header))
        .build()
        .unwrap();
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let mut req = request(Method::GET, "/contacts/1", Some("john"));
    req.headers_mut()
        .insert("authorization", "Bearer expired".parse().unwrap());
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);

    // Optional: no token, no aux data, still checked.
    let cerbos = Cerbos::builder(effects(|_| ALLOW).0)
        .principal(BearerJwt::new(user_header).optional())
        .build()
        .unwrap();
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn actions_by_method() {
    let (pdp, seen) = effects(|a| if a == "delete" { DENY } else { ALLOW });
    let layer = cerbos(pdp).layer(contact(), Actions::crud()).unwrap();
    let handler = Handler::default();
    for (method, action, status) in [
        (Method::GET, "read", StatusCode::OK),
        (Method::PUT, "update", StatusCode::OK),
        (Method::DELETE, "delete", StatusCode::FORBIDDEN),
    ] {
        let out = send(
            layer.layer(handler.service()),
            request(method.clone(), "/contacts/1", Some("john")),
        )
        .await;
        assert_eq!(out.status, status, "{method}");
        assert_eq!(seen.last().entries()[0].actions, [action]);
    }
    // A method without actions is denied without asking the PDP.
    let calls = seen.calls();
    let out = send(
        layer.layer(handler.service()),
        request(Method::OPTIONS, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.calls(), calls);
}

#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    let (pdp, _) = effects(|_| DENY);
    let layer = cerbos(pdp).layer(contact(), ["read"]).unwrap();
    let handler = Handler::default();
    let mut req = request(Method::POST, "/contacts/1", Some("john"));
    req.headers_mut()
        .insert("content-type", "application/grpc+proto".parse().unwrap());
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.headers["grpc-status"], "7");
    assert_eq!(out.headers["content-type"], "application/grpc");
    assert!(out.body.is_empty());
    let mut req = request(Method::POST, "/contacts/1", None);
    req.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.headers["grpc-status"], "16");
}

#[tokio::test]
async fn custom_rejection_handler_replaces_the_response() {
    let (pdp, _) = effects(|_| DENY);
    let cerbos = Cerbos::builder(pdp)
        .principal(user_header)
        .on_rejection(|rejection: Rejection, _: &Parts| {
            Response::builder()
                .status(rejection.status())
                .header("content-type", "application/json")
                .body(Bytes::from(format!(
                    "{{\"error\":\"{:?}\"}}",
                    rejection.kind()
                )))
                .unwrap()
        })
        .build()
        .unwrap();
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let out = send(
        layer.layer(Handler::default().service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(out.body, "{\"error\":\"Denied\"}");
}

#[test]
fn bypass_needs_the_variable_and_is_refused_in_production() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let builder = || Cerbos::builder(effects(|_| ALLOW).0).allow_bypass();
    assert!(
        builder()
            .build_with_env(env(&[("CERBOS_ALLOW_BYPASS", "1")]))
            .unwrap()
            .is_bypassed()
    );
    assert!(!builder().build_with_env(env(&[])).unwrap().is_bypassed());
    assert!(
        !builder()
            .build_with_env(env(&[("CERBOS_ALLOW_BYPASS", "true")]))
            .unwrap()
            .is_bypassed()
    );
    // Not configured: the variable alone does nothing.
    let plain = Cerbos::builder(effects(|_| ALLOW).0);
    assert!(
        !plain
            .build_with_env(env(&[("CERBOS_ALLOW_BYPASS", "1")]))
            .unwrap()
            .is_bypassed()
    );
    for production in [
        &[("CERBOS_ALLOW_BYPASS", "1"), ("ENV", "production")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("APP_ENV", "Production")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("ENV", "prod")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("RUST_ENV", "production")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("NODE_ENV", " PRODUCTION ")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("ENVIRONMENT", "prod")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("DEPLOY_ENV", "Prod")][..],
        &[("ENV", "production")][..],
    ] {
        let pairs: &'static [(&str, &str)] = production;
        let err = builder().build_with_env(env(pairs)).unwrap_err();
        assert!(err.to_string().contains("refused in production"), "{err}");
    }
    let custom = builder().production_when("STAGE", "live");
    assert!(
        custom
            .build_with_env(env(&[("CERBOS_ALLOW_BYPASS", "1"), ("STAGE", "live")]))
            .is_err()
    );
    // Other environments allow the bypass.
    for other in [
        &[("CERBOS_ALLOW_BYPASS", "1"), ("ENV", "development")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("NODE_ENV", "test")][..],
        &[("CERBOS_ALLOW_BYPASS", "1"), ("RUST_ENV", "productive")][..],
    ] {
        let pairs: &'static [(&str, &str)] = other;
        let cerbos = builder().build_with_env(env(pairs));
        assert!(cerbos.unwrap().is_bypassed(), "{pairs:?}");
    }
}

#[tokio::test]
async fn bypass_lets_requests_through_without_the_pdp() {
    let (pdp, seen) = effects(|_| DENY);
    let cerbos = Cerbos::builder(pdp)
        .principal(user_header)
        .allow_bypass()
        .build_with_env(|name| (name == "CERBOS_ALLOW_BYPASS").then(|| "1".to_owned()))
        .unwrap();
    let layer = cerbos.layer(contact(), detail_actions()).unwrap();
    let handler = Handler::default();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(seen.calls(), 0);
    let (decision, permissions, ..) = handler.seen();
    assert_eq!(decision.reason(), Reason::Bypassed);
    assert!(permissions.is_allowed("delete"));
    // Still needs a principal.
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", None),
    )
    .await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn bad_configuration_is_an_error_that_says_what_to_fix() {
    let cerbos = cerbos(effects(|_| ALLOW).0);
    let empty: [&str; 0] = [];
    let err = cerbos.layer(contact(), empty).unwrap_err().to_string();
    assert!(err.contains("at least one required action"), "{err}");
    let err = cerbos.layer(contact(), [""]).unwrap_err().to_string();
    assert!(err.contains("must not be empty"), "{err}");
    let err = cerbos
        .layer(contact(), Actions::by_method().method(Method::GET, empty))
        .unwrap_err()
        .to_string();
    assert!(err.contains("GET"), "{err}");
    let err = Cerbos::builder(effects(|_| ALLOW).0)
        .unreachable_status(StatusCode::OK)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("4xx or 5xx"), "{err}");
    for (template, why) in [
        ("contacts/{id}", "start with '/'"),
        ("/contacts", "no parameter"),
        ("/a/{x}/{y}", "with_id_param"),
        ("/a/{}", "needs a name"),
        ("/a/{id}/{id}", "twice"),
        ("/a/{*rest}/b", "last segment"),
        ("/a/id-{id}", "whole segment"),
    ] {
        let err = ResourceFromPath::new("contact", template)
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{template}: {err}");
    }
    assert!(ResourceFromPath::new("", "/a/{id}").is_err());
    assert!(ResourceFromPath::with_id_param("k", "/a/{x}/{y}", "z").is_err());
}

#[test]
fn path_templates() {
    let t = PathTemplate::new("/orgs/{org}/files/{*path}").unwrap();
    let p = t.match_path("/orgs/acme/files/a/b%20c.txt").unwrap();
    assert_eq!(
        p.iter().collect::<Vec<_>>(),
        [("org", "acme"), ("path", "a/b c.txt")]
    );
    assert!(t.match_path("/orgs//files/x").is_none(), "empty segment");
    assert!(t.match_path("/orgs/acme/docs/x").is_none());
    assert!(t.match_path("orgs/acme/files/x").is_none());
    assert!(t.match_path("/orgs/%ff/files/x").is_none(), "invalid UTF-8");
    assert!(
        t.match_path("/orgs/%4/files/x").is_none(),
        "truncated escape"
    );
    for bad in ["%+1", "%-1", "%g0", "%0 ", "%✓"] {
        assert!(
            t.match_path(&format!("/orgs/{bad}/files/x")).is_none(),
            "malformed escape {bad}"
        );
    }
    assert_eq!(
        t.match_path("/orgs/%41%6a/files/x").unwrap().get("org"),
        Some("Aj"),
        "either case"
    );
    let t = PathTemplate::new("/contacts/{id}").unwrap();
    assert!(t.match_path("/contacts/1/").is_none());
    assert!(t.match_path("/contacts/1/edit").is_none());
    assert_eq!(
        t.match_path("/contacts/%E2%9C%93").unwrap().get("id"),
        Some("✓")
    );
    let two = PathTemplate::new("/teams/{team}/contacts/{id}").unwrap();
    let p = two.match_path("/teams/sales/contacts/7").unwrap();
    assert_eq!(p.resource_id(None), Some("7"), "`id` wins");
    assert_eq!(p.resource_id(Some("team")), Some("sales"));
    assert_eq!(p.resource_id(Some("nope")), None);
    assert_eq!(
        id_param([("team", "a"), ("key", "b")], None),
        None,
        "several, none named id"
    );
    assert_eq!(id_param([("key", "b")], None), Some("b"), "the only one");
    assert_eq!(id_param(std::iter::empty::<(&str, &str)>(), None), None);
    let root = PathTemplate::new("/").unwrap();
    assert!(root.match_path("/").is_some());
    assert!(root.match_path("/x").is_none());
}

#[tokio::test]
async fn untrusted_request_ids_are_replaced() {
    let (pdp, seen) = effects(|_| ALLOW);
    let layer = cerbos(pdp).layer(contact(), ["read"]).unwrap();
    for bad in ["", "has space", &"x".repeat(200)] {
        let mut req = request(Method::GET, "/contacts/1", Some("john"));
        req.headers_mut()
            .insert("x-request-id", bad.parse().unwrap());
        send(layer.layer(Handler::default().service()), req).await;
        let id = seen.last().request_id_ref().unwrap_or_default().to_owned();
        assert!(!id.is_empty() && id != bad && id.len() <= 64, "{id:?}");
    }
}

/// For random answers, the handler runs if and only if every required
/// action is an explicit ALLOW, and the permission map matches the answer.
#[tokio::test]
async fn property_handler_runs_iff_every_required_action_is_allowed() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let names = ["read", "update", "delete", "create", "share", "archive"];
    let effects_pool = [ALLOW, ALLOW, ALLOW, DENY, NO_MATCH, 0, 7];
    for case in 0..2_000 {
        let n_required = 1 + rng.below(3);
        let n_extra = rng.below(3);
        let required: Vec<&str> = names[..n_required].to_vec();
        let extra: Vec<&str> = names[n_required..n_required + n_extra].to_vec();
        let answer_effects: Vec<i32> = (0..names.len())
            .map(|_| effects_pool[rng.below(effects_pool.len())])
            .collect();
        let drop_action = (rng.below(10) == 0).then(|| rng.below(n_required + n_extra));
        let table = answer_effects.clone();
        let (pdp, seen) = stub(move |r| {
            let effect = |a: &str| table[names.iter().position(|n| *n == a).unwrap()];
            Ok(mangled(r, effect, |wire| {
                if let Some(i) = drop_action {
                    wire.actions.remove(names[i]);
                }
            }))
        });
        let layer = cerbos(pdp)
            .layer(
                contact(),
                Actions::require(required.clone()).with_permissions(extra.clone()),
            )
            .unwrap();
        let handler = Handler::default();
        let out = send(
            layer.layer(handler.service()),
            request(Method::GET, "/contacts/5", Some("geri")),
        )
        .await;

        let effect_of = |a: &str| {
            let i = names.iter().position(|n| *n == a).unwrap();
            if drop_action == Some(i) {
                None
            } else {
                Some(answer_effects[i])
            }
        };
        let expected = required.iter().all(|a| effect_of(a) == Some(ALLOW));
        assert_eq!(seen.calls(), 1, "case {case}");
        assert_eq!(
            handler.calls() == 1,
            expected,
            "case {case}: {required:?} {answer_effects:?} {drop_action:?}"
        );
        assert_eq!(out.status == StatusCode::OK, expected, "case {case}");
        if expected {
            let (_, permissions, ..) = handler.seen();
            for a in required.iter().chain(&extra) {
                assert_eq!(
                    permissions.is_allowed(a),
                    effect_of(a) == Some(ALLOW),
                    "case {case}: {a}"
                );
            }
        }
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn route_layer_in_axum_keeps_404_and_checks_matched_routes() {
    use axum::{Router, routing::get};
    let (pdp, seen) = effects(|_| DENY);
    let layer = cerbos(pdp).layer(contact(), ["read"]).unwrap();
    let app: Router = Router::new()
        .route("/contacts/{id}", get(|| async { "contact" }))
        .route_layer(layer);
    let status = |path: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .uri(path)
                .header("x-user", "john")
                .body(axum::body::Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(status("/nowhere").await, StatusCode::NOT_FOUND);
    assert_eq!(seen.calls(), 0);
    assert_eq!(status("/contacts/1").await, StatusCode::FORBIDDEN);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn the_inner_service_polled_ready_is_the_one_called() {
    // A service that is ready only once per instance: calling a clone that
    // was not polled ready would panic inside it.
    #[derive(Default)]
    struct Once {
        ready: bool,
    }
    impl Clone for Once {
        fn clone(&self) -> Self {
            Once { ready: false }
        }
    }
    impl Service<Request<String>> for Once {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            self.ready = true;
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<String>) -> Self::Future {
            assert!(self.ready, "called without poll_ready");
            self.ready = false;
            ready(Ok(Response::new("ok".into())))
        }
    }
    let (pdp, _) = effects(|_| ALLOW);
    let layer = cerbos(pdp).layer(contact(), ["read"]).unwrap();
    let mut service = layer.layer(Once::default());
    for _ in 0..3 {
        let svc = service.ready().await.unwrap();
        let response = svc
            .call(request(Method::GET, "/contacts/1", Some("john")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn authorizer_checks_like_the_layer_and_denies_what_it_cannot_ask() {
    let (pdp, seen) = effects(|a| if a == "delete" { DENY } else { ALLOW });
    let authorizer = cerbos(pdp).authorizer();
    let (parts, _) = request(Method::GET, "/contacts/1", Some("john")).into_parts();
    let subject = authorizer.subject(&parts).await.unwrap();
    let contact = || Resource::new("contact", "1");

    // Required and extra actions, de-duplicated, in one call.
    let decision = authorizer
        .authorize(
            &subject,
            contact(),
            ["read", "read"],
            ["update", "read", "delete"],
        )
        .await
        .unwrap();
    assert_eq!(seen.calls(), 1);
    assert_eq!(
        seen.last().entries()[0].actions,
        ["read", "update", "delete"]
    );
    assert_eq!(decision.required_actions().collect::<Vec<_>>(), ["read"]);
    assert!(!decision.permissions().is_allowed("delete"));

    // No required action, or an empty one: denied without a call.
    let empty: [&str; 0] = [];
    for (required, extra) in [(empty.to_vec(), vec!["read"]), (vec!["read", " "], vec![])] {
        let rejection = authorizer
            .authorize(&subject, contact(), required, extra)
            .await
            .unwrap_err();
        assert_eq!(
            (rejection.kind(), rejection.status()),
            (RejectionKind::Denied, StatusCode::FORBIDDEN)
        );
        assert_eq!(
            rejection.decision().map(Decision::reason),
            Some(Reason::Denied)
        );
    }
    assert_eq!(
        authorizer.check(&subject, contact(), empty).await.reason(),
        Reason::Denied
    );

    // A method without actions: the same denial as the layer's.
    let crud = Actions::crud().build().unwrap();
    let rejection = authorizer
        .authorize_actions(&subject, contact(), &Method::OPTIONS, &crud)
        .await
        .unwrap_err();
    assert_eq!(
        (rejection.kind(), rejection.status()),
        (RejectionKind::Denied, StatusCode::FORBIDDEN)
    );
    assert_eq!(seen.calls(), 1);
    let decision = authorizer
        .authorize_actions(&subject, contact(), &Method::PUT, &crud)
        .await
        .unwrap();
    assert_eq!(decision.required_actions().collect::<Vec<_>>(), ["update"]);
    assert_eq!(seen.calls(), 2);
}

#[tokio::test]
async fn a_rejection_head_keeps_every_header_only_for_a_custom_rejection_handler() {
    let mut req = request(Method::PUT, "/contacts/1?x=1", Some("john"));
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/grpc".parse().unwrap(),
    );
    req.headers_mut().insert("x-trace", "abc".parse().unwrap());
    let (parts, _) = req.into_parts();

    let (pdp, _) = effects(|_| 1);
    let default = cerbos(pdp).authorizer();
    let head = default.rejection_head(&parts);
    assert_eq!(
        (head.method.clone(), head.uri.clone()),
        (Method::PUT, parts.uri.clone())
    );
    assert_eq!(
        head.headers.len(),
        1,
        "only content-type: {:?}",
        head.headers
    );
    assert_eq!(head.headers[http::header::CONTENT_TYPE], "application/grpc");
    // The default rejection for a gRPC request is still a gRPC answer.
    let denied = Rejection::new(RejectionKind::Denied, None, None);
    let response = default.render(denied, &head);
    assert_eq!(response.headers()["grpc-status"], "7");

    let (pdp, _) = effects(|_| 1);
    let custom = Cerbos::builder(pdp)
        .principal(user_header)
        .on_rejection(|_: Rejection, parts: &Parts| {
            let trace = parts.headers.get("x-trace").cloned();
            let mut response = http::Response::new(bytes::Bytes::new());
            if let Some(trace) = trace {
                response.headers_mut().insert("x-trace", trace);
            }
            response
        })
        .build()
        .unwrap()
        .authorizer();
    let head = custom.rejection_head(&parts);
    assert_eq!(
        head.headers, parts.headers,
        "a custom handler may read any header"
    );
    let denied = Rejection::new(RejectionKind::Denied, None, None);
    assert_eq!(custom.render(denied, &head).headers()["x-trace"], "abc");
}

/// A PDP that is down.
fn down(_: &CheckResources) -> crate::Result<CheckResourcesResponse> {
    Err(Error::Unavailable {
        message: "connection refused to 10.0.0.7:3593".into(),
    })
}

#[tokio::test]
async fn an_unreachable_pdp_is_503_by_default_and_403_on_request() {
    let handler = Handler::default();
    let (pdp, seen) = stub(down);
    let layer = cerbos(pdp).layer(contact(), ["read"]).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(out.body, "Service Unavailable");
    assert!(out.headers.get(http::header::RETRY_AFTER).is_none());
    assert_eq!(seen.calls(), 1);
    // gRPC: UNAVAILABLE.
    let mut req = request(Method::POST, "/contacts/1", Some("john"));
    req.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(out.headers["grpc-status"], "14");

    // 403 stays one call away.
    let cerbos = Cerbos::builder(stub(down).0)
        .principal(user_header)
        .unreachable_status(StatusCode::FORBIDDEN)
        .build()
        .unwrap();
    let layer = cerbos.layer(contact(), ["read"]).unwrap();
    let out = send(
        layer.layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(out.body, "Forbidden");
    assert_eq!(handler.calls(), 0, "fail-closed: never the handler");
}

#[tokio::test]
async fn problem_json_bodies_say_the_status_and_nothing_else() {
    let handler = Handler::default();
    let cases = [
        (
            "denied",
            problem(effects(|_| DENY).0, Some("john"), false).await,
            403,
            "Forbidden",
        ),
        (
            "unreachable",
            problem(stub(down).0, Some("john"), false).await,
            503,
            "Service Unavailable",
        ),
        (
            "unauthenticated",
            problem(effects(|_| ALLOW).0, None, false).await,
            401,
            "Unauthorized",
        ),
    ];
    for (name, out, status, title) in cases {
        assert_eq!(out.status.as_u16(), status, "{name}");
        assert_eq!(
            out.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert_eq!(
            out.body,
            format!("{{\"type\":\"about:blank\",\"title\":\"{title}\",\"status\":{status}}}"),
            "{name}"
        );
        // The body is JSON.
        let _: serde_json::Value = serde_json::from_slice(&out.body).expect(name);
    }

    // gRPC requests keep gRPC statuses.
    let out = problem(effects(|_| DENY).0, Some("john"), true).await;
    assert_eq!(out.headers["grpc-status"], "7");
    assert_eq!(out.headers["content-type"], "application/grpc");
    assert!(out.body.is_empty());

    // A custom handler's default response follows the setting.
    let cerbos = Cerbos::builder(effects(|_| DENY).0)
        .principal(user_header)
        .problem_json()
        .on_rejection(|rejection: Rejection, parts: &Parts| {
            let mut response = rejection.default_response(parts);
            response
                .headers_mut()
                .insert("x-custom", http::HeaderValue::from_static("1"));
            response
        })
        .build()
        .unwrap();
    let out = send(
        cerbos
            .layer(contact(), ["read"])
            .unwrap()
            .layer(handler.service()),
        request(Method::GET, "/contacts/1", Some("john")),
    )
    .await;
    assert_eq!(out.headers["x-custom"], "1");
    assert_eq!(out.headers["content-type"], "application/problem+json");
    assert_eq!(
        out.body,
        "{\"type\":\"about:blank\",\"title\":\"Forbidden\",\"status\":403}"
    );
}

/// A GET (or a gRPC POST) of `/contacts/1` by `user` through a layer with
/// problem+json bodies; the handler must not be called.
async fn problem<P: Pdp>(pdp: P, user: Option<&str>, grpc: bool) -> Outcome {
    let handler = Handler::default();
    let layer = Cerbos::builder(pdp)
        .principal(user_header)
        .problem_json()
        .build()
        .unwrap()
        .layer(contact(), ["read"])
        .unwrap();
    let mut req = request(Method::GET, "/contacts/1", user);
    if grpc {
        *req.method_mut() = Method::POST;
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
    }
    let out = send(layer.layer(handler.service()), req).await;
    assert_eq!(handler.calls(), 0);
    out
}

/// The levels and messages of the events logged while it is the default
/// subscriber (this thread only).
mod log_capture {
    use std::sync::{Arc, Mutex};

    use tracing::{
        Event, Level, Metadata, Subscriber,
        field::{Field, Visit},
        span,
    };

    #[derive(Clone, Default)]
    pub(super) struct Capture(pub(super) Arc<Mutex<Vec<(Level, String)>>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), message.0));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }
}

#[tokio::test]
async fn a_cors_preflight_is_denied_and_logged_at_debug() {
    let capture = log_capture::Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (pdp, seen) = effects(|_| ALLOW);
    let cerbos = cerbos(pdp);
    let layer = cerbos.layer(contact(), Actions::crud()).unwrap();
    let handler = Handler::default();
    let logged = || {
        capture
            .0
            .lock()
            .unwrap()
            .drain(..)
            .filter(|(_, message)| message.contains("no actions"))
            .map(|(level, _)| level)
            .collect::<Vec<_>>()
    };

    let mut preflight = request(Method::OPTIONS, "/contacts/1", Some("john"));
    preflight.headers_mut().insert(
        http::header::ACCESS_CONTROL_REQUEST_METHOD,
        "PUT".parse().unwrap(),
    );
    preflight
        .headers_mut()
        .insert(http::header::ORIGIN, "https://a.example".parse().unwrap());
    let out = send(layer.layer(handler.service()), preflight).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN, "still denied");
    assert_eq!(logged(), [tracing::Level::DEBUG]);

    // A plain OPTIONS, and another unmapped method, are configuration
    // gaps: errors.
    for method in [Method::OPTIONS, Method::TRACE] {
        let out = send(
            layer.layer(handler.service()),
            request(method.clone(), "/contacts/1", Some("john")),
        )
        .await;
        assert_eq!(out.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(logged(), [tracing::Level::ERROR], "{method}");
    }
    assert_eq!(seen.calls(), 0, "the PDP is not asked");
    assert_eq!(handler.calls(), 0);

    // The same through the authorizer (the adapters' path).
    let authorizer = cerbos.authorizer();
    let subject = authorizer
        .subject(&request(Method::OPTIONS, "/", Some("john")).into_parts().0)
        .await
        .unwrap();
    let crud = Actions::crud().build().unwrap();
    let rejection = authorizer
        .authorize_actions(
            &subject,
            Resource::new("contact", "1"),
            &Method::OPTIONS,
            &crud,
        )
        .await
        .unwrap_err();
    let mut head = request(Method::OPTIONS, "/contacts/1", Some("john"))
        .into_parts()
        .0;
    head.headers.insert(
        http::header::ACCESS_CONTROL_REQUEST_METHOD,
        "DELETE".parse().unwrap(),
    );
    assert_eq!(
        authorizer.render(rejection, &head).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(logged(), [tracing::Level::DEBUG]);
}

/// The handler checks of a request by `john`.
async fn checks_for(cerbos: &Cerbos<impl Pdp, impl PrincipalResolver>) -> HandlerChecks {
    let head = request(Method::GET, "/contacts", Some("john"))
        .into_parts()
        .0;
    HandlerChecks::resolve(cerbos.authorizer(), &head)
        .await
        .unwrap()
}

#[tokio::test]
async fn plan_with_translates_the_plan_and_a_refused_translation_is_denied() {
    // A PDP that cannot plan: unreachable, and the translation never runs.
    let (pdp, seen) = effects(|_| ALLOW);
    let checks = checks_for(&cerbos(pdp)).await;
    let translated = AtomicUsize::new(0);
    let translate = |_: &PlanFilter| {
        translated.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>("all")
    };
    let rejection = checks
        .plan_with("contact", ["read"], translate)
        .await
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::Unreachable);
    assert_eq!(translated.load(Ordering::SeqCst), 0);
    assert_eq!(seen.calls(), 0, "a check is not a plan");

    // Bypassed: the translation gets AlwaysAllowed; its error is a denial
    // whose cause is logged, never sent.
    let (pdp, _) = effects(|_| DENY);
    let cerbos = Cerbos::builder(pdp)
        .principal(user_header)
        .allow_bypass()
        .build_with_env(|name| (name == "CERBOS_ALLOW_BYPASS").then(|| "1".to_owned()))
        .unwrap();
    let checks = checks_for(&cerbos).await;
    let seen_filter = |filter: &PlanFilter| Ok::<_, String>(filter.clone());
    assert_eq!(
        checks
            .plan_with("contact", ["read"], seen_filter)
            .await
            .ok(),
        Some(PlanFilter::AlwaysAllowed)
    );
    let refuse = |_: &PlanFilter| Err::<(), _>("the secret column `ssn` has no SQL form");
    let rejection = checks
        .plan_with("contact", ["read"], refuse)
        .await
        .unwrap_err();
    assert_eq!(
        (rejection.kind(), rejection.status()),
        (RejectionKind::Denied, StatusCode::FORBIDDEN)
    );
    let body = String::from_utf8_lossy(rejection.response().body()).into_owned();
    assert_eq!(body, "Forbidden", "nothing of the error is sent");
    let authorizer = cerbos.authorizer();
    let subject = checks.subject();
    let rejection = authorizer
        .plan_with(subject, "contact", ["read"], refuse)
        .await
        .unwrap_err();
    assert!(rejection.cause().unwrap().contains("`ssn`"));
}

#[tokio::test]
async fn with_permissions_pairs_each_row_with_its_own_map() {
    let (pdp, seen) = effects(|action| if action == "update" { ALLOW } else { DENY });
    let checks = checks_for(&cerbos(pdp)).await;
    let rows = vec![3, 1, 2];
    let resource = |id: &i32| Resource::new("contact", id.to_string());
    let got = checks
        .with_permissions(rows, resource, ["update", "delete"])
        .await
        .unwrap();
    assert_eq!(seen.calls(), 1, "one batched call");
    let ids: Vec<_> = seen
        .last()
        .entries()
        .iter()
        .map(|e| e.resource.id().to_owned())
        .collect();
    assert_eq!(ids, ["3", "1", "2"]);
    assert_eq!(got.iter().map(|r| r.row).collect::<Vec<_>>(), [3, 1, 2]);
    for row in &got {
        assert!(row.permissions.is_allowed("update"));
        assert!(!row.permissions.is_allowed("delete"));
    }
    assert_eq!(
        serde_json::to_value(WithPermissions::new(
            serde_json::json!({"id": 3}),
            got[0].permissions.clone()
        ))
        .unwrap(),
        serde_json::json!({"id": 3, "permissions": {"update": true, "delete": false}})
    );
    let none: Vec<i32> = Vec::new();
    assert!(
        checks
            .with_permissions(none, resource, ["update"])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(seen.calls(), 1, "no rows, no call");
}

#[tokio::test]
async fn a_resource_that_cannot_be_built_rejects_without_asking_the_pdp() {
    #[derive(Debug, serde::Serialize)]
    struct Row {
        id: u64,
    }
    let resource = |row: &Row| Resource::new("contact", "1").with_serialized_attrs(row);
    let (pdp, seen) = effects(|_| ALLOW);
    let checks = checks_for(&cerbos(pdp)).await;
    let inexact = Row { id: u64::MAX };
    let rejection = checks
        .require(resource(&inexact), ["read"])
        .await
        .unwrap_err();
    assert_eq!(
        (rejection.kind(), rejection.status()),
        (
            RejectionKind::ResolverFailed,
            StatusCode::INTERNAL_SERVER_ERROR
        )
    );
    let rows = vec![Row { id: 1 }, inexact];
    let rejection = checks
        .with_permissions(rows, resource, ["read"])
        .await
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::ResolverFailed);
    assert_eq!(seen.calls(), 0, "the PDP is never asked");
    // An exact row goes through, its fields as attributes.
    let decision = checks
        .require(resource(&Row { id: 7 }), ["read"])
        .await
        .unwrap();
    assert!(decision.is_allowed());
    let sent = seen.last();
    let id = sent.entries()[0].resource.attr("id");
    assert_eq!(id, Some(crate::AttrValue::Number(7.0)));
}

/// A lying PDP never pairs a row with another row's permissions: answers
/// out of order, with a row missing or added, or without an effect for an
/// action fail the whole page (503); an unknown effect is not an allow.
#[tokio::test]
async fn per_row_permissions_trust_no_answer_about_another_row() {
    type Lie = fn(&mut Vec<wire::ResultEntry>);
    let lies: [(&str, Lie); 5] = [
        ("reversed", |results| results.reverse()),
        ("one missing", |results| {
            results.pop();
        }),
        ("one added", |results| {
            let extra = results[0].clone();
            results.push(extra);
        }),
        ("another id", |results| {
            if let Some(resource) = results[1].resource.as_mut() {
                resource.id = "999".into();
            }
        }),
        ("no effect for delete", |results| {
            results[2].actions.remove("delete");
        }),
    ];
    let rows = vec![1, 2, 3];
    let resource = |id: &i32| Resource::new("contact", id.to_string());
    for (lie, change) in lies {
        let (pdp, seen) = stub(move |request| {
            let mut results: Vec<_> = answer(request, |_| ALLOW)
                .results()
                .iter()
                .map(|r| r.as_proto().clone())
                .collect();
            change(&mut results);
            Ok(CheckResourcesResponse::from_proto(WireResponse {
                results,
                ..Default::default()
            }))
        });
        let checks = checks_for(&cerbos(pdp)).await;
        let rejection = checks
            .with_permissions(rows.clone(), resource, ["update", "delete"])
            .await
            .unwrap_err();
        assert_eq!(
            (rejection.kind(), rejection.status()),
            (RejectionKind::Unreachable, StatusCode::SERVICE_UNAVAILABLE),
            "{lie}"
        );
        assert_eq!(seen.calls(), 1, "{lie}");
    }

    // An effect the client does not know is not an allow.
    let (pdp, _) = effects(|action| if action == "update" { 7 } else { ALLOW });
    let checks = checks_for(&cerbos(pdp)).await;
    let got = checks
        .with_permissions(rows, resource, ["update", "delete"])
        .await
        .unwrap();
    assert!(got.iter().all(|row| !row.permissions.is_allowed("update")));
    assert!(got.iter().all(|row| row.permissions.is_allowed("delete")));
}
