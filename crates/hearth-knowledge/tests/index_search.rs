//! BM25 against the formula, hybrid fusion through the whole index, reranking, and the
//! document bookkeeping (upsert / unchanged / replace / remove / lookups).
#![allow(clippy::unwrap_used)]

mod index_support;

use std::collections::HashMap;

use hearth_knowledge::index::{Bm25Params, KeywordIndex, RRF_K};
use hearth_knowledge::{
    DocId, IndexParams, IngestPlan, KnowledgeError, KnowledgeIndex, Mode, Reranker, Result, Upsert,
};
use index_support::{chunk, clustered, new_doc};

/// Hand-made documents whose tokens are plain lowercase words the tokenizer leaves alone.
const DOCS: [&str; 6] = [
    "the cat sat on the mat",
    "the dog chased the cat around the garden and the cat ran",
    "dog food for a hungry dog dog dog",
    "an essay about garden design with no animal at all in it",
    "cat",
    "a very long text about many things cat appears once among filler words filler words filler words",
];

/// BM25 straight from its definition, counting by whitespace.
fn reference_bm25(docs: &[&str], query: &str, k1: f32, b: f32) -> Vec<(usize, f32)> {
    let tokenized: Vec<Vec<&str>> = docs
        .iter()
        .map(|d| d.split_whitespace().collect())
        .collect();
    let n = docs.len() as f32;
    let avgdl = tokenized.iter().map(|t| t.len()).sum::<usize>() as f32 / n;
    let mut terms: Vec<&str> = query.split_whitespace().collect();
    terms.sort_unstable();
    terms.dedup();
    let mut out = Vec::new();
    for (i, doc) in tokenized.iter().enumerate() {
        let mut score = 0.0;
        let mut matched = false;
        for t in &terms {
            let df = tokenized.iter().filter(|d| d.contains(t)).count() as f32;
            let tf = doc.iter().filter(|w| *w == t).count() as f32;
            if tf == 0.0 {
                continue;
            }
            matched = true;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            score += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * doc.len() as f32 / avgdl));
        }
        if matched {
            out.push((i, score));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn assert_bm25(index: &KeywordIndex, docs: &[&str], ids: &[u64], query: &str) {
    let Bm25Params { k1, b } = index.params();
    let want = reference_bm25(docs, query, k1, b);
    let got = index.search(query, 100);
    assert_eq!(got.len(), want.len(), "{query}: {got:?} vs {want:?}");
    for ((id, score), (doc, want_score)) in got.iter().zip(&want) {
        assert_eq!(
            *id, ids[*doc],
            "{query}: ranking differs: {got:?} vs {want:?}"
        );
        assert!(
            (score - want_score).abs() <= 1e-5 * want_score.abs().max(1.0),
            "{query}: {score} vs {want_score}"
        );
    }
}

#[test]
fn bm25_matches_the_formula() {
    let mut index = KeywordIndex::new(Bm25Params::default());
    for (i, d) in DOCS.iter().enumerate() {
        index.insert(i as u64, d);
    }
    let ids: Vec<u64> = (0..DOCS.len() as u64).collect();
    for query in [
        "cat",
        "dog",
        "garden cat",
        "cat cat dog",
        "filler",
        "absent",
        "the",
    ] {
        assert_bm25(&index, &DOCS, &ids, query);
    }
    // Sanity the formula implies: the short doc made only of "cat" outranks the long one with one.
    let cat = index.search("cat", 10);
    let rank = |id: u64| cat.iter().position(|h| h.0 == id).unwrap();
    assert!(rank(4) < rank(5));

    // After deletes, N, df and avgdl are those of the remaining documents.
    index.remove(1);
    index.remove(4);
    let rest = [DOCS[0], DOCS[2], DOCS[3], DOCS[5]];
    for query in ["cat", "dog", "garden cat", "the"] {
        assert_bm25(&index, &rest, &[0, 2, 3, 5], query);
    }
}

fn small_index() -> (KnowledgeIndex, Vec<Vec<f32>>) {
    let dim = 12;
    let vectors = clustered(11, DOCS.len(), dim, 3, 0.4);
    let mut index = KnowledgeIndex::new(dim, IndexParams::default()).unwrap();
    for (i, text) in DOCS.iter().enumerate() {
        let path = format!("/notes/{i}.md");
        index
            .upsert(
                new_doc(&path, &format!("hash{i}")),
                vec![chunk(text, i)],
                &vectors[i],
            )
            .unwrap();
    }
    (index, vectors)
}

#[test]
fn hybrid_is_rrf_of_the_two_rankings() {
    let (index, vectors) = small_index();
    let q = &vectors[2];
    let text = "garden cat";
    let dense = index.search(q, text, 40, Mode::Dense).unwrap();
    let keyword = index.search(q, text, 40, Mode::Keyword).unwrap();
    let hybrid = index.search(q, text, 3, Mode::Hybrid).unwrap();
    assert_eq!(hybrid.len(), 3);
    let mut want: HashMap<u64, f32> = HashMap::new();
    for list in [&dense, &keyword] {
        for (rank, hit) in list.iter().enumerate() {
            *want.entry(hit.chunk_id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut want: Vec<(u64, f32)> = want.into_iter().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for (hit, (id, score)) in hybrid.iter().zip(&want) {
        assert_eq!(hit.chunk_id, *id);
        assert!((hit.score - score).abs() < 1e-6);
        let d = dense.iter().find(|h| h.chunk_id == *id).map(|h| h.score);
        let k = keyword.iter().find(|h| h.chunk_id == *id).map(|h| h.score);
        assert_eq!((hit.dense_score, hit.keyword_score), (d, k));
    }
    // Keyword mode needs no embedding; dense mode needs a right-sized one.
    assert!(index.search(&[], "cat", 3, Mode::Keyword).is_ok());
    assert!(matches!(
        index.search(&[], "cat", 3, Mode::Dense),
        Err(KnowledgeError::DimensionMismatch { .. })
    ));
}

/// Scores a passage by how many times it contains "garden".
struct CountGarden;

impl Reranker for CountGarden {
    fn score(&self, _query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        Ok(passages
            .iter()
            .map(|p| p.matches("garden").count() as f32)
            .collect())
    }
}

#[test]
fn rerank_reorders_candidates() {
    let (index, vectors) = small_index();
    let hits = index
        .search_reranked(
            &vectors[0],
            "cat dog garden",
            2,
            Mode::Hybrid,
            6,
            &CountGarden,
        )
        .unwrap();
    let texts: Vec<&str> = hits
        .iter()
        .map(|h| index.chunk(h.chunk_id).unwrap().text.as_str())
        .collect();
    assert!(texts.iter().all(|t| t.contains("garden")), "{texts:?}");
    assert_eq!(hits[0].rerank_score, Some(1.0));
    let err = KnowledgeIndex::apply_rerank(hits, &[1.0], 2).unwrap_err();
    assert!(matches!(err, KnowledgeError::Rerank(_)));
}

#[test]
fn upsert_unchanged_replace_remove_and_lookups() {
    let (mut index, vectors) = small_index();
    assert_eq!(index.documents().count(), DOCS.len());
    let before = index.chunk_count();
    let (base, fresh, _) = index.dense().segment_sizes();

    // Same path, same hash: nothing happens (the caller can skip extraction and embedding).
    assert_eq!(
        index.plan("/notes/1.md", "hash1"),
        IngestPlan::Unchanged(DocId("id:/notes/1.md".into()))
    );
    let r = index
        .upsert(
            new_doc("/notes/1.md", "hash1"),
            vec![chunk("whatever", 0)],
            &vectors[0],
        )
        .unwrap();
    assert_eq!(r, Upsert::Unchanged(DocId("id:/notes/1.md".into())));
    assert_eq!(
        (index.chunk_count(), index.dense().segment_sizes()),
        (before, (base, fresh, 0))
    );

    // Changed content: the old chunks go, the new ones come.
    assert_eq!(
        index.plan("/notes/1.md", "hash1b"),
        IngestPlan::Replace(DocId("id:/notes/1.md".into()))
    );
    let old_chunks = index
        .document_by_path("/notes/1.md")
        .unwrap()
        .chunks
        .clone();
    let two = [vectors[3].clone(), vectors[4].clone()].concat();
    let r = index
        .upsert(
            new_doc("/notes/1.md", "hash1b"),
            vec![chunk("zebra stripes", 0), chunk("zebra herd", 1)],
            &two,
        )
        .unwrap();
    let id = DocId("id:/notes/1.md".into());
    assert_eq!(
        r,
        Upsert::Replaced {
            old: id.clone(),
            new: id.clone()
        }
    );
    assert_eq!(index.chunk_count(), before + 1);
    assert!(old_chunks.iter().all(|c| index.chunk(*c).is_none()));
    let meta = index.document(&id).unwrap();
    assert_eq!(
        (meta.content_hash.as_str(), meta.chunks.len()),
        ("hash1b", 2)
    );
    let hits = index.search(&[], "zebra", 5, Mode::Keyword).unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.doc_id == id));
    assert!(index
        .search(&[], "chased", 5, Mode::Keyword)
        .unwrap()
        .is_empty());

    // Same content under a second path is a separate document; lookup by hash finds both.
    index
        .upsert(
            new_doc("/copy/1.md", "hash1b"),
            vec![chunk("zebra copy", 0)],
            &vectors[5],
        )
        .unwrap();
    let by_hash: Vec<&str> = index
        .documents_by_hash("hash1b")
        .map(|d| d.source_path.as_str())
        .collect();
    assert_eq!(by_hash.len(), 2);

    // Remove: gone from listings, lookups and both rankings.
    let removed = index.remove_document(&id).unwrap();
    assert_eq!(removed.source_path, "/notes/1.md");
    assert!(index.document_by_path("/notes/1.md").is_none());
    assert_eq!(index.plan("/notes/1.md", "hash1b"), IngestPlan::New);
    let hits = index
        .search(&vectors[3], "zebra stripes", 10, Mode::Hybrid)
        .unwrap();
    assert!(hits.iter().all(|h| h.doc_id != id));
    assert!(matches!(
        index.remove_document(&id),
        Err(KnowledgeError::UnknownDocument(_))
    ));

    // Bad input changes nothing.
    let n = index.chunk_count();
    assert!(index
        .upsert(new_doc("/x.md", "h"), vec![chunk("a", 0)], &[1.0; 3])
        .is_err());
    assert!(index
        .upsert(new_doc("/x.md", "h"), vec![chunk("a", 0)], &[0.0; 12])
        .is_err());
    assert_eq!(index.chunk_count(), n);
    assert!(index.document_by_path("/x.md").is_none());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn maintain_rebuilds_in_the_background() {
    let dim = 8;
    let params = IndexParams {
        dense: hearth_knowledge::DenseParams {
            fresh_min: 8,
            fresh_max: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    let vectors = clustered(12, 40, dim, 4, 0.3);
    let mut index = KnowledgeIndex::new(dim, params).unwrap();
    for (i, v) in vectors.iter().enumerate() {
        index
            .upsert(
                new_doc(&format!("/{i}"), "h"),
                vec![chunk(&format!("doc {i}"), 0)],
                v,
            )
            .unwrap();
    }
    assert!(index.needs_rebuild());
    assert!(!index.maintain().unwrap());
    assert!(index.rebuild_in_progress());
    // Searches are served while the thread runs.
    assert_eq!(
        index.search(&vectors[7], "", 1, Mode::Dense).unwrap().len(),
        1
    );
    assert!(index.finish_background_rebuild().unwrap());
    assert_eq!(index.dense().segment_sizes(), (40, 0, 0));
    assert!(!index.needs_rebuild());
}
