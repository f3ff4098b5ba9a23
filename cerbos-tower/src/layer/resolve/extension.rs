//! [`PrincipalFromExtension`]: the principal derived from the
//! application's own user type in the request extensions.

use std::{
    any::type_name,
    fmt,
    future::{Ready, ready},
    marker::PhantomData,
};

use http::request::Parts;

use super::{PrincipalResolver, ResolveError};
use crate::Principal;

/// The principal derived from a value of the application's own type `T`
/// (its `CurrentUser`) that its authentication layer put into the request
/// extensions. Made by
/// [`CerbosBuilder::principal_from_extension`](crate::layer::CerbosBuilder::principal_from_extension).
///
/// No `T` in the extensions is a **500**, logged at ERROR with the type's
/// name: the application's own authentication did not run before the
/// Cerbos layer (a layer order or routing bug), which is neither the
/// client's fault (401) nor a denial (403). An authentication layer that
/// lets anonymous requests through should insert an anonymous user value
/// for them (and map it to a principal the policies know), or reject them
/// itself with 401.
pub struct PrincipalFromExtension<T, F> {
    map: F,
    user: PhantomData<fn(&T)>,
}

impl<T, F> PrincipalFromExtension<T, F>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(&T) -> Principal + Send + Sync + 'static,
{
    /// The principal `map` makes of the request's `T`.
    pub fn new(map: F) -> Self {
        PrincipalFromExtension {
            map,
            user: PhantomData,
        }
    }
}

impl<T, F> fmt::Debug for PrincipalFromExtension<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrincipalFromExtension")
            .field("extension", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T, F> PrincipalResolver for PrincipalFromExtension<T, F>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(&T) -> Principal + Send + Sync + 'static,
{
    type Future = Ready<Result<Principal, ResolveError>>;

    fn resolve_principal(&self, parts: &Parts) -> Self::Future {
        ready(parts.extensions.get::<T>().map(&self.map).ok_or_else(|| {
            ResolveError::internal(format!(
                "no {} in the request extensions: the authentication layer that inserts it \
                 did not run before the Cerbos layer (add it outside the Cerbos layer, so \
                 that it runs first)",
                type_name::<T>()
            ))
        }))
    }

    #[cfg(feature = "actix")]
    fn copy_actix_extensions(&self, from: &actix_web::dev::Extensions, to: &mut http::Extensions) {
        if let Some(user) = from.get::<T>() {
            to.insert(user.clone());
        }
    }
}
