//! `hearth-knowledge`: document extraction, chunking, and the hybrid dense + keyword index.
//! Builds natively and for wasm32-unknown-unknown (no GPU dependency).

pub mod chunk;
pub mod documents;
pub mod embed;
pub mod error;
pub mod index;
pub mod ingest;
pub mod store;
pub mod testing;

pub use chunk::{chunk_document, ApproxTokenCounter, Chunk, ChunkOptions, TokenCounter};
pub use documents::{
    extract, extract_with, Block, BlockKind, DocId, DocKind, Document, Limits, SourceHint,
};
pub use embed::{Embedder, EmbedderTokens};
pub use error::{KnowledgeError, Result};
pub use index::{
    ChunkId, DenseParams, DocumentMeta, Hit, HitView, IndexParams, IndexedChunk, IngestPlan,
    KnowledgeIndex, Mode, NewChunk, NewDocument, Reranker, Upsert,
};
