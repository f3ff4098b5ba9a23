//! What the checks read of an actix `HttpRequest`: the core's
//! [`Authorizer`] from the app data, and the request's head as the
//! `http::request::Parts` that the core's principal resolver and rejection
//! handler read (actix's requests are not `http::Request`s); and the
//! check of a guard or of `#[authorize]` on it.

use std::future::Future;

use actix_web::{HttpMessage, HttpRequest, web};
use cerbos_tower::{
    Resource,
    adapter::{RenderedRejection, Required, actix_route, authorize_request, copy_actix_extensions},
    layer::{Authorizer, ResolveError},
};
use http::request::Parts;

use crate::CerbosRejection;

/// The [`Authorizer`] registered with `App::app_data` (as is, or in a
/// `web::Data`); without one, a 500 that says what to add.
pub(crate) fn app_authorizer(req: &HttpRequest) -> Result<Authorizer, actix_web::Error> {
    req.app_data::<Authorizer>()
        .or_else(|| req.app_data::<web::Data<Authorizer>>().map(|d| d.get_ref()))
        .cloned()
        .ok_or_else(|| {
            tracing::error!("no cerbos_actix::Authorizer in the app data");
            actix_web::error::ErrorInternalServerError(
                "cerbos_actix::Authorizer was not found in the app data. Perhaps you forgot \
                 to register it with `App::app_data(cerbos.authorizer())`?",
            )
        })
}

/// The head of `req` for the core (see [`http_parts`]); a head that does
/// not convert is a bad request, rendered by `authorizer`.
pub(crate) fn head(authorizer: &Authorizer, req: &HttpRequest) -> Result<Parts, CerbosRejection> {
    http_parts(authorizer, req).map_err(|err| {
        let empty = http::Request::new(()).into_parts().0;
        RenderedRejection::new(authorizer, err.into(), &empty).into()
    })
}

/// Checks `req` (see [`authorize_request`]) and, when it is allowed, puts
/// the permission map, the decision, the principal and the resource into
/// actix's request extensions.
pub(crate) async fn authorize(
    authorizer: &Authorizer,
    req: &HttpRequest,
    resource: impl Future<Output = Result<Resource, ResolveError>>,
    required: Required<'_>,
) -> Result<(), CerbosRejection> {
    let head = head(authorizer, req)?;
    let allowed = authorize_request(authorizer, &head, resource, required).await?;
    let (permissions, decision, principal, resource) = allowed.into_extensions();
    let mut extensions = req.extensions_mut();
    extensions.insert(permissions);
    extensions.insert(decision);
    extensions.insert(principal);
    extensions.insert(resource);
    Ok(())
}

/// The `http` 1 request head of an actix request: method, URI, version,
/// headers, and what the configured principal resolver reads of actix's
/// request extensions (the `Principal`, or the application's user type)
/// in its extensions. A part that does not convert (only in theory: actix's are
/// `http` 0.2 types with the same rules) is a bad request, never guessed or
/// left out.
fn http_parts(authorizer: &Authorizer, req: &HttpRequest) -> Result<Parts, ResolveError> {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = http::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ResolveError::bad_request("unreadable request method"))?;
    parts.uri = req
        .uri()
        .to_string()
        .parse()
        .map_err(|_| ResolveError::bad_request("unreadable request URI"))?;
    parts.version = http_version(req.version());
    parts.headers.reserve(req.headers().len());
    for (name, value) in req.headers() {
        let name = http::HeaderName::from_bytes(name.as_str().as_bytes())
            .map_err(|_| ResolveError::bad_request("unreadable header name"))?;
        let value = http::HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| ResolveError::bad_request("unreadable header value"))?;
        parts.headers.append(name, value);
    }
    copy_actix_extensions(authorizer, &req.extensions(), &mut parts.extensions);
    actix_route(authorizer, req, &mut parts.extensions);
    Ok(parts)
}

/// An actix (`http` 0.2) version as an `http` 1 one.
fn http_version(version: actix_web::http::Version) -> http::Version {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => http::Version::HTTP_09,
        Version::HTTP_10 => http::Version::HTTP_10,
        Version::HTTP_2 => http::Version::HTTP_2,
        Version::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}
