//! Attributes from any `serde::Serialize` value, exactly: a serializer
//! whose output is an [`AttrValue`], so that no JSON step turns a NaN into
//! `null` or rounds a 64-bit integer.

use std::collections::BTreeMap;

use serde::ser::{self, Serialize};

use crate::model::{AttrValue, InexactNumber};

/// Why a value cannot be sent as attributes: a number a double cannot
/// hold exactly, a map key that is not a string, or attributes that are
/// not a map. Nothing is ever sent in another form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send as Cerbos attributes: {0}")]
pub struct AttrError(String);

impl ser::Error for AttrError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        AttrError(msg.to_string())
    }
}

impl From<InexactNumber> for AttrError {
    fn from(err: InexactNumber) -> Self {
        AttrError(err.to_string())
    }
}

impl AttrValue {
    /// `value` as an attribute value, field for field as serde describes
    /// it (`#[serde(rename, skip, flatten)]` apply): structs and maps are
    /// maps, sequences and tuples lists, `None` and `()` null, a unit enum
    /// variant its name, another variant `{"Variant": value}`. Exact:
    /// NaN and ±Infinity stay as they are, and a 64- or 128-bit integer
    /// beyond ±2^53, or a map key that is not a string, is an error.
    ///
    /// ```
    /// use cerbos_client::AttrValue;
    /// #[derive(serde::Serialize)]
    /// struct Row { owner_id: String, score: f64, id: u64 }
    ///
    /// let row = Row { owner_id: "2".into(), score: f64::NAN, id: 7 };
    /// let AttrValue::Map(attrs) = AttrValue::serialize(&row).unwrap() else { panic!() };
    /// assert!(matches!(attrs["score"], AttrValue::Number(n) if n.is_nan()), "NaN is not null");
    /// assert!(AttrValue::serialize(&Row { id: u64::MAX, ..row }).is_err(), "not exact as a double");
    /// ```
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<AttrValue, AttrError> {
        value.serialize(ToAttr)
    }
}

/// The serializer: its output is an [`AttrValue`].
struct ToAttr;

fn exact(wide: i128) -> Result<AttrValue, AttrError> {
    Ok(AttrValue::try_from(
        i64::try_from(wide).map_err(|_| InexactNumber(wide))?,
    )?)
}

fn wide_unsigned(v: u128) -> Result<AttrValue, AttrError> {
    match i128::try_from(v) {
        Ok(wide) => exact(wide),
        Err(_) => Err(AttrError(format!(
            "the integer {v} has no exact double form (beyond ±2^53): send it as a string"
        ))),
    }
}

fn tagged(variant: &'static str, value: AttrValue) -> AttrValue {
    AttrValue::Map(BTreeMap::from([(variant.to_owned(), value)]))
}

/// `fn $method(self, v: $ty)` converting with `From` or `TryFrom`.
macro_rules! scalars {
    ($($method:ident($ty:ty) => $conversion:ident,)*) => {$(
        fn $method(self, v: $ty) -> Result<AttrValue, AttrError> {
            scalars!(@convert $conversion, v)
        }
    )*};
    (@convert From, $v:ident) => { Ok(AttrValue::from($v)) };
    (@convert TryFrom, $v:ident) => { Ok(AttrValue::try_from($v)?) };
}

impl ser::Serializer for ToAttr {
    type Ok = AttrValue;
    type Error = AttrError;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Map;
    type SerializeStruct = Map;
    type SerializeStructVariant = Map;

    // The scalars `AttrValue` converts from exactly (`From`) or checks
    // (`TryFrom`, the 64-bit integers).
    scalars! {
        serialize_bool(bool) => From,
        serialize_i8(i8) => From,
        serialize_i16(i16) => From,
        serialize_i32(i32) => From,
        serialize_u8(u8) => From,
        serialize_u16(u16) => From,
        serialize_u32(u32) => From,
        serialize_f32(f32) => From,
        serialize_f64(f64) => From,
        serialize_i64(i64) => TryFrom,
        serialize_u64(u64) => TryFrom,
    }
    fn serialize_i128(self, v: i128) -> Result<AttrValue, AttrError> {
        exact(v)
    }
    fn serialize_u128(self, v: u128) -> Result<AttrValue, AttrError> {
        wide_unsigned(v)
    }
    fn serialize_char(self, v: char) -> Result<AttrValue, AttrError> {
        Ok(AttrValue::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<AttrValue, AttrError> {
        Ok(v.into())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<AttrValue, AttrError> {
        Ok(AttrValue::List(v.iter().map(|b| (*b).into()).collect()))
    }
    fn serialize_none(self) -> Result<AttrValue, AttrError> {
        Ok(AttrValue::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<AttrValue, AttrError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<AttrValue, AttrError> {
        Ok(AttrValue::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<AttrValue, AttrError> {
        Ok(AttrValue::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<AttrValue, AttrError> {
        Ok(variant.into())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<AttrValue, AttrError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<AttrValue, AttrError> {
        Ok(tagged(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, AttrError> {
        Ok(Seq::new(None, len.unwrap_or(0)))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, AttrError> {
        Ok(Seq::new(None, len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, AttrError> {
        Ok(Seq::new(None, len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq, AttrError> {
        Ok(Seq::new(Some(variant), len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Map, AttrError> {
        Ok(Map::new(None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Map, AttrError> {
        Ok(Map::new(None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Map, AttrError> {
        Ok(Map::new(Some(variant)))
    }
}

/// A list being serialized (of a tuple variant when `variant` is set).
struct Seq {
    variant: Option<&'static str>,
    items: Vec<AttrValue>,
}

impl Seq {
    fn new(variant: Option<&'static str>, len: usize) -> Self {
        // The length is a hint from the value: never trust it for memory.
        let items = Vec::with_capacity(len.min(1024));
        Seq { variant, items }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), AttrError> {
        self.items.push(value.serialize(ToAttr)?);
        Ok(())
    }

    fn finish(self) -> Result<AttrValue, AttrError> {
        let list = AttrValue::List(self.items);
        Ok(match self.variant {
            Some(variant) => tagged(variant, list),
            None => list,
        })
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq {
            type Ok = AttrValue;
            type Error = AttrError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), AttrError> {
                self.push(value)
            }
            fn end(self) -> Result<AttrValue, AttrError> {
                self.finish()
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A map being serialized (of a struct variant when `variant` is set).
struct Map {
    variant: Option<&'static str>,
    entries: BTreeMap<String, AttrValue>,
    key: Option<String>,
}

impl Map {
    fn new(variant: Option<&'static str>) -> Self {
        Map {
            variant,
            entries: BTreeMap::new(),
            key: None,
        }
    }

    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), AttrError> {
        let value = value.serialize(ToAttr)?;
        if self.entries.insert(key.clone(), value).is_some() {
            return Err(AttrError(format!("the key {key:?} appears twice")));
        }
        Ok(())
    }

    fn finish(self) -> Result<AttrValue, AttrError> {
        let map = AttrValue::Map(self.entries);
        Ok(match self.variant {
            Some(variant) => tagged(variant, map),
            None => map,
        })
    }
}

impl ser::SerializeMap for Map {
    type Ok = AttrValue;
    type Error = AttrError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), AttrError> {
        match key.serialize(ToAttr)? {
            AttrValue::String(key) => {
                self.key = Some(key);
                Ok(())
            }
            other => Err(AttrError(format!(
                "a map key must be a string, not {}",
                kind_of(&other)
            ))),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), AttrError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| AttrError("a map value without its key".to_owned()))?;
        self.insert(key, value)
    }

    fn end(self) -> Result<AttrValue, AttrError> {
        self.finish()
    }
}

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Map {
            type Ok = AttrValue;
            type Error = AttrError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), AttrError> {
                self.insert(key.to_owned(), value)
            }
            fn end(self) -> Result<AttrValue, AttrError> {
                self.finish()
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

/// What a value is, for errors (never the value itself).
pub(crate) fn kind_of(value: &AttrValue) -> &'static str {
    match value {
        AttrValue::Null => "null",
        AttrValue::Bool(_) => "a bool",
        AttrValue::Number(_) => "a number",
        AttrValue::String(_) => "a string",
        AttrValue::List(_) => "a list",
        AttrValue::Map(_) => "a map",
    }
}

/// The entries of `value`'s attributes map (see
/// [`AttrValue::serialize`]).
pub(crate) fn attrs_of<T: Serialize + ?Sized>(
    value: &T,
) -> Result<BTreeMap<String, AttrValue>, AttrError> {
    match AttrValue::serialize(value)? {
        AttrValue::Map(entries) => Ok(entries),
        other => Err(AttrError(format!(
            "attributes must be a struct or a map, not {}",
            kind_of(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    enum Shape {
        Unit,
        New(u8),
        Tuple(u8, bool),
        Struct { side: f32 },
    }

    #[derive(Serialize)]
    struct Row {
        #[serde(rename = "ownerId")]
        owner: String,
        #[serde(skip)]
        _secret: String,
        tags: Vec<&'static str>,
        score: Option<f64>,
        shapes: Vec<Shape>,
        pair: (i64, char),
        bytes: &'static [u8],
        unit: (),
    }

    fn row() -> Row {
        Row {
            owner: "2".into(),
            _secret: "hunter2".into(),
            tags: vec!["a", "b"],
            score: None,
            shapes: vec![
                Shape::Unit,
                Shape::New(1),
                Shape::Tuple(2, true),
                Shape::Struct { side: 0.5 },
            ],
            pair: (-3, 'x'),
            bytes: b"\x00\xff",
            unit: (),
        }
    }

    #[test]
    fn a_struct_is_its_fields_as_serde_names_them() {
        let attrs = attrs_of(&row()).unwrap();
        let json = AttrValue::Map(attrs).to_json().unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ownerId": "2",
                "tags": ["a", "b"],
                "score": null,
                "shapes": ["Unit", {"New": 1.0}, {"Tuple": [2.0, true]}, {"Struct": {"side": 0.5}}],
                "pair": [-3.0, "x"],
                "bytes": [0.0, 255.0],
                "unit": null,
            })
        );
    }

    #[test]
    fn non_finite_numbers_are_kept() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0] {
            let got = AttrValue::serialize(&Row {
                score: Some(v),
                ..row()
            })
            .unwrap();
            let AttrValue::Map(map) = got else {
                panic!("a map")
            };
            match map["score"] {
                AttrValue::Number(n) if v.is_nan() => assert!(n.is_nan()),
                AttrValue::Number(n) => assert_eq!(n.to_bits(), v.to_bits()),
                ref other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn inexact_integers_are_refused() {
        const LIMIT: i64 = 1 << 53;
        assert_eq!(
            AttrValue::serialize(&LIMIT).unwrap(),
            AttrValue::Number(LIMIT as f64)
        );
        assert_eq!(
            AttrValue::serialize(&-LIMIT).unwrap(),
            AttrValue::Number(-LIMIT as f64)
        );
        assert!(AttrValue::serialize(&(LIMIT + 1)).is_err());
        assert!(AttrValue::serialize(&(-LIMIT - 1)).is_err());
        assert!(AttrValue::serialize(&u64::MAX).is_err());
        assert!(AttrValue::serialize(&i128::MIN).is_err());
        assert!(AttrValue::serialize(&u128::MAX).is_err());
        assert_eq!(
            AttrValue::serialize(&7u128).unwrap(),
            AttrValue::Number(7.0)
        );
        let err = AttrValue::serialize(&vec![1, i64::MAX]).unwrap_err();
        assert!(err.to_string().contains("as a string"), "{err}");
    }

    #[test]
    fn json_values_convert_exactly_or_not_at_all() {
        let value = serde_json::json!({"a": [1, -2, 3.5, true, "x", null], "b": {"": {}}});
        let expected = AttrValue::Map(BTreeMap::from([
            (
                "a".to_owned(),
                AttrValue::List(vec![
                    AttrValue::Number(1.0),
                    AttrValue::Number(-2.0),
                    AttrValue::Number(3.5),
                    AttrValue::Bool(true),
                    AttrValue::String("x".into()),
                    AttrValue::Null,
                ]),
            ),
            (
                "b".to_owned(),
                AttrValue::Map(BTreeMap::from([(
                    String::new(),
                    AttrValue::Map(BTreeMap::new()),
                )])),
            ),
        ]));
        assert_eq!(AttrValue::try_from(value).unwrap(), expected);
        let limit = serde_json::json!([9007199254740992_i64, -9007199254740992_i64]);
        assert!(AttrValue::try_from(limit).is_ok());
        // Beyond 2^53 no id is ever sent as another id.
        for beyond in [
            serde_json::json!({"id": 9007199254740993_u64}),
            serde_json::json!([-9007199254740993_i64]),
        ] {
            assert!(AttrValue::try_from(beyond).is_err());
        }
    }

    #[test]
    fn keys_must_be_strings_and_attributes_a_map() {
        let by_number = HashMap::from([(1u8, true)]);
        assert!(AttrValue::serialize(&by_number).is_err());
        let by_name = HashMap::from([("a", true)]);
        assert!(attrs_of(&by_name).is_ok());
        assert!(attrs_of(&1).is_err());
        assert!(attrs_of(&"x").is_err());
        assert!(
            attrs_of(&Shape::New(1)).is_ok(),
            "a tagged variant is a map"
        );
    }

    #[test]
    fn a_flattened_key_twice_is_refused() {
        #[derive(Serialize)]
        struct Inner {
            a: u8,
        }
        #[derive(Serialize)]
        struct Outer {
            a: u8,
            #[serde(flatten)]
            inner: Inner,
        }
        let twice = Outer {
            a: 1,
            inner: Inner { a: 2 },
        };
        assert!(AttrValue::serialize(&twice).is_err());
    }
}
