//! [`Loaded`]: the row a loader read, handed to the handler; and
//! [`LoadedGuard`], a route guard whose loader gets the router state and
//! returns the row.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts, Request},
    response::{IntoResponse, Response},
};
use cerbos_tower::{
    MissingAuthorization, Resource,
    adapter::{LoaderOutput, Required, authorize_request, loaded_row},
    layer::{ActionSet, Authorizer, ResolveError},
};
use http::request::Parts;

use crate::{CerbosRejection, path::resource_from_path};

/// The typed row that the loader of a guard ([`CerbosExt::guard_loaded`](crate::CerbosExt::guard_loaded))
/// or of `#[authorize(load = ..)]` returned with the resource, as
/// `Ok(Some((resource, row)))`: an extractor, so that the handler does not
/// read the row again.
///
/// On a route whose loader returns no row of type `T` (or without a
/// guard), the extractor answers 500 with a body that says what is
/// missing; `Option<Loaded<T>>` never rejects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded<T>(pub T);

impl<S: Send + Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for Loaded<T> {
    type Rejection = MissingAuthorization;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Loaded<T>>()
            .cloned()
            .ok_or(MissingAuthorization::__new(
                std::any::type_name::<Loaded<T>>(),
            ))
    }
}

impl<S: Send + Sync, T: Clone + Send + Sync + 'static> OptionalFromRequestParts<S> for Loaded<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Loaded<T>>().cloned())
    }
}

/// Puts what an allowed request carries into its extensions: the
/// permission map, the decision, the principal, the resource and, if the
/// loader returned one, the row as [`Loaded`].
pub(crate) fn insert_allowed<T: Clone + Send + Sync + 'static>(
    parts: &mut Parts,
    allowed: cerbos_tower::adapter::Allowed,
    row: Option<T>,
) {
    let (permissions, decision, principal, resource) = allowed.into_extensions();
    parts.extensions.insert(permissions);
    parts.extensions.insert(decision);
    parts.extensions.insert(principal);
    parts.extensions.insert(resource);
    if let Some(row) = row {
        parts.extensions.insert(Loaded(row));
    }
}

/// A route guard whose resource is a path parameter completed by a loader
/// that gets the router state: `async fn(Resource, S) -> Result<Option<(Resource,
/// Row)>, ResolveError>` (or `Option<Resource>` without a row), the same
/// loader as `#[authorize(load = .., state = S)]` and
/// [`Authz::require_loaded`](crate::Authz::require_loaded). Made by
/// [`CerbosExt::guard_loaded`](crate::CerbosExt::guard_loaded); attach it
/// with `route_layer`.
///
/// For each request: the principal (401 and the like before the loader
/// runs), then the loader, exactly once (`Ok(None)`: 404; an error: 500),
/// then one `CheckResources` call. The handler runs only when every
/// required action is allowed, with the row as [`Loaded<Row>`](Loaded) and
/// the decision, permission map, principal and resource in the extensions.
pub struct LoadedGuard<S, F> {
    inner: Arc<GuardConfig<S, F>>,
}

struct GuardConfig<S, F> {
    authorizer: Authorizer,
    kind: Arc<str>,
    param: Option<Arc<str>>,
    actions: ActionSet,
    state: S,
    loader: F,
}

impl<S, F> LoadedGuard<S, F> {
    pub(crate) fn new(
        authorizer: Authorizer,
        resource: &crate::PathResource,
        actions: ActionSet,
        state: S,
        loader: F,
    ) -> Self {
        let (kind, param) = resource.parts();
        LoadedGuard {
            inner: Arc::new(GuardConfig {
                authorizer,
                kind,
                param,
                actions,
                state,
                loader,
            }),
        }
    }
}

impl<S, F> LoadedGuard<S, F> {
    /// Every `(kind, action)` this guard can ask the PDP about, for
    /// `cerbos_testkit::PolicyCoverage`.
    pub fn asked(&self) -> Vec<(&str, &str)> {
        let kind = &*self.inner.kind;
        self.inner
            .actions
            .names()
            .into_iter()
            .map(|action| (kind, action))
            .collect()
    }
}

impl<S, F> Clone for LoadedGuard<S, F> {
    fn clone(&self) -> Self {
        LoadedGuard {
            inner: self.inner.clone(),
        }
    }
}

impl<S, F> fmt::Debug for LoadedGuard<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedGuard")
            .field("kind", &self.inner.kind)
            .field("actions", &self.inner.actions)
            .finish_non_exhaustive()
    }
}

impl<I, S, F> tower::Layer<I> for LoadedGuard<S, F> {
    type Service = LoadedGuardService<I, S, F>;

    fn layer(&self, inner: I) -> Self::Service {
        LoadedGuardService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service of a [`LoadedGuard`].
pub struct LoadedGuardService<I, S, F> {
    inner: I,
    guard: LoadedGuard<S, F>,
}

impl<I: Clone, S, F> Clone for LoadedGuardService<I, S, F> {
    fn clone(&self) -> Self {
        LoadedGuardService {
            inner: self.inner.clone(),
            guard: self.guard.clone(),
        }
    }
}

impl<I, S, F> fmt::Debug for LoadedGuardService<I, S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedGuardService")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<I, S, F, Fut, O> tower::Service<Request> for LoadedGuardService<I, S, F>
where
    I: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    I::Future: Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: Fn(Resource, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<O>, ResolveError>> + Send + 'static,
    O: LoaderOutput,
{
    type Response = Response;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, I::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.inner.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let mut row = None;
            let outcome = {
                let resource = async {
                    let resource = resource_from_path(&parts, &guard.kind, guard.param.as_deref())?;
                    let answer = (guard.loader)(resource, guard.state.clone()).await;
                    let (resource, found) = loaded_row(answer)?;
                    row = found;
                    Ok(resource)
                };
                authorize_request(
                    &guard.authorizer,
                    &parts,
                    resource,
                    Required::Route(&guard.actions),
                )
                .await
            };
            match outcome {
                Ok(allowed) => {
                    insert_allowed(&mut parts, allowed, row);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(rejection) => Ok(CerbosRejection::from(rejection).into_response()),
            }
        })
    }
}
