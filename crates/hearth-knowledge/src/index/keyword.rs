//! BM25 keyword index over chunk texts.
//!
//! score(q, d) = Σ_{t ∈ q, distinct} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
//! idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))   (the non-negative Lucene form)
//!
//! Posting lists are sorted by chunk id. A delete updates N, df and the total length at once (so
//! scores stay exact) and marks its postings dead (tf = 0); a list is compacted once half of it
//! is dead, so deletes cost O(terms · log postings) amortised.
//!
//! A delete needs the chunk's terms, kept per chunk. A loaded snapshot holds only the posting
//! lists (searching needs nothing else); the per-chunk lists are rebuilt from them on the first
//! delete, so that loading never pays for that transposition.

use std::collections::HashMap;

use super::tokenize::tokenize;
use super::ChunkId;
use crate::index::dense::top_k;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Posting {
    pub(crate) chunk: ChunkId,
    /// 0 marks a deleted chunk's posting awaiting compaction.
    pub(crate) tf: u32,
    /// The chunk's length in tokens (free: the struct pads to 16 bytes anyway), so scoring
    /// needs no per-posting lookup.
    pub(crate) len: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Term {
    pub(crate) text: String,
    pub(crate) df: u32,
    pub(crate) dead: u32,
    pub(crate) postings: Vec<Posting>,
}

/// What the index keeps per chunk: its length in tokens and its distinct terms with counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ChunkTerms {
    pub(crate) len: u32,
    pub(crate) terms: Vec<(u32, u32)>,
}

#[derive(Clone, Debug, Default)]
pub struct KeywordIndex {
    pub(crate) params: Bm25Params,
    pub(crate) vocab: HashMap<String, u32>,
    pub(crate) terms: Vec<Term>,
    /// Every chunk with its length; its terms are empty while `terms_pending`.
    pub(crate) chunks: HashMap<ChunkId, ChunkTerms>,
    pub(crate) total_len: u64,
    /// Set by the snapshot loader: per-chunk term lists are still to be rebuilt from postings.
    pub(crate) terms_pending: bool,
}

impl KeywordIndex {
    pub fn new(params: Bm25Params) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// Indexed chunks.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn contains(&self, id: ChunkId) -> bool {
        self.chunks.contains_key(&id)
    }

    /// Indexes a chunk's text; re-inserting an id replaces the old text.
    pub fn insert(&mut self, id: ChunkId, text: &str) {
        self.remove(id);
        // New terms get ids in order of first occurrence, so equal histories give equal indexes
        // (and byte-equal snapshots).
        let mut ids: Vec<u32> = tokenize(text)
            .into_iter()
            .map(|token| self.term_id(token))
            .collect();
        let len = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        ids.sort_unstable();
        let mut terms: Vec<(u32, u32)> = Vec::new();
        for t in ids {
            match terms.last_mut() {
                Some((last, tf)) if *last == t => *tf = tf.saturating_add(1),
                _ => terms.push((t, 1)),
            }
        }
        self.insert_terms(id, ChunkTerms { len, terms });
    }

    fn term_id(&mut self, text: String) -> u32 {
        if let Some(id) = self.vocab.get(&text) {
            return *id;
        }
        let id = self.terms.len() as u32;
        self.terms.push(Term {
            text: text.clone(),
            ..Term::default()
        });
        self.vocab.insert(text, id);
        id
    }

    /// Adds an already-counted chunk.
    fn insert_terms(&mut self, id: ChunkId, entry: ChunkTerms) {
        for &(term, tf) in &entry.terms {
            let t = &mut self.terms[term as usize];
            t.df += 1;
            let posting = Posting {
                chunk: id,
                tf,
                len: entry.len,
            };
            // Ids are handed out in increasing order, so this is almost always a push.
            if t.postings.last().is_none_or(|p| p.chunk < id) {
                t.postings.push(posting);
            } else {
                let at = t.postings.partition_point(|p| p.chunk < id);
                t.postings.insert(at, posting);
            }
        }
        self.total_len += u64::from(entry.len);
        self.chunks.insert(id, entry);
    }

    /// Rebuilds the per-chunk term lists of a loaded index from its posting lists.
    fn materialise_chunk_terms(&mut self) {
        if !std::mem::take(&mut self.terms_pending) {
            return;
        }
        for (t, term) in self.terms.iter().enumerate() {
            for p in term.postings.iter().filter(|p| p.tf > 0) {
                if let Some(entry) = self.chunks.get_mut(&p.chunk) {
                    entry.terms.push((t as u32, p.tf));
                }
            }
        }
    }

    /// Removes a chunk; returns whether it was indexed.
    pub fn remove(&mut self, id: ChunkId) -> bool {
        if !self.chunks.contains_key(&id) {
            return false;
        }
        self.materialise_chunk_terms();
        let Some(entry) = self.chunks.remove(&id) else {
            return false;
        };
        self.total_len -= u64::from(entry.len);
        for (term, _) in entry.terms {
            let t = &mut self.terms[term as usize];
            let start = t.postings.partition_point(|p| p.chunk < id);
            let live = t.postings[start..]
                .iter()
                .take_while(|p| p.chunk == id)
                .position(|p| p.tf > 0);
            if let Some(offset) = live {
                t.postings[start + offset].tf = 0;
                t.df -= 1;
                t.dead += 1;
                if t.dead as usize * 2 > t.postings.len() {
                    t.postings.retain(|p| p.tf > 0);
                    t.dead = 0;
                }
            }
        }
        true
    }

    /// BM25 inverse document frequency of a term that occurs in `df` of `n` chunks.
    pub fn idf(n: usize, df: usize) -> f32 {
        (1.0 + (n as f32 - df as f32 + 0.5) / (df as f32 + 0.5)).ln()
    }

    /// The `k` best chunks for `query`, best first (only chunks sharing a term with it).
    pub fn search(&self, query: &str, k: usize) -> Vec<(ChunkId, f32)> {
        let n = self.chunks.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let avgdl = (self.total_len as f32 / n as f32).max(f32::MIN_POSITIVE);
        let Bm25Params { k1, b } = self.params;
        let mut query_terms: Vec<u32> = tokenize(query)
            .iter()
            .filter_map(|t| self.vocab.get(t).copied())
            .collect();
        query_terms.sort_unstable();
        query_terms.dedup();
        let lists: Vec<(f32, &[Posting])> = query_terms
            .iter()
            .map(|t| &self.terms[*t as usize])
            .filter(|t| t.df > 0)
            .map(|t| (Self::idf(n, t.df as usize), t.postings.as_slice()))
            .collect();
        let score = |p: &Posting| {
            let tf = p.tf as f32;
            tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * p.len as f32 / avgdl))
        };
        // Posting lists are sorted by id: when the ids they span are dense enough, accumulate
        // into an array (a hash map per posting costs ~10× more on common terms).
        let postings: usize = lists.iter().map(|(_, l)| l.len()).sum();
        let lo = lists
            .iter()
            .filter_map(|(_, l)| l.first())
            .map(|p| p.chunk)
            .min();
        let hi = lists
            .iter()
            .filter_map(|(_, l)| l.last())
            .map(|p| p.chunk)
            .max();
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Vec::new();
        };
        let span = (hi - lo) as usize + 1;
        let hits: Vec<(ChunkId, f32)> = if span <= 4 * postings + 65_536 {
            let mut acc = vec![0f32; span];
            for (idf, list) in &lists {
                for p in list.iter().filter(|p| p.tf > 0) {
                    acc[(p.chunk - lo) as usize] += idf * score(p);
                }
            }
            let matched = acc.iter().enumerate().filter(|(_, s)| **s > 0.0);
            matched.map(|(i, s)| (lo + i as u64, *s)).collect()
        } else {
            let mut acc: HashMap<ChunkId, f32> = HashMap::new();
            for (idf, list) in &lists {
                for p in list.iter().filter(|p| p.tf > 0) {
                    *acc.entry(p.chunk).or_default() += idf * score(p);
                }
            }
            acc.into_iter().collect()
        };
        top_k(hits, k)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sparse_ids_score_like_dense_ids() {
        // Far-apart ids take the hash-map accumulator; the scores must not depend on it.
        let texts = ["apple pie", "apple apple tart", "pear tart"];
        let (mut dense, mut sparse) = (KeywordIndex::default(), KeywordIndex::default());
        let far = [0, 7, 1 << 40];
        for (i, t) in texts.iter().enumerate() {
            dense.insert(i as u64, t);
            sparse.insert(far[i], t);
        }
        for q in ["apple", "tart apple", "pear"] {
            let a = dense.search(q, 10);
            let b = sparse.search(q, 10);
            assert_eq!(a.len(), b.len());
            for ((ia, sa), (ib, sb)) in a.iter().zip(&b) {
                assert_eq!(far[*ia as usize], *ib);
                assert_eq!(sa, sb);
            }
        }
    }

    #[test]
    fn deletes_keep_statistics_exact_and_compact_postings() {
        let mut index = KeywordIndex::new(Bm25Params::default());
        for id in 0..10 {
            index.insert(
                id,
                if id % 2 == 0 {
                    "apple banana"
                } else {
                    "apple cherry cherry"
                },
            );
        }
        let apple = index.vocab["apple"] as usize;
        assert_eq!(index.terms[apple].df, 10);
        for id in 0..6 {
            assert!(index.remove(id));
        }
        assert!(!index.remove(3));
        assert_eq!(index.terms[apple].df, 4);
        // Compaction ran once more than half of the list was dead.
        assert!(index.terms[apple].postings.len() < 10);
        assert_eq!(
            index.terms[apple]
                .postings
                .iter()
                .filter(|p| p.tf > 0)
                .count(),
            4
        );
        assert_eq!(index.total_len, 2 * 2 + 2 * 3);
        let hits = index.search("banana", 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [6, 8]);
    }
}
