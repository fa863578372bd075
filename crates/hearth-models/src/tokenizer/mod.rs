//! Tokenizers: byte-level BPE from GGUF metadata (split exactly as llama.cpp splits it) or a Hugging
//! Face `tokenizer.json`, both run by the `tokenizers` crate with its fancy-regex backend so native
//! and wasm32 builds produce the same ids.
//!
//! Special-token text in the input (`<|im_start|>`) is always parsed as the special token, as
//! llama.cpp does with `parse_special = true`: chat templates render to text that relies on it.

mod gguf;
mod stream;
#[cfg(test)]
pub(crate) mod tests;

pub use stream::StreamDecoder;

use crate::error::{ModelError, Result};
use crate::loader::TokenizerFiles;

fn err(msg: impl Into<String>) -> ModelError {
    ModelError::Tokenizer(msg.into())
}

/// Token texts that end generation, as llama.cpp's `llama-vocab.cpp` lists them: end-of-turn
/// markers, plus the fill-in-the-middle pad/repo/file-separator tokens it also stops on.
pub(crate) const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
    // FIM pad, repo and file separator.
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

fn is_eog_text(text: &str) -> bool {
    EOG_TEXTS.contains(&text)
}

/// A text tokenizer plus what generation needs: BOS (and whether to add it) and the ids that end a
/// turn.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    /// End-of-generation ids, the model's own EOS first, without duplicates.
    eos: Vec<u32>,
    add_bos: bool,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// From a GGUF file's metadata or a Hugging Face tokenizer.json (+ tokenizer_config.json).
    pub fn from_files(files: &TokenizerFiles) -> Result<Self> {
        match files {
            TokenizerFiles::Gguf(meta) => gguf::from_metadata(meta),
            TokenizerFiles::Hf {
                tokenizer_json,
                tokenizer_config_json,
            } => Self::from_json_bytes(tokenizer_json, tokenizer_config_json.as_deref()),
        }
    }

    /// From a Hugging Face tokenizer.json and optionally its tokenizer_config.json, whose
    /// `bos_token`, `eos_token` and `add_bos_token` are honoured (plus Hearth's `eos_token_ids`,
    /// written by [`Tokenizer::to_config_json`]). Without a config, BOS is whatever the
    /// tokenizer.json post-processor prepends. Other post-processing (EOS, pairs) is not applied.
    pub fn from_json_bytes(json: &[u8], config_json: Option<&[u8]>) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| err(format!("bad tokenizer.json: {e}")))?;
        let config: serde_json::Value = match config_json {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| err(format!("bad tokenizer_config.json: {e}")))?,
            None => serde_json::Value::Null,
        };
        if !(config.is_null() || config.is_object()) {
            return Err(err("tokenizer_config.json is not an object"));
        }
        let token_id = |key: &str| -> Result<Option<u32>> {
            // Either "text" or {"content": "text", ...} (AddedToken).
            let text = match config.get(key) {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(serde_json::Value::String(s)) => s.as_str(),
                Some(v) => v
                    .get("content")
                    .and_then(|c| c.as_str())
                    .ok_or_else(|| err(format!("tokenizer_config.json `{key}` = {v}")))?,
            };
            inner
                .token_to_id(text)
                .map(Some)
                .ok_or_else(|| err(format!("{key} {text:?} is not in the vocabulary")))
        };

        // What the post-processor prepends to an empty input is the model's BOS habit.
        let probe = inner
            .encode_fast("", true)
            .map_err(|e| err(format!("tokenizer.json post-processor: {e}")))?;
        let prepended = probe.get_ids().first().copied();
        let bos = token_id("bos_token")?.or(prepended);
        let add_bos = match config.get("add_bos_token") {
            Some(serde_json::Value::Bool(b)) => *b,
            None | Some(serde_json::Value::Null) => prepended.is_some() && prepended == bos,
            Some(v) => return Err(err(format!("tokenizer_config.json `add_bos_token` = {v}"))),
        };
        if add_bos && bos.is_none() {
            return Err(err("add_bos_token is set but there is no bos_token"));
        }

        let mut eos: Vec<u32> = token_id("eos_token")?.into_iter().collect();
        if let Some(ids) = config.get("eos_token_ids") {
            let ids: Vec<u32> = serde_json::from_value(ids.clone())
                .map_err(|e| err(format!("tokenizer_config.json `eos_token_ids`: {e}")))?;
            eos.extend(ids);
        }
        let mut named: Vec<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special && is_eog_text(&t.content))
            .map(|(id, _)| *id)
            .collect();
        named.sort_unstable();
        eos.extend(named);
        Self::assemble(inner, bos, eos, add_bos)
    }

    /// Shared tail of the constructors: checks ids and sets the BOS post-processor for export.
    fn assemble(
        mut inner: tokenizers::Tokenizer,
        bos: Option<u32>,
        mut eos: Vec<u32>,
        add_bos: bool,
    ) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        eos.retain(|id| seen.insert(*id));
        let vocab_size = inner.get_vocab_size(true);
        for id in bos.iter().chain(&eos) {
            if inner.id_to_token(*id).is_none() {
                return Err(err(format!(
                    "special id {id} is outside the vocabulary of {vocab_size}"
                )));
            }
        }
        let processor = match (add_bos, bos) {
            (true, Some(b)) => inner
                .id_to_token(b)
                .and_then(|text| gguf::bos_processor(&text, b)),
            _ => None,
        };
        inner.with_post_processor(processor);
        Ok(Self {
            inner,
            bos,
            eos,
            add_bos,
            vocab_size,
        })
    }

    /// Token ids of `text`; BOS first when `add_special` and the model wants it (llama.cpp's
    /// `add_special`). Special-token text inside `text` becomes the special token.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| err(format!("encode: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`, special tokens included; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(err(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        self.inner
            .decode(ids, false)
            .map_err(|e| err(format!("decode: {e}")))
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Ids that end generation, the model's own EOS first.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos.contains(&id)
    }

    /// Number of ids, added tokens included (the embedding may have more rows).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The vocabulary text of one id (byte-level form for BPE pieces, e.g. `Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    /// A Hugging Face tokenizer.json (with a BOS post-processor when BOS is added), for packs.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| err(format!("serialise tokenizer.json: {e}")))
    }

    /// A tokenizer_config.json that [`Tokenizer::from_json_bytes`] and
    /// [`crate::chat::ChatTemplate::from_files`] read back: `bos_token`, `eos_token` (the first end
    /// id), `add_bos_token`, `eos_token_ids` (Hearth's: all end ids) and `chat_template` if given.
    pub fn to_config_json(&self, chat_template: Option<&str>) -> Result<String> {
        let text = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i));
        let mut config = serde_json::json!({
            "bos_token": text(self.bos),
            "eos_token": text(self.eos.first().copied()),
            "add_bos_token": self.add_bos,
            "eos_token_ids": self.eos,
        });
        if let Some(t) = chat_template {
            config["chat_template"] = t.into();
        }
        serde_json::to_string_pretty(&config).map_err(|e| err(format!("serialise config: {e}")))
    }

    /// Incremental detokeniser for generated ids.
    pub fn stream_decoder(&self) -> StreamDecoder {
        StreamDecoder::new()
    }
}
