#![doc = include_str!("../README.md")]

mod authorized;
mod authz;
mod guard;
mod path;
mod rejection;
mod request;

pub use authorized::Authorized;
pub use authz::Authz;
pub use cerbos_macros::actix_authorize as authorize;
pub use cerbos_tower::{
    self, Client, MissingAuthorization, Principal, Resource,
    layer::{
        Actions, Authorizer, BearerJwt, Cerbos, Decision, PermissionMap, Reason, Rejection,
        RejectionKind, ResolveError, Subject,
    },
};
pub use guard::{CerbosExt, CerbosGuard, CerbosGuardService};
pub use path::{PathResource, ResourceResolver};
pub use rejection::CerbosRejection;

/// Removed: keep the core [`Authorizer`] in the app data
/// (`App::app_data(cerbos.authorizer())`) and make guards with
/// [`CerbosExt`] on the [`Cerbos`]. `Authorization::new(&cerbos)` is
/// `cerbos.authorizer()`, kept only until the last caller (the workspace's
/// `contacts` integration test) moves.
#[doc(hidden)]
#[derive(Debug)]
pub struct Authorization(());

impl Authorization {
    /// `cerbos.authorizer()`.
    #[doc(hidden)]
    #[allow(clippy::new_ret_no_self)]
    pub fn new<P: cerbos_tower::layer::Pdp, R: cerbos_tower::layer::PrincipalResolver>(
        cerbos: &Cerbos<P, R>,
    ) -> Authorizer {
        cerbos.authorizer()
    }
}

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use actix_web::HttpRequest;
    pub use cerbos_tower::adapter::Declaration;

    pub use crate::authorized::Spec;
}
