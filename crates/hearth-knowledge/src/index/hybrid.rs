//! Fusion of the dense and keyword rankings, and the optional rerank stage.

use std::collections::HashMap;

use super::ChunkId;
use crate::Result;

/// The RRF constant from Cormack, Clarke & Büttcher (2009).
pub const RRF_K: f32 = 60.0;

/// Which rankings a search uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    Dense,
    Keyword,
    #[default]
    Hybrid,
}

/// Reciprocal-rank fusion: `score(c) = Σ_lists 1 / (k + rank_list(c))` with 1-based ranks;
/// a list that does not contain `c` contributes nothing. Best first; ties go to the smaller id.
pub fn reciprocal_rank_fusion(rankings: &[&[ChunkId]], k: f32) -> Vec<(ChunkId, f32)> {
    let mut fused: HashMap<ChunkId, f32> = HashMap::new();
    for ranking in rankings {
        for (rank0, id) in ranking.iter().enumerate() {
            *fused.entry(*id).or_default() += 1.0 / (k + rank0 as f32 + 1.0);
        }
    }
    let mut out: Vec<(ChunkId, f32)> = fused.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A second-stage scorer (e.g. a cross-encoder) applied to the fused candidates.
///
/// It is synchronous; an async model (GPU in the browser) can instead take the candidates of
/// [`KnowledgeIndex::search`](super::KnowledgeIndex::search) and call
/// [`KnowledgeIndex::apply_rerank`](super::KnowledgeIndex::apply_rerank) with its scores.
pub trait Reranker {
    /// One relevance score per passage, higher is better, in the order given.
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rrf_matches_the_formula() {
        let dense: &[ChunkId] = &[10, 20, 30];
        let keyword: &[ChunkId] = &[30, 40, 10];
        let fused = reciprocal_rank_fusion(&[dense, keyword], RRF_K);
        let s = |ranks: &[usize]| ranks.iter().map(|r| 1.0 / (RRF_K + *r as f32)).sum::<f32>();
        let want = [
            (10, s(&[1, 3])),
            (30, s(&[3, 1])),
            (20, s(&[2])),
            (40, s(&[2])),
        ];
        // 10 and 30 tie exactly (1/61 + 1/63 either way) and so do 20 and 40: smaller id first.
        assert_eq!(fused.len(), want.len());
        for ((id, score), (want_id, want_score)) in fused.iter().zip(want) {
            assert_eq!(*id, want_id);
            assert!(
                (score - want_score).abs() < 1e-7,
                "{id}: {score} vs {want_score}"
            );
        }
    }

    #[test]
    fn agreement_beats_a_single_first_place() {
        // Second in both lists outranks first in only one (1/62 + 1/62 > 1/61).
        let a: &[ChunkId] = &[1, 2];
        let b: &[ChunkId] = &[3, 2];
        let fused = reciprocal_rank_fusion(&[a, b], RRF_K);
        assert_eq!(fused[0].0, 2);
    }
}
