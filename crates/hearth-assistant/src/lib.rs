//! `hearth-assistant`: ask, summarize and chat over the user's documents with grounded
//! citations. The logic lives here once, generic over a [`Generator`] (the chat model) and a
//! [`Retrieve`] (usually a [`Retriever`] over a `hearth_knowledge::KnowledgeIndex` and its
//! `Embedder`), so the CLI and the browser extension run the same assistant.
//! Builds natively and for wasm32-unknown-unknown (no GPU or model dependency).
//!
//! Untrusted text (documents, pages, model output derived from them) only ever enters a prompt
//! quoted inside delimiters it cannot close ([`prompt`]), and the assistant has no tools.

pub mod ask;
pub mod chat;
pub mod cite;
pub mod error;
pub mod generator;
pub mod pack;
pub mod prompt;
pub mod retrieve;
pub mod summarize;

#[cfg(test)]
mod tests;

pub use ask::{ask, Answer, AskOptions};
pub use chat::{Chat, ChatOptions, Turn};
pub use cite::{Citation, Cited};
pub use error::{AssistantError, Result};
pub use generator::{Generated, Generator, Message, Prompt, Role};
pub use prompt::NOTHING_RELEVANT;
pub use retrieve::{
    content_terms, RelevanceFloor, RetrievalParams, Retrieve, Retrieved, Retriever,
};
pub use summarize::{summarize, DocumentText, Section, Step, SummarizeOptions, Summary};
