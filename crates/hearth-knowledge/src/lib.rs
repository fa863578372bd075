//! `hearth-knowledge`: document extraction, chunking, and the hybrid dense + keyword index.
//! Builds natively and for wasm32-unknown-unknown (no GPU dependency).

pub mod error;

pub use error::{KnowledgeError, Result};
