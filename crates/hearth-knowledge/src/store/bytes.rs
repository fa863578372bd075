//! Little-endian primitives of the snapshot format: a growable writer, and a reader over any
//! `Read` (a byte slice, or the file through a buffer) that checks every count against the bytes
//! left in its section before anything is allocated. Arrays of numbers are written and read in
//! bulk: on little-endian machines (x86, ARM, wasm32) that is a plain copy.

use std::io::Read;

use bytemuck::Pod;

use crate::documents::DocKind;
use crate::{KnowledgeError, Result};

pub(super) fn corrupt(msg: impl Into<String>) -> KnowledgeError {
    KnowledgeError::SnapshotCorrupt(msg.into())
}

/// Numbers stored as little-endian arrays.
pub(super) trait Le: Pod {
    /// Converts between little-endian and native order (the identity on little-endian).
    fn swap_le(self) -> Self;
}

impl Le for u32 {
    fn swap_le(self) -> Self {
        u32::from_le(self)
    }
}

impl Le for u64 {
    fn swap_le(self) -> Self {
        u64::from_le(self)
    }
}

impl Le for f32 {
    fn swap_le(self) -> Self {
        f32::from_bits(u32::from_le(self.to_bits()))
    }
}

#[derive(Default)]
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub(super) fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    /// An array of numbers, no length.
    pub(super) fn array<T: Le>(&mut self, v: &[T]) {
        if cfg!(target_endian = "little") {
            self.buf.extend_from_slice(bytemuck::cast_slice(v));
        } else {
            self.buf.reserve(std::mem::size_of_val(v));
            for x in v {
                self.buf.extend_from_slice(bytemuck::bytes_of(&x.swap_le()));
            }
        }
    }
    /// Writes `tag`, a length placeholder, the body, then patches the length.
    pub(super) fn section(
        &mut self,
        tag: [u8; 4],
        body: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        self.buf.extend_from_slice(&tag);
        let at = self.buf.len();
        self.u64(0);
        body(self)?;
        let len = (self.buf.len() - at - 8) as u64;
        self.buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// Bulk reads go through in pieces of this size, so that a checksumming reader underneath
/// hashes each piece while it is still in cache.
const PIECE: usize = 1 << 20;

/// Reads the payload's sections in order from `r`.
pub(super) struct Input<R> {
    pub(super) r: R,
    /// Payload bytes after the current section.
    payload: u64,
    /// Bytes left in the current section.
    left: u64,
    what: &'static str,
    /// Names the source in I/O errors.
    path: String,
}

impl<R: Read> Input<R> {
    pub(super) fn new(r: R, payload: u64, path: String) -> Self {
        Self {
            r,
            payload,
            left: 0,
            what: "sections",
            path,
        }
    }

    /// Payload bytes not yet read (after the last section: trailing bytes).
    pub(super) fn payload_left(&self) -> u64 {
        self.payload + self.left
    }

    /// Starts the next section, which must be `tag` (the previous one must be fully read).
    pub(super) fn section(&mut self, tag: [u8; 4], what: &'static str) -> Result<()> {
        self.end()?;
        (self.left, self.payload, self.what) = (self.payload, 0, "sections");
        if self.array::<4>()? != tag {
            return Err(corrupt(format!("expected section {what}")));
        }
        let len = self.u64()?;
        if len > self.left {
            return Err(corrupt(format!(
                "section {what} claims {len} bytes, {} remain",
                self.left
            )));
        }
        (self.payload, self.left, self.what) = (self.left - len, len, what);
        Ok(())
    }

    /// The current section must be fully read.
    pub(super) fn end(&self) -> Result<()> {
        match self.left {
            0 => Ok(()),
            n => Err(corrupt(format!("{}: {n} trailing bytes", self.what))),
        }
    }

    fn room(&self, n: usize) -> Result<()> {
        if n as u64 > self.left {
            return Err(corrupt(format!(
                "{}: needs {n} bytes, {} remain",
                self.what, self.left
            )));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.room(buf.len())?;
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                KnowledgeError::SnapshotTruncated(format!("{} ended early", self.path))
            }
            _ => KnowledgeError::Io {
                path: self.path.clone(),
                source: e,
            },
        })?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        self.read(&mut out)?;
        Ok(out)
    }
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(super) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    pub(super) fn usize(&mut self) -> Result<usize> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| corrupt(format!("{}: {v} does not fit usize", self.what)))
    }
    pub(super) fn str(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        self.room(len)?;
        let mut bytes = vec![0; len];
        self.read(&mut bytes)?;
        String::from_utf8(bytes).map_err(|_| corrupt(format!("{}: invalid UTF-8", self.what)))
    }
    /// A `u64` element count, each element taking at least `min_bytes`: refused before any
    /// allocation if the rest of the section cannot hold it.
    pub(super) fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.u64()?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_bytes))
            .is_some_and(|b| b as u64 <= self.left);
        if !fits {
            return Err(corrupt(format!(
                "{}: count {n} exceeds the {} remaining bytes",
                self.what, self.left
            )));
        }
        Ok(n as usize)
    }
    /// Fills `out` from an array of numbers.
    pub(super) fn array_into<T: Le>(&mut self, out: &mut [T]) -> Result<()> {
        self.room(std::mem::size_of_val(out))?;
        for piece in bytemuck::cast_slice_mut::<T, u8>(out).chunks_mut(PIECE) {
            self.read(piece)?;
        }
        if cfg!(target_endian = "big") {
            for x in out.iter_mut() {
                *x = x.swap_le();
            }
        }
        Ok(())
    }
    /// An array of `n` numbers (its size checked before it is allocated).
    pub(super) fn vec<T: Le>(&mut self, n: usize) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.refill(&mut out, n)?;
        Ok(out)
    }
    /// Replaces the contents of `buf` with an array of `n` numbers, reusing its allocation.
    pub(super) fn refill<T: Le>(&mut self, buf: &mut Vec<T>, n: usize) -> Result<()> {
        let bytes = n
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| corrupt(format!("{}: array size overflows", self.what)))?;
        self.room(bytes)?;
        buf.clear();
        buf.resize(n, T::zeroed());
        self.array_into(buf)
    }
}

pub(super) fn kind_code(kind: DocKind) -> u8 {
    match kind {
        DocKind::Html => 0,
        DocKind::Markdown => 1,
        DocKind::Text => 2,
        DocKind::Pdf => 3,
        DocKind::Docx => 4,
    }
}

pub(super) fn kind_from_code(code: u8) -> Result<DocKind> {
    Ok(match code {
        0 => DocKind::Html,
        1 => DocKind::Markdown,
        2 => DocKind::Text,
        3 => DocKind::Pdf,
        4 => DocKind::Docx,
        _ => return Err(corrupt(format!("unknown document kind {code}"))),
    })
}

pub(super) fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        KnowledgeError::InvalidInput(format!("{what} {v} does not fit the snapshot format"))
    })
}
