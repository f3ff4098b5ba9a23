#![doc = include_str!("../README.md")]

mod authorize;
mod resolve;

pub use authorize::{
    Authorization, Authorized, Authz, CerbosGuard, CerbosGuardService, CerbosRejection,
};
pub use cerbos_macros::actix_authorize as authorize;
pub use cerbos_tower::{
    self, Client, MissingAuthorization, Principal, Resource,
    layer::{
        Actions, BearerJwt, Cerbos, Decision, PermissionMap, Reason, Rejection, RejectionKind,
        ResolveError,
    },
};
pub use resolve::{PathResource, ResourceResolver};

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use actix_web::HttpRequest;

    pub use crate::authorize::Spec;
}
