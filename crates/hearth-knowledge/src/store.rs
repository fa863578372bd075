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
//!   KWRD  BM25 vocabulary and per-chunk (term, tf) lists; postings are rebuilt from these
//!   DNSB  HNSW segment: generation, chunk id per point, the instant-distance graph
//!         (encoded by `codec`, checked by `graph` before decoding) — loading never rebuilds
//!   DNSF  fresh segment (ids + unit vectors) and tombstones
//! ```
//! Integers are LE, strings are `u32 len + UTF-8`, counts are checked against the bytes left
//! before anything is allocated. Every failure is a typed [`KnowledgeError`], never a panic.

mod bytes;
mod codec;
#[cfg(not(target_arch = "wasm32"))]
mod file;
mod graph;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::documents::DocId;
use crate::index::dense::{DenseIndex, DenseParams, Embedding, Fresh, HnswSegment};
use crate::index::keyword::{Bm25Params, ChunkTerms, KeywordIndex};
use crate::index::{ChunkId, DocumentMeta, IndexParams, IndexedChunk, KnowledgeIndex};
use crate::{KnowledgeError, Result};
use bytes::{corrupt, kind_code, kind_from_code, to_u32, Reader, Writer};

pub const MAGIC: [u8; 8] = *b"HRTHIDX\0";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 32;
const SECTIONS: [[u8; 4]; 5] = [*b"META", *b"DOCS", *b"KWRD", *b"DNSB", *b"DNSF"];
/// File name of the snapshot inside the index directory.
pub const SNAPSHOT_FILE: &str = "index.hsnap";

impl KnowledgeIndex {
    /// Serialises the whole index (a running background rebuild is not part of it).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer {
            buf: vec![0; HEADER_LEN],
        };
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
        // Only terms still in use, renumbered densely.
        let mut remap = vec![u32::MAX; kw.terms.len()];
        let live: Vec<usize> = (0..kw.terms.len())
            .filter(|t| kw.terms[*t].df > 0)
            .collect();
        w.usize(live.len());
        for (new, old) in live.iter().enumerate() {
            remap[*old] = new as u32;
            w.str(&kw.terms[*old].text);
        }
        let mut ids: Vec<&ChunkId> = kw.chunks.keys().collect();
        ids.sort_unstable();
        w.usize(ids.len());
        for id in ids {
            let entry = &kw.chunks[id];
            w.u64(*id);
            w.u32(entry.len);
            w.u32(to_u32(entry.terms.len(), "terms per chunk")?);
            let mut terms: Vec<(u32, u32)> = entry
                .terms
                .iter()
                .map(|(t, tf)| (remap[*t as usize], *tf))
                .collect();
            terms.sort_unstable();
            for (t, tf) in terms {
                w.u32(t);
                w.u32(tf);
            }
        }
        Ok(())
    }

    fn write_dense_base(&self, w: &mut Writer) -> Result<()> {
        let base = &self.dense.base;
        w.u64(base.generation);
        w.usize(base.ids.len());
        for id in &base.ids {
            w.u64(*id);
        }
        let mut graph = Vec::new();
        codec::to_bytes(&base.hnsw, &mut graph)
            .map_err(|e| corrupt(format!("encoding the graph: {e}")))?;
        w.usize(graph.len());
        w.buf.extend_from_slice(&graph);
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
            w.f32s(row);
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

    /// Parses and validates a snapshot.
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
        let mut h = Reader {
            buf: &bytes[..HEADER_LEN],
            what: "header",
        };
        if h.array::<8>()? != MAGIC {
            return Err(KnowledgeError::SnapshotMagic);
        }
        let version = h.u32()?;
        if version != FORMAT_VERSION {
            return Err(KnowledgeError::SnapshotVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let sections = h.u32()?;
        let payload_len = h.u64()?;
        let crc = h.u32()?;
        let header_crc = h.u32()?;
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
        let payload = &bytes[HEADER_LEN..];
        if (payload.len() as u64) < payload_len {
            return Err(KnowledgeError::SnapshotTruncated(format!(
                "payload has {} of {payload_len} bytes",
                payload.len()
            )));
        }
        if payload.len() as u64 > payload_len {
            return Err(corrupt(format!(
                "{} bytes after the payload",
                payload.len() as u64 - payload_len
            )));
        }
        let found = crc32fast::hash(payload);
        if crc != found {
            return Err(KnowledgeError::SnapshotChecksum {
                expected: crc,
                found,
            });
        }
        let mut r = Reader {
            buf: payload,
            what: "sections",
        };
        let mut bodies = Vec::with_capacity(SECTIONS.len());
        for tag in SECTIONS {
            if r.array::<4>()? != tag {
                return Err(corrupt(format!(
                    "expected section {}",
                    String::from_utf8_lossy(&tag)
                )));
            }
            let len = r.count(1)?;
            bodies.push(r.take(len)?);
        }
        r.end()?;
        decode(&bodies)
    }
}

fn decode(bodies: &[&[u8]]) -> Result<KnowledgeIndex> {
    let mut r = Reader {
        buf: bodies[0],
        what: "META",
    };
    let dim = r.u32()? as usize;
    let next_chunk_id = r.u64()?;
    let dense = DenseParams {
        ef_construction: r.usize()?,
        ef_search: r.usize()?,
        fresh_min: r.usize()?,
        fresh_max: r.usize()?,
        tombstone_ratio: r.f32()?,
        seed: r.u64()?,
        heuristic: match r.u8()? {
            0 => false,
            1 => true,
            b => return Err(corrupt(format!("bad heuristic flag {b}"))),
        },
    };
    let params = IndexParams {
        dense,
        bm25: Bm25Params {
            k1: r.f32()?,
            b: r.f32()?,
        },
    };
    r.end()?;
    if dim == 0 {
        return Err(corrupt("dimension 0"));
    }

    let (docs, chunks) = read_docs(bodies[1])?;
    if chunks.keys().any(|id| *id >= next_chunk_id) {
        return Err(corrupt("chunk id beyond the id counter"));
    }
    let keyword = read_keyword(bodies[2], params.bm25, &chunks)?;
    let base = read_base(bodies[3], dim)?;
    let (fresh, tombstones) = read_fresh(bodies[4], dim)?;

    // The live dense ids must be exactly the stored chunks.
    let base_ids: HashSet<ChunkId> = base.ids.iter().copied().collect();
    if base_ids.len() != base.ids.len() || !tombstones.is_subset(&base_ids) {
        return Err(corrupt(
            "dense segment ids repeat, or tombstones name unknown points",
        ));
    }
    let mut live = base.ids.len() - tombstones.len();
    for id in &fresh.ids {
        if base_ids.contains(id) || !chunks.contains_key(id) {
            return Err(corrupt(format!(
                "fresh vector {id} is duplicated or has no chunk"
            )));
        }
    }
    live += fresh.ids.len();
    let base_live_ok = base
        .ids
        .iter()
        .all(|id| tombstones.contains(id) || chunks.contains_key(id));
    if !base_live_ok || live != chunks.len() {
        return Err(corrupt("dense vectors and chunks disagree"));
    }
    let dense = DenseIndex::from_parts(dim, params.dense, base, fresh, tombstones);
    Ok(KnowledgeIndex::from_parts(
        params,
        dense,
        keyword,
        docs,
        chunks,
        next_chunk_id,
    ))
}

type Docs = (
    BTreeMap<DocId, DocumentMeta>,
    HashMap<ChunkId, IndexedChunk>,
);

fn read_docs(body: &[u8]) -> Result<Docs> {
    let mut r = Reader {
        buf: body,
        what: "DOCS",
    };
    let mut docs = BTreeMap::new();
    let mut chunks = HashMap::new();
    let mut paths = HashSet::new();
    // Smallest document: 4 strings (16) + kind (1) + 3 u64 (24) + chunk count (8).
    for _ in 0..r.count(49)? {
        let id = DocId(r.str()?);
        let title = r.str()?;
        let source_path = r.str()?;
        let kind = kind_from_code(r.u8()?)?;
        let size = r.u64()?;
        let content_hash = r.str()?;
        let added_unix_ms = r.u64()?;
        // Smallest chunk: id (8) + heading count (4) + page (5) + span (16) + text (4).
        let n = r.count(37)?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let chunk_id = r.u64()?;
            let heading_path = (0..r.u32()?).map(|_| r.str()).collect::<Result<Vec<_>>>()?;
            let has_page = r.u8()?;
            let page = r.u32()?;
            let page = match has_page {
                0 => None,
                1 => Some(page),
                _ => return Err(corrupt("bad page flag")),
            };
            let span = (r.usize()?, r.usize()?);
            let text = r.str()?;
            let chunk = IndexedChunk {
                id: chunk_id,
                doc_id: id.clone(),
                heading_path,
                page,
                span,
                text,
            };
            if chunks.insert(chunk_id, chunk).is_some() {
                return Err(corrupt(format!("chunk {chunk_id} listed twice")));
            }
            ids.push(chunk_id);
        }
        if !paths.insert(source_path.clone()) {
            return Err(corrupt(format!("source path {source_path:?} listed twice")));
        }
        let meta = DocumentMeta {
            id: id.clone(),
            title,
            source_path,
            kind,
            size,
            content_hash,
            added_unix_ms,
            chunks: ids,
        };
        if docs.insert(id, meta).is_some() {
            return Err(corrupt("document listed twice"));
        }
    }
    r.end()?;
    Ok((docs, chunks))
}

fn read_keyword(
    body: &[u8],
    params: Bm25Params,
    chunks: &HashMap<ChunkId, IndexedChunk>,
) -> Result<KeywordIndex> {
    let mut r = Reader {
        buf: body,
        what: "KWRD",
    };
    let mut kw = KeywordIndex::new(params);
    for t in 0..r.count(4)? {
        let text = r.str()?;
        if kw.vocab.insert(text.clone(), t as u32).is_some() {
            return Err(corrupt(format!("term {text:?} repeats")));
        }
        kw.terms.push(crate::index::keyword::Term {
            text,
            ..Default::default()
        });
    }
    let n = r.count(16)?;
    if n != chunks.len() {
        return Err(corrupt("keyword index and chunks disagree"));
    }
    let mut previous = None;
    let mut entries = Vec::with_capacity(n);
    let mut df = vec![0usize; kw.terms.len()];
    for _ in 0..n {
        let id = r.u64()?;
        if previous.is_some_and(|p| p >= id) || !chunks.contains_key(&id) {
            return Err(corrupt(format!(
                "keyword entry {id} out of order or without a chunk"
            )));
        }
        previous = Some(id);
        let len = r.u32()?;
        let count = r.u32()? as usize;
        let bytes = count
            .checked_mul(8)
            .ok_or_else(|| corrupt("term count overflow"))?;
        let mut pairs = Reader {
            buf: r.take(bytes)?,
            what: "KWRD terms",
        };
        let mut terms = Vec::with_capacity(count);
        let mut total = 0u64;
        for _ in 0..count {
            let (term, tf) = (pairs.u32()?, pairs.u32()?);
            if term as usize >= kw.terms.len()
                || tf == 0
                || terms.last().is_some_and(|(t, _)| *t >= term)
            {
                return Err(corrupt(format!("chunk {id}: bad term entry")));
            }
            total += u64::from(tf);
            df[term as usize] += 1;
            terms.push((term, tf));
        }
        if total != u64::from(len) {
            return Err(corrupt(format!(
                "chunk {id}: length {len} is not the sum of its term counts"
            )));
        }
        entries.push((id, ChunkTerms { len, terms }));
    }
    r.end()?;
    // Sized posting lists, filled in id order: every insert is a push.
    for (term, df) in kw.terms.iter_mut().zip(df) {
        term.postings.reserve_exact(df);
    }
    kw.chunks.reserve(entries.len());
    for (id, entry) in entries {
        kw.insert_terms(id, entry);
    }
    Ok(kw)
}

fn read_base(body: &[u8], dim: usize) -> Result<HnswSegment> {
    let mut r = Reader {
        buf: body,
        what: "DNSB",
    };
    let generation = r.u64()?;
    let n = r.count(8)?;
    let ids = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
    let len = r.count(1)?;
    let graph_bytes = r.take(len)?;
    r.end()?;
    let (ef_search, points) = graph::validate(graph_bytes, dim).map_err(corrupt)?;
    if points != n {
        return Err(corrupt(format!("graph has {points} points, {n} ids")));
    }
    let hnsw: instant_distance::Hnsw<Embedding> =
        codec::from_bytes(graph_bytes).map_err(|e| corrupt(format!("graph: {e}")))?;
    if hnsw
        .iter()
        .any(|(_, p)| p.0.len() != dim || p.0.iter().any(|x| !x.is_finite()))
    {
        return Err(corrupt(
            "graph vector has the wrong size or a non-finite value",
        ));
    }
    Ok(HnswSegment::from_parts(hnsw, ids, ef_search, generation))
}

fn read_fresh(body: &[u8], dim: usize) -> Result<(Fresh, HashSet<ChunkId>)> {
    let mut r = Reader {
        buf: body,
        what: "DNSF",
    };
    let n = r.count(8 + 4 * dim)?;
    let mut fresh = Fresh::default();
    let mut seen = HashSet::with_capacity(n);
    for seq in 0..n {
        let id = r.u64()?;
        let row = r.f32s(dim)?;
        if !seen.insert(id) || row.iter().any(|x| !x.is_finite()) {
            return Err(corrupt(format!(
                "fresh vector {id} repeats or is not finite"
            )));
        }
        fresh.push(id, seq as u64, &row);
    }
    let tombstones = (0..r.count(8)?)
        .map(|_| r.u64())
        .collect::<Result<HashSet<_>>>()?;
    r.end()?;
    Ok((fresh, tombstones))
}

/// A copy of `segment` whose graph searches with `ef_search` (instant-distance keeps it in a
/// private field, the first of its encoding: see `graph`).
pub(crate) fn with_ef_search(segment: &HnswSegment, ef_search: usize) -> Result<HnswSegment> {
    if ef_search == 0 || ef_search as u64 > graph::MAX_EF_SEARCH {
        return Err(KnowledgeError::InvalidInput(format!(
            "ef_search {ef_search} out of range"
        )));
    }
    let mut bytes = Vec::new();
    codec::to_bytes(&segment.hnsw, &mut bytes)
        .map_err(|e| corrupt(format!("encoding the graph: {e}")))?;
    bytes[..8].copy_from_slice(&(ef_search as u64).to_le_bytes());
    let hnsw = codec::from_bytes(&bytes).map_err(|e| corrupt(format!("graph: {e}")))?;
    Ok(HnswSegment::from_parts(
        hnsw,
        segment.ids.clone(),
        ef_search,
        segment.generation,
    ))
}
