//! [`Authorized`]: the extractor behind `#[authorize]`, and the [`Spec`]
//! the attribute implements.

use std::{fmt, future::Future, marker::PhantomData};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use cerbos_tower::{
    Resource,
    adapter::{Declaration, LoaderOutput, Required, loaded_row},
    layer::ResolveError,
};
use futures_util::future::LocalBoxFuture;

use crate::{
    loaded::keep_row,
    path::resource_from_path,
    request::{app_authorizer, authorize},
};

/// What `#[authorize(...)]` declares about a handler. Implemented by the
/// attribute; not meant to be implemented by hand.
#[doc(hidden)]
pub trait Spec {
    const DECLARATION: Declaration;

    fn load(
        resource: Resource,
        req: HttpRequest,
    ) -> impl Future<Output = Result<Option<impl LoaderOutput>, ResolveError>> + 'static;
}

/// The extractor `#[authorize(...)]` gives a handler in place of its
/// arguments: it resolves the principal and the resource and asks the PDP,
/// rejects like the guard, puts the [`Decision`](crate::Decision), the
/// [`PermissionMap`](crate::PermissionMap), the principal, the resource and
/// the loader's row ([`Loaded`](crate::Loaded)) into the request extensions, and only then runs the handler's own
/// extractors `T` (actix would otherwise run them all at once, before the
/// decision is known).
pub struct Authorized<M, T = ()>(T, PhantomData<fn() -> M>);

impl<M, T> Authorized<M, T> {
    /// The handler's own arguments.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<M, T> fmt::Debug for Authorized<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorized")
    }
}

impl<M: Spec + 'static, T: FromRequest + 'static> FromRequest for Authorized<M, T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let declared = M::DECLARATION;
            let authorizer = app_authorizer(&req)?;
            let resource = async {
                let resource = resource_from_path(&req, declared.kind, declared.id_param, None)?;
                let (resource, row) = loaded_row(M::load(resource, req.clone()).await)?;
                keep_row(&req, row);
                Ok(resource)
            };
            authorize(&authorizer, &req, resource, Required::Declared(&declared)).await?;
            let args = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Authorized(args, PhantomData))
        })
    }
}
