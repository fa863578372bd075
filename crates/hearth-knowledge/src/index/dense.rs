//! Dense vector index: an immutable HNSW segment (instant-distance) for the bulk, an exact
//! "fresh" segment for recent additions (instant-distance cannot insert after build), and
//! tombstones for deletes. A rebuild folds the fresh segment in and drops tombstoned points;
//! it runs off the query path (a thread natively, a caller-scheduled step in wasm) and the
//! result is swapped in, so adding or removing one document never rebuilds anything on the spot.
//!
//! Vectors are L2-normalised on the way in, so the score everywhere is cosine = dot product.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(crate) use super::hnsw::Graph;
#[cfg(not(target_arch = "wasm32"))]
pub use super::segment::RebuildThread;
pub use super::segment::{dot, DenseParams, HnswSegment, RebuildJob, RebuiltSegment};
pub(crate) use super::segment::{normalised, top_k, MAX_EF_SEARCH};
use super::ChunkId;
use crate::{KnowledgeError, Result};

/// Recently added vectors, searched exactly. `seqs` order insertions so a rebuild knows which
/// entries it folded in.
#[derive(Clone, Default)]
pub(crate) struct Fresh {
    pub(crate) ids: Vec<ChunkId>,
    pub(crate) seqs: Vec<u64>,
    /// `ids.len() × dim`, row-major, unit rows.
    pub(crate) vectors: Vec<f32>,
    /// Membership of `ids`, so bulk inserts do not go quadratic.
    set: HashSet<ChunkId>,
}

impl Fresh {
    pub(crate) fn push(&mut self, id: ChunkId, seq: u64, row: &[f32]) {
        self.ids.push(id);
        self.seqs.push(seq);
        self.vectors.extend_from_slice(row);
        self.set.insert(id);
    }

    fn contains(&self, id: ChunkId) -> bool {
        self.set.contains(&id)
    }

    fn position(&self, id: ChunkId) -> Option<usize> {
        if !self.set.contains(&id) {
            return None;
        }
        self.ids.iter().position(|x| *x == id)
    }

    fn remove_at(&mut self, i: usize, dim: usize) {
        self.set.remove(&self.ids[i]);
        self.ids.remove(i);
        self.seqs.remove(i);
        self.vectors.drain(i * dim..(i + 1) * dim);
    }

    /// Keeps only entries with `seq >= watermark`.
    fn retain_from(&mut self, watermark: u64, dim: usize) {
        let old = std::mem::take(self);
        for (i, (id, seq)) in old.ids.iter().zip(&old.seqs).enumerate() {
            if *seq >= watermark {
                self.push(*id, *seq, &old.vectors[i * dim..(i + 1) * dim]);
            }
        }
    }
}

/// The dense index. See the module docs for the segment/tombstone scheme.
pub struct DenseIndex {
    pub(crate) dim: usize,
    pub(crate) params: DenseParams,
    pub(crate) base: Arc<HnswSegment>,
    /// Point index of every chunk in `base` (tombstoned ones included).
    pub(crate) base_pos: HashMap<ChunkId, u32>,
    pub(crate) fresh: Fresh,
    pub(crate) next_seq: u64,
    /// Deleted ids that a segment (or a rebuild in flight) may still hold.
    pub(crate) tombstones: HashSet<ChunkId>,
    /// How many of `tombstones` are in `base`.
    pub(crate) dead_in_base: usize,
}

impl DenseIndex {
    pub fn new(dim: usize, params: DenseParams) -> Result<Self> {
        if dim == 0 {
            return Err(KnowledgeError::InvalidInput(
                "dimension must be positive".into(),
            ));
        }
        let base = HnswSegment::from_parts(Graph::empty(dim), Vec::new(), params.ef_search, 0);
        Ok(Self::from_parts(
            dim,
            params,
            base,
            Fresh::default(),
            HashSet::new(),
        ))
    }

    pub(crate) fn from_parts(
        dim: usize,
        params: DenseParams,
        base: HnswSegment,
        fresh: Fresh,
        tombstones: HashSet<ChunkId>,
    ) -> Self {
        let base_pos = base
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let next_seq = fresh.seqs.iter().max().map_or(0, |s| s + 1);
        let mut index = Self {
            dim,
            params,
            base: Arc::new(base),
            base_pos,
            fresh,
            next_seq,
            tombstones,
            dead_in_base: 0,
        };
        index.dead_in_base = index
            .tombstones
            .iter()
            .filter(|id| index.base_pos.contains_key(id))
            .count();
        index
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn params(&self) -> &DenseParams {
        &self.params
    }

    /// Candidates one HNSW query yields (the current segment's `ef_search`). A search for more
    /// than this many results scans the segment exactly.
    pub fn ef_search(&self) -> usize {
        self.base.ef_search
    }

    /// Live vectors (HNSW minus tombstones, plus fresh).
    pub fn len(&self) -> usize {
        self.base.len() - self.dead_in_base + self.fresh.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes of the HNSW segment, the fresh segment and the tombstone set.
    pub fn segment_sizes(&self) -> (usize, usize, usize) {
        (self.base.len(), self.fresh.ids.len(), self.dead_in_base)
    }

    pub fn contains(&self, id: ChunkId) -> bool {
        (self.base_pos.contains_key(&id) && !self.tombstones.contains(&id))
            || self.fresh.contains(id)
    }

    /// Adds one vector to the fresh segment. Ids must never be reused (the document index
    /// hands out fresh ones), because a tombstone for the old use would hide the new vector.
    pub fn insert(&mut self, id: ChunkId, vector: &[f32]) -> Result<()> {
        let row = normalised(vector, self.dim)?;
        self.check_new_id(id)?;
        self.fresh.push(id, self.next_seq, &row);
        self.next_seq += 1;
        Ok(())
    }

    pub(crate) fn check_new_id(&self, id: ChunkId) -> Result<()> {
        if self.tombstones.contains(&id) || self.contains(id) {
            return Err(KnowledgeError::InvalidInput(format!(
                "chunk id {id} is already used"
            )));
        }
        if self.base.len() + self.fresh.ids.len() >= u32::MAX as usize - 1 {
            return Err(KnowledgeError::InvalidInput(
                "dense index is full (2^32 points)".into(),
            ));
        }
        Ok(())
    }

    /// Deletes a vector; returns whether it was live.
    pub fn remove(&mut self, id: ChunkId) -> bool {
        if let Some(i) = self.fresh.position(id) {
            self.fresh.remove_at(i, self.dim);
            // A rebuild in flight may have copied it: the tombstone keeps it hidden there too.
            self.tombstones.insert(id);
            return true;
        }
        if self.base_pos.contains_key(&id) && self.tombstones.insert(id) {
            self.dead_in_base += 1;
            return true;
        }
        false
    }

    /// The `k` nearest live chunks by cosine, best first. HNSW for the bulk (tombstoned points are
    /// skipped out of its `ef_search` candidates), exact for the fresh segment; if tombstones
    /// leave fewer than `k` live candidates, the HNSW segment is scanned exactly instead.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(ChunkId, f32)>> {
        let q = normalised(query, self.dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut hits = self.search_base(&q, k);
        hits.extend(self.scan_fresh(&q));
        Ok(top_k(hits, k))
    }

    /// Exact top-`k` over every live vector (the reference for recall).
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<(ChunkId, f32)>> {
        let q = normalised(query, self.dim)?;
        let mut hits = self.scan_base(&q);
        hits.extend(self.scan_fresh(&q));
        Ok(top_k(hits, k))
    }

    fn search_base(&self, q: &[f32], k: usize) -> Vec<(ChunkId, f32)> {
        let base = &*self.base;
        let want = k.min(base.len() - self.dead_in_base);
        if want == 0 {
            return Vec::new();
        }
        if want <= base.ef_search {
            let mut out = Vec::with_capacity(want);
            base.search(q, |pid, score| {
                let id = base.ids[pid];
                if self.dead_in_base == 0 || !self.tombstones.contains(&id) {
                    out.push((id, score));
                }
                out.len() < want
            });
            if out.len() == want {
                return out;
            }
        }
        top_k(self.scan_base(q), k)
    }

    fn scan_base(&self, q: &[f32]) -> Vec<(ChunkId, f32)> {
        let base = &*self.base;
        base.ids
            .iter()
            .zip(base.graph.rows())
            .map(|(id, row)| (*id, dot(q, row)))
            .filter(|(id, _)| self.dead_in_base == 0 || !self.tombstones.contains(id))
            .collect()
    }

    fn scan_fresh(&self, q: &[f32]) -> Vec<(ChunkId, f32)> {
        let rows = self.fresh.vectors.chunks_exact(self.dim);
        self.fresh
            .ids
            .iter()
            .zip(rows)
            .map(|(id, row)| (*id, dot(q, row)))
            .collect()
    }

    /// Fresh-segment size at which a rebuild is due.
    pub fn fresh_limit(&self) -> usize {
        (self.base.len() / 16).clamp(
            self.params.fresh_min,
            self.params.fresh_max.max(self.params.fresh_min),
        )
    }

    pub fn needs_rebuild(&self) -> bool {
        self.fresh.ids.len() > self.fresh_limit()
            || (self.dead_in_base > 0
                && self.dead_in_base as f32 > self.params.tombstone_ratio * self.base.len() as f32)
    }

    /// Detaches a rebuild of the current state, or `None` when there is nothing to fold.
    /// The index stays fully usable (and mutable) while the job runs.
    pub fn begin_rebuild(&self) -> Option<RebuildJob> {
        if self.fresh.ids.is_empty() && self.dead_in_base == 0 {
            return None;
        }
        Some(RebuildJob {
            base: Arc::clone(&self.base),
            fresh_ids: self.fresh.ids.clone(),
            fresh_vectors: self.fresh.vectors.clone(),
            watermark: self.next_seq,
            applied: self.tombstones.clone(),
            params: self.params,
            dim: self.dim,
        })
    }

    /// Swaps a rebuilt segment in: fresh entries it folded leave the fresh segment, tombstones
    /// it applied are dropped, and deletes that happened while it ran stay as tombstones.
    pub fn install(&mut self, rebuilt: RebuiltSegment) -> Result<()> {
        if rebuilt.built_from != self.base.generation {
            return Err(KnowledgeError::StaleRebuild {
                built_from: rebuilt.built_from,
                current: self.base.generation,
            });
        }
        let RebuiltSegment {
            segment,
            watermark,
            applied,
            ..
        } = rebuilt;
        let segment = segment?;
        self.base_pos = segment
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        self.base = Arc::new(segment);
        self.fresh.retain_from(watermark, self.dim);
        let base_pos = &self.base_pos;
        self.tombstones
            .retain(|id| !applied.contains(id) && base_pos.contains_key(id));
        self.dead_in_base = self.tombstones.len();
        Ok(())
    }

    /// Changes the HNSW search breadth (`ef_search`, also the most candidates one graph query
    /// yields) for the current segment and future rebuilds. No rebuild; the segment is copied
    /// only if a rebuild in flight shares it.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        if ef_search == 0 || ef_search > MAX_EF_SEARCH {
            return Err(KnowledgeError::InvalidInput(format!(
                "ef_search {ef_search} out of range 1..={MAX_EF_SEARCH}"
            )));
        }
        match Arc::get_mut(&mut self.base) {
            Some(segment) => segment.ef_search = ef_search,
            None => self.base = Arc::new(self.base.with_ef_search(ef_search)),
        }
        self.params.ef_search = ef_search;
        Ok(())
    }

    /// Rebuilds synchronously (begin, run, install).
    pub fn rebuild(&mut self) -> Result<()> {
        match self.begin_rebuild() {
            Some(job) => self.install(job.run()),
            None => Ok(()),
        }
    }

    /// The stored (unit) vector of a live chunk.
    pub fn vector(&self, id: ChunkId) -> Option<&[f32]> {
        if let Some(i) = self.fresh.position(id) {
            return Some(&self.fresh.vectors[i * self.dim..(i + 1) * self.dim]);
        }
        if self.tombstones.contains(&id) {
            return None;
        }
        let pid = *self.base_pos.get(&id)?;
        Some(self.base.graph.row(pid as usize))
    }
}
