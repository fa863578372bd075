//! The knowledge layer's only view of an embedding model. Implemented by the GPU sentence
//! encoder (`hearth-models`) and, in tests, by small deterministic fakes. Async because on the
//! web every GPU readback is.

use crate::chunk::TokenCounter;
use crate::Result;

#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Embedder {
    /// Length of every embedding.
    fn dim(&self) -> usize;
    /// Longest input in tokens, special tokens included; longer inputs are truncated.
    fn max_tokens(&self) -> usize;
    /// Token count of `text` with special tokens and without truncation (chunking sizes by it).
    fn count_tokens(&self, text: &str) -> usize;
    /// Unit-length embeddings, one per text, in order. Implementations batch internally.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Lets chunking count with an embedder's own tokenizer.
pub struct EmbedderTokens<'a, E: Embedder>(pub &'a E);

impl<E: Embedder> TokenCounter for EmbedderTokens<'_, E> {
    fn count(&self, text: &str) -> usize {
        self.0.count_tokens(text)
    }
}
