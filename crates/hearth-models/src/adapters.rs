//! The engine behind the knowledge layer's and the assistant's traits, once for the CLI and the
//! browser: the sentence encoder is an [`Embedder`], a Llama-family model with its tokenizer and
//! chat template is a [`Generator`].

use hearth_assistant::{AssistantError, Generator};
use hearth_gpu::sample::SamplingParams;
use hearth_knowledge::{Embedder, KnowledgeError};

use crate::bert::SentenceEncoder;
use crate::chat::{ChatTemplate, Message};
use crate::error::ModelError;
use crate::llama::{GenerateOptions, Llama, LlamaOptions};
use crate::loader::{ModelFiles, TokenizerFiles};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A model's tokenizer and its chat template (which names the tokenizer's BOS/EOS text).
pub fn tokenizer_and_template(
    files: &TokenizerFiles,
) -> Result<(Tokenizer, ChatTemplate), ModelError> {
    let tokenizer = Tokenizer::from_files(files)?;
    let name = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
    let (bos, eos) = (
        name(tokenizer.bos()),
        name(tokenizer.eos_ids().first().copied()),
    );
    let template = ChatTemplate::from_files(files, bos.as_deref(), eos.as_deref())?;
    Ok((tokenizer, template))
}

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
    /// The token ids whose keys and values the model's cache holds, in order.
    cached: Vec<u32>,
    /// Prompt tokens the last call took from the cache instead of prefilling them.
    reused: usize,
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
            cached: Vec::new(),
            reused: 0,
        }
    }

    /// Builds the decoder from loaded files on `gpu` (the one load path for CLI and browser).
    pub async fn from_files(
        gpu: &hearth_gpu::Gpu,
        files: &ModelFiles,
        options: LlamaOptions,
    ) -> Result<Self, ModelError> {
        let (tokenizer, template) = tokenizer_and_template(&files.tokenizer)?;
        let model = Llama::new(gpu, &files.weights, options).await?;
        Ok(Self::new(model, tokenizer, template))
    }

    /// Prompt tokens the last `generate` / `choose` found already in the cache.
    pub fn reused_tokens(&self) -> usize {
        self.reused
    }

    /// How much of `ids` the cache already holds: the longest common prefix with what was fed
    /// last, less one token so that at least one is fed (and the next one sampled). Prompts that
    /// repeat an earlier one — the citation question after its answer, chat turns and summary
    /// steps sharing their instructions — then prefill only what is new.
    fn reuse(&mut self, ids: &[u32]) -> usize {
        let common = self
            .cached
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count();
        let keep = common.min(ids.len().saturating_sub(1));
        self.model.truncate(keep);
        self.cached.truncate(keep);
        self.reused = keep;
        keep
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
        // Every prompt is complete (system, history, sources); only its new part is prefilled.
        let keep = self.reuse(&ids);
        let mut stream = StreamDecoder::new();
        let mut text = String::new();
        let tokenizer = &self.tokenizer;
        let mut failed = None;
        let generation = self
            .model
            .generate(&ids[keep..], &opts, |id| match stream.step(tokenizer, id) {
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
            .await;
        // The cache now holds the prompt and the generated tokens that were fed back.
        self.cached = ids;
        if let Ok(g) = &generation {
            self.cached.extend(&g.tokens);
        }
        self.cached.truncate(self.model.position());
        generation.map_err(gen_err)?;
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
        let keep = self.reuse(&ids);
        let fed = self.model.prefill(&ids[keep..]).await;
        self.cached = ids;
        self.cached.truncate(self.model.position());
        fed.map_err(gen_err)?;
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
