//! The HNSW graph as flat arrays, and its search.
//!
//! instant-distance builds the graph (see [`super::segment`]), but keeps it in private fields
//! with one heap allocation per point, reachable only through serde. After a build the graph
//! is copied out once ([`Graph::from_instant`]) into the layout below, which is also the
//! snapshot's: loading is a handful of bulk reads, and the vectors are one contiguous array.
//! The search follows instant-distance 0.6 step for step (same visiting order, same ties), so
//! it returns exactly what the library would; a test checks that against the library itself.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use instant_distance::Hnsw;

use super::codec;
use super::segment::{dot, Embedding};

/// Layer-0 neighbours per point (2·M) and upper-layer neighbours (M) in instant-distance 0.6.
pub(crate) const ZERO_LINKS: usize = 64;
pub(crate) const UPPER_LINKS: usize = 32;
/// An unused neighbour slot; the slots after it are unused too.
pub(crate) const NONE: u32 = u32::MAX;

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Graph {
    pub(crate) dim: usize,
    /// `[n, dim]` unit vectors, row-major: row i is point i.
    pub(crate) vectors: Vec<f32>,
    /// `[n, ZERO_LINKS]` layer-0 neighbours of every point, nearest first.
    pub(crate) zero: Vec<u32>,
    /// Layers 1..=L bottom up, each `[len_l, UPPER_LINKS]`. Layer l holds points `0..len_l` and
    /// links only among them; lengths do not increase, and a search enters at point 0 of the top.
    pub(crate) layers: Vec<Vec<u32>>,
}

impl Graph {
    pub(crate) fn empty(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Checks that the arrays describe a graph that search can walk without going out of
    /// bounds (ids below their layer's length, or `NONE`) and that every vector is finite.
    pub(crate) fn new(
        dim: usize,
        vectors: Vec<f32>,
        zero: Vec<u32>,
        layers: Vec<Vec<u32>>,
    ) -> Result<Self, String> {
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(format!(
                "{} floats is not a whole number of {dim}-dimensional vectors",
                vectors.len()
            ));
        }
        let n = vectors.len() / dim;
        if n >= NONE as usize {
            return Err(format!("{n} points do not fit 32-bit ids"));
        }
        if zero.len() != n * ZERO_LINKS {
            return Err(format!(
                "zero layer has {} links for {n} points",
                zero.len()
            ));
        }
        if n == 0 && !layers.is_empty() {
            return Err("empty graph with upper layers".into());
        }
        check_links(&zero, n, "zero layer")?;
        let mut below = n;
        for (l, layer) in layers.iter().enumerate() {
            let len = layer.len() / UPPER_LINKS;
            if !layer.len().is_multiple_of(UPPER_LINKS) || len == 0 || len > below {
                return Err(format!(
                    "layer {} has {} links, the layer below {below} points",
                    l + 1,
                    layer.len()
                ));
            }
            check_links(layer, len, "upper layer")?;
            below = len;
        }
        if !all_finite(&vectors) {
            return Err("graph vector has a non-finite value".into());
        }
        Ok(Self {
            dim,
            vectors,
            zero,
            layers,
        })
    }

    /// Copies a graph out of instant-distance: the points through its iterator, the links
    /// through serde (the only way to its private fields; see [`codec`] for the layout).
    pub(crate) fn from_instant(hnsw: &Hnsw<Embedding>, dim: usize) -> Result<Self, String> {
        let mut vectors = Vec::new();
        for (_, p) in hnsw.iter() {
            if p.0.len() != dim {
                return Err(format!(
                    "point of {} dimensions in a {dim}-dimensional graph",
                    p.0.len()
                ));
            }
            vectors.extend_from_slice(&p.0);
        }
        let mut bytes = Vec::new();
        codec::to_bytes_skipping(hnsw, &["points"], &mut bytes).map_err(|e| e.to_string())?;
        // `ef_search u64, zero: u64 n + n × 64 u32, layers: u64 L + L × (u64 len + len × 32 u32)`
        let mut c = Cursor { buf: &bytes };
        c.u64()?; // ef_search: the segment keeps its own
        let n = c.u64()? as usize;
        if n != vectors.len() / dim.max(1) {
            return Err(format!(
                "{n} zero-layer nodes for {} points",
                vectors.len() / dim.max(1)
            ));
        }
        let zero = c.u32s(n * ZERO_LINKS)?;
        let mut layers = Vec::new();
        for _ in 0..c.u64()? {
            let len = c.u64()? as usize;
            layers.push(c.u32s(len * UPPER_LINKS)?);
        }
        if !c.buf.is_empty() {
            return Err(format!("{} bytes left after the graph", c.buf.len()));
        }
        Self::new(dim, vectors, zero, layers)
    }

    pub(crate) fn len(&self) -> usize {
        self.vectors.len() / self.dim.max(1)
    }

    pub(crate) fn row(&self, point: usize) -> &[f32] {
        &self.vectors[point * self.dim..(point + 1) * self.dim]
    }

    pub(crate) fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.vectors.chunks_exact(self.dim.max(1))
    }

    fn links(&self, layer: usize, point: u32) -> &[u32] {
        let p = point as usize;
        match layer {
            0 => &self.zero[p * ZERO_LINKS..(p + 1) * ZERO_LINKS],
            l => &self.layers[l - 1][p * UPPER_LINKS..(p + 1) * UPPER_LINKS],
        }
    }

    /// The approximate `ef` nearest points to the unit vector `q`, nearest first, as
    /// `(point, 1 − cosine)`. Greedy descent through the upper layers (ef 1), then a beam
    /// search of width `ef` in layer 0: instant-distance's `Hnsw::search`.
    pub(crate) fn search<'s>(&self, q: &[f32], ef: usize, s: &'s mut Search) -> &'s [Candidate] {
        s.reset();
        if self.len() == 0 {
            return &s.nearest;
        }
        s.visited.reserve_capacity(self.len());
        s.ef = 1;
        s.push(0, q, self);
        for layer in (0..=self.layers.len()).rev() {
            s.ef = if layer == 0 { ef } else { 1 };
            s.expand(q, self, layer);
            if layer != 0 {
                s.cull();
            }
        }
        &s.nearest
    }
}

/// Every id of `links` is below `limit` or `NONE`.
fn check_links(links: &[u32], limit: usize, what: &str) -> Result<(), String> {
    match links.iter().find(|&&id| id != NONE && id as usize >= limit) {
        Some(id) => Err(format!("{what} links to point {id} of {limit}")),
        None => Ok(()),
    }
}

fn all_finite(v: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    v.iter()
        .fold(0u32, |bad, x| bad | u32::from(x.to_bits() & EXP == EXP))
        == 0
}

/// A point met during a search, ordered by distance then id (instant-distance's order).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) distance: f32,
    pub(crate) pid: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.pid.cmp(&other.pid))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// Points seen in this search: a byte per point holding the generation that saw it, so clearing
/// is a counter increment (and a real clear every 249 searches).
struct Visited {
    store: Vec<u8>,
    generation: u8,
}

impl Default for Visited {
    fn default() -> Self {
        Self {
            store: Vec::new(),
            generation: 1,
        }
    }
}

impl Visited {
    fn reserve_capacity(&mut self, n: usize) {
        if self.store.len() != n {
            self.store.resize(n, self.generation - 1);
        }
    }

    /// Marks `pid`; whether it was new.
    fn insert(&mut self, pid: u32) -> bool {
        let slot = &mut self.store[pid as usize];
        let new = *slot != self.generation;
        *slot = self.generation;
        new
    }

    fn clear(&mut self) {
        if self.generation < 249 {
            self.generation += 1;
        } else {
            self.store.fill(0);
            self.generation = 1;
        }
    }
}

/// Reusable search state (`v`, `C` and `W` of the HNSW paper's algorithm 2).
#[derive(Default)]
pub(crate) struct Search {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Candidate>>,
    /// Sorted nearest first, at most `ef` long.
    nearest: Vec<Candidate>,
    ef: usize,
}

impl Search {
    fn reset(&mut self) {
        self.visited.clear();
        self.candidates.clear();
        self.nearest.clear();
    }

    /// Expands candidates nearest first until the nearest unexpanded one is farther than the
    /// farthest kept result.
    fn expand(&mut self, q: &[f32], graph: &Graph, layer: usize) {
        while let Some(Reverse(c)) = self.candidates.pop() {
            if let Some(farthest) = self.nearest.last() {
                if c.distance.total_cmp(&farthest.distance) == Ordering::Greater {
                    break;
                }
            }
            for &pid in graph.links(layer, c.pid) {
                if pid == NONE {
                    break;
                }
                self.push(pid, q, graph);
            }
            self.nearest.truncate(self.ef);
        }
    }

    fn push(&mut self, pid: u32, q: &[f32], graph: &Graph) {
        if !self.visited.insert(pid) {
            return;
        }
        let new = Candidate {
            distance: 1.0 - dot(q, graph.row(pid as usize)),
            pid,
        };
        // `Ok` cannot happen: a point is pushed once per layer.
        if let Err(at) = self.nearest.binary_search(&new) {
            if at < self.ef {
                self.nearest.insert(at, new);
                self.candidates.push(Reverse(new));
            }
        }
    }

    /// Moves down a layer: the results so far become the entry points.
    fn cull(&mut self) {
        self.candidates.clear();
        self.candidates
            .extend(self.nearest.iter().copied().map(Reverse));
        self.visited.clear();
        for c in &self.nearest {
            self.visited.insert(c.pid);
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "graph needs {n} more bytes, {} remain",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let bytes = self.take(n.checked_mul(4).ok_or("graph size overflow")?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_distance::{Builder, Search as InstantSearch};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn unit(rng: &mut ChaCha8Rng, centre: &[f32], noise: f32) -> Vec<f32> {
        let v: Vec<f32> = centre
            .iter()
            .map(|c| c + noise * rng.gen_range(-1.0f32..1.0))
            .collect();
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn search_equals_instant_distance() {
        let (n, dim) = (3000, 24);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let centres: Vec<Vec<f32>> = (0..30).map(|_| unit(&mut rng, &[0.0; 24], 1.0)).collect();
        let points: Vec<Embedding> = (0..n)
            .map(|i| Embedding(unit(&mut rng, &centres[i % 30], 0.4)))
            .collect();
        for ef in [1, 10, 48] {
            let (hnsw, _) = Builder::default()
                .ef_search(ef)
                .seed(9)
                .build_hnsw(points.clone());
            let graph = Graph::from_instant(&hnsw, dim).unwrap();
            assert_eq!(graph.len(), n);
            assert!(!graph.layers.is_empty(), "{n} points give upper layers");
            let (mut theirs, mut ours) = (InstantSearch::default(), Search::default());
            for _ in 0..300 {
                let c = rng.gen_range(0..30);
                let q = Embedding(unit(&mut rng, &centres[c], 0.5));
                let want: Vec<(u32, f32)> = hnsw
                    .search(&q, &mut theirs)
                    .map(|item| (item.pid.into_inner(), item.distance))
                    .collect();
                let got: Vec<(u32, f32)> = graph
                    .search(&q.0, ef, &mut ours)
                    .iter()
                    .map(|c| (c.pid, c.distance))
                    .collect();
                assert_eq!(got, want, "ef {ef}");
                assert_eq!(got.len(), ef.min(n));
            }
        }
    }

    #[test]
    fn damaged_graphs_are_refused() {
        let dim = 4;
        let good = || {
            (
                vec![0.5f32; 3 * dim],
                vec![NONE; 3 * ZERO_LINKS],
                vec![vec![NONE; UPPER_LINKS]],
            )
        };
        let (v, z, l) = good();
        assert!(Graph::new(dim, v, z, l).is_ok());
        let (v, mut z, l) = good();
        z[5] = 3;
        assert!(Graph::new(dim, v, z, l)
            .unwrap_err()
            .contains("point 3 of 3"));
        let (v, z, _) = good();
        assert!(Graph::new(dim, v, z, vec![vec![1; UPPER_LINKS]]).is_err());
        let (v, z, _) = good();
        assert!(Graph::new(dim, v, z, vec![vec![NONE; 4 * UPPER_LINKS]]).is_err());
        let (mut v, z, l) = good();
        v[7] = f32::NAN;
        assert!(Graph::new(dim, v, z, l).is_err());
        let (v, _, l) = good();
        assert!(Graph::new(dim, v, vec![NONE; 2 * ZERO_LINKS], l).is_err());
        assert!(Graph::new(dim, Vec::new(), Vec::new(), vec![vec![NONE; UPPER_LINKS]]).is_err());
    }
}
