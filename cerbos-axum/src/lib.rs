#![doc = include_str!("../README.md")]

mod authorized;
mod authz;
mod guard;
mod path;
mod rejection;

pub use authorized::Authorized;
pub use authz::Authz;
pub use cerbos_macros::axum_authorize as authorize;
pub use cerbos_tower::{
    self, Client, MissingAuthorization, PlanFilter, Principal, Resource,
    layer::{
        Actions, Authorizer, BearerJwt, Cerbos, Decision, PermissionMap, Plan, Reason, Rejection,
        RejectionKind, ResolveError, ResourceResolver, Subject,
    },
};
pub use guard::CerbosExt;
pub use path::PathResource;
pub use rejection::{CerbosRejection, MAX_REJECTION_BODY, RejectionHandler, on_rejection};

/// Used by the code `#[authorize]` generates.
#[doc(hidden)]
pub mod __private {
    pub use cerbos_tower::adapter::Declaration;

    pub use crate::authorized::Spec;
}
