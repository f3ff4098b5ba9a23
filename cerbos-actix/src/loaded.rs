//! [`Loaded`]: the row a loader read, handed to the handler.

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use cerbos_tower::MissingAuthorization;

/// The typed row that the loader of a guard ([`PathResource::load`](crate::PathResource::load))
/// or of `#[authorize(load = ..)]` returned with the resource, as
/// `Ok(Some((resource, row)))`: an extractor, so that the handler does not
/// read the row again. The loader has the shape
/// `async fn(Resource, HttpRequest) -> Result<Option<(Resource, Row)>, ResolveError>`
/// everywhere (guard, attribute, [`Authz::require_loaded`](crate::Authz::require_loaded)).
///
/// On a route whose loader returns no row of type `T` (or without a
/// guard), the extractor answers 500 with a body that says what is
/// missing; `Option<Loaded<T>>` never rejects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded<T>(pub T);

impl<T: Clone + 'static> FromRequest for Loaded<T> {
    type Error = MissingAuthorization;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Loaded<T>>().cloned().ok_or(
            MissingAuthorization::__new(std::any::type_name::<Loaded<T>>()),
        ))
    }
}

/// Puts the loader's row, if any, into the request's extensions. The
/// handler runs only when the request is allowed, so it sees the row only
/// then.
pub(crate) fn keep_row<T: 'static>(req: &HttpRequest, row: Option<T>) {
    if let Some(row) = row {
        req.extensions_mut().insert(Loaded(row));
    }
}
