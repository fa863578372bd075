//! The immutable half of the dense index: HNSW segments (instant-distance) over unit vectors,
//! and the rebuild job that produces a new one off the query path.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use instant_distance::{Builder, Heuristic, Point};
use serde::{Serialize, Serializer};

use super::hnsw::{Graph, Search};
use super::ChunkId;
use crate::{KnowledgeError, Result};

/// Larger values can only come from a damaged file and would make every query crawl.
pub const MAX_EF_SEARCH: usize = 1 << 16;

/// HNSW and rebuild tuning. The defaults come from `examples/index_bench.rs` (100k × 384
/// clustered vectors): ef_search 32 gave recall@10 ≈ 0.99 at ~0.6 ms/query, and the plain
/// neighbour selection builds ~3× faster than the heuristic at equal recall on that data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseParams {
    /// Candidate list size while building the graph.
    pub ef_construction: usize,
    /// Candidate list size while searching; also the most results one HNSW query yields.
    pub ef_search: usize,
    /// The fresh segment is folded in once it holds more than
    /// `clamp(base_len / 16, fresh_min, fresh_max)` vectors.
    pub fresh_min: usize,
    pub fresh_max: usize,
    /// Rebuild once tombstones exceed this fraction of the HNSW segment.
    pub tombstone_ratio: f32,
    /// Seed for the level assignment of the HNSW build (mixed with the segment generation).
    pub seed: u64,
    /// Neighbour selection: the HNSW paper's diversity heuristic (better graphs on clustered
    /// data, but instant-distance re-runs it for every back-link: build cost grows ~M³) or
    /// plain nearest-first.
    pub heuristic: bool,
}

impl Default for DenseParams {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 32,
            fresh_min: 1024,
            fresh_max: 4096,
            tombstone_ratio: 0.1,
            seed: 0x4845_4152_5448,
            heuristic: false,
        }
    }
}

/// One stored vector; the HNSW distance is `1 - cosine`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Embedding(pub(crate) Vec<f32>);

impl Point for Embedding {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

// Needed by instant-distance's `Serialize` bound; the points themselves are never encoded (the
// graph is copied out without them, see `hnsw::Graph::from_instant`).
impl Serialize for Embedding {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }
}

/// Dot product with eight independent accumulators so the loop vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Checks length and finiteness, and returns the unit vector.
pub(crate) fn normalised(v: &[f32], dim: usize) -> Result<Vec<f32>> {
    if v.len() != dim {
        return Err(KnowledgeError::DimensionMismatch {
            expected: dim,
            found: v.len(),
        });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(KnowledgeError::InvalidInput(
            "embedding has a non-finite component".into(),
        ));
    }
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(KnowledgeError::InvalidInput(
            "embedding has zero (or overflowing) norm".into(),
        ));
    }
    Ok(v.iter().map(|x| x / norm).collect())
}

/// Keeps the best `k` of `(id, score)` pairs, best first; ties go to the smaller id.
pub(crate) fn top_k(mut hits: Vec<(ChunkId, f32)>, k: usize) -> Vec<(ChunkId, f32)> {
    let order = |a: &(ChunkId, f32), b: &(ChunkId, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, order);
    }
    hits.truncate(k);
    hits.sort_unstable_by(order);
    hits
}

/// An immutable HNSW graph over some chunks' vectors. Swapped in whole, shared with rebuilds.
pub struct HnswSegment {
    pub(crate) graph: Graph,
    /// Chunk id of each graph point.
    pub(crate) ids: Vec<ChunkId>,
    /// Candidate list size of a search, also the most results one search yields.
    pub(crate) ef_search: usize,
    /// Bumped by every rebuild; a rebuilt segment only installs over the generation it read.
    pub(crate) generation: u64,
    /// Reused search scratch (its visited set is as long as the segment).
    scratch: Mutex<Vec<Search>>,
}

impl HnswSegment {
    /// Builds the graph with instant-distance and copies it into the flat layout.
    pub(crate) fn build(
        dim: usize,
        points: Vec<Embedding>,
        ids: Vec<ChunkId>,
        params: &DenseParams,
        generation: u64,
    ) -> Result<Self> {
        let (hnsw, pids) = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed ^ generation)
            .select_heuristic(params.heuristic.then(Heuristic::default))
            .build_hnsw(points);
        let graph = Graph::from_instant(&hnsw, dim)
            .map_err(|e| KnowledgeError::Rebuild(format!("copying the built graph: {e}")))?;
        drop(hnsw);
        // `pids[i]` is where input i landed; re-key the chunk ids by point id.
        let mut by_point = vec![0; ids.len()];
        for (id, pid) in ids.into_iter().zip(pids) {
            by_point[pid.into_inner() as usize] = id;
        }
        Ok(Self::from_parts(
            graph,
            by_point,
            params.ef_search,
            generation,
        ))
    }

    /// Assembles a segment; the caller guarantees `ids.len()` equals the number of points.
    pub(crate) fn from_parts(
        graph: Graph,
        ids: Vec<ChunkId>,
        ef_search: usize,
        generation: u64,
    ) -> Self {
        Self {
            graph,
            ids,
            ef_search,
            generation,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// A copy that searches with another `ef_search`.
    pub(crate) fn with_ef_search(&self, ef_search: usize) -> Self {
        Self::from_parts(
            self.graph.clone(),
            self.ids.clone(),
            ef_search,
            self.generation,
        )
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Approximate neighbours of a unit query, nearest first, as `(point index, cosine)`.
    pub(crate) fn search(&self, query: &[f32], mut visit: impl FnMut(usize, f32) -> bool) {
        let mut search = self
            .scratch
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        for c in self.graph.search(query, self.ef_search, &mut search) {
            if !visit(c.pid as usize, 1.0 - c.distance) {
                break;
            }
        }
        if let Ok(mut pool) = self.scratch.lock() {
            pool.push(search);
        }
    }
}

/// Everything a rebuild needs, detached from the index so it can run elsewhere.
pub struct RebuildJob {
    pub(crate) base: Arc<HnswSegment>,
    /// Copies of the fresh segment's ids and rows at the time the job was taken.
    pub(crate) fresh_ids: Vec<ChunkId>,
    pub(crate) fresh_vectors: Vec<f32>,
    /// Fresh entries with a sequence number below this are folded in.
    pub(crate) watermark: u64,
    /// Tombstones applied (their points are left out).
    pub(crate) applied: HashSet<ChunkId>,
    pub(crate) params: DenseParams,
    pub(crate) dim: usize,
}

/// The output of [`RebuildJob::run`], to be handed to [`DenseIndex::install`] (which reports a
/// failed build).
pub struct RebuiltSegment {
    pub(crate) segment: Result<HnswSegment>,
    pub(crate) built_from: u64,
    pub(crate) watermark: u64,
    pub(crate) applied: HashSet<ChunkId>,
}

impl RebuildJob {
    /// Builds the new HNSW segment: live base points plus the fresh vectors. Pure CPU work;
    /// in wasm the caller schedules it (e.g. in an idle callback), natively see [`RebuildThread`].
    pub fn run(self) -> RebuiltSegment {
        let Self {
            base,
            fresh_ids,
            fresh_vectors,
            watermark,
            applied,
            params,
            dim,
        } = self;
        let mut points = Vec::with_capacity(base.len() + fresh_ids.len());
        let mut ids = Vec::with_capacity(points.capacity());
        for (id, row) in base.ids.iter().zip(base.graph.rows()) {
            if !applied.contains(id) {
                points.push(Embedding(row.to_vec()));
                ids.push(*id);
            }
        }
        for (id, row) in fresh_ids.iter().zip(fresh_vectors.chunks_exact(dim.max(1))) {
            points.push(Embedding(row.to_vec()));
            ids.push(*id);
        }
        let segment = HnswSegment::build(dim, points, ids, &params, base.generation + 1);
        RebuiltSegment {
            segment,
            built_from: base.generation,
            watermark,
            applied,
        }
    }

    /// Points the new segment will hold.
    pub fn len(&self) -> usize {
        let live_base = self
            .base
            .ids
            .iter()
            .filter(|id| !self.applied.contains(id))
            .count();
        live_base + self.fresh_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RebuiltSegment {
    /// The new segment, or `None` if the build failed.
    pub fn segment(&self) -> Option<&HnswSegment> {
        self.segment.as_ref().ok()
    }
}

/// A rebuild running on its own OS thread (native only; wasm has no threads here).
#[cfg(not(target_arch = "wasm32"))]
pub struct RebuildThread(std::thread::JoinHandle<RebuiltSegment>);

#[cfg(not(target_arch = "wasm32"))]
impl RebuildThread {
    pub fn spawn(job: RebuildJob) -> Result<Self> {
        std::thread::Builder::new()
            .name("hearth-index-rebuild".into())
            .spawn(move || job.run())
            .map(Self)
            .map_err(|e| KnowledgeError::Rebuild(format!("cannot start thread: {e}")))
    }

    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for the segment.
    pub fn join(self) -> Result<RebuiltSegment> {
        self.0
            .join()
            .map_err(|_| KnowledgeError::Rebuild("rebuild thread panicked".into()))
    }
}
