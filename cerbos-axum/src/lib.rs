#![doc = include_str!("../README.md")]

mod authorized;
mod authz;
mod guard;
mod loaded;
mod path;
mod rejection;

pub use authorized::Authorized;
pub use authz::Authz;
pub use cerbos_macros::{axum_authorize as authorize, declaration};
pub use cerbos_tower::{
    self, AttrError, Client, MissingAuthorization, PlanFilter, Principal, Resource,
    adapter::Declaration,
    layer::{
        Actions, Authorizer, BearerJwt, Cerbos, CerbosBuilder, Decision, PermissionMap, Plan,
        PrincipalFromExtension, PrincipalResolver, Reason, Rejection, RejectionKind, ResolveError,
        ResourceResolver, Subject, WithPermissions,
    },
};
pub use guard::CerbosExt;
/// The request head that resolvers read (`.principal(|parts: &Parts| ..)`).
pub use http::request::Parts;
pub use loaded::{Loaded, LoadedGuard, LoadedGuardService};
pub use path::PathResource;
pub use rejection::{CerbosRejection, MAX_REJECTION_BODY, RejectionHandler, on_rejection};

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use axum::extract::FromRef;
    pub use cerbos_tower::adapter::{Declaration, LoaderOutput};

    pub use crate::authorized::{Spec, StateArg};

    /// The `Authorizer` of the router state `S`. Called by the code that
    /// `#[authorize(.., state = S)]` generates, so that a missing
    /// `impl FromRef<S> for Authorizer` is one error at `state = S` that
    /// names it ("the trait `FromRef<S>` is not implemented for
    /// `Authorizer`"), not axum's "`Handler<_, _>` is not implemented".
    pub fn authorizer_from_state<S>(state: &S) -> crate::Authorizer
    where
        crate::Authorizer: axum::extract::FromRef<S>,
    {
        axum::extract::FromRef::from_ref(state)
    }
}
