//! Incremental detokenisation: one multi-byte character may be spread over several byte-level
//! tokens, so text is released only once it decodes to complete UTF-8.
//!
//! The method is the one of Hugging Face's text-generation-inference: decode the pending ids with
//! one emitted token of left context (decoders such as Metaspace change a token's text at the start
//! of a string) and emit the new suffix when it does not end in U+FFFD.

use super::Tokenizer;
use crate::error::Result;

/// Feeds on generated ids ([`StreamDecoder::step`]) and yields text pieces whose concatenation
/// equals `Tokenizer::decode` of all ids.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    /// The last emitted id (context, when `read == 1`) followed by ids not yet emitted.
    ids: Vec<u32>,
    read: usize,
}

const REPLACEMENT: char = '\u{FFFD}';

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one id; returns the text it completes, if any.
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let (prefix, all) = self.texts(tokenizer)?;
        if all.len() <= prefix.len() || all.ends_with(REPLACEMENT) {
            return Ok(None);
        }
        self.emitted();
        Ok(Some(suffix_after(&all, &prefix)))
    }

    /// Text still held back at the end of generation (incomplete UTF-8 becomes U+FFFD), if any.
    pub fn flush(&mut self, tokenizer: &Tokenizer) -> Result<Option<String>> {
        if self.ids.len() == self.read {
            return Ok(None);
        }
        let (prefix, all) = self.texts(tokenizer)?;
        self.emitted();
        let piece = suffix_after(&all, &prefix);
        Ok((!piece.is_empty()).then_some(piece))
    }

    /// Text of the context alone, and of the context with the pending ids.
    fn texts(&self, tokenizer: &Tokenizer) -> Result<(String, String)> {
        Ok((
            tokenizer.decode(&self.ids[..self.read])?,
            tokenizer.decode(&self.ids)?,
        ))
    }

    /// Everything is emitted: keep the last id as context.
    fn emitted(&mut self) {
        let last = self.ids.len().saturating_sub(1);
        self.ids.drain(..last);
        self.read = self.ids.len();
    }
}

/// `all` minus its leading `prefix`; if decoding was not concatenative, the part after their
/// longest common prefix (at a character boundary).
fn suffix_after(all: &str, prefix: &str) -> String {
    if let Some(rest) = all.strip_prefix(prefix) {
        return rest.to_string();
    }
    let common = all
        .char_indices()
        .zip(prefix.chars())
        .find(|((_, a), b)| a != b)
        .map_or(prefix.len().min(all.len()), |((i, _), _)| i);
    all.get(common..).unwrap_or_default().to_string()
}
