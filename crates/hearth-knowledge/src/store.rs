//! Index snapshots: one binary format, identical natively and in wasm (where the bytes go to OPFS).
//!
//! ```text
//! header (32 bytes, little-endian)
//!   0  magic    b"HRTHIDX\0"
//!   8  version  u32 (= FORMAT_VERSION)
//!  12  sections u32 (= 5)
//!  16  payload  u64 byte length of everything after the header
//!  24  crc32    u32 of the payload (IEEE)
//!  28  crc32    u32 of header bytes 0..28
//! payload: sections, each `tag [u8; 4], len u64, body`, in this order:
//!   META  dim u32, next chunk id u64, dense params, BM25 params (see `write_meta`)
//!   DOCS  documents with their chunks (metadata and text)
//!   KWRD  BM25 posting lists: terms T u64, T × term text; chunks n u64, n × chunk id u64
//!         (ascending), n × length in tokens u32; then per term: postings u64, postings ×
//!         (chunk index u32, tf u32) in chunk order — read straight into the posting lists
//!   DNSB  HNSW segment as flat arrays (`index::hnsw::Graph`): generation u64, ef_search u64,
//!         points n u64, upper layers L u64, L × points per layer u64 (bottom up), then
//!         n × chunk id u64, n × dim × f32 vectors, n × 64 × u32 layer-0 links, and per upper
//!         layer len × 32 × u32 links — loading copies them in bulk and never rebuilds
//!   DNSF  fresh segment (ids + unit vectors) and tombstones
//! ```
//! Integers are LE, strings are `u32 len + UTF-8`, counts are checked against the bytes left
//! in their section before anything is allocated. Every failure is a typed [`KnowledgeError`],
//! never a panic. Version 1 stored the graph as instant-distance's serde encoding (one decode
//! call per vector component and link); it is refused with [`KnowledgeError::SnapshotVersion`].
//!
//! Natively, [`KnowledgeIndex::load`] streams the file through a small buffer, checksumming as
//! it goes, straight into the index's own arrays: a whole-file buffer would be a second copy of
//! the snapshot in fresh memory, and on a 100k-chunk index the kernel's zeroing of fresh pages
//! costs more than all the decoding.

mod bytes;
#[cfg(not(target_arch = "wasm32"))]
mod file;
mod read;

use std::collections::HashMap;

use crate::index::keyword::Term;
use crate::index::{ChunkId, KnowledgeIndex};
use crate::{KnowledgeError, Result};
use bytes::{corrupt, kind_code, to_u32, Input, Writer};

pub const MAGIC: [u8; 8] = *b"HRTHIDX\0";
pub const FORMAT_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 32;
const SECTIONS: [[u8; 4]; 5] = [*b"META", *b"DOCS", *b"KWRD", *b"DNSB", *b"DNSF"];
const SECTION_NAMES: [&str; 5] = ["META", "DOCS", "KWRD", "DNSB", "DNSF"];
/// File name of the snapshot inside the index directory.
pub const SNAPSHOT_FILE: &str = "index.hsnap";

impl KnowledgeIndex {
    /// Serialises the whole index (a running background rebuild is not part of it).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        // Vectors and links dominate; texts and term lists are a guess. Saves regrowing copies.
        let (n, dim) = (self.dense.len(), self.dim());
        let mut buf = Vec::with_capacity(HEADER_LEN + n * (4 * dim + 4 * 64 + 16 + 1024));
        buf.resize(HEADER_LEN, 0);
        let mut w = Writer { buf };
        w.section(SECTIONS[0], |w| self.write_meta(w))?;
        w.section(SECTIONS[1], |w| self.write_docs(w))?;
        w.section(SECTIONS[2], |w| self.write_keyword(w))?;
        w.section(SECTIONS[3], |w| self.write_dense_base(w))?;
        w.section(SECTIONS[4], |w| {
            self.write_fresh(w);
            Ok(())
        })?;
        let mut bytes = w.buf;
        let payload_len = (bytes.len() - HEADER_LEN) as u64;
        let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(SECTIONS.len() as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&payload_len.to_le_bytes());
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        let header_crc = crc32fast::hash(&bytes[..28]);
        bytes[28..32].copy_from_slice(&header_crc.to_le_bytes());
        Ok(bytes)
    }

    fn write_meta(&self, w: &mut Writer) -> Result<()> {
        let d = &self.params.dense;
        w.u32(to_u32(self.dim(), "dimension")?);
        w.u64(self.next_chunk_id);
        for v in [d.ef_construction, d.ef_search, d.fresh_min, d.fresh_max] {
            w.usize(v);
        }
        w.f32(d.tombstone_ratio);
        w.u64(d.seed);
        w.u8(u8::from(d.heuristic));
        w.f32(self.params.bm25.k1);
        w.f32(self.params.bm25.b);
        Ok(())
    }

    fn write_docs(&self, w: &mut Writer) -> Result<()> {
        w.usize(self.docs.len());
        for doc in self.docs.values() {
            w.str(&doc.id.0);
            w.str(&doc.title);
            w.str(&doc.source_path);
            w.u8(kind_code(doc.kind));
            w.u64(doc.size);
            w.str(&doc.content_hash);
            w.u64(doc.added_unix_ms);
            w.usize(doc.chunks.len());
            for id in &doc.chunks {
                let chunk = self
                    .chunks
                    .get(id)
                    .ok_or_else(|| corrupt(format!("chunk {id} missing")))?;
                w.u64(*id);
                w.u32(to_u32(chunk.heading_path.len(), "heading depth")?);
                for h in &chunk.heading_path {
                    w.str(h);
                }
                w.u8(u8::from(chunk.page.is_some()));
                w.u32(chunk.page.unwrap_or(0));
                w.usize(chunk.span.0);
                w.usize(chunk.span.1);
                w.str(&chunk.text);
            }
        }
        Ok(())
    }

    fn write_keyword(&self, w: &mut Writer) -> Result<()> {
        let kw = &self.keyword;
        // Only terms still in use, renumbered densely; only live postings.
        let live: Vec<&Term> = kw.terms.iter().filter(|t| t.df > 0).collect();
        w.usize(live.len());
        for term in &live {
            w.str(&term.text);
        }
        let mut ids: Vec<ChunkId> = kw.chunks.keys().copied().collect();
        ids.sort_unstable();
        let lens: Vec<u32> = ids.iter().map(|id| kw.chunks[id].len).collect();
        w.usize(ids.len());
        w.array(&ids);
        w.array(&lens);
        let index = ChunkIndex::new(&ids);
        let mut pairs: Vec<u32> = Vec::new();
        for term in &live {
            pairs.clear();
            for p in term.postings.iter().filter(|p| p.tf > 0) {
                let at = index
                    .of(p.chunk)
                    .ok_or_else(|| corrupt(format!("posting for unknown chunk {}", p.chunk)))?;
                pairs.extend([at, p.tf]);
            }
            w.usize(pairs.len() / 2);
            w.array(&pairs);
        }
        Ok(())
    }

    fn write_dense_base(&self, w: &mut Writer) -> Result<()> {
        let base = &self.dense.base;
        let graph = &base.graph;
        w.u64(base.generation);
        w.usize(base.ef_search);
        w.usize(base.ids.len());
        w.usize(graph.layers.len());
        for layer in &graph.layers {
            w.usize(layer.len() / crate::index::hnsw::UPPER_LINKS);
        }
        w.array(&base.ids);
        w.array(&graph.vectors);
        w.array(&graph.zero);
        for layer in &graph.layers {
            w.array(layer);
        }
        Ok(())
    }

    fn write_fresh(&self, w: &mut Writer) {
        let dense = &self.dense;
        w.usize(dense.fresh.ids.len());
        for (id, row) in dense
            .fresh
            .ids
            .iter()
            .zip(dense.fresh.vectors.chunks_exact(dense.dim))
        {
            w.u64(*id);
            w.array(row);
        }
        // Tombstones for fresh entries only matter to a rebuild in flight, which is not saved.
        let mut tombs: Vec<ChunkId> = dense
            .tombstones
            .iter()
            .copied()
            .filter(|id| dense.base_pos.contains_key(id))
            .collect();
        tombs.sort_unstable();
        w.usize(tombs.len());
        for id in tombs {
            w.u64(id);
        }
    }

    /// Parses and validates a snapshot held in memory (the checksum is verified first).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN {
            if bytes.len() >= 8 && bytes[..8] != MAGIC {
                return Err(KnowledgeError::SnapshotMagic);
            }
            return Err(KnowledgeError::SnapshotTruncated(format!(
                "{} bytes, header is {HEADER_LEN}",
                bytes.len()
            )));
        }
        let header = Header::parse(&bytes[..HEADER_LEN])?;
        let payload = &bytes[HEADER_LEN..];
        header.check_len(payload.len() as u64)?;
        let found = crc32fast::hash(payload);
        if header.crc != found {
            return Err(KnowledgeError::SnapshotChecksum {
                expected: header.crc,
                found,
            });
        }
        read::decode(&mut Input::new(
            payload,
            header.payload_len,
            "snapshot bytes".into(),
        ))
    }
}

/// Position of a chunk id in the ascending id list: an array over the id range when the ids are
/// dense (they are handed out in order), a map otherwise.
enum ChunkIndex {
    Dense { first: ChunkId, at: Vec<u32> },
    Sparse(HashMap<ChunkId, u32>),
}

impl ChunkIndex {
    fn new(sorted: &[ChunkId]) -> Self {
        let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
            return Self::Sparse(HashMap::new());
        };
        let span = last - first + 1;
        if span > 4 * sorted.len() as u64 + 65_536 {
            return Self::Sparse(
                sorted
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (*id, i as u32))
                    .collect(),
            );
        }
        let mut at = vec![u32::MAX; span as usize];
        for (i, id) in sorted.iter().enumerate() {
            at[(id - first) as usize] = i as u32;
        }
        Self::Dense { first, at }
    }

    fn of(&self, id: ChunkId) -> Option<u32> {
        match self {
            Self::Dense { first, at } => {
                let i = *at.get(usize::try_from(id.checked_sub(*first)?).ok()?)?;
                (i != u32::MAX).then_some(i)
            }
            Self::Sparse(map) => map.get(&id).copied(),
        }
    }
}

/// The fields of a snapshot header that the payload is checked against.
struct Header {
    payload_len: u64,
    crc: u32,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Self> {
        let field = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if bytes[..8] != MAGIC {
            return Err(KnowledgeError::SnapshotMagic);
        }
        let version = u32::from_le_bytes(field(8));
        if version != FORMAT_VERSION {
            return Err(KnowledgeError::SnapshotVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let sections = u32::from_le_bytes(field(12));
        let payload_len = u64::from_le_bytes([
            bytes[16], bytes[17], bytes[18], bytes[19], bytes[20], bytes[21], bytes[22], bytes[23],
        ]);
        let crc = u32::from_le_bytes(field(24));
        let header_crc = u32::from_le_bytes(field(28));
        let found = crc32fast::hash(&bytes[..28]);
        if header_crc != found {
            return Err(KnowledgeError::SnapshotChecksum {
                expected: header_crc,
                found,
            });
        }
        if sections as usize != SECTIONS.len() {
            return Err(corrupt(format!(
                "{sections} sections, expected {}",
                SECTIONS.len()
            )));
        }
        Ok(Self { payload_len, crc })
    }

    /// The payload that follows the header must be exactly as long as the header says.
    fn check_len(&self, found: u64) -> Result<()> {
        if found < self.payload_len {
            return Err(KnowledgeError::SnapshotTruncated(format!(
                "payload has {found} of {} bytes",
                self.payload_len
            )));
        }
        if found > self.payload_len {
            return Err(corrupt(format!(
                "{} bytes after the payload",
                found - self.payload_len
            )));
        }
        Ok(())
    }
}
