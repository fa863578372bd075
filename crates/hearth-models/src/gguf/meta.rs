//! GGUF metadata values and typed getters.
//!
//! Arrays are stored typed (`MetaArray::String(Vec<String>)` rather than a `Vec` of tagged values) so
//! a 49k-entry vocabulary costs one `String` per token and `get_str_array` can return a slice.
//! Both types serialise with serde (externally tagged), which is how Hearth packs keep the metadata a
//! GGUF tokenizer needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// One metadata value. Variant names follow the GGUF value types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous metadata array; `Array` nests arrays (each inner array has its own type).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<MetaArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl MetaValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
        }
    }

    /// Any integer type, as i128 (so every GGUF integer converts exactly).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Whether every float inside is finite (JSON, and so a pack, cannot hold NaN or infinities).
    pub fn is_finite(&self) -> bool {
        match self {
            MetaValue::F32(v) => v.is_finite(),
            MetaValue::F64(v) => v.is_finite(),
            MetaValue::Array(a) => a.is_finite(),
            _ => true,
        }
    }
}

impl MetaArray {
    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
            MetaArray::Array(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            MetaArray::U8(_) => "u8[]",
            MetaArray::I8(_) => "i8[]",
            MetaArray::U16(_) => "u16[]",
            MetaArray::I16(_) => "i16[]",
            MetaArray::U32(_) => "u32[]",
            MetaArray::I32(_) => "i32[]",
            MetaArray::F32(_) => "f32[]",
            MetaArray::Bool(_) => "bool[]",
            MetaArray::String(_) => "string[]",
            MetaArray::Array(_) => "array[]",
            MetaArray::U64(_) => "u64[]",
            MetaArray::I64(_) => "i64[]",
            MetaArray::F64(_) => "f64[]",
        }
    }

    fn is_finite(&self) -> bool {
        match self {
            MetaArray::F32(v) => v.iter().all(|x| x.is_finite()),
            MetaArray::F64(v) => v.iter().all(|x| x.is_finite()),
            MetaArray::Array(v) => v.iter().all(MetaArray::is_finite),
            _ => true,
        }
    }
}

fn missing(key: &str) -> ModelError {
    ModelError::Gguf(format!("missing metadata key `{key}`"))
}

fn wrong(key: &str, v: &MetaValue, want: &str) -> ModelError {
    ModelError::Gguf(format!(
        "metadata `{key}` is {} ({}), expected {want}",
        v.type_name(),
        preview(v)
    ))
}

fn preview(v: &MetaValue) -> String {
    match v {
        MetaValue::Array(a) => format!("{} of {}", a.type_name(), a.len()),
        MetaValue::String(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        other => format!("{other:?}"),
    }
}

/// Typed access to GGUF metadata. Integer getters accept any integer type whose value fits (GGUF
/// writers disagree on u32 vs u64 vs i32); a missing key or wrong type is `ModelError::Gguf`.
/// The `opt_*` getters return `Ok(None)` for a missing key but still reject a wrong type.
pub trait Metadata {
    fn value(&self, key: &str) -> Option<&MetaValue>;

    /// The value of `key`, or an error naming it.
    fn require(&self, key: &str) -> Result<&MetaValue> {
        self.value(key).ok_or_else(|| missing(key))
    }

    fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_int()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| wrong(key, v, "an unsigned integer"))
    }

    fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_int()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or_else(|| wrong(key, v, "an integer"))
    }

    fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_int()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| wrong(key, v, "a u32"))
    }

    fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| wrong(key, v, "a float"))
    }

    fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            MetaValue::Bool(b) => Ok(*b),
            v => Err(wrong(key, v, "a bool")),
        }
    }

    fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, v, "a string"))
    }

    fn get_array(&self, key: &str) -> Result<&MetaArray> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| wrong(key, v, "an array"))
    }

    fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::String(a)) => Ok(a),
            v => Err(wrong(key, v, "a string array")),
        }
    }

    fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::I32(a)) => Ok(a),
            v => Err(wrong(key, v, "an i32 array")),
        }
    }

    fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.require(key)? {
            MetaValue::Array(MetaArray::F32(a)) => Ok(a),
            v => Err(wrong(key, v, "an f32 array")),
        }
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.value(key).map(|_| self.get_u32(key)).transpose()
    }

    fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.value(key).map(|_| self.get_f32(key)).transpose()
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.value(key).map(|_| self.get_bool(key)).transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.value(key).map(|_| self.get_str(key)).transpose()
    }
}

impl Metadata for BTreeMap<String, MetaValue> {
    fn value(&self, key: &str) -> Option<&MetaValue> {
        self.get(key)
    }
}
