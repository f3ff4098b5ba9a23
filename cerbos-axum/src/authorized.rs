//! [`Authorized`]: the extractor behind `#[authorize]`, and the [`Spec`]
//! the attribute implements.

use std::{fmt, future::Future, marker::PhantomData};

use axum::extract::FromRequestParts;
use cerbos_tower::{
    Resource,
    adapter::{Declaration, LoaderOutput, Required, authorize_request, loaded_row},
    layer::{Authorizer, ResolveError},
};
use http::request::Parts;

use crate::{CerbosRejection, loaded::insert_allowed, path::resource_from_path};

/// What `#[authorize(...)]` declares about a handler. Implemented by the
/// attribute; not meant to be implemented by hand.
#[doc(hidden)]
pub trait Spec<S> {
    const DECLARATION: Declaration;

    /// The `Authorizer` of the router state.
    fn authorizer(state: &S) -> Authorizer;

    fn load(
        resource: Resource,
        state: &S,
    ) -> impl Future<Output = Result<Option<impl LoaderOutput>, ResolveError>> + Send;
}

/// How the code `#[authorize(load = f, state = S)]` generates passes the
/// state to `f`: a clone (`async fn f(Resource, S)`, the shape guards and
/// `Authz::require_loaded` share) or a reference (`async fn f(Resource,
/// &S)`).
#[doc(hidden)]
pub trait StateArg<T> {
    fn state_arg(self) -> T;
}

impl<'a, S> StateArg<&'a S> for &'a S {
    fn state_arg(self) -> &'a S {
        self
    }
}

impl<S: Clone> StateArg<S> for &S {
    fn state_arg(self) -> S {
        self.clone()
    }
}

/// The extractor `#[authorize(...)]` puts first in a handler's arguments:
/// it resolves the principal and the resource and asks the PDP before any
/// other extractor runs, rejects like the layer, and puts the
/// [`Decision`](crate::Decision), the [`PermissionMap`](crate::PermissionMap),
/// the principal, the resource and the loader's row ([`Loaded`](crate::Loaded))
/// into the request extensions, where the handler's own extractors find
/// them.
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
{
    type Rejection = CerbosRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let declared = &M::DECLARATION;
        let authorizer = M::authorizer(state);
        let mut row = None;
        let allowed = {
            let resource = async {
                let resource = resource_from_path(parts, declared.kind, declared.id_param)?;
                let (resource, found) = loaded_row(M::load(resource, state).await)?;
                row = found;
                Ok(resource)
            };
            authorize_request(&authorizer, parts, resource, Required::Declared(declared)).await?
        };
        insert_allowed(parts, allowed, row);
        Ok(Authorized(PhantomData))
    }
}
