//! Retrieval through `hearth-knowledge`, with a relevance floor so that a question the
//! documents say nothing about is answered honestly instead of from unrelated chunks.

use std::collections::HashSet;

use hearth_knowledge::index::tokenize::tokenize;
use hearth_knowledge::{Embedder, Hit, HitView, KnowledgeIndex, Mode};

use crate::cite::Citation;
use crate::Result;

/// When a retrieved chunk counts as relevant to the query. A chunk is relevant when **either**
/// signal vouches for it:
/// - dense: its cosine similarity to the query is at least `min_cosine`;
/// - keyword: it contains at least `min_term_coverage` of the query's content words (query
///   words that are not English function words), and at least one of them.
///
/// Either alone is fallible (an embedding model maps unrelated texts of one genre close
/// together; a content word can occur by chance), so the keyword side asks for most of the
/// content words, not any one: "capital of France" over the Rust Book matches "capital"
/// (letters) but not "France", and is dropped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelevanceFloor {
    /// For all-MiniLM-L6-v2 (the default embedder) 0.3 sits in a wide gap. Measured with the
    /// real model on ten Rust Book chapter pages (`hearth search --mode dense`, 240 chunks):
    /// the 11 questions of `scripts/retrieval_eval` answered by those pages had top cosines
    /// 0.46–0.64 (their answer page's best chunk ≥ 0.43 where it was in the top 10), and 15
    /// off-topic questions (capital of France, sourdough, Jupiter's moons, …) 0.08–0.22.
    /// Retune for another embedder.
    pub min_cosine: f32,
    /// Share of the query's content words a chunk must contain, in (0, 1]. On the same pages
    /// (keyword top 20; this rule re-computed in Python over the hits' texts), 10 of the 11
    /// questions had a chunk reaching 0.6 and none of the 15 off-topic ones (best: 2 of 5).
    pub min_term_coverage: f32,
}

impl Default for RelevanceFloor {
    fn default() -> Self {
        RelevanceFloor {
            min_cosine: 0.3,
            min_term_coverage: 0.6,
        }
    }
}

impl RelevanceFloor {
    /// Keeps everything (for callers that want raw search results).
    pub fn none() -> Self {
        RelevanceFloor {
            min_cosine: f32::NEG_INFINITY,
            min_term_coverage: 0.0,
        }
    }

    /// Whether a hit on a chunk with `text` is relevant to a query with `terms`
    /// ([`content_terms`]).
    pub fn admits(&self, dense_score: Option<f32>, terms: &[String], text: &str) -> bool {
        if self.min_cosine == f32::NEG_INFINITY && self.min_term_coverage <= 0.0 {
            return true;
        }
        if dense_score.is_some_and(|s| s >= self.min_cosine) {
            return true;
        }
        if terms.is_empty() {
            return false;
        }
        let words: HashSet<String> = tokenize(text).into_iter().collect();
        let found = terms.iter().filter(|t| words.contains(*t)).count();
        found > 0 && found as f32 >= self.min_term_coverage * terms.len() as f32
    }
}

/// English function words (as the keyword tokenizer stems them: "does" → "doe"), ignored
/// when measuring keyword coverage (the keyword index keeps them; BM25's IDF discounts them).
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did",
    "do", "doe", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "no", "not", "of", "on", "or", "should", "so", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what",
    "when", "where", "which", "who", "whom", "why", "will", "with", "would", "you", "your", "tell",
    "explain", "describe", "please", // contraction stems ("isn't" → "isn", "t")
    "aren", "couldn", "didn", "doesn", "don", "hasn", "haven", "isn", "ll", "re", "shouldn", "ve",
    "wasn", "weren", "wouldn",
];

/// The query's distinct content words, tokenized (and stemmed) as the keyword index does,
/// without function words and single ASCII characters.
pub fn content_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for t in tokenize(query) {
        // One ASCII character ("t" of "can't", "s", "0") says nothing; one CJK character does.
        let tiny = t.len() == 1;
        if !tiny && !STOP_WORDS.contains(&t.as_str()) && !terms.contains(&t) {
            terms.push(t);
        }
    }
    terms
}

/// One search result with its text and whether it cleared the relevance floor.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieved {
    pub hit: Hit,
    pub view: HitView,
    pub relevant: bool,
}

impl Retrieved {
    /// The citation of this chunk when given to the model as source `n`.
    pub fn citation(&self, n: usize) -> Citation {
        Citation {
            n,
            source: self.view.source.clone(),
            title: self.view.title.clone(),
            heading: self.view.heading.clone(),
            page: self.view.page,
            span: self.view.span,
        }
    }
}

/// Where the assistant's sources come from: best first, marked relevant or not.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Retrieve {
    async fn retrieve(&self, query: &str) -> Result<Vec<Retrieved>>;
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrievalParams {
    /// Chunks retrieved (the best relevant ones are packed into the prompt).
    pub k: usize,
    pub mode: Mode,
    pub floor: RelevanceFloor,
}

impl Default for RetrievalParams {
    fn default() -> Self {
        RetrievalParams {
            k: 8,
            mode: Mode::Hybrid,
            floor: RelevanceFloor::default(),
        }
    }
}

/// Retrieval from a [`KnowledgeIndex`] with an [`Embedder`] for the query. For a single page
/// that is not in the library, ingest it into a fresh in-memory index and retrieve from that.
pub struct Retriever<'a, E: Embedder> {
    pub index: &'a KnowledgeIndex,
    pub embedder: &'a E,
    pub params: RetrievalParams,
}

impl<'a, E: Embedder> Retriever<'a, E> {
    pub fn new(index: &'a KnowledgeIndex, embedder: &'a E) -> Self {
        Retriever {
            index,
            embedder,
            params: RetrievalParams::default(),
        }
    }

    pub fn with_params(mut self, params: RetrievalParams) -> Self {
        self.params = params;
        self
    }
}

impl<E: Embedder> Retriever<'_, E> {
    /// The query's embedding (empty in keyword mode, which needs none).
    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        Ok(match self.params.mode {
            Mode::Keyword => Vec::new(),
            Mode::Dense | Mode::Hybrid => self
                .embedder
                .embed(&[query])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                hearth_knowledge::KnowledgeError::Embed("no embedding for the query".into())
            })?,
        })
    }

    /// Retrieval with the query already embedded by [`Self::embed_query`] (so several indexes
    /// searched with one encoder embed the query once).
    pub fn retrieve_embedded(&self, query: &str, embedding: &[f32]) -> Result<Vec<Retrieved>> {
        let p = &self.params;
        let hits = self.index.search(embedding, query, p.k, p.mode)?;
        let terms = content_terms(query);
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let view = self.index.view(&hit)?;
                let relevant = p.floor.admits(hit.dense_score, &terms, &view.text);
                Some(Retrieved {
                    hit,
                    view,
                    relevant,
                })
            })
            .collect())
    }
}

impl<E: Embedder> Retrieve for Retriever<'_, E> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Retrieved>> {
        let embedding = self.embed_query(query).await?;
        self.retrieve_embedded(query, &embedding)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_terms_drop_function_words_and_stem() {
        assert_eq!(
            content_terms("What does the borrow checker do with references?"),
            vec!["borrow", "checker", "reference"]
        );
        assert!(content_terms("What is this?").is_empty());
        assert_eq!(
            content_terms("Why can't I index s[0]? Why isn't it 水?"),
            vec!["index", "水"]
        );
    }

    #[test]
    fn floor_takes_either_signal() {
        let f = RelevanceFloor::default();
        let terms = content_terms("capital of France");
        let text = "Use a capital letter for type names.";
        assert!(!f.admits(Some(0.1), &terms, text), "one of two words");
        assert!(f.admits(Some(0.31), &terms, text), "dense alone");
        assert!(
            f.admits(None, &terms, "France's capital is Paris."),
            "keywords alone"
        );
        assert!(!f.admits(None, &[], "anything"));
        assert!(RelevanceFloor::none().admits(None, &[], "anything"));
    }
}
