//! The engine behind the knowledge layer's and the assistant's traits, once for the CLI and the
//! browser: the sentence encoder is an [`Embedder`], a Llama-family model with its tokenizer and
//! chat template is a [`Generator`].

use hearth_assistant::{AssistantError, Generator};
use hearth_gpu::sample::SamplingParams;
use hearth_knowledge::{Embedder, KnowledgeError};

use crate::bert::SentenceEncoder;
use crate::chat::{ChatTemplate, Message};
use crate::llama::{GenerateOptions, Llama};
use crate::tokenizer::{StreamDecoder, Tokenizer};

impl Embedder for SentenceEncoder {
    fn dim(&self) -> usize {
        SentenceEncoder::dim(self)
    }
    fn max_tokens(&self) -> usize {
        SentenceEncoder::max_tokens(self)
    }
    fn count_tokens(&self, text: &str) -> usize {
        SentenceEncoder::count_tokens(self, text)
    }
    async fn embed(&self, texts: &[&str]) -> hearth_knowledge::Result<Vec<Vec<f32>>> {
        SentenceEncoder::embed(self, texts)
            .await
            .map_err(|e| KnowledgeError::Embed(e.to_string()))
    }
}

/// A chat model: the decoder, its tokenizer and chat template, and how it samples.
pub struct ChatModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub sampling: SamplingParams,
}

impl ChatModel {
    /// Greedy decoding with a mild repetition penalty over the last 64 tokens: small models
    /// (SmolLM2-135M) otherwise fall into loops in long answers and summaries.
    pub fn new(model: Llama, tokenizer: Tokenizer, template: ChatTemplate) -> Self {
        Self {
            model,
            tokenizer,
            template,
            sampling: SamplingParams {
                repetition_penalty: 1.15,
                penalty_last_n: 64,
                ..SamplingParams::greedy()
            },
        }
    }
}

fn gen_err(e: impl std::fmt::Display) -> AssistantError {
    AssistantError::Generator(e.to_string())
}

impl Generator for ChatModel {
    fn context_len(&self) -> usize {
        self.model.max_context()
    }

    fn count_tokens(&self, text: &str) -> usize {
        // A rendered chat carries its own BOS text, so nothing is added (as `generate` encodes).
        self.tokenizer
            .encode(text, false)
            .map_or(usize::MAX, |ids| ids.len())
    }

    fn render(&self, messages: &[Message]) -> hearth_assistant::Result<String> {
        self.template.render(messages, true).map_err(gen_err)
    }

    async fn generate(
        &mut self,
        prompt: &str,
        max_tokens: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> hearth_assistant::Result<String> {
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var_os("HEARTH_DEBUG_PROMPT").is_some() {
            eprintln!("--- prompt ---\n{prompt}\n--- end of prompt ---");
        }
        let ids = self.tokenizer.encode(prompt, false).map_err(gen_err)?;
        let opts = GenerateOptions {
            max_tokens,
            sampling: self.sampling,
            stop_ids: self.template.stop_ids(&self.tokenizer),
        };
        // Every prompt is complete (system, history, sources): start from an empty context.
        self.model.reset();
        let mut stream = StreamDecoder::new();
        let mut text = String::new();
        let tokenizer = &self.tokenizer;
        let mut failed = None;
        self.model
            .generate(&ids, &opts, |id| match stream.step(tokenizer, id) {
                Ok(Some(piece)) => {
                    text.push_str(&piece);
                    on_piece(&piece)
                }
                Ok(None) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })
            .await
            .map_err(gen_err)?;
        if let Some(e) = failed {
            return Err(gen_err(e));
        }
        if let Ok(Some(rest)) = stream.flush(tokenizer) {
            text.push_str(&rest);
            on_piece(&rest);
        }
        Ok(text)
    }

    async fn choose(&mut self, prompt: &str, options: &[&str]) -> hearth_assistant::Result<usize> {
        let ids = self.tokenizer.encode(prompt, false).map_err(gen_err)?;
        self.model.reset();
        self.model.prefill(&ids).await.map_err(gen_err)?;
        let logits = self.model.last_logits().await.map_err(gen_err)?;
        let mut best = (0, f32::NEG_INFINITY);
        for (i, option) in options.iter().enumerate() {
            let first = self.tokenizer.encode(option, false).map_err(gen_err)?;
            let score = first
                .first()
                .and_then(|&t| logits.get(t as usize))
                .copied()
                .unwrap_or(f32::NEG_INFINITY);
            if score > best.1 {
                best = (i, score);
            }
        }
        Ok(best.0)
    }
}
