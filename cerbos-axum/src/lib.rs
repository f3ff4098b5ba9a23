#![doc = include_str!("../README.md")]

mod authz;
mod guard;
mod path;

pub use authz::{Authorized, Authz, CerbosRejection};
pub use cerbos_macros::axum_authorize as authorize;
pub use cerbos_tower::{
    self, Client, MissingAuthorization, Principal, Resource,
    layer::{
        Actions, Authorizer, Cerbos, Decision, PermissionMap, Reason, Rejection, RejectionKind,
        ResolveError,
    },
};
pub use guard::CerbosExt;
pub use path::PathResource;

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use crate::authz::Spec;
}
