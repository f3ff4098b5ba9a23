//! Principals, resources, attributes and auxiliary data.

use std::{collections::BTreeMap, fmt};

use cerbos_proto::cerbos::{engine::v1 as engine, request::v1 as request};
use prost_types::{ListValue, Struct, Value, value::Kind};

/// An attribute value: the JSON-like values a policy reads from principal
/// and resource attributes, and the constants of a query plan.
///
/// On the wire every number is a double (`google.protobuf.Value`), so
/// [`AttrValue::Number`] is an `f64`, and it may be non-finite: NaN and
/// ±Infinity are kept as they are, never turned into another value. Built
/// with `From` from `bool`, strings, the integer types that convert to
/// `f64` exactly (`i8`..`i32`, `u8`..`u32`), `f32`, `f64`, vectors and
/// `Option`s (None is [`AttrValue::Null`]); the 64-bit integers and
/// [`serde_json::Value`] convert with `TryFrom`, which refuses a number a
/// double cannot hold exactly (beyond ±2^53), and any `Serialize` value
/// with [`AttrValue::serialize`].
///
/// ```
/// use cerbos_client::AttrValue;
/// let v = AttrValue::try_from(serde_json::json!({"tags": ["a", "b"], "level": 3})).unwrap();
/// assert_eq!(v.to_json(), Some(serde_json::json!({"tags": ["a", "b"], "level": 3.0})));
/// assert!(AttrValue::from(f64::NAN).to_json().is_none(), "JSON has no NaN");
/// assert!(AttrValue::try_from(u64::MAX).is_err(), "not exact as a double");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number (a double on the wire; NaN and ±Infinity included).
    Number(f64),
    /// A string.
    String(String),
    /// A list.
    List(Vec<AttrValue>),
    /// A map with string keys (a JSON object).
    Map(BTreeMap<String, AttrValue>),
}

impl AttrValue {
    /// The JSON `null` value.
    pub fn null() -> Self {
        AttrValue::Null
    }

    /// The value as JSON, or `None` if it holds a non-finite number, which
    /// JSON cannot represent.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            AttrValue::Null => J::Null,
            AttrValue::Bool(b) => J::Bool(*b),
            AttrValue::Number(n) => J::Number(serde_json::Number::from_f64(*n)?),
            AttrValue::String(s) => J::String(s.clone()),
            AttrValue::List(items) => J::Array(
                items
                    .iter()
                    .map(AttrValue::to_json)
                    .collect::<Option<_>>()?,
            ),
            AttrValue::Map(map) => J::Object(
                map.iter()
                    .map(|(k, v)| Some((k.clone(), v.to_json()?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// `true` for [`AttrValue::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, AttrValue::Null)
    }

    /// The wire form.
    pub(crate) fn into_proto(self) -> Value {
        Value {
            kind: Some(match self {
                AttrValue::Null => Kind::NullValue(0),
                AttrValue::Bool(b) => Kind::BoolValue(b),
                AttrValue::Number(n) => Kind::NumberValue(n),
                AttrValue::String(s) => Kind::StringValue(s),
                AttrValue::List(items) => Kind::ListValue(ListValue {
                    values: items.into_iter().map(AttrValue::into_proto).collect(),
                }),
                AttrValue::Map(map) => Kind::StructValue(Struct {
                    fields: map.into_iter().map(|(k, v)| (k, v.into_proto())).collect(),
                }),
            }),
        }
    }

    /// From the wire form; `None` if the value, or any value inside it, has
    /// no kind (which no PDP sends: a malformed message).
    pub(crate) fn from_proto(value: &Value) -> Option<Self> {
        Some(match value.kind.as_ref()? {
            Kind::NullValue(_) => AttrValue::Null,
            Kind::BoolValue(b) => AttrValue::Bool(*b),
            Kind::NumberValue(n) => AttrValue::Number(*n),
            Kind::StringValue(s) => AttrValue::String(s.clone()),
            Kind::ListValue(list) => AttrValue::List(
                list.values
                    .iter()
                    .map(AttrValue::from_proto)
                    .collect::<Option<_>>()?,
            ),
            Kind::StructValue(s) => AttrValue::Map(
                s.fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), AttrValue::from_proto(v)?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }
}

/// JSON-like: strings quoted and escaped, numbers as Rust prints them
/// (`NaN`, `inf` and `-inf` included), lists in brackets, maps in braces.
impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Null => f.write_str("null"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Number(n) => write!(f, "{n}"),
            AttrValue::String(s) => write!(f, "{s:?}"),
            AttrValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            AttrValue::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl TryFrom<serde_json::Value> for AttrValue {
    type Error = crate::AttrError;

    /// Exactly: JSON numbers become doubles, and an integer beyond ±2^53,
    /// which a double cannot hold, is an error (send such ids as strings).
    fn try_from(v: serde_json::Value) -> Result<Self, crate::AttrError> {
        AttrValue::serialize(&v)
    }
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for AttrValue {
    type Error = crate::AttrError;

    /// As for a [`serde_json::Value`].
    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, crate::AttrError> {
        AttrValue::serialize(&map)
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}
impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::String(v)
    }
}
impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::String(v.to_owned())
    }
}
macro_rules! exact_number {
    ($($t:ty),*) => {$(
        impl From<$t> for AttrValue {
            fn from(v: $t) -> Self {
                AttrValue::Number(f64::from(v))
            }
        }
    )*};
}
exact_number!(i8, i16, i32, u8, u16, u32, f32, f64);

/// A 64-bit integer that a double cannot hold exactly (beyond ±2^53): send
/// it as a string instead.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the integer {0} has no exact double form (beyond ±2^53): send it as a string")]
pub struct InexactNumber(pub i128);

macro_rules! checked_number {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for AttrValue {
            type Error = InexactNumber;
            fn try_from(v: $t) -> Result<Self, InexactNumber> {
                const MAX_EXACT: i128 = 1 << 53;
                let wide = v as i128;
                if (-MAX_EXACT..=MAX_EXACT).contains(&wide) {
                    Ok(AttrValue::Number(wide as f64))
                } else {
                    Err(InexactNumber(wide))
                }
            }
        }
    )*};
}
checked_number!(i64, u64, isize, usize);

impl<T: Into<AttrValue>> From<Vec<T>> for AttrValue {
    fn from(v: Vec<T>) -> Self {
        AttrValue::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<AttrValue>> From<Option<T>> for AttrValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(AttrValue::Null, Into::into)
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
            self.inner
                .attr
                .insert(key.into(), value.into().into_proto());
            self
        }

        /// Sets several attributes.
        pub fn with_attrs<K, V>(mut self, attrs: impl IntoIterator<Item = (K, V)>) -> Self
        where
            K: Into<String>,
            V: Into<AttrValue>,
        {
            self.inner.attr.extend(
                attrs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into().into_proto())),
            );
            self
        }

        /// Sets the attributes from the fields of `value` (a database row
        /// deriving `serde::Serialize`, say), exactly as
        /// [`AttrValue::serialize`] converts them: no NaN becomes `null`
        /// and no integer is rounded; an error instead. Every serialized
        /// field is sent (and may be recorded in the PDP's audit log):
        /// leave out what the policies need not see with
        /// `#[serde(skip)]`. A `None` is an explicit `null` attribute,
        /// which is what cerbos-sql's default `NullAs::ExplicitNull`
        /// assumes of a NULL column; for a column declared
        /// `NullAs::Omitted`, leave the field out when it is `None`
        /// (`#[serde(skip_serializing_if = "Option::is_none")]`), so that
        /// checks and listings read the row alike.
        pub fn with_serialized_attrs<T: serde::Serialize + ?Sized>(
            self,
            value: &T,
        ) -> Result<Self, crate::AttrError> {
            Ok(self.with_attrs(crate::serialize::attrs_of(value)?))
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

        /// The value of one attribute (`None` if it is not set, or if a raw
        /// protobuf message set it to a value without a kind).
        pub fn attr(&self, key: &str) -> Option<AttrValue> {
            self.inner.attr.get(key).and_then(AttrValue::from_proto)
        }

        /// The names of the attributes, in no particular order.
        pub fn attr_names(&self) -> impl Iterator<Item = &str> + '_ {
            self.inner.attr.keys().map(String::as_str)
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
/// use cerbos_client::Principal;
/// let alice = Principal::new("alice", ["user"])
///     .with_attr("department", "Sales")
///     .with_attr("level", 3);
/// assert_eq!(alice.id(), "alice");
/// assert_eq!(alice.roles(), ["user"]);
/// ```
#[derive(Clone, PartialEq, Default)]
#[must_use]
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
/// use cerbos_client::Resource;
/// let contact = Resource::new("contact", "42")
///     .with_serialized_attrs(&serde_json::json!({"owner_id": "2", "is_active": true}))
///     .unwrap();
/// assert_eq!(contact.kind(), "contact");
/// ```
#[derive(Clone, PartialEq, Default)]
#[must_use]
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

/// Auxiliary data sent with a request: JWTs that the PDP verifies and
/// exposes to policies.
///
/// Either one JWT ([`AuxData::jwt`]), which policies read as
/// `request.aux_data.jwt.<claim>`, or several named ones
/// ([`AuxData::with_jwt`]), which policies read as
/// `request.aux_data.jwts.<name>.claims.<claim>`. The PDP rejects a request
/// with both; the client refuses to send it ([`Error::InvalidRequest`](crate::Error::InvalidRequest)).
///
/// `Debug` redacts every token.
///
/// ```
/// use cerbos_client::AuxData;
/// // `request.aux_data.jwts.id.claims.sub` and `request.aux_data.jwts.access.claims.scope`
/// let aux = AuxData::default()
///     .with_jwt("id", "eyJ...id-token", "")
///     .with_jwt("access", "eyJ...access-token", "corporate");
/// assert_eq!(aux.named_jwt("access"), Some(("eyJ...access-token", "corporate")));
/// assert!(!format!("{aux:?}").contains("eyJ"));
/// ```
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

    /// Adds a named JWT (the `jwts` map), verified with the PDP key set
    /// `key_set_id` ("" for the PDP's default). Policies read its claims as
    /// `request.aux_data.jwts.<name>.claims.<claim>`. A second JWT with the
    /// same name replaces the first.
    pub fn with_jwt(
        mut self,
        name: impl Into<String>,
        token: impl Into<String>,
        key_set_id: impl Into<String>,
    ) -> Self {
        self.inner.jwts.insert(
            name.into(),
            request::aux_data::Jwt {
                token: token.into(),
                key_set_id: key_set_id.into(),
            },
        );
        self
    }

    /// The JWT, if any.
    pub fn jwt_token(&self) -> Option<&str> {
        self.inner.jwt.as_ref().map(|jwt| jwt.token.as_str())
    }

    /// The key set that verifies the JWT ("" for the PDP's default).
    pub fn key_set_id(&self) -> Option<&str> {
        self.inner.jwt.as_ref().map(|jwt| jwt.key_set_id.as_str())
    }

    /// The named JWT `name`: its token and key set id.
    pub fn named_jwt(&self, name: &str) -> Option<(&str, &str)> {
        self.inner
            .jwts
            .get(name)
            .map(|jwt| (jwt.token.as_str(), jwt.key_set_id.as_str()))
    }

    /// The names of the named JWTs, in no particular order.
    pub fn jwt_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.jwts.keys().map(String::as_str)
    }

    /// The protobuf message.
    pub fn as_proto(&self) -> &request::AuxData {
        &self.inner
    }

    /// Why the PDP would reject this aux data, if it would: the single JWT
    /// and named JWTs together.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        if self.inner.jwt.is_some() && !self.inner.jwts.is_empty() {
            return Err(crate::Error::InvalidRequest(
                "aux data carries both a JWT (AuxData::jwt) and named JWTs \
                 (AuxData::with_jwt): the PDP accepts only one of the two"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for AuxData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// A named JWT's key set, its token redacted.
        struct Redacted<'a>(&'a str);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Jwt")
                    .field("token", &"<redacted>")
                    .field("key_set_id", &self.0)
                    .finish()
            }
        }
        let mut d = f.debug_struct("AuxData");
        if let Some(jwt) = &self.inner.jwt {
            d.field("jwt", &"<redacted>")
                .field("key_set_id", &jwt.key_set_id);
        }
        if !self.inner.jwts.is_empty() {
            // Sorted by name: the same output for the same data.
            let jwts: BTreeMap<_, _> = self
                .inner
                .jwts
                .iter()
                .map(|(name, jwt)| (name.as_str(), Redacted(&jwt.key_set_id)))
                .collect();
            d.field("jwts", &jwts);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_wire_round_trip_every_type() {
        let j = json!({"s": "x", "n": 1.5, "i": -3, "b": true, "z": null,
                       "l": [1, "a", [false]], "o": {"k": {"deep": "v"}}});
        let value = AttrValue::try_from(j).unwrap();
        let back = AttrValue::from_proto(&value.clone().into_proto()).unwrap();
        assert_eq!(back, value);
        let back = back.to_json().unwrap();
        assert_eq!(back["s"], "x");
        assert_eq!(back["n"], 1.5);
        assert_eq!(back["i"], -3.0);
        assert_eq!(back["b"], true);
        assert!(back["z"].is_null());
        assert_eq!(back["l"], json!([1.0, "a", [false]]));
        assert_eq!(back["o"], json!({"k": {"deep": "v"}}));
    }

    #[test]
    fn non_finite_numbers_stay_numbers() {
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let v = AttrValue::from(n);
            assert!(v.as_f64().is_some_and(|m| m.to_bits() == n.to_bits()));
            assert!(!v.is_null());
            assert_eq!(v.to_json(), None, "JSON cannot hold {n}: no silent null");
            let wire = v.into_proto();
            assert!(matches!(wire.kind, Some(Kind::NumberValue(m)) if m.to_bits() == n.to_bits()));
        }
        let nested = AttrValue::from(vec![1.0, f64::NAN]);
        assert_eq!(nested.to_json(), None);
    }

    #[test]
    fn a_value_without_a_kind_is_not_read_as_null() {
        assert_eq!(AttrValue::from_proto(&Value { kind: None }), None);
        let list = Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![Value { kind: None }],
            })),
        };
        assert_eq!(AttrValue::from_proto(&list), None);
    }

    #[test]
    fn wide_integers_convert_only_when_exact() {
        assert_eq!(
            AttrValue::try_from(1_i64 << 53),
            Ok(AttrValue::Number(9007199254740992.0))
        );
        assert_eq!(
            AttrValue::try_from(-(1_i64 << 53)).map(|v| v.as_f64()),
            Ok(Some(-9007199254740992.0))
        );
        assert!(AttrValue::try_from((1_i64 << 53) + 1).is_err());
        assert!(AttrValue::try_from(u64::MAX).is_err());
        assert_eq!(AttrValue::try_from(42_usize), Ok(AttrValue::Number(42.0)));
    }

    #[test]
    fn debug_never_shows_attribute_values_or_jwt() {
        let p = Principal::new("alice", ["user"]).with_attr("ssn", "123-45-6789");
        let r = Resource::new("doc", "1").with_attr("secret", "hunter2");
        let a = AuxData::jwt("eyJhbGciOi.secret.token").with_key_set_id("ks");
        let named = AuxData::default()
            .with_jwt("id", "eyJid.secret.token", "ks-id")
            .with_jwt("access", "eyJaccess.secret.token", "");
        let out = format!("{p:?} {r:?} {a:?} {named:?} {named:#?}");
        assert!(out.contains("ssn") && out.contains("secret") && out.contains("ks"));
        assert!(out.contains("\"access\"") && out.contains("ks-id"));
        assert!(!out.contains("123-45") && !out.contains("hunter2") && !out.contains("eyJ"));
        assert!(named.validate().is_ok() && a.validate().is_ok());
        assert!(a.with_jwt("second", "t", "").validate().is_err());
    }

    #[test]
    fn options_vectors_and_attributes_convert() {
        assert!(AttrValue::from(None::<i32>).is_null());
        assert_eq!(
            AttrValue::from(vec!["a", "b"]).to_json(),
            Some(json!(["a", "b"]))
        );
        assert_eq!(AttrValue::from(Some(2u8)).to_json(), Some(json!(2.0)));
        let r = Resource::new("doc", "1")
            .with_attr("owner", "2")
            .with_attr("level", 3);
        assert_eq!(r.attr("owner"), Some(AttrValue::String("2".into())));
        assert_eq!(r.attr("level").and_then(|v| v.as_f64()), Some(3.0));
        assert_eq!(r.attr("missing"), None);
        let mut names: Vec<_> = r.attr_names().collect();
        names.sort();
        assert_eq!(names, ["level", "owner"]);
    }
}
