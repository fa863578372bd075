//! The knowledge index: documents and their chunks, searchable by embedding (HNSW + exact fresh
//! segment), by keywords (BM25) or both (reciprocal-rank fusion), with an optional rerank stage.
//! Persisted by [`crate::store`] as one versioned, checksummed snapshot.

mod codec;
pub mod dense;
pub(crate) mod hnsw;
pub mod hybrid;
pub mod keyword;
mod library;
mod segment;
pub mod tokenize;

#[cfg(not(target_arch = "wasm32"))]
pub use dense::RebuildThread;
pub use dense::{DenseIndex, DenseParams, HnswSegment, RebuildJob, RebuiltSegment};
pub use hybrid::{reciprocal_rank_fusion, Mode, Reranker, RRF_K};
pub use keyword::{Bm25Params, KeywordIndex};
pub use library::{
    DocumentMeta, Hit, HitView, IndexParams, IndexedChunk, IngestPlan, KnowledgeIndex, NewChunk,
    NewDocument, Upsert,
};

/// Index-wide chunk identity, handed out by [`KnowledgeIndex`] in increasing order and never
/// reused (a deleted id may still have tombstones in a segment).
pub type ChunkId = u64;
