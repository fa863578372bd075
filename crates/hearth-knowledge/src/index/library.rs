//! [`KnowledgeIndex`]: the documents, their chunks, and the dense + keyword indexes over them.

use std::collections::{BTreeMap, HashMap};

use super::dense::{normalised, DenseIndex, DenseParams, RebuildJob, RebuiltSegment};
use super::hybrid::{reciprocal_rank_fusion, Mode, Reranker, RRF_K};
use super::keyword::{Bm25Params, KeywordIndex};
use super::ChunkId;
use crate::chunk::Chunk;
use crate::documents::{DocId, DocKind, Document};
use crate::{KnowledgeError, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IndexParams {
    pub dense: DenseParams,
    pub bm25: Bm25Params,
}

/// What the index lists about a document.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentMeta {
    pub id: DocId,
    pub title: String,
    /// Path or URL it was ingested from; unique in the index.
    pub source_path: String,
    pub kind: DocKind,
    /// Source size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the source bytes (as [`crate::Document::content_hash`]).
    pub content_hash: String,
    /// Milliseconds since the Unix epoch, from the caller (wasm32 has no clock in `std`).
    pub added_unix_ms: u64,
    /// The document's chunks, in document order.
    pub chunks: Vec<ChunkId>,
}

/// A document about to be indexed (its chunks and embeddings come alongside).
#[derive(Clone, Debug)]
pub struct NewDocument {
    pub id: DocId,
    pub title: String,
    pub source_path: String,
    pub kind: DocKind,
    pub size: u64,
    pub content_hash: String,
    pub added_unix_ms: u64,
}

impl NewDocument {
    /// The index record of an extracted document found at `source_path`.
    pub fn from_document(doc: &Document, source_path: &str, added_unix_ms: u64) -> Self {
        Self {
            id: doc.id.clone(),
            title: doc.title.clone(),
            source_path: source_path.to_string(),
            kind: doc.kind,
            size: doc.size,
            content_hash: doc.content_hash.clone(),
            added_unix_ms,
        }
    }
}

/// A chunk about to be indexed; the index assigns its [`ChunkId`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewChunk {
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// Byte range of the chunk in the document text.
    pub span: (usize, usize),
    pub text: String,
}

impl From<Chunk> for NewChunk {
    fn from(c: Chunk) -> Self {
        Self {
            heading_path: c.heading_path,
            page: c.page,
            span: c.span,
            text: c.text,
        }
    }
}

/// A stored chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedChunk {
    pub id: ChunkId,
    pub doc_id: DocId,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    pub span: (usize, usize),
    pub text: String,
}

/// What re-ingesting a source would do; ask before extracting and embedding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestPlan {
    /// Nothing indexed from this path yet.
    New,
    /// Indexed with the same content hash: skip it.
    Unchanged(DocId),
    /// Indexed with other content: the old document will be replaced.
    Replace(DocId),
}

/// What [`KnowledgeIndex::upsert`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upsert {
    Added(DocId),
    Unchanged(DocId),
    /// The previous version (which may have had another id) was removed first.
    Replaced {
        old: DocId,
        new: DocId,
    },
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub chunk_id: ChunkId,
    pub doc_id: DocId,
    /// The ranking score: cosine (Dense), BM25 (Keyword), RRF (Hybrid), or the reranker's.
    pub score: f32,
    /// Cosine similarity, when the dense ranking returned this chunk.
    pub dense_score: Option<f32>,
    /// BM25 score, when the keyword ranking returned this chunk.
    pub keyword_score: Option<f32>,
    pub rerank_score: Option<f32>,
}

/// A hit with what a reader needs, shaped like the CLI's `hearth search --json` hits (and the
/// extension's): the source and title of its document, the chunk's place and text.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HitView {
    pub source: String,
    pub title: String,
    /// Heading path joined with " › ".
    pub heading: String,
    pub page: Option<u32>,
    /// Byte range of the chunk in the document text.
    pub span: [usize; 2],
    pub score: f32,
    pub text: String,
}

/// Documents, chunks, and the dense and keyword indexes. Snapshots: [`crate::store`].
pub struct KnowledgeIndex {
    pub(crate) params: IndexParams,
    pub(crate) dense: DenseIndex,
    pub(crate) keyword: KeywordIndex,
    pub(crate) docs: BTreeMap<DocId, DocumentMeta>,
    pub(crate) by_path: HashMap<String, DocId>,
    pub(crate) chunks: HashMap<ChunkId, IndexedChunk>,
    pub(crate) next_chunk_id: ChunkId,
    #[cfg(not(target_arch = "wasm32"))]
    background: Option<super::dense::RebuildThread>,
}

impl KnowledgeIndex {
    /// An empty index for `dim`-dimensional embeddings.
    pub fn new(dim: usize, params: IndexParams) -> Result<Self> {
        let dense = DenseIndex::new(dim, params.dense)?;
        Ok(Self::from_parts(
            params,
            dense,
            KeywordIndex::new(params.bm25),
            BTreeMap::new(),
            HashMap::new(),
            0,
        ))
    }

    pub(crate) fn from_parts(
        params: IndexParams,
        dense: DenseIndex,
        keyword: KeywordIndex,
        docs: BTreeMap<DocId, DocumentMeta>,
        chunks: HashMap<ChunkId, IndexedChunk>,
        next_chunk_id: ChunkId,
    ) -> Self {
        let by_path = docs
            .values()
            .map(|d| (d.source_path.clone(), d.id.clone()))
            .collect();
        Self {
            params,
            dense,
            keyword,
            docs,
            by_path,
            chunks,
            next_chunk_id,
            #[cfg(not(target_arch = "wasm32"))]
            background: None,
        }
    }

    pub fn dim(&self) -> usize {
        self.dense.dim()
    }

    pub fn params(&self) -> &IndexParams {
        &self.params
    }

    pub fn dense(&self) -> &DenseIndex {
        &self.dense
    }

    pub fn keyword(&self) -> &KeywordIndex {
        &self.keyword
    }

    /// All documents, ordered by id.
    pub fn documents(&self) -> impl Iterator<Item = &DocumentMeta> {
        self.docs.values()
    }

    pub fn document(&self, id: &DocId) -> Option<&DocumentMeta> {
        self.docs.get(id)
    }

    pub fn document_by_path(&self, source_path: &str) -> Option<&DocumentMeta> {
        self.by_path
            .get(source_path)
            .and_then(|id| self.docs.get(id))
    }

    /// Documents with this content (the same file may be indexed under several paths).
    pub fn documents_by_hash<'a>(
        &'a self,
        content_hash: &'a str,
    ) -> impl Iterator<Item = &'a DocumentMeta> + 'a {
        self.docs
            .values()
            .filter(move |d| d.content_hash == content_hash)
    }

    pub fn chunk(&self, id: ChunkId) -> Option<&IndexedChunk> {
        self.chunks.get(&id)
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The reader's view of a hit (`None` if its chunk is gone).
    pub fn view(&self, hit: &Hit) -> Option<HitView> {
        let chunk = self.chunks.get(&hit.chunk_id)?;
        let doc = self.docs.get(&chunk.doc_id)?;
        Some(HitView {
            source: doc.source_path.clone(),
            title: doc.title.clone(),
            heading: chunk.heading_path.join(" › "),
            page: chunk.page,
            span: [chunk.span.0, chunk.span.1],
            score: hit.score,
            text: chunk.text.clone(),
        })
    }

    /// What [`Self::upsert`] would do for this source and content.
    pub fn plan(&self, source_path: &str, content_hash: &str) -> IngestPlan {
        match self.document_by_path(source_path) {
            None => IngestPlan::New,
            Some(d) if d.content_hash == content_hash => IngestPlan::Unchanged(d.id.clone()),
            Some(d) => IngestPlan::Replace(d.id.clone()),
        }
    }

    /// Adds a document with its chunks and their embeddings (`chunks.len() × dim` floats,
    /// row-major). An unchanged source (same path and content hash) is left alone; a changed
    /// one is replaced. Everything is validated before anything changes. `chunks` may be
    /// [`NewChunk`]s or the chunker's [`Chunk`]s.
    pub fn upsert<C: Into<NewChunk>>(
        &mut self,
        doc: NewDocument,
        chunks: Vec<C>,
        embeddings: &[f32],
    ) -> Result<Upsert> {
        let dim = self.dim();
        if embeddings.len() != chunks.len() * dim {
            return Err(KnowledgeError::InvalidInput(format!(
                "{} chunks need {} embedding floats, got {}",
                chunks.len(),
                chunks.len() * dim,
                embeddings.len()
            )));
        }
        if let IngestPlan::Unchanged(id) = self.plan(&doc.source_path, &doc.content_hash) {
            return Ok(Upsert::Unchanged(id));
        }
        for row in embeddings.chunks_exact(dim) {
            normalised(row, dim)?;
        }
        // A changed file keeps its path. Ids derive from paths, so the second case only happens
        // when the caller chose an id that another path already has: last writer wins.
        let mut old = None;
        if let Some(id) = self.by_path.get(&doc.source_path).cloned() {
            self.remove_document(&id)?;
            old = Some(id);
        }
        if self.docs.contains_key(&doc.id) {
            self.remove_document(&doc.id)?;
            old.get_or_insert(doc.id.clone());
        }
        let mut ids = Vec::with_capacity(chunks.len());
        for (chunk, row) in chunks.into_iter().zip(embeddings.chunks_exact(dim)) {
            let chunk: NewChunk = chunk.into();
            let id = self.next_chunk_id;
            self.next_chunk_id += 1;
            self.dense.insert(id, row)?;
            self.keyword.insert(id, &chunk.text);
            let NewChunk {
                heading_path,
                page,
                span,
                text,
            } = chunk;
            self.chunks.insert(
                id,
                IndexedChunk {
                    id,
                    doc_id: doc.id.clone(),
                    heading_path,
                    page,
                    span,
                    text,
                },
            );
            ids.push(id);
        }
        let NewDocument {
            id,
            title,
            source_path,
            kind,
            size,
            content_hash,
            added_unix_ms,
        } = doc;
        self.by_path.insert(source_path.clone(), id.clone());
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
        self.docs.insert(id.clone(), meta);
        Ok(match old {
            Some(old) => Upsert::Replaced { old, new: id },
            None => Upsert::Added(id),
        })
    }

    /// Removes a document and its chunks (dense deletes become tombstones).
    pub fn remove_document(&mut self, id: &DocId) -> Result<DocumentMeta> {
        let meta = self
            .docs
            .remove(id)
            .ok_or_else(|| KnowledgeError::UnknownDocument(id.to_string()))?;
        if self.by_path.get(&meta.source_path) == Some(id) {
            self.by_path.remove(&meta.source_path);
        }
        for chunk in &meta.chunks {
            self.dense.remove(*chunk);
            self.keyword.remove(*chunk);
            self.chunks.remove(chunk);
        }
        Ok(meta)
    }

    /// The `k` best chunks. `query_embedding` is ignored in `Mode::Keyword` (pass `&[]`) and
    /// `query_text` in `Mode::Dense`. Hybrid fuses the top `max(4k, 40)` of each ranking by RRF
    /// (of the dense ranking at most `max(k, ef_search)`).
    pub fn search(
        &self,
        query_embedding: &[f32],
        query_text: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Hit>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let depth = match mode {
            Mode::Hybrid => (4 * k).max(40),
            _ => k,
        };
        // Fusion depth alone must not push the dense side past what one HNSW query yields
        // (that would turn it into an exact scan); k itself may.
        let dense_depth = depth.min(self.dense.ef_search().max(k));
        let dense = match mode {
            Mode::Dense | Mode::Hybrid => self.dense.search(query_embedding, dense_depth)?,
            Mode::Keyword => Vec::new(),
        };
        let keyword = match mode {
            Mode::Keyword | Mode::Hybrid => self.keyword.search(query_text, depth),
            Mode::Dense => Vec::new(),
        };
        let ranked: Vec<(ChunkId, f32)> = match mode {
            Mode::Dense => dense.clone(),
            Mode::Keyword => keyword.clone(),
            Mode::Hybrid => {
                let d: Vec<ChunkId> = dense.iter().map(|h| h.0).collect();
                let w: Vec<ChunkId> = keyword.iter().map(|h| h.0).collect();
                reciprocal_rank_fusion(&[&d, &w], RRF_K)
            }
        };
        let dense: HashMap<ChunkId, f32> = dense.into_iter().collect();
        let keyword: HashMap<ChunkId, f32> = keyword.into_iter().collect();
        let hits = ranked.into_iter().filter_map(|(chunk_id, score)| {
            let chunk = self.chunks.get(&chunk_id)?;
            Some(Hit {
                chunk_id,
                doc_id: chunk.doc_id.clone(),
                score,
                dense_score: dense.get(&chunk_id).copied(),
                keyword_score: keyword.get(&chunk_id).copied(),
                rerank_score: None,
            })
        });
        Ok(hits.take(k).collect())
    }

    /// Searches for `candidates` chunks, rescoring them with `reranker`, and keeps the best `k`.
    pub fn search_reranked(
        &self,
        query_embedding: &[f32],
        query_text: &str,
        k: usize,
        mode: Mode,
        candidates: usize,
        reranker: &dyn Reranker,
    ) -> Result<Vec<Hit>> {
        let hits = self.search(query_embedding, query_text, candidates.max(k), mode)?;
        let passages: Vec<&str> = hits
            .iter()
            .map(|h| self.chunks.get(&h.chunk_id).map_or("", |c| c.text.as_str()))
            .collect();
        let scores = reranker.score(query_text, &passages)?;
        Self::apply_rerank(hits, &scores, k)
    }

    /// Reorders `hits` by externally computed rerank `scores` (one per hit) and keeps `k`;
    /// equal scores keep the first-stage order.
    pub fn apply_rerank(hits: Vec<Hit>, scores: &[f32], k: usize) -> Result<Vec<Hit>> {
        if scores.len() != hits.len() {
            return Err(KnowledgeError::Rerank(format!(
                "{} scores for {} candidates",
                scores.len(),
                hits.len()
            )));
        }
        if scores.iter().any(|s| s.is_nan()) {
            return Err(KnowledgeError::Rerank("NaN score".into()));
        }
        let mut scored: Vec<Hit> = hits
            .into_iter()
            .zip(scores)
            .map(|(hit, s)| Hit {
                score: *s,
                rerank_score: Some(*s),
                ..hit
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        scored.truncate(k);
        Ok(scored)
    }

    /// Changes the HNSW query breadth now and for later rebuilds (see
    /// [`DenseIndex::set_ef_search`]); saved with the index.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        self.dense.set_ef_search(ef_search)?;
        self.params.dense.ef_search = ef_search;
        Ok(())
    }

    /// Whether the dense fresh segment or its tombstones have outgrown their limits.
    pub fn needs_rebuild(&self) -> bool {
        self.dense.needs_rebuild()
    }

    /// Detaches a dense rebuild (see [`DenseIndex::begin_rebuild`]); run it, then
    /// [`Self::install_rebuild`]. This is the wasm path: schedule `job.run()` when idle.
    pub fn begin_rebuild(&self) -> Option<RebuildJob> {
        self.dense.begin_rebuild()
    }

    pub fn install_rebuild(&mut self, rebuilt: RebuiltSegment) -> Result<()> {
        self.dense.install(rebuilt)
    }

    /// Rebuilds the dense index now, on this thread.
    pub fn rebuild(&mut self) -> Result<()> {
        self.dense.rebuild()
    }

    /// Native background maintenance; call after ingests and periodically. Installs a finished
    /// background rebuild (dropping it if it went stale) and starts a new one on its own thread
    /// if one is due. Never blocks. Returns whether a rebuilt segment was installed.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn maintain(&mut self) -> Result<bool> {
        if self.background.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(false);
        }
        let installed = match self.background.take() {
            Some(thread) => match self.dense.install(thread.join()?) {
                Ok(()) => true,
                Err(KnowledgeError::StaleRebuild { .. }) => false,
                Err(e) => return Err(e),
            },
            None => false,
        };
        if self.dense.needs_rebuild() {
            if let Some(job) = self.dense.begin_rebuild() {
                self.background = Some(super::dense::RebuildThread::spawn(job)?);
            }
        }
        Ok(installed)
    }

    /// Whether a background rebuild is running (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn rebuild_in_progress(&self) -> bool {
        self.background.is_some()
    }

    /// Waits for a running background rebuild and installs it (e.g. before exit or in tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn finish_background_rebuild(&mut self) -> Result<bool> {
        match self.background.take() {
            Some(thread) => match self.dense.install(thread.join()?) {
                Ok(()) => Ok(true),
                Err(KnowledgeError::StaleRebuild { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }
}
