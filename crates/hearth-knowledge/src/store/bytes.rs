//! Little-endian primitives of the snapshot format: a growable writer and a bounds-checked
//! reader whose counts are checked against the bytes left before anything is allocated.

use crate::documents::DocKind;
use crate::{KnowledgeError, Result};

pub(super) fn corrupt(msg: impl Into<String>) -> KnowledgeError {
    KnowledgeError::SnapshotCorrupt(msg.into())
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
    pub(super) fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.f32(*x);
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

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(corrupt(format!(
                "{}: needs {n} bytes, {} remain",
                self.what,
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
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
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| corrupt(format!("{}: invalid UTF-8", self.what)))
    }
    /// A `u64` element count, each element taking at least `min_bytes`: refused before any
    /// allocation if the remaining bytes cannot hold it.
    pub(super) fn count(&mut self, min_bytes: usize) -> Result<usize> {
        let n = self.u64()?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_bytes))
            .is_some_and(|b| b <= self.buf.len());
        if !fits {
            return Err(corrupt(format!(
                "{}: count {n} exceeds the {} remaining bytes",
                self.what,
                self.buf.len()
            )));
        }
        Ok(n as usize)
    }
    pub(super) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| corrupt("vector length overflow"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub(super) fn end(&self) -> Result<()> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(corrupt(format!("{}: {n} trailing bytes", self.what))),
        }
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
