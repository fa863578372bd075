//! Decoding a snapshot's payload (format in [`super`]), section by section from any `Read`,
//! and the checks that make the result a consistent index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use super::bytes::{corrupt, kind_from_code, Input};
use super::{SECTIONS, SECTION_NAMES};
use crate::documents::DocId;
use crate::index::dense::{DenseIndex, DenseParams, Fresh, Graph, HnswSegment, MAX_EF_SEARCH};
use crate::index::hnsw::{UPPER_LINKS, ZERO_LINKS};
use crate::index::keyword::{Bm25Params, ChunkTerms, KeywordIndex, Posting, Term};
use crate::index::{ChunkId, DocumentMeta, IndexParams, IndexedChunk, KnowledgeIndex};
use crate::Result;

/// Reads the five sections (the header is already checked) and assembles the index.
pub(super) fn decode<R: Read>(input: &mut Input<R>) -> Result<KnowledgeIndex> {
    let section = |input: &mut Input<R>, i: usize| input.section(SECTIONS[i], SECTION_NAMES[i]);
    section(input, 0)?;
    let (dim, next_chunk_id, params) = read_meta(input)?;
    section(input, 1)?;
    let (docs, chunks) = read_docs(input)?;
    if chunks.keys().any(|id| *id >= next_chunk_id) {
        return Err(corrupt("chunk id beyond the id counter"));
    }
    section(input, 2)?;
    let keyword = read_keyword(input, params.bm25, &chunks)?;
    section(input, 3)?;
    let base = read_base(input, dim)?;
    section(input, 4)?;
    let (fresh, tombstones) = read_fresh(input, dim)?;
    input.end()?;
    if input.payload_left() != 0 {
        return Err(corrupt(format!(
            "{} bytes after the last section",
            input.payload_left()
        )));
    }

    let fresh_ids = fresh.ids.clone();
    let dense = DenseIndex::from_parts(dim, params.dense, base, fresh, tombstones);
    // The live dense ids must be exactly the stored chunks.
    if dense.base_pos.len() != dense.base.ids.len() || dense.dead_in_base != dense.tombstones.len()
    {
        return Err(corrupt(
            "dense segment ids repeat, or tombstones name unknown points",
        ));
    }
    for id in &fresh_ids {
        if dense.base_pos.contains_key(id) || !chunks.contains_key(id) {
            return Err(corrupt(format!(
                "fresh vector {id} is duplicated or has no chunk"
            )));
        }
    }
    let live = dense.base.ids.len() - dense.tombstones.len() + fresh_ids.len();
    let base_live_ok = dense
        .base
        .ids
        .iter()
        .all(|id| dense.tombstones.contains(id) || chunks.contains_key(id));
    if !base_live_ok || live != chunks.len() {
        return Err(corrupt("dense vectors and chunks disagree"));
    }
    Ok(KnowledgeIndex::from_parts(
        params,
        dense,
        keyword,
        docs,
        chunks,
        next_chunk_id,
    ))
}

fn read_meta<R: Read>(r: &mut Input<R>) -> Result<(usize, ChunkId, IndexParams)> {
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
    Ok((dim, next_chunk_id, params))
}

type Docs = (
    BTreeMap<DocId, DocumentMeta>,
    HashMap<ChunkId, IndexedChunk>,
);

fn read_docs<R: Read>(r: &mut Input<R>) -> Result<Docs> {
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
        chunks.reserve(n);
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let chunk_id = r.u64()?;
            let headings = r.u32()?;
            let mut heading_path = Vec::new();
            for _ in 0..headings {
                heading_path.push(r.str()?);
            }
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

fn read_keyword<R: Read>(
    r: &mut Input<R>,
    params: Bm25Params,
    chunks: &HashMap<ChunkId, IndexedChunk>,
) -> Result<KeywordIndex> {
    let mut kw = KeywordIndex::new(params);
    for t in 0..r.count(4)? {
        let text = r.str()?;
        if kw.vocab.insert(text.clone(), t as u32).is_some() {
            return Err(corrupt(format!("term {text:?} repeats")));
        }
        kw.terms.push(Term {
            text,
            ..Default::default()
        });
    }
    let n = r.count(12)?;
    if n != chunks.len() {
        return Err(corrupt("keyword index and chunks disagree"));
    }
    let ids: Vec<ChunkId> = r.vec(n)?;
    let lens: Vec<u32> = r.vec(n)?;
    let ascending = ids.windows(2).all(|w| w[0] < w[1]);
    if !ascending || !ids.iter().all(|id| chunks.contains_key(id)) {
        return Err(corrupt("keyword chunks out of order or without a chunk"));
    }
    // Each chunk's length must be the sum of its term counts.
    let mut sums = vec![0u64; n];
    let mut pairs: Vec<u32> = Vec::new();
    for term in &mut kw.terms {
        let count = r.count(8)?;
        if count == 0 || count > n {
            return Err(corrupt(format!("term {:?}: {count} postings", term.text)));
        }
        r.refill(&mut pairs, 2 * count)?;
        let mut postings = Vec::with_capacity(count);
        let mut previous = None;
        for pair in pairs.chunks_exact(2) {
            let (at, tf) = (pair[0] as usize, pair[1]);
            if at >= n || tf == 0 || previous.is_some_and(|p| p >= at) {
                return Err(corrupt(format!("term {:?}: bad posting", term.text)));
            }
            previous = Some(at);
            sums[at] += u64::from(tf);
            postings.push(Posting {
                chunk: ids[at],
                tf,
                len: lens[at],
            });
        }
        term.df = count as u32;
        term.postings = postings;
    }
    r.end()?;
    if sums
        .iter()
        .zip(&lens)
        .any(|(sum, len)| *sum != u64::from(*len))
    {
        return Err(corrupt(
            "a chunk's length is not the sum of its term counts",
        ));
    }
    kw.total_len = lens.iter().map(|l| u64::from(*l)).sum();
    kw.chunks = ids
        .into_iter()
        .zip(lens)
        .map(|(id, len)| {
            (
                id,
                ChunkTerms {
                    len,
                    terms: Vec::new(),
                },
            )
        })
        .collect();
    kw.terms_pending = true;
    Ok(kw)
}

fn read_base<R: Read>(r: &mut Input<R>, dim: usize) -> Result<HnswSegment> {
    let generation = r.u64()?;
    let ef_search = r.usize()?;
    if ef_search == 0 || ef_search > MAX_EF_SEARCH {
        return Err(corrupt(format!("ef_search {ef_search} out of range")));
    }
    // Per point: id, vector and layer-0 links.
    let point_bytes = dim
        .checked_mul(4)
        .and_then(|b| b.checked_add(8 + 4 * ZERO_LINKS))
        .ok_or_else(|| corrupt("dimension overflow"))?;
    let n = r.count(point_bytes)?;
    let layer_lens = (0..r.count(8 + 4 * UPPER_LINKS)?)
        .map(|_| r.count(4 * UPPER_LINKS))
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<ChunkId> = r.vec(n)?;
    let vectors: Vec<f32> = r.vec(n * dim)?;
    let zero: Vec<u32> = r.vec(n * ZERO_LINKS)?;
    let mut layers = Vec::with_capacity(layer_lens.len());
    for len in layer_lens {
        layers.push(r.vec::<u32>(len * UPPER_LINKS)?);
    }
    r.end()?;
    let graph = Graph::new(dim, vectors, zero, layers).map_err(corrupt)?;
    Ok(HnswSegment::from_parts(graph, ids, ef_search, generation))
}

fn read_fresh<R: Read>(r: &mut Input<R>, dim: usize) -> Result<(Fresh, HashSet<ChunkId>)> {
    let row_bytes = dim
        .checked_mul(4)
        .and_then(|b| b.checked_add(8))
        .ok_or_else(|| corrupt("dimension overflow"))?;
    let n = r.count(row_bytes)?;
    let mut fresh = Fresh::default();
    let mut seen = HashSet::with_capacity(n);
    let mut row: Vec<f32> = Vec::new();
    for seq in 0..n {
        let id = r.u64()?;
        r.refill(&mut row, dim)?;
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
