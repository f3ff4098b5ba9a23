//! [`Authorized`]: the extractor behind `#[authorize]`, and the [`Spec`]
//! the attribute implements.

use std::{fmt, future::Future, marker::PhantomData};

use axum::extract::{FromRef, FromRequestParts};
use cerbos_tower::{
    Resource,
    adapter::{Declaration, Required, authorize_request, loaded},
    layer::{Authorizer, ResolveError},
};
use http::request::Parts;

use crate::{CerbosRejection, path::resource_from_path};

/// What `#[authorize(...)]` declares about a handler. Implemented by the
/// attribute; not meant to be implemented by hand.
#[doc(hidden)]
pub trait Spec<S> {
    const DECLARATION: Declaration;

    fn load(
        resource: Resource,
        state: &S,
    ) -> impl Future<Output = Result<Option<Resource>, ResolveError>> + Send;
}

/// The extractor `#[authorize(...)]` puts first in a handler's arguments:
/// it resolves the principal and the resource and asks the PDP before any
/// other extractor runs, rejects like the layer, and puts the
/// [`Decision`](crate::Decision), the [`PermissionMap`](crate::PermissionMap),
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
        let declared = &M::DECLARATION;
        let authorizer = Authorizer::from_ref(state);
        let resource = async {
            let resource = resource_from_path(parts, declared.kind, declared.id_param)?;
            loaded(M::load(resource, state).await)
        };
        let allowed =
            authorize_request(&authorizer, parts, resource, Required::Declared(declared)).await?;
        let (permissions, decision, principal, resource) = allowed.into_extensions();
        parts.extensions.insert(permissions);
        parts.extensions.insert(decision);
        parts.extensions.insert(principal);
        parts.extensions.insert(resource);
        Ok(Authorized(PhantomData))
    }
}
