//! Principals, resources, attributes and auxiliary data.

use std::fmt;

use cerbos_proto::cerbos::{engine::v1 as engine, request::v1 as request};
use prost_types::{ListValue, Struct, Value, value::Kind};

/// An attribute value: any JSON-like value, carried as a
/// `google.protobuf.Value` ([`prost_types::Value`]).
///
/// Built with `From` from Rust scalars, strings, vectors, `Option`s,
/// [`serde_json::Value`] and [`prost_types::Value`]. Numbers are `f64` on the
/// wire (integers above 2^53 lose precision, as in JSON).
///
/// ```
/// use cerbos_tower::AttrValue;
/// let v: AttrValue = serde_json::json!({"tags": ["a", "b"], "level": 3}).into();
/// assert_eq!(v.to_json(), serde_json::json!({"tags": ["a", "b"], "level": 3.0}));
/// ```
#[derive(Clone, PartialEq)]
pub struct AttrValue(pub Value);

impl AttrValue {
    /// The JSON `null` value.
    pub fn null() -> Self {
        AttrValue(kind(Kind::NullValue(0)))
    }

    /// The value as JSON (non-finite numbers become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        value_to_json(&self.0)
    }

    /// The underlying protobuf value.
    pub fn into_inner(self) -> Value {
        self.0
    }
}

impl fmt::Debug for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrValue({})", self.to_json())
    }
}

fn kind(k: Kind) -> Value {
    Value { kind: Some(k) }
}

/// Converts JSON into a protobuf value.
pub fn json_to_value(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    kind(match json {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        J::Object(map) => Kind::StructValue(json_map_to_struct(map)),
    })
}

fn json_map_to_struct(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

/// Converts a protobuf value into JSON. A value without a kind and a
/// non-finite number become `null`.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(list)) => J::Array(list.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

impl From<serde_json::Value> for AttrValue {
    fn from(v: serde_json::Value) -> Self {
        AttrValue(json_to_value(v))
    }
}
impl From<serde_json::Map<String, serde_json::Value>> for AttrValue {
    fn from(v: serde_json::Map<String, serde_json::Value>) -> Self {
        AttrValue(kind(Kind::StructValue(json_map_to_struct(v))))
    }
}
impl From<Value> for AttrValue {
    fn from(v: Value) -> Self {
        AttrValue(v)
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue(kind(Kind::BoolValue(v)))
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue(kind(Kind::StringValue(v)))
    }
}
impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue(kind(Kind::StringValue(v.to_owned())))
    }
}
macro_rules! number_attr {
    ($($t:ty),*) => {$(
        impl From<$t> for AttrValue {
            fn from(v: $t) -> Self {
                AttrValue(kind(Kind::NumberValue(v as f64)))
            }
        }
    )*};
}
number_attr!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl<T: Into<AttrValue>> From<Vec<T>> for AttrValue {
    fn from(v: Vec<T>) -> Self {
        AttrValue(kind(Kind::ListValue(ListValue {
            values: v.into_iter().map(|x| x.into().0).collect(),
        })))
    }
}
impl<T: Into<AttrValue>> From<Option<T>> for AttrValue {
    fn from(v: Option<T>) -> Self {
        v.map_or_else(AttrValue::null, Into::into)
    }
}

/// Writes the attribute keys only: attribute values never reach logs.
struct AttrKeys<'a>(&'a std::collections::HashMap<String, Value>);
impl fmt::Debug for AttrKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.0.keys().collect();
        keys.sort();
        f.debug_set().entries(keys).finish()
    }
}

macro_rules! attr_methods {
    () => {
        /// Sets one attribute.
        pub fn with_attr(mut self, key: impl Into<String>, value: impl Into<AttrValue>) -> Self {
            self.inner.attr.insert(key.into(), value.into().0);
            self
        }

        /// Sets several attributes.
        pub fn with_attrs<K, V>(mut self, attrs: impl IntoIterator<Item = (K, V)>) -> Self
        where
            K: Into<String>,
            V: Into<AttrValue>,
        {
            self.inner
                .attr
                .extend(attrs.into_iter().map(|(k, v)| (k.into(), v.into().0)));
            self
        }

        /// Sets the attributes from the fields of a JSON object (for example a
        /// database row serialized with serde).
        pub fn with_json_attrs(self, attrs: serde_json::Map<String, serde_json::Value>) -> Self {
            self.with_attrs(attrs)
        }

        /// Sets the policy version (default: the PDP's default version).
        pub fn with_policy_version(mut self, version: impl Into<String>) -> Self {
            self.inner.policy_version = version.into();
            self
        }

        /// Sets the scope, for scoped policies.
        pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
            self.inner.scope = scope.into();
            self
        }

        /// The value of one attribute.
        pub fn attr(&self, key: &str) -> Option<&Value> {
            self.inner.attr.get(key)
        }

        /// All attributes.
        pub fn attrs(&self) -> &std::collections::HashMap<String, Value> {
            &self.inner.attr
        }

        /// The id.
        pub fn id(&self) -> &str {
            &self.inner.id
        }

        /// The policy version ("" for the PDP's default).
        pub fn policy_version(&self) -> &str {
            &self.inner.policy_version
        }

        /// The scope ("" for none).
        pub fn scope(&self) -> &str {
            &self.inner.scope
        }
    };
}

/// The subject of a check: a user or service, with roles and attributes.
///
/// `Debug` shows attribute keys, never their values.
///
/// ```
/// use cerbos_tower::Principal;
/// let alice = Principal::new("alice", ["user"])
///     .with_attr("department", "Sales")
///     .with_attr("level", 3);
/// assert_eq!(alice.id(), "alice");
/// assert_eq!(alice.roles(), ["user"]);
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct Principal {
    inner: engine::Principal,
}

impl Principal {
    /// A principal with an id and its roles.
    pub fn new<R: Into<String>>(id: impl Into<String>, roles: impl IntoIterator<Item = R>) -> Self {
        Principal {
            inner: engine::Principal {
                id: id.into(),
                roles: roles.into_iter().map(Into::into).collect(),
                ..Default::default()
            },
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.inner.roles.push(role.into());
        self
    }

    /// The roles.
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    attr_methods!();

    /// The protobuf message.
    pub fn as_proto(&self) -> &engine::Principal {
        &self.inner
    }

    /// Converts into the protobuf message.
    pub fn into_proto(self) -> engine::Principal {
        self.inner
    }
}

impl From<engine::Principal> for Principal {
    fn from(inner: engine::Principal) -> Self {
        Principal { inner }
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.inner.id)
            .field("roles", &self.inner.roles)
            .field("attr", &AttrKeys(&self.inner.attr))
            .field("policy_version", &self.inner.policy_version)
            .field("scope", &self.inner.scope)
            .finish()
    }
}

/// The object of a check: a resource of some kind, with an id and attributes.
///
/// `Debug` shows attribute keys, never their values.
///
/// ```
/// use cerbos_tower::Resource;
/// let contact = Resource::new("contact", "42")
///     .with_json_attrs(serde_json::json!({"owner_id": "2", "is_active": true})
///         .as_object().unwrap().clone());
/// assert_eq!(contact.kind(), "contact");
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct Resource {
    inner: engine::Resource,
}

impl Resource {
    /// A resource of `kind` with `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource {
            inner: engine::Resource {
                kind: kind.into(),
                id: id.into(),
                ..Default::default()
            },
        }
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.inner.kind
    }

    attr_methods!();

    /// The protobuf message.
    pub fn as_proto(&self) -> &engine::Resource {
        &self.inner
    }

    /// Converts into the protobuf message.
    pub fn into_proto(self) -> engine::Resource {
        self.inner
    }
}

impl From<engine::Resource> for Resource {
    fn from(inner: engine::Resource) -> Self {
        Resource { inner }
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("kind", &self.inner.kind)
            .field("id", &self.inner.id)
            .field("attr", &AttrKeys(&self.inner.attr))
            .field("policy_version", &self.inner.policy_version)
            .field("scope", &self.inner.scope)
            .finish()
    }
}

/// Auxiliary data sent with a request: a raw JWT that the PDP verifies and
/// exposes to policies as `request.aux_data.jwt`.
///
/// `Debug` redacts the token.
#[derive(Clone, PartialEq, Default)]
pub struct AuxData {
    inner: request::AuxData,
}

impl AuxData {
    /// Aux data carrying a JWT, verified with the PDP's default key set.
    pub fn jwt(token: impl Into<String>) -> Self {
        AuxData {
            inner: request::AuxData {
                jwt: Some(request::aux_data::Jwt {
                    token: token.into(),
                    key_set_id: String::new(),
                }),
                jwts: Default::default(),
            },
        }
    }

    /// Names the PDP key set that verifies the JWT.
    pub fn with_key_set_id(mut self, key_set_id: impl Into<String>) -> Self {
        if let Some(jwt) = self.inner.jwt.as_mut() {
            jwt.key_set_id = key_set_id.into();
        }
        self
    }

    /// The protobuf message.
    pub fn as_proto(&self) -> &request::AuxData {
        &self.inner
    }
}

impl fmt::Debug for AuxData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuxData");
        if let Some(jwt) = &self.inner.jwt {
            d.field("jwt", &"<redacted>")
                .field("key_set_id", &jwt.key_set_id);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_every_type() {
        let j = json!({"s": "x", "n": 1.5, "i": -3, "b": true, "z": null,
                       "l": [1, "a", [false]], "o": {"k": {"deep": "v"}}});
        let back = value_to_json(&json_to_value(j.clone()));
        assert_eq!(back["s"], "x");
        assert_eq!(back["n"], 1.5);
        assert_eq!(back["i"], -3.0);
        assert_eq!(back["b"], true);
        assert!(back["z"].is_null());
        assert_eq!(back["l"], json!([1.0, "a", [false]]));
        assert_eq!(back["o"], json!({"k": {"deep": "v"}}));
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let v = AttrValue::from(f64::NAN);
        assert!(v.to_json().is_null());
        assert!(value_to_json(&Value { kind: None }).is_null());
    }

    #[test]
    fn debug_never_shows_attribute_values_or_jwt() {
        let p = Principal::new("alice", ["user"]).with_attr("ssn", "123-45-6789");
        let r = Resource::new("doc", "1").with_attr("secret", "hunter2");
        let a = AuxData::jwt("eyJhbGciOi.secret.token").with_key_set_id("ks");
        let out = format!("{p:?} {r:?} {a:?}");
        assert!(out.contains("ssn") && out.contains("secret") && out.contains("ks"));
        assert!(!out.contains("123-45") && !out.contains("hunter2") && !out.contains("eyJ"));
    }

    #[test]
    fn options_and_vectors_convert() {
        assert!(AttrValue::from(None::<i32>).to_json().is_null());
        assert_eq!(AttrValue::from(vec!["a", "b"]).to_json(), json!(["a", "b"]));
        assert_eq!(AttrValue::from(Some(2u8)).to_json(), json!(2.0));
    }
}
