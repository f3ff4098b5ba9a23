//! [`BearerJwt`]: the request's bearer token, sent to the PDP as aux data.

use http::{header, request::Parts};

use super::{PrincipalResolver, ResolveError};
use crate::AuxData;

/// Wraps a principal resolver and sends the request's bearer token
/// (`Authorization: Bearer …`) to the PDP as aux data, so policies can read
/// its claims as `request.aux_data.jwt`. The PDP verifies the token against
/// its configured key sets and fails the check if it does not verify.
///
/// Without a bearer token the request is rejected with 401, unless
/// [`optional`](Self::optional) is set.
#[derive(Clone, Debug)]
#[must_use]
pub struct BearerJwt<R> {
    inner: R,
    key_set_id: Option<String>,
    optional: bool,
}

impl<R> BearerJwt<R> {
    /// Adds the bearer token to the principal from `inner`.
    pub fn new(inner: R) -> Self {
        BearerJwt {
            inner,
            key_set_id: None,
            optional: false,
        }
    }

    /// Names the PDP key set that verifies the token.
    pub fn key_set_id(mut self, id: impl Into<String>) -> Self {
        self.key_set_id = Some(id.into());
        self
    }

    /// Lets requests without a bearer token through to the check (without
    /// aux data) instead of rejecting them with 401.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// The wrapped resolver.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The aux data for a request whose `Authorization` header is `value`.
    fn aux_data_from_header(&self, value: Option<&[u8]>) -> Result<Option<AuxData>, ResolveError> {
        let Some(value) = value else {
            return if self.optional {
                Ok(None)
            } else {
                Err(ResolveError::unauthenticated("no Authorization header"))
            };
        };
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ResolveError::unauthenticated("the Authorization header is not a bearer token")
            })?;
        let aux = AuxData::jwt(token);
        Ok(Some(match &self.key_set_id {
            Some(id) => aux.with_key_set_id(id.clone()),
            None => aux,
        }))
    }
}

impl<R: PrincipalResolver> PrincipalResolver for BearerJwt<R> {
    type Future = R::Future;

    fn resolve_principal(&self, parts: &Parts) -> Self::Future {
        self.inner.resolve_principal(parts)
    }

    fn is_from_extensions(&self) -> bool {
        self.inner.is_from_extensions()
    }

    fn aux_data(&self, parts: &Parts) -> Result<Option<AuxData>, ResolveError> {
        let value = parts.headers.get(header::AUTHORIZATION);
        self.aux_data_from_header(value.map(|v| v.as_bytes()))
    }
}
