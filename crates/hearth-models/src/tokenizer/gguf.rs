//! A byte-level BPE `tokenizers::Tokenizer` built from GGUF `tokenizer.ggml.*` metadata, splitting
//! text exactly as llama.cpp does for the file's `tokenizer.ggml.pre`.
//!
//! llama.cpp (`llama-vocab.cpp`) pre-splits text with an ordered list of regexes per `pre` name: each
//! regex runs inside the pieces the previous one produced, and the text between matches is kept as
//! pieces of its own. That is a `Sequence` of `Split(regex, Isolated)` pre-tokenizers, followed by
//! GPT-2 byte-to-unicode mapping (`ByteLevel` without its own regex). Control, user-defined and
//! unknown tokens become added tokens, matched in raw text before BPE (llama.cpp's
//! `parse_special = true`).
//!
//! An unknown `pre` name is an error, as in llama.cpp: splitting with the wrong regex silently
//! produces token ids the model was never trained on. A missing `pre` uses llama.cpp's `default`.

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use super::{is_eog_text, Tokenizer};
use crate::error::{ModelError, Result};
use crate::gguf::{MetaValue, Metadata};
use std::collections::BTreeMap;

fn err(msg: impl Into<String>) -> ModelError {
    ModelError::Tokenizer(msg.into())
}

/// GPT-2's split, as llama.cpp writes it (its trailing `\s+` alternative is redundant: unmatched
/// whitespace is kept as a piece anyway).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama-3's split with the case-insensitive contractions spelt out (llama.cpp PR 6920).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: Llama-3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one `tokenizer.ggml.pre` family splits text.
pub(super) struct PreSplit {
    pub regexes: &'static [&'static str],
    /// A whole pre-token that is in the vocabulary is emitted as is, without BPE merges.
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` (the file's `tokenizer.ggml.add_bos_token` overrides it).
    pub add_bos: bool,
}

/// The llama.cpp pre-tokenizer families Hearth implements. Verified against llama.cpp's own vocab
/// tests: `llama-bpe`, `gpt-2`, `starcoder` (same split as `smollm`), and SmolLM2's GGUF.
pub(super) fn pre_split(pre: Option<&str>) -> Result<PreSplit> {
    const fn split(
        regexes: &'static [&'static str],
        ignore_merges: bool,
        add_bos: bool,
    ) -> PreSplit {
        PreSplit {
            regexes,
            ignore_merges,
            add_bos,
        }
    }
    Ok(match pre {
        None | Some("default") => split(
            &[
                r"[\p{P}\$\+<=>\^~\|]+",
                GPT2,
                r"\p{N}+",
                r"[0-9][0-9][0-9]",
            ],
            false,
            false,
        ),
        Some(
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
            | "lfm2",
        ) => split(&[LLAMA3], true, true),
        Some("dbrx" | "smaug-bpe") => split(&[LLAMA3], false, false),
        Some("smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b") => {
            split(&[r"\p{N}", GPT2], false, false)
        }
        Some("gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "exaone4" | "trillion") => {
            split(&[GPT2], false, false)
        }
        Some("qwen2" | "deepseek-r1-qwen" | "stablelm2") => split(&[QWEN2], false, false),
        Some(other) => {
            return Err(err(format!(
                "unsupported pre-tokenizer `tokenizer.ggml.pre = {other}` (supported: llama-bpe/llama3, \
                 smollm/starcoder, gpt-2, qwen2, default)"
            )))
        }
    })
}

/// llama.cpp `llama_token_type` values in `tokenizer.ggml.token_type`.
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

/// Builds the tokenizer from a GGUF file's metadata.
pub(super) fn from_metadata(meta: &BTreeMap<String, MetaValue>) -> Result<Tokenizer> {
    let model = meta.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(err(format!(
            "unsupported tokenizer model `tokenizer.ggml.model = {model}` (only byte-level BPE `gpt2`)"
        )));
    }
    let pre = pre_split(meta.opt_str("tokenizer.ggml.pre")?)?;
    let tokens = meta.get_str_array("tokenizer.ggml.tokens")?;
    if tokens.is_empty() || tokens.len() > u32::MAX as usize / 2 {
        return Err(err(format!("vocabulary of {} tokens", tokens.len())));
    }
    let types: Vec<i32> = match meta.value("tokenizer.ggml.token_type") {
        None => vec![1; tokens.len()],
        Some(_) => meta.get_i32_array("tokenizer.ggml.token_type")?.to_vec(),
    };
    if types.len() != tokens.len() {
        return Err(err(format!(
            "{} token types for {} tokens",
            types.len(),
            tokens.len()
        )));
    }

    // llama.cpp maps text → id with the last duplicate winning; the tokenizers crate needs a
    // bijection, so earlier duplicates get a placeholder text no input can produce.
    let mut vocab = Vocab::default();
    let mut texts: Vec<String> = Vec::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        if let Some(old) = vocab.insert(t.clone(), id as u32) {
            let placeholder = format!("<hearth:duplicate:{old}>");
            vocab.insert(placeholder.clone(), old);
            texts[old as usize] = placeholder;
        }
        texts.push(t.clone());
    }

    let lines = meta.get_str_array("tokenizer.ggml.merges")?;
    let build = |vocab: Vocab, merges| {
        BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre.ignore_merges)
            .build()
    };
    // Real vocabularies hold every part and result of their merges, so the builder, which looks
    // each one up anyway, is tried on all of them first; only if one cannot apply is the list
    // filtered and the model built again (looking every merge up twice costs a third of the
    // tokenizer's load time for Llama 3's 280,000 merges).
    let bpe = match build(vocab, parse_merges(lines, None)?) {
        Ok(bpe) => bpe,
        Err(_) => {
            let vocab: Vocab = texts.iter().cloned().zip(0u32..).collect();
            let merges = parse_merges(lines, Some(&vocab))?;
            build(vocab, merges).map_err(|e| err(format!("BPE model: {e}")))?
        }
    };

    let mut splits: Vec<PreTokenizerWrapper> = Vec::new();
    for re in pre.regexes {
        let s = Split::new(
            SplitPattern::Regex((*re).into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| err(format!("pre-tokenizer regex {re:?}: {e}")))?;
        splits.push(s.into());
    }
    splits.push(ByteLevel::new(false, false, false).into());

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(Sequence::new(splits)));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));

    // Special (non-normal) tokens are matched in the raw text before any splitting.
    let specials: Vec<AddedToken> = texts
        .iter()
        .zip(&types)
        .filter(|(_, ty)| matches!(**ty, TYPE_UNKNOWN | TYPE_CONTROL | TYPE_USER_DEFINED))
        .map(|(t, ty)| AddedToken::from(t.clone(), *ty != TYPE_USER_DEFINED).normalized(false))
        .collect();
    inner
        .add_special_tokens(specials)
        .map_err(|e| err(format!("special tokens: {e}")))?;

    let n = tokens.len() as u32;
    let id = |key: &str| -> Result<Option<u32>> {
        match meta.opt_u32(key)? {
            Some(i) if i >= n => Err(err(format!("{key} = {i} is outside the vocabulary of {n}"))),
            other => Ok(other),
        }
    };
    let bos = id("tokenizer.ggml.bos_token_id")?;
    let add_bos = meta
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(pre.add_bos);
    if add_bos && bos.is_none() {
        return Err(err("add_bos_token is set but there is no bos_token_id"));
    }
    // End-of-generation ids as llama.cpp collects them: eos/eot/eom/FIM ids and tokens whose text
    // is in its list (llama.cpp makes those control tokens whatever their type).
    let mut eos = Vec::new();
    for key in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
        "tokenizer.ggml.fim_pad_token_id",
        "tokenizer.ggml.fim_rep_token_id",
        "tokenizer.ggml.fim_sep_token_id",
    ] {
        eos.extend(id(key)?);
    }
    eos.extend(
        texts
            .iter()
            .enumerate()
            .filter(|(_, t)| is_eog_text(t))
            .map(|(i, _)| i as u32),
    );

    Tokenizer::assemble(inner, bos, eos, add_bos)
}

/// `tokenizer.ggml.merges` entries are "left right"; llama.cpp splits at the first space after the
/// first byte. Given the vocabulary, merges whose parts or result are not tokens cannot apply and
/// are dropped.
fn parse_merges(lines: &[String], vocab: Option<&Vocab>) -> Result<Vec<(String, String)>> {
    let mut merges = Vec::with_capacity(lines.len());
    let mut joined = String::new();
    for (i, line) in lines.iter().enumerate() {
        let cut = line
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == ' ')
            .map(|(p, _)| p)
            .ok_or_else(|| err(format!("merge {i} {line:?} has no space")))?;
        let (a, b) = (&line[..cut], &line[cut + 1..]);
        if let Some(vocab) = vocab {
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            if !(vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(&joined)) {
                continue;
            }
        }
        merges.push((a.to_string(), b.to_string()));
    }
    Ok(merges)
}

/// The post-processor that prepends BOS, so an exported tokenizer.json adds it in other tools too.
/// `None` when the BOS text cannot be written in a template (it holds a space or a colon); the
/// exported tokenizer_config.json still says `add_bos_token`.
pub(super) fn bos_processor(bos_text: &str, bos: u32) -> Option<TemplateProcessing> {
    if bos_text.contains([' ', ':']) {
        return None;
    }
    TemplateProcessing::builder()
        .try_single(format!("{bos_text}:0 $A:0"))
        .ok()?
        .try_pair(format!("{bos_text}:0 $A:0 {bos_text}:1 $B:1"))
        .ok()?
        .special_tokens(vec![(bos_text.to_string(), bos)])
        .build()
        .ok()
}
