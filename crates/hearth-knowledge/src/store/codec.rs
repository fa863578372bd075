//! A minimal, non-self-describing serde binary encoding, used only to persist the
//! `instant_distance::Hnsw` graph (whose fields are private, so serde is the only way in or out).
//!
//! Encoding (all little-endian, no padding):
//! - `u8/u16/u32/u64/i*/f32/f64`: fixed width; `usize` goes through serde as `u64`; `bool`: one byte.
//! - bytes: `u64` length + raw bytes. Sequences: `u64` length + elements.
//! - tuples, arrays, tuple structs and structs: the elements in order, no length.
//! - newtype structs: the inner value. Everything else (strings, options, maps, enums) is refused.
//!
//! The decoder never trusts a length: a sequence may not claim more elements than bytes remain,
//! and serde's `Vec` visitor caps its pre-allocation, so a forged length cannot allocate.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{self, Serialize};
use std::fmt;

#[derive(Debug)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

impl ser::Error for CodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

impl de::Error for CodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, CodecError> {
    Err(CodecError(format!("binary codec does not encode {what}")))
}

pub fn to_bytes<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    value.serialize(&mut Encoder { out })
}

/// Decodes one value that must span all of `bytes`.
pub fn from_bytes<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, CodecError> {
    let mut decoder = Decoder { buf: bytes };
    let value = T::deserialize(&mut decoder)?;
    if !decoder.buf.is_empty() {
        return Err(CodecError(format!("{} trailing bytes", decoder.buf.len())));
    }
    Ok(value)
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

macro_rules! encode_le {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), CodecError> {
            self.out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = ser::Impossible<(), CodecError>;
    type SerializeMap = ser::Impossible<(), CodecError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), CodecError>;

    encode_le!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_f32: f32, serialize_f64: f64);

    fn serialize_bool(self, v: bool) -> Result<(), CodecError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CodecError> {
        self.out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, CodecError> {
        match len {
            Some(len) => {
                self.out.extend_from_slice(&(len as u64).to_le_bytes());
                Ok(self)
            }
            None => unsupported("sequences of unknown length"),
        }
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, CodecError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, CodecError> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CodecError> {
        Ok(self)
    }

    fn serialize_char(self, _: char) -> Result<(), CodecError> {
        unsupported("char")
    }
    fn serialize_str(self, _: &str) -> Result<(), CodecError> {
        unsupported("strings")
    }
    fn serialize_none(self) -> Result<(), CodecError> {
        unsupported("options")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), CodecError> {
        unsupported("options")
    }
    fn serialize_unit(self) -> Result<(), CodecError> {
        unsupported("unit")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CodecError> {
        unsupported("unit structs")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), CodecError> {
        unsupported("enums")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), CodecError> {
        unsupported("enums")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, CodecError> {
        unsupported("enums")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, CodecError> {
        unsupported("maps")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, CodecError> {
        unsupported("enums")
    }
}

impl<'a, 'b> ser::SerializeSeq for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

impl<'a, 'b> ser::SerializeTuple for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

impl<'a, 'b> ser::SerializeTupleStruct for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

impl<'a, 'b> ser::SerializeStruct for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

struct Decoder<'de> {
    buf: &'de [u8],
}

impl<'de> Decoder<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], CodecError> {
        if n > self.buf.len() {
            return Err(CodecError(format!(
                "needs {n} bytes, {} remain",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length prefix, checked against what is left (every element takes at least one byte).
    fn len(&mut self) -> Result<usize, CodecError> {
        let len = u64::from_le_bytes(self.array()?);
        match usize::try_from(len) {
            Ok(len) if len <= self.buf.len() => Ok(len),
            _ => Err(CodecError(format!(
                "length {len} exceeds the {} remaining bytes",
                self.buf.len()
            ))),
        }
    }
}

macro_rules! decode_le {
    ($($method:ident: $ty:ty => $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    decode_le!(deserialize_i8: i8 => visit_i8, deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32, deserialize_i64: i64 => visit_i64,
        deserialize_u8: u8 => visit_u8, deserialize_u16: u16 => visit_u16,
        deserialize_u32: u32 => visit_u32, deserialize_u64: u64 => visit_u64,
        deserialize_f32: f32 => visit_f32, deserialize_f64: f64 => visit_f64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        match self.array::<1>()?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(CodecError(format!("bad bool byte {b}"))),
        }
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let len = self.len()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CodecError> {
        let len = self.len()?;
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        visitor.visit_seq(Elements {
            de: self,
            left: len,
        })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.deserialize_tuple(len, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CodecError> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("self-describing values")
    }
    fn deserialize_char<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("char")
    }
    fn deserialize_str<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("strings")
    }
    fn deserialize_string<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("strings")
    }
    fn deserialize_option<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("options")
    }
    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("unit")
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, CodecError> {
        unsupported("unit structs")
    }
    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("maps")
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, CodecError> {
        unsupported("enums")
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("identifiers")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, CodecError> {
        unsupported("skipped values")
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Elements<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de, 'a> SeqAccess<'de> for Elements<'a, 'de> {
    type Error = CodecError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CodecError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Node([u32; 4]);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Graph {
        ef: usize,
        nodes: Vec<Node>,
        layers: Vec<Vec<u32>>,
        weight: f32,
    }

    fn sample() -> Graph {
        Graph {
            ef: 7,
            nodes: vec![Node([1, 2, 3, u32::MAX]), Node([0, 0, 5, 9])],
            layers: vec![vec![1, 2], vec![], vec![3]],
            weight: -0.25,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let mut bytes = Vec::new();
        to_bytes(&sample(), &mut bytes).unwrap();
        // ef (8) + nodes len (8) + 2 × 16 + layers len (8) + (8 + 8) + 8 + (8 + 4) + f32 (4)
        assert_eq!(bytes.len(), 8 + 8 + 32 + 8 + 16 + 8 + 12 + 4);
        assert_eq!(&bytes[..8], &7u64.to_le_bytes());
        let back: Graph = from_bytes(&bytes).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn every_truncation_and_forged_length_is_an_error() {
        let mut bytes = Vec::new();
        to_bytes(&sample(), &mut bytes).unwrap();
        for cut in 0..bytes.len() {
            assert!(from_bytes::<Graph>(&bytes[..cut]).is_err(), "cut {cut}");
        }
        // A sequence length of 2^62 must be refused before anything is allocated.
        let mut forged = bytes.clone();
        forged[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(from_bytes::<Graph>(&forged).is_err());
        let mut extra = bytes;
        extra.push(0);
        assert!(from_bytes::<Graph>(&extra).is_err());
    }
}
