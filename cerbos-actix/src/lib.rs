#![doc = include_str!("../README.md")]

mod authorized;
mod authz;
mod guard;
mod loaded;
mod path;
mod rejection;
mod request;

pub use authorized::Authorized;
pub use authz::Authz;
pub use cerbos_macros::{actix_authorize as authorize, declaration};
pub use cerbos_tower::{
    self, AttrError, Client, MissingAuthorization, PlanFilter, Principal, Resource,
    adapter::Declaration,
    layer::{
        Actions, Authorizer, BearerJwt, Cerbos, CerbosBuilder, Decision, PermissionMap, Plan,
        PrincipalFromExtension, PrincipalResolver, Reason, Rejection, RejectionKind, ResolveError,
        Subject, WithPermissions,
    },
};
pub use guard::{CerbosExt, CerbosGuard, CerbosGuardService};
/// The request head that resolvers read (`.principal(|parts: &Parts| ..)`).
pub use http::request::Parts;
pub use loaded::Loaded;
pub use path::{LoaderArg, PathResource, ResourceResolver};
pub use rejection::CerbosRejection;

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use actix_web::HttpRequest;
    pub use cerbos_tower::adapter::{Declaration, LoaderOutput};

    pub use crate::path::LoaderArg;

    pub use crate::authorized::Spec;
}
