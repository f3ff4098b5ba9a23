//! A resource kind that no policy matches (a typo) is logged once at WARN
//! with its name, from the layer and from in-handler checks, against the
//! real PDP; kinds with a policy are not.

mod common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use axum::{Router, body::Body, routing::get};
use cerbos_axum::{Cerbos, CerbosExt, Resource};
use common::contacts::principal_from_header;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

/// The WARN events logged while it is the default subscriber.
#[derive(Clone, Default)]
struct Warnings {
    events: Arc<Mutex<Vec<String>>>,
    next_span: Arc<AtomicU64>,
}

impl Warnings {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.events.lock().unwrap())
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN || metadata.is_span()
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.events.lock().unwrap().push(message.0);
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

async fn ok() -> &'static str {
    "ok"
}

#[tokio::test]
async fn a_kind_without_a_policy_is_logged_once_at_warn() {
    let warnings = Warnings::default();
    let _default = tracing::subscriber::set_default(warnings.clone());
    let cerbos = Cerbos::builder(common::contact_client())
        .principal(principal_from_header)
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route(
            "/typo/{id}",
            get(ok).route_layer(cerbos.guard("documnet", ["read"]).unwrap()),
        )
        .route(
            "/contacts/{id}",
            get(ok).route_layer(cerbos.guard("contact", ["read"]).unwrap()),
        );
    for id in 1..=3 {
        for (path, status) in [
            (format!("/typo/{id}"), StatusCode::FORBIDDEN),
            (format!("/contacts/{id}"), StatusCode::OK),
        ] {
            let request = Request::builder()
                .uri(&path)
                .header("x-user", "alice")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{path}");
        }
    }
    let logged = warnings.take();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains("no Cerbos policy matched resource kind \"documnet\""),
        "{logged:?}"
    );

    // In-handler checks share the same watch: another typo, once.
    let authorizer = cerbos.authorizer();
    let parts = Request::builder()
        .header("x-user", "alice")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let subject = authorizer.subject(&parts).await.unwrap();
    for id in ["1", "2"] {
        let decision = authorizer
            .check(&subject, Resource::new("contcat", id), ["read"])
            .await;
        assert!(!decision.is_allowed());
        let decision = authorizer
            .check(&subject, Resource::new("contact", id), ["read"])
            .await;
        assert!(decision.is_allowed(), "alice is an admin");
    }
    let logged = warnings.take();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("\"contcat\""), "{logged:?}");
}
