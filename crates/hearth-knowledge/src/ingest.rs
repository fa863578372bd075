//! The one ingest path, shared by the CLI and the browser extension:
//! source bytes → content hash → [`KnowledgeIndex::plan`] (unchanged: stop, nothing extracted or
//! embedded) → extract → chunk with the embedder's own token counts → embed in batches, with
//! progress → [`KnowledgeIndex::upsert`].
//!
//! [`ingest`] does it all under one `&mut` borrow of the index. Callers that must keep the index
//! usable while the (slow, async) embedding runs — the extension answers searches meanwhile —
//! use the three steps instead: [`prepare`] (`&index`), [`embed_chunks`] (no index), [`commit`]
//! (`&mut index`). `commit` re-checks the plan, so an index that changed in between stays
//! consistent. A document that fails at any step leaves the index exactly as it was.

use crate::chunk::{chunk_document, Chunk, ChunkOptions};
use crate::documents::{extract_hashed, DocId, Limits, SourceHint};
use crate::embed::{Embedder, EmbedderTokens};
use crate::index::{IngestPlan, KnowledgeIndex, NewDocument, Upsert};
use crate::{KnowledgeError, Result};

/// How documents are read, chunked and embedded.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Chunk sizes; `max_tokens` (and `target_tokens` with it) is lowered to the embedder's
    /// [`Embedder::max_tokens`] so no chunk is truncated by the model.
    pub chunk: ChunkOptions,
    /// Extraction bounds for one document.
    pub limits: Limits,
    /// Chunks per [`Embedder::embed`] call (progress is reported after each).
    pub batch: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            chunk: ChunkOptions::default(),
            limits: Limits::default(),
            batch: 32,
        }
    }
}

/// What ingesting one source did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingested {
    Added {
        id: DocId,
        chunks: usize,
    },
    /// Same path, same content hash: nothing was extracted, embedded or changed.
    Unchanged {
        id: DocId,
    },
    /// Same path, new content: the old document and its chunks were removed.
    Replaced {
        old: DocId,
        new: DocId,
        chunks: usize,
    },
}

impl Ingested {
    /// The document now indexed for the source.
    pub fn id(&self) -> &DocId {
        match self {
            Ingested::Added { id, .. } | Ingested::Unchanged { id } => id,
            Ingested::Replaced { new, .. } => new,
        }
    }

    /// Chunks embedded by this ingest (0 when unchanged).
    pub fn chunks(&self) -> usize {
        match self {
            Ingested::Added { chunks, .. } | Ingested::Replaced { chunks, .. } => *chunks,
            Ingested::Unchanged { .. } => 0,
        }
    }
}

/// Progress of the embedding step of one document, reported before the first batch and after
/// every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub chunks_done: usize,
    pub chunks_total: usize,
}

/// A document extracted and chunked, waiting for its embeddings.
#[derive(Clone, Debug)]
pub struct Pending {
    pub doc: NewDocument,
    pub chunks: Vec<Chunk>,
}

impl Pending {
    pub fn texts(&self) -> Vec<&str> {
        self.chunks.iter().map(|c| c.text.as_str()).collect()
    }
}

/// The outcome of [`prepare`].
#[derive(Clone, Debug)]
pub enum Prepared {
    /// Already indexed with this content.
    Unchanged(DocId),
    /// Needs embedding, then [`commit`].
    Pending(Pending),
}

pub use crate::documents::content_hash;

/// Chunk options fitted to `embedder`'s input size.
pub fn chunk_options_for<E: Embedder>(embedder: &E, opts: &ChunkOptions) -> ChunkOptions {
    let max_tokens = opts.max_tokens.min(embedder.max_tokens()).max(1);
    ChunkOptions {
        max_tokens,
        target_tokens: opts.target_tokens.min(max_tokens),
        ..opts.clone()
    }
}

/// Plans, and unless the source is unchanged, extracts and chunks it. Reads the index only.
pub fn prepare<E: Embedder>(
    index: &KnowledgeIndex,
    embedder: &E,
    hint: SourceHint,
    bytes: &[u8],
    now_ms: u64,
    opts: &IngestOptions,
) -> Result<Prepared> {
    if embedder.dim() != index.dim() {
        return Err(KnowledgeError::DimensionMismatch {
            expected: index.dim(),
            found: embedder.dim(),
        });
    }
    let source = hint.source.clone();
    let hash = content_hash(bytes);
    if let IngestPlan::Unchanged(id) = index.plan(&source, &hash) {
        return Ok(Prepared::Unchanged(id));
    }
    let doc = extract_hashed(bytes, hint, &opts.limits, hash)?;
    let chunk_opts = chunk_options_for(embedder, &opts.chunk);
    let chunks = chunk_document(&doc, &EmbedderTokens(embedder), &chunk_opts);
    Ok(Prepared::Pending(Pending {
        doc: NewDocument::from_document(&doc, &source, now_ms),
        chunks,
    }))
}

/// Embeds `texts` in batches of `batch`, checking every row, and returns them row-major
/// (`texts.len() × dim`).
pub async fn embed_chunks<E: Embedder>(
    embedder: &E,
    texts: &[&str],
    batch: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<f32>> {
    let dim = embedder.dim();
    let total = texts.len();
    let mut out = Vec::with_capacity(total * dim);
    progress(Progress {
        chunks_done: 0,
        chunks_total: total,
    });
    for group in texts.chunks(batch.max(1)) {
        let rows = embedder.embed(group).await?;
        if rows.len() != group.len() {
            return Err(KnowledgeError::Embed(format!(
                "{} embeddings for {} texts",
                rows.len(),
                group.len()
            )));
        }
        for row in rows {
            if row.len() != dim {
                return Err(KnowledgeError::DimensionMismatch {
                    expected: dim,
                    found: row.len(),
                });
            }
            out.extend_from_slice(&row);
        }
        progress(Progress {
            chunks_done: out.len() / dim,
            chunks_total: total,
        });
    }
    Ok(out)
}

/// Puts an embedded document into the index (validated first: on error nothing changes).
pub fn commit(
    index: &mut KnowledgeIndex,
    pending: Pending,
    embeddings: &[f32],
) -> Result<Ingested> {
    let chunks = pending.chunks.len();
    Ok(
        match index.upsert(pending.doc, pending.chunks, embeddings)? {
            Upsert::Added(id) => Ingested::Added { id, chunks },
            Upsert::Unchanged(id) => Ingested::Unchanged { id },
            Upsert::Replaced { old, new } => Ingested::Replaced { old, new, chunks },
        },
    )
}

/// Ingests one source: `hint.source` is its path or URL (its identity in the index), `bytes`
/// its content, `now_ms` the time to record (milliseconds since the Unix epoch).
pub async fn ingest<E: Embedder>(
    index: &mut KnowledgeIndex,
    embedder: &E,
    hint: SourceHint,
    bytes: &[u8],
    now_ms: u64,
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Ingested> {
    let pending = match prepare(index, embedder, hint, bytes, now_ms, opts)? {
        Prepared::Unchanged(id) => return Ok(Ingested::Unchanged { id }),
        Prepared::Pending(p) => p,
    };
    let embeddings = embed_chunks(embedder, &pending.texts(), opts.batch, progress).await?;
    commit(index, pending, &embeddings)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::chunk::{ApproxTokenCounter, TokenCounter};
    use crate::{IndexParams, Mode};

    /// The fake's futures are ready at once; poll until they are.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// Hashed bag of words → unit vector; counts its calls; can fail on a given call.
    struct BagOfWords {
        dim: usize,
        max_tokens: usize,
        calls: Cell<usize>,
        texts: Cell<usize>,
        fail_on_call: Option<usize>,
    }

    impl BagOfWords {
        fn new(dim: usize) -> Self {
            BagOfWords {
                dim,
                max_tokens: 64,
                calls: Cell::new(0),
                texts: Cell::new(0),
                fail_on_call: None,
            }
        }

        fn vector(&self, text: &str) -> Vec<f32> {
            crate::testing::bag_of_words(text, self.dim)
        }
    }

    impl Embedder for BagOfWords {
        fn dim(&self) -> usize {
            self.dim
        }
        fn max_tokens(&self) -> usize {
            self.max_tokens
        }
        fn count_tokens(&self, text: &str) -> usize {
            ApproxTokenCounter.count(text)
        }
        async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            self.calls.set(self.calls.get() + 1);
            if self.fail_on_call == Some(self.calls.get()) {
                return Err(KnowledgeError::Embed("injected failure".into()));
            }
            self.texts.set(self.texts.get() + texts.len());
            Ok(texts.iter().map(|t| self.vector(t)).collect())
        }
    }

    /// A heading per part, each with more text than one 64-token chunk holds.
    fn markdown(topic: &str, parts: usize) -> Vec<u8> {
        let mut s = format!("# All about {topic}\n\n");
        for p in 0..parts {
            s.push_str(&format!("## Part {p}\n\n"));
            for n in 0..4 {
                s.push_str(&format!(
                    "Sentence {n} of part {p} explains {topic} in some detail, so that the \
                     chunker has real text to pack. "
                ));
            }
            s.push_str("\n\n");
        }
        s.into_bytes()
    }

    fn run(
        index: &mut KnowledgeIndex,
        e: &BagOfWords,
        hint: SourceHint,
        bytes: &[u8],
        log: &mut Vec<Progress>,
    ) -> Result<Ingested> {
        let opts = IngestOptions {
            batch: 4,
            ..IngestOptions::default()
        };
        block_on(ingest(index, e, hint, bytes, 1_000, &opts, &mut |p| {
            log.push(p)
        }))
    }

    fn search(index: &KnowledgeIndex, e: &BagOfWords, q: &str) -> Vec<DocId> {
        let v = e.vector(q);
        let hits = index.search(&v, q, 3, Mode::Hybrid).unwrap();
        hits.into_iter().map(|h| h.doc_id).collect()
    }

    #[test]
    fn adds_a_document_in_batches_with_progress() {
        let e = BagOfWords::new(64);
        let mut index = KnowledgeIndex::new(64, IndexParams::default()).unwrap();
        let mut log = Vec::new();
        let got = run(
            &mut index,
            &e,
            SourceHint::new("/d/otters.md"),
            &markdown("otters", 12),
            &mut log,
        )
        .unwrap();
        let Ingested::Added { id, chunks } = got.clone() else {
            panic!("{got:?}")
        };
        assert!(chunks > 4, "max_tokens 64 forces several chunks: {chunks}");
        assert_eq!(index.chunk_count(), chunks);
        assert_eq!(e.texts.get(), chunks);
        assert_eq!(e.calls.get(), chunks.div_ceil(4));
        // One report before the first batch, one after each.
        assert_eq!(log.len(), 1 + e.calls.get());
        assert_eq!(log[0].chunks_done, 0);
        assert!(log.windows(2).all(|w| w[0].chunks_done < w[1].chunks_done));
        assert!(log.iter().all(|p| p.chunks_total == chunks));
        assert_eq!(log.last().unwrap().chunks_done, chunks);
        // Chunks were sized by the embedder's counter and its (smaller) limit.
        let meta = index.document(&id).unwrap();
        assert_eq!(meta.source_path, "/d/otters.md");
        assert_eq!(meta.title, "All about otters");
        assert_eq!(meta.added_unix_ms, 1_000);
        for c in &meta.chunks {
            let text = &index.chunk(*c).unwrap().text;
            assert!(e.count_tokens(text) <= 64, "{text:?}");
        }
        run(
            &mut index,
            &e,
            SourceHint::new("/d/bees.md"),
            &markdown("bees", 3),
            &mut log,
        )
        .unwrap();
        assert_eq!(search(&index, &e, "otters")[0], id);
    }

    #[test]
    fn unchanged_reingest_embeds_nothing() {
        let e = BagOfWords::new(32);
        let mut index = KnowledgeIndex::new(32, IndexParams::default()).unwrap();
        let bytes = markdown("otters", 4);
        let first = run(
            &mut index,
            &e,
            SourceHint::new("a.md"),
            &bytes,
            &mut Vec::new(),
        )
        .unwrap();
        let (calls, snapshot) = (e.calls.get(), index.to_bytes().unwrap());
        let mut log = Vec::new();
        let again = run(&mut index, &e, SourceHint::new("a.md"), &bytes, &mut log).unwrap();
        assert_eq!(
            again,
            Ingested::Unchanged {
                id: first.id().clone()
            }
        );
        assert_eq!(again.chunks(), 0);
        assert_eq!(e.calls.get(), calls, "no embed call");
        assert!(log.is_empty(), "no progress either");
        assert_eq!(index.to_bytes().unwrap(), snapshot);
        // The same bytes under another path are a new document.
        let other = run(
            &mut index,
            &e,
            SourceHint::new("b.md"),
            &bytes,
            &mut Vec::new(),
        )
        .unwrap();
        assert!(matches!(other, Ingested::Added { .. }), "{other:?}");
    }

    #[test]
    fn changed_content_replaces_the_old_chunks() {
        let e = BagOfWords::new(64);
        let mut index = KnowledgeIndex::new(64, IndexParams::default()).unwrap();
        let old = run(
            &mut index,
            &e,
            SourceHint::new("n.md"),
            &markdown("otters", 6),
            &mut Vec::new(),
        )
        .unwrap();
        run(
            &mut index,
            &e,
            SourceHint::new("keep.md"),
            &markdown("bees", 2),
            &mut Vec::new(),
        )
        .unwrap();
        let kept = index.chunk_count() - old.chunks();
        let new = run(
            &mut index,
            &e,
            SourceHint::new("n.md"),
            &markdown("herons", 3),
            &mut Vec::new(),
        )
        .unwrap();
        let Ingested::Replaced {
            old: o,
            new: n,
            chunks,
        } = new.clone()
        else {
            panic!("{new:?}")
        };
        assert_eq!(&o, old.id());
        assert_eq!(o, n, "ids derive from the path");
        assert_eq!(index.chunk_count(), kept + chunks);
        assert_eq!(index.documents().count(), 2);
        assert!(
            index.keyword().search("otters", 5).is_empty(),
            "old text gone"
        );
        assert_eq!(search(&index, &e, "herons")[0], n);
        assert_eq!(index.document(&n).unwrap().title, "All about herons");
    }

    #[test]
    fn a_failing_document_leaves_the_index_untouched() {
        let mut e = BagOfWords::new(16);
        let mut index = KnowledgeIndex::new(16, IndexParams::default()).unwrap();
        run(
            &mut index,
            &e,
            SourceHint::new("ok.md"),
            &markdown("otters", 2),
            &mut Vec::new(),
        )
        .unwrap();
        let before = index.to_bytes().unwrap();
        let calls = e.calls.get();

        // Malformed: fails in extraction, before any embedding.
        let bad = run(
            &mut index,
            &e,
            SourceHint::new("x.pdf"),
            b"%PDF-1.7 not really",
            &mut Vec::new(),
        );
        assert!(
            matches!(bad, Err(KnowledgeError::Malformed { .. })),
            "{bad:?}"
        );
        assert_eq!(e.calls.get(), calls);
        // New content for an indexed path that fails to extract keeps the old version.
        let as_pdf = SourceHint::new("ok.md").with_mime("application/pdf");
        let bad = run(&mut index, &e, as_pdf, b"not a pdf", &mut Vec::new());
        assert!(
            matches!(bad, Err(KnowledgeError::Malformed { .. })),
            "{bad:?}"
        );
        assert_eq!(index.to_bytes().unwrap(), before);

        // The model fails on the second batch of a replacement.
        e.fail_on_call = Some(e.calls.get() + 2);
        let bad = run(
            &mut index,
            &e,
            SourceHint::new("ok.md"),
            &markdown("herons", 8),
            &mut Vec::new(),
        );
        assert!(matches!(bad, Err(KnowledgeError::Embed(_))), "{bad:?}");
        assert_eq!(index.to_bytes().unwrap(), before);

        // An embedder of another dimension is refused up front.
        let wide = BagOfWords::new(32);
        let bad = run(
            &mut index,
            &wide,
            SourceHint::new("new.md"),
            &markdown("bees", 2),
            &mut Vec::new(),
        );
        assert!(
            matches!(
                bad,
                Err(KnowledgeError::DimensionMismatch {
                    expected: 16,
                    found: 32
                })
            ),
            "{bad:?}"
        );
        assert_eq!(wide.calls.get(), 0);
        assert_eq!(index.to_bytes().unwrap(), before);
    }

    #[test]
    fn steps_compose_like_ingest() {
        let e = BagOfWords::new(32);
        let mut index = KnowledgeIndex::new(32, IndexParams::default()).unwrap();
        let opts = IngestOptions::default();
        let bytes = markdown("otters", 3);
        let Prepared::Pending(p) =
            prepare(&index, &e, SourceHint::new("s.md"), &bytes, 5, &opts).unwrap()
        else {
            panic!("new source")
        };
        assert_eq!(p.doc.content_hash, content_hash(&bytes));
        let rows = block_on(embed_chunks(&e, &p.texts(), 2, &mut |_| {})).unwrap();
        assert_eq!(rows.len(), p.chunks.len() * 32);
        let n = p.chunks.len();
        assert_eq!(
            commit(&mut index, p.clone(), &rows).unwrap(),
            Ingested::Added {
                id: p.doc.id.clone(),
                chunks: n
            }
        );
        // Committing the same pending document again is a no-op (upsert re-plans).
        assert!(matches!(
            commit(&mut index, p, &rows).unwrap(),
            Ingested::Unchanged { .. }
        ));
        assert!(matches!(
            prepare(&index, &e, SourceHint::new("s.md"), &bytes, 6, &opts).unwrap(),
            Prepared::Unchanged(_)
        ));
    }
}
