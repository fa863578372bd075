//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`, or
//! `chat_template` in tokenizer_config.json) rendered with minijinja the way `transformers` renders
//! it with jinja2 (`trim_blocks`, `lstrip_blocks`, `raise_exception`, `bos_token`/`eos_token`,
//! Python string methods), with ChatML and Llama-3 built in for models that ship none.
//!
//! Not provided (templates fall back on their own defaults): `strftime_now`, `tools`, `documents`.

#[cfg(test)]
mod tests;

use minijinja::{Environment, ErrorKind};

use crate::error::{ModelError, Result};
use crate::gguf::{MetaArray, MetaValue};
use crate::loader::TokenizerFiles;
use crate::tokenizer::{Tokenizer, EOG_TEXTS};

const CHATML: &str = include_str!("chatml.jinja");
const LLAMA3: &str = include_str!("llama3.jinja");

fn err(msg: impl Into<String>) -> ModelError {
    ModelError::Template(msg.into())
}

/// Messages are the assistant's own type (one definition for every crate that chats).
pub use hearth_assistant::{Message, Role};

/// A compiled-on-demand Jinja chat template with the special-token texts it may use.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTemplate {
    source: String,
    bos: Option<String>,
    eos: Option<String>,
}

impl ChatTemplate {
    /// A template from source; fails on a syntax error.
    pub fn new(source: impl Into<String>, bos: Option<&str>, eos: Option<&str>) -> Result<Self> {
        let t = Self {
            source: source.into(),
            bos: bos.map(str::to_string),
            eos: eos.map(str::to_string),
        };
        environment()
            .template_from_str(&t.source)
            .map_err(|e| err(format!("does not compile: {e:#}")))?;
        Ok(t)
    }

    /// ChatML (`<|im_start|>role\n…<|im_end|>\n`), without a default system prompt.
    pub fn chatml() -> Self {
        Self {
            source: CHATML.to_string(),
            bos: None,
            eos: Some("<|im_end|>".into()),
        }
    }

    /// Meta-Llama-3-Instruct's template (`<|begin_of_text|><|start_header_id|>system
    /// <|end_header_id|>\n\n…<|eot_id|>`).
    pub fn llama3() -> Self {
        Self {
            source: LLAMA3.to_string(),
            bos: Some("<|begin_of_text|>".into()),
            eos: Some("<|eot_id|>".into()),
        }
    }

    /// The model's own template, or a built-in one chosen by the vocabulary's markers
    /// (`<|start_header_id|>` → Llama-3, `<|im_start|>` → ChatML) when it ships none.
    /// `bos`/`eos` are the texts of the tokenizer's BOS and EOS tokens.
    pub fn from_files(
        files: &TokenizerFiles,
        bos: Option<&str>,
        eos: Option<&str>,
    ) -> Result<Self> {
        let source = match files {
            TokenizerFiles::Gguf(meta) => match meta.get("tokenizer.chat_template") {
                None => None,
                Some(MetaValue::String(s)) => Some(s.clone()),
                Some(v) => {
                    return Err(err(format!(
                        "tokenizer.chat_template is a {}, not a string",
                        v.type_name()
                    )))
                }
            },
            TokenizerFiles::Hf {
                tokenizer_config_json: Some(bytes),
                ..
            } => hf_template(bytes)?,
            TokenizerFiles::Hf { .. } => None,
        };
        let vocab_has = |marker: &str| vocab_has(files, marker);
        match source {
            Some(s) => Self::new(s, bos, eos),
            None if vocab_has("<|start_header_id|>") => Ok(Self {
                bos: bos.map(str::to_string).or(Self::llama3().bos),
                eos: eos.map(str::to_string).or(Self::llama3().eos),
                ..Self::llama3()
            }),
            None if vocab_has("<|im_start|>") => Ok(Self {
                bos: bos.map(str::to_string),
                ..Self::chatml()
            }),
            None => Err(err(
                "the model has no chat template and its vocabulary has neither ChatML nor \
                 Llama-3 markers",
            )),
        }
    }

    /// The Jinja source (for packs).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = environment();
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| err(format!("does not compile: {e:#}")))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos.as_deref().unwrap_or(""),
                eos_token => self.eos.as_deref().unwrap_or(""),
            })
            .map_err(|e| err(format!("render: {e:#}")))
    }

    /// Renders and tokenizes the prompt, adding BOS only when the model wants it and the template
    /// did not already write it (Llama-3's template does).
    pub fn render_ids(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let text = self.render(messages, add_generation_prompt)?;
        let bos_written = self
            .bos
            .as_deref()
            .is_some_and(|b| !b.is_empty() && text.starts_with(b));
        tokenizer.encode(&text, !bos_written)
    }

    /// Texts that end the assistant's turn: the EOS text and the end-of-turn markers the template
    /// writes (`<|im_end|>`, `<|eot_id|>`, …).
    pub fn stop_strings(&self) -> Vec<String> {
        let mut stops: Vec<String> = self.eos.iter().cloned().collect();
        for m in EOG_TEXTS {
            if self.source.contains(m) && !stops.iter().any(|s| s == m) {
                stops.push(m.to_string());
            }
        }
        stops
    }

    /// The tokenizer's end ids plus the ids of stop strings that are single tokens.
    pub fn stop_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids = tokenizer.eos_ids().to_vec();
        for s in self.stop_strings() {
            if let Some(id) = tokenizer.token_to_id(&s) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

/// Whether the vocabulary has a token with text `marker`.
fn vocab_has(files: &TokenizerFiles, marker: &str) -> bool {
    match files {
        TokenizerFiles::Gguf(meta) => match meta.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array(MetaArray::String(t))) => t.iter().any(|t| t == marker),
            _ => false,
        },
        // A JSON string equal to the marker anywhere (vocab key or added token content).
        TokenizerFiles::Hf { tokenizer_json, .. } => {
            String::from_utf8_lossy(tokenizer_json).contains(&format!("\"{marker}\""))
        }
    }
}

/// `chat_template` of a tokenizer_config.json: a string, or a list of `{name, template}` of which
/// the one named `default` (else the first) is used.
fn hf_template(config: &[u8]) -> Result<Option<String>> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| err(format!("bad tokenizer_config.json: {e}")))?;
    match v.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            let named = |name: &str| {
                list.iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
            };
            let t = named("default").or(list.first());
            t.and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| err("chat_template list without a template"))
        }
        Some(other) => Err(err(format!("chat_template is {other}"))),
    }
}

/// jinja2 as `transformers` configures it.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env
}
