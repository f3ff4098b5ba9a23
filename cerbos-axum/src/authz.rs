//! Checks in handlers: [`Authz`] (in-handler checks), [`Authorized`] (the
//! extractor behind `#[authorize]`) and their rejection.

use std::{fmt, future::Future, marker::PhantomData, sync::Arc};

use axum::{
    extract::{FromRef, FromRequestParts},
    response::{IntoResponse, Response},
};
use cerbos_tower::{
    Resource,
    adapter::{AuthorizerExt, loaded},
    layer::{Authorizer, Decision, Rejection, RejectionKind, ResolveError, Subject},
};
use http::request::Parts;

use crate::path::resource_from_path;

/// A request the Cerbos checks of a handler rejected: the same response the
/// layer would send (its status, or the custom rejection handler's
/// response).
pub struct CerbosRejection {
    kind: RejectionKind,
    decision: Option<Decision>,
    response: http::Response<bytes::Bytes>,
}

impl CerbosRejection {
    fn new(authorizer: &Authorizer, rejection: Rejection, parts: &Parts) -> Self {
        let kind = rejection.kind();
        let decision = rejection.decision().cloned();
        CerbosRejection {
            kind,
            decision,
            response: authorizer.render(rejection, parts),
        }
    }

    /// Why.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status of the response.
    pub fn status(&self) -> http::StatusCode {
        self.response.status()
    }

    /// The decision, when the PDP was asked.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }
}

impl fmt::Debug for CerbosRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CerbosRejection")
            .field("kind", &self.kind)
            .field("status", &self.status())
            .field("decision", &self.decision)
            .finish()
    }
}

impl IntoResponse for CerbosRejection {
    fn into_response(self) -> Response {
        self.response.map(axum::body::Body::from)
    }
}

/// Checks made in a handler, for decisions that need data only the handler
/// has: the principal is resolved when the extractor runs (401 and the
/// like reject the request before the handler); each
/// [`check`](Self::check) or [`require`](Self::require) is one
/// `CheckResources` call with all its actions.
///
/// Needs an [`Authorizer`] in the router state (`Authorizer: FromRef<S>`).
///
/// ```
/// use axum::{Router, routing::post};
/// use cerbos_axum::{Authz, CerbosRejection, Resource};
///
/// async fn transfer(authz: Authz, body: String) -> Result<String, CerbosRejection> {
///     // The resource exists only in the request body.
///     let account = Resource::new("account", body.trim()).with_attr("currency", "EUR");
///     let decision = authz.require(account, ["withdraw"]).await?;
///     Ok(format!("ok ({})", decision.cerbos_call_id()))
/// }
///
/// # fn app(authorizer: cerbos_axum::Authorizer) -> Router {
/// Router::new().route("/transfer", post(transfer)).with_state(authorizer)
/// # }
/// ```
#[derive(Clone)]
pub struct Authz {
    authorizer: Authorizer,
    subject: Subject,
    head: Arc<Parts>,
}

impl fmt::Debug for Authz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl<S> FromRequestParts<S> for Authz
where
    S: Send + Sync,
    Authorizer: FromRef<S>,
{
    type Rejection = CerbosRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authorizer = Authorizer::from_ref(state);
        let subject = authorizer
            .subject(parts)
            .await
            .map_err(|rejection| CerbosRejection::new(&authorizer, rejection, parts))?;
        let head = Arc::new(authorizer.rejection_head(parts));
        Ok(Authz {
            authorizer,
            subject,
            head,
        })
    }
}

impl Authz {
    /// The principal of the request.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Checks `actions` on `resource` in one PDP call; the decision is
    /// allowed only if every action is, and its
    /// [`permissions`](Decision::permissions) tell them apart. Fail-closed:
    /// a PDP that cannot be asked gives an unreachable (not allowed)
    /// decision.
    pub async fn check<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Decision {
        self.authorizer
            .check(&self.subject, resource, actions)
            .await
    }

    /// Like [`check`](Self::check), but a request that may not do all of
    /// `actions` is the rejection the layer would have made.
    pub async fn require<A: Into<String>>(
        &self,
        resource: Resource,
        actions: impl IntoIterator<Item = A>,
    ) -> Result<Decision, CerbosRejection> {
        self.authorizer
            .require(&self.subject, resource, actions)
            .await
            .map_err(|rejection| CerbosRejection::new(&self.authorizer, rejection, &self.head))
    }
}

/// What `#[authorize(...)]` declares about a handler. Implemented by the
/// attribute; not meant to be implemented by hand.
#[doc(hidden)]
pub trait Spec<S> {
    const KIND: &'static str;
    const ACTIONS: &'static [&'static str];
    const PERMISSIONS: &'static [&'static str];
    const ID_PARAM: Option<&'static str>;

    fn load(
        resource: Resource,
        state: &S,
    ) -> impl Future<Output = Result<Option<Resource>, ResolveError>> + Send;
}

/// The extractor `#[authorize(...)]` puts first in a handler's arguments:
/// it resolves the principal and the resource and asks the PDP before any
/// other extractor runs, rejects like the layer, and puts the
/// [`Decision`], the [`PermissionMap`](cerbos_tower::layer::PermissionMap),
/// the principal and the resource into the request extensions, where the
/// handler's own extractors find them.
pub struct Authorized<M>(PhantomData<fn() -> M>);

impl<M> fmt::Debug for Authorized<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorized")
    }
}

impl<S, M> FromRequestParts<S> for Authorized<M>
where
    S: Send + Sync,
    M: Spec<S>,
    Authorizer: FromRef<S>,
{
    type Rejection = CerbosRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authorizer = Authorizer::from_ref(state);
        let reject = |rejection: Rejection, parts: &Parts| {
            CerbosRejection::new(&authorizer, rejection, parts)
        };
        let subject = match authorizer.subject(parts).await {
            Ok(subject) => subject,
            Err(rejection) => return Err(reject(rejection, parts)),
        };
        let resource = match resource_from_path(parts, M::KIND, M::ID_PARAM) {
            Ok(resource) => loaded(M::load(resource, state).await),
            Err(err) => Err(err),
        };
        let resource = match resource {
            Ok(resource) => resource,
            Err(err) => return Err(reject(err.into(), parts)),
        };
        let decision = authorizer
            .authorize(
                &subject,
                resource.clone(),
                M::ACTIONS.iter().copied(),
                M::PERMISSIONS.iter().copied(),
            )
            .await;
        let decision = match decision {
            Ok(decision) => decision,
            Err(rejection) => return Err(reject(rejection, parts)),
        };
        parts.extensions.insert(decision.permissions());
        parts.extensions.insert(decision);
        parts.extensions.insert(subject.principal().clone());
        parts.extensions.insert(resource);
        Ok(Authorized(PhantomData))
    }
}
