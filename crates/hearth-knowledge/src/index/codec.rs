//! A minimal, non-self-describing serde binary encoder, used only to copy the links of an
//! `instant_distance::Hnsw` out of its private fields (see [`super::hnsw::Graph::from_instant`]).
//!
//! Encoding (all little-endian, no padding):
//! - `u8/u16/u32/u64/i*/f32/f64`: fixed width; `usize` goes through serde as `u64`; `bool`: one byte.
//! - bytes: `u64` length + raw bytes. Sequences: `u64` length + elements.
//! - tuples, arrays, tuple structs and structs: the elements in order, no length.
//! - newtype structs: the inner value. Everything else (strings, options, maps, enums) is refused.
//!
//! Struct fields named in `skip` are left out (the graph's points are copied separately).
//!
//! So `Hnsw { ef_search, points, zero, layers }` without `points` is
//! `ef_search u64, zero: u64 n + n × 64 u32, layers: u64 L + L × (u64 len + len × 32 u32)`.

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

fn unsupported<T>(what: &str) -> Result<T, CodecError> {
    Err(CodecError(format!("binary codec does not encode {what}")))
}

/// Encodes `value`, leaving out the struct fields named in `skip`.
pub fn to_bytes_skipping<T: Serialize>(
    value: &T,
    skip: &[&str],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    value.serialize(&mut Encoder { out, skip })
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    skip: &'a [&'a str],
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
        key: &'static str,
        value: &T,
    ) -> Result<(), CodecError> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), CodecError> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Node([u32; 4]);

    #[derive(Serialize)]
    struct Graph {
        ef: usize,
        points: Vec<f32>,
        nodes: Vec<Node>,
        layers: Vec<Vec<u32>>,
        weight: f32,
    }

    #[test]
    fn layout_and_skipped_fields() {
        let g = Graph {
            ef: 7,
            points: vec![1.0, 2.0],
            nodes: vec![Node([1, 2, 3, u32::MAX]), Node([0, 0, 5, 9])],
            layers: vec![vec![1, 2], vec![], vec![3]],
            weight: -0.25,
        };
        let mut bytes = Vec::new();
        to_bytes_skipping(&g, &["points"], &mut bytes).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&7u64.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        for v in [1u32, 2, 3, u32::MAX, 0, 0, 5, 9] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&3u64.to_le_bytes());
        for layer in &g.layers {
            want.extend_from_slice(&(layer.len() as u64).to_le_bytes());
            for v in layer {
                want.extend_from_slice(&v.to_le_bytes());
            }
        }
        want.extend_from_slice(&(-0.25f32).to_le_bytes());
        assert_eq!(bytes, want);

        let mut all = Vec::new();
        to_bytes_skipping(&g, &[], &mut all).unwrap();
        assert_eq!(
            all.len(),
            bytes.len() + 8 + 2 * 4,
            "points: length + two floats"
        );
    }
}
