//! GGUF (v2, v3) reader: metadata, tensor infos and bounds-checked tensor data.
//!
//! File layout (little-endian): `"GGUF"`, u32 version, u64 tensor count, u64 metadata count, the
//! metadata key/values, the tensor infos (name, n_dims, dims, ggml type, offset), padding to
//! `general.alignment` (default 32), then the tensor data. Offsets are relative to the data start.
//!
//! The file is untrusted: every count, length and offset is checked against the bytes that remain
//! before anything is allocated, so a corrupt count of 2^60 is an error, not an allocation.

mod convert;
mod meta;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use crate::error::{ModelError, Result};

pub use meta::{MetaArray, MetaValue, Metadata};

pub const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Nested metadata arrays deeper than this are rejected (bounded recursion).
const MAX_ARRAY_DEPTH: usize = 8;
const MAX_DIMS: usize = 4;

/// A ggml tensor type id. Only F32, F16, Q4_0, Q4_1 and Q8_0 convert to Hearth formats; the block
/// sizes of the others are known so their bytes can still be bounds-checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// `(id, name, elements per block, bytes per block)`, as ggml's `type_traits`.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    pub const F32: Self = Self(0);
    pub const F16: Self = Self(1);
    pub const Q4_0: Self = Self(2);
    pub const Q4_1: Self = Self(3);
    pub const Q8_0: Self = Self(8);

    fn traits(self) -> Option<(&'static str, u64, u64)> {
        GGML_TYPES
            .iter()
            .find(|t| t.0 == self.0)
            .map(|&(_, n, e, b)| (n, e, b))
    }

    /// `"Q4_1"`, or `"type 99"` for ids this reader does not know.
    pub fn name(self) -> String {
        match self.traits() {
            Some((n, ..)) => n.to_string(),
            None => format!("type {}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`, if known.
    pub fn block(self) -> Option<(u64, u64)> {
        self.traits().map(|(_, e, b)| (e, b))
    }
}

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (innermost) dimension, so a `[rows, cols]` matrix is
    /// stored as `dims = [cols, rows]`.
    pub dims: Vec<u64>,
    pub dtype: GgmlType,
    /// Byte offset relative to the start of the tensor data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Overflow was ruled out at parse time.
        self.dims.iter().product()
    }

    /// Bytes of data, if the type's block size is known.
    pub fn n_bytes(&self) -> Option<u64> {
        let (per_block, block_bytes) = self.dtype.block()?;
        Some(self.n_elements() / per_block * block_bytes)
    }

    /// Dims outermost first (`[rows, cols]` for a matrix), trailing size-1 ggml dims dropped.
    pub fn shape(&self) -> Vec<usize> {
        let mut d: Vec<u64> = self.dims.clone();
        while d.len() > 1 && d.last() == Some(&1) {
            d.pop();
        }
        d.iter().rev().map(|&x| x as usize).collect()
    }
}

/// A parsed GGUF header. Tensor bytes stay in the caller's buffer (see [`Gguf::tensor_data`]).
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub alignment: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute file offset of the tensor data section.
    pub data_offset: u64,
    index: HashMap<String, usize>,
}

impl Metadata for Gguf {
    fn value(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }
}

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Gguf(msg.into())
}

impl Gguf {
    /// Whether `bytes` starts with the GGUF magic.
    pub fn sniff(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC)
    }

    pub fn parse(bytes: &[u8]) -> Result<Gguf> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(bad("not a GGUF file (bad magic)"));
        }
        let version = r.u32("version")?;
        match version {
            2 | 3 => {}
            1 => return Err(ModelError::Unsupported("GGUF version 1".into())),
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(ModelError::Unsupported("big-endian GGUF".into()))
            }
            v => return Err(bad(format!("unknown GGUF version {v}"))),
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Smallest possible entries: a kv is key length + type + a 1-byte value; a tensor info is
        // name length + n_dims + one dim + type + offset.
        r.check_count(n_kv, 13, "metadata count")?;
        r.check_count(n_tensors, 32, "tensor count")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let ty = r.u32("metadata type")?;
            let value = r.value(ty, 0, &key)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(bad(format!("duplicate metadata key `{key}`")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(v) => return Err(bad(format!("general.alignment = {v:?}"))),
        };

        let mut tensors = Vec::new();
        let mut index = HashMap::new();
        for i in 0..n_tensors {
            let t = r.tensor_info()?;
            if index.insert(t.name.clone(), i as usize).is_some() {
                return Err(bad(format!("duplicate tensor `{}`", t.name)));
            }
            tensors.push(t);
        }

        let data_offset = (r.pos as u64)
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| bad("data offset overflows"))?;
        let file_len = bytes.len() as u64;
        if !tensors.is_empty() && data_offset > file_len {
            return Err(bad(format!(
                "tensor data would start at {data_offset}, past the end of the {file_len}-byte file"
            )));
        }
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(bad(format!(
                    "tensor `{}` offset {} is not a multiple of the alignment {alignment}",
                    t.name, t.offset
                )));
            }
            if let Some(n) = t.n_bytes() {
                let end = data_offset
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(n));
                if end.is_none_or(|e| e > file_len) {
                    return Err(bad(format!(
                        "tensor `{}` ({n} bytes at data offset {}) extends past the end of the {file_len}-byte file",
                        t.name, t.offset
                    )));
                }
            }
        }
        Ok(Gguf {
            version,
            alignment,
            metadata,
            tensors,
            data_offset,
            index,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of tensor `name` inside `bytes` (the same buffer that was parsed).
    pub fn tensor_data<'a>(&self, bytes: &'a [u8], name: &str) -> Result<&'a [u8]> {
        let t = self
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        let n = t.n_bytes().ok_or_else(|| {
            ModelError::Unsupported(format!("tensor `{name}` has ggml {}", t.dtype.name()))
        })?;
        let start = self.data_offset + t.offset;
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(start + n).ok())
            .and_then(|(s, e)| bytes.get(s..e))
            .ok_or_else(|| bad(format!("tensor `{name}` lies outside the buffer")))
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                bad(format!(
                    "{what}: {n} bytes needed at offset {}, {} left (truncated or corrupt)",
                    self.pos,
                    self.remaining()
                ))
            })?;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Rejects `count` items of at least `min_size` bytes each that cannot fit in what is left.
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        match count.checked_mul(min_size) {
            Some(n) if n <= self.remaining() as u64 => Ok(()),
            _ => Err(bad(format!(
                "{what} {count} cannot fit in the {} bytes left",
                self.remaining()
            ))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(format!("{what}: invalid UTF-8")))
    }

    fn bool(&mut self, what: &str) -> Result<bool> {
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(format!("{what}: bool byte {b}"))),
        }
    }

    /// Bytes the smallest value of GGUF type `ty` occupies (used to bound array counts).
    fn min_size(ty: u32, what: &str) -> Result<u64> {
        Ok(match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => 8,  // string: length only
            9 => 12, // array: type + count
            t => return Err(bad(format!("{what}: unknown value type {t}"))),
        })
    }

    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<MetaValue> {
        let w = key;
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(w)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(w)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(w)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(w)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(w)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(w)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(w)?)),
            7 => MetaValue::Bool(self.bool(w)?),
            8 => MetaValue::String(self.string(w)?),
            9 => MetaValue::Array(self.meta_array(depth, key)?),
            10 => MetaValue::U64(u64::from_le_bytes(self.array(w)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(w)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(w)?)),
            t => return Err(bad(format!("metadata `{key}`: unknown value type {t}"))),
        })
    }

    fn meta_array(&mut self, depth: usize, key: &str) -> Result<MetaArray> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(bad(format!("metadata `{key}`: arrays nested too deeply")));
        }
        let ty = self.u32(key)?;
        let n = self.u64(key)?;
        self.check_count(
            n,
            Self::min_size(ty, key)?,
            &format!("`{key}` array length"),
        )?;
        // Safe to reserve: `n` items of at least one byte each fit in the remaining input.
        let n = n as usize;
        macro_rules! read {
            ($variant:ident, $t:ty) => {{
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(<$t>::from_le_bytes(self.array(key)?));
                }
                MetaArray::$variant(v)
            }};
        }
        Ok(match ty {
            0 => read!(U8, u8),
            1 => read!(I8, i8),
            2 => read!(U16, u16),
            3 => read!(I16, i16),
            4 => read!(U32, u32),
            5 => read!(I32, i32),
            6 => read!(F32, f32),
            10 => read!(U64, u64),
            11 => read!(I64, i64),
            12 => read!(F64, f64),
            7 => MetaArray::Bool((0..n).map(|_| self.bool(key)).collect::<Result<_>>()?),
            8 => MetaArray::String((0..n).map(|_| self.string(key)).collect::<Result<_>>()?),
            _ => MetaArray::Array(
                (0..n)
                    .map(|_| self.meta_array(depth + 1, key))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor n_dims")? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "tensor `{name}` has {n_dims} dims (1..={MAX_DIMS})"
            )));
        }
        let dims = (0..n_dims)
            .map(|_| self.u64("tensor dim"))
            .collect::<Result<Vec<_>>>()?;
        if dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return Err(bad(format!("tensor `{name}` dims {dims:?} overflow")));
        }
        let dtype = GgmlType(self.u32("tensor type")?);
        if let Some((per_block, _)) = dtype.block() {
            if dims[0] % per_block != 0 {
                return Err(bad(format!(
                    "tensor `{name}`: first dim {} is not a multiple of the {} block size {per_block}",
                    dims[0],
                    dtype.name()
                )));
            }
        }
        let offset = self.u64("tensor offset")?;
        Ok(TensorInfo {
            name,
            dims,
            dtype,
            offset,
        })
    }
}
