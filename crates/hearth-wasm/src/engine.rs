//! The generation engine exported to the service worker: a Llama model, its tokenizer and chat template.
//!
//! [`EngineCore`] is plain Rust (tested natively); [`Engine`] wraps it for JavaScript. One request runs
//! at a time: a second `generate` while one is in flight is rejected, not queued, so the UI decides.

use std::cell::RefCell;
use std::rc::Rc;

use hearth_gpu::sample::SamplingParams;
use hearth_gpu::Gpu;
use hearth_models::adapters::tokenizer_and_template;
use hearth_models::llama::{GenerateOptions, Llama, LlamaOptions};
use hearth_models::{load_gguf_bytes, ChatTemplate, Message, ModelError, StreamDecoder, Tokenizer};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::{js_err, shared_gpu, to_js};

/// What to generate. Either `prompt` (text) or `prompt_tokens` (ids).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct GenerateRequest {
    pub prompt: Option<String>,
    pub prompt_tokens: Option<Vec<u32>>,
    /// Wrap `prompt` in the model's chat template.
    pub chat: bool,
    pub max_tokens: Option<usize>,
    /// 0 or absent: greedy.
    pub temperature: Option<f32>,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GenerateResult {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub layers: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub max_context: usize,
    pub gpu_bytes: u64,
}

pub struct EngineCore {
    model: Llama,
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

impl EngineCore {
    /// Loads a GGUF model from its bytes onto `gpu`.
    pub async fn from_gguf(
        gpu: &Gpu,
        bytes: &[u8],
        max_context: usize,
    ) -> Result<Self, ModelError> {
        let files = load_gguf_bytes(bytes)?;
        let (tokenizer, template) = tokenizer_and_template(&files.tokenizer)?;
        let options = LlamaOptions {
            max_context,
            prefill_chunk: 256,
            logits_rows: 1,
        };
        let model = Llama::new(gpu, &files.weights, options).await?;
        Ok(Self {
            model,
            tokenizer,
            template,
        })
    }

    pub fn info(&self) -> ModelInfo {
        let c = self.model.config();
        ModelInfo {
            layers: c.num_hidden_layers,
            hidden_size: c.hidden_size,
            vocab_size: c.vocab_size,
            max_context: self.model.max_context(),
            gpu_bytes: self.model.gpu_bytes(),
        }
    }

    /// Generates from a fresh context, calling `on_piece` with each complete piece of text.
    pub async fn generate(
        &mut self,
        req: &GenerateRequest,
        mut on_piece: impl FnMut(&str) -> bool,
    ) -> Result<GenerateResult, ModelError> {
        let prompt_tokens = match (&req.prompt_tokens, &req.prompt) {
            (Some(ids), _) => ids.clone(),
            (None, Some(text)) if req.chat => {
                let rendered = self
                    .template
                    .render(&[Message::user(text.as_str())], true)?;
                self.tokenizer.encode(&rendered, false)?
            }
            (None, Some(text)) => self.tokenizer.encode(text, true)?,
            (None, None) => {
                return Err(ModelError::Config(
                    "a request needs `prompt` or `prompt_tokens`".into(),
                ))
            }
        };
        let sampling = match req.temperature {
            Some(t) if t > 0.0 => SamplingParams {
                temperature: t,
                top_k: req.top_k.unwrap_or(40),
                top_p: req.top_p.unwrap_or(0.95),
                seed: req.seed.unwrap_or(0),
                ..SamplingParams::greedy()
            },
            _ => SamplingParams::greedy(),
        };
        let opts = GenerateOptions {
            max_tokens: req.max_tokens.unwrap_or(128),
            sampling,
            stop_ids: self.template.stop_ids(&self.tokenizer),
        };
        self.model.reset();
        let tokenizer = &self.tokenizer;
        let mut stream = StreamDecoder::new();
        let gen = self
            .model
            .generate(&prompt_tokens, &opts, |id| {
                match stream.step(tokenizer, id) {
                    Ok(Some(piece)) => on_piece(&piece),
                    _ => true,
                }
            })
            .await?;
        if let Ok(Some(rest)) = stream.flush(tokenizer) {
            on_piece(&rest);
        }
        let text = self.tokenizer.decode(&gen.tokens)?;
        Ok(GenerateResult {
            prompt_tokens,
            tokens: gen.tokens,
            text,
        })
    }
}

/// A loaded model in the service worker.
#[wasm_bindgen]
pub struct Engine {
    core: Rc<RefCell<EngineCore>>,
}

// `generate` holds the core's borrow across awaits on purpose (see there).
#[allow(clippy::await_holding_refcell_ref)]
#[wasm_bindgen]
impl Engine {
    /// Loads a GGUF file's bytes (e.g. fetched from the extension package or OPFS).
    #[wasm_bindgen(js_name = loadGguf)]
    pub async fn load_gguf(bytes: Vec<u8>, max_context: u32) -> Result<Engine, JsError> {
        let gpu = shared_gpu().await.map_err(js_err)?;
        let core = EngineCore::from_gguf(&gpu, &bytes, max_context.max(1) as usize)
            .await
            .map_err(js_err)?;
        Ok(Engine {
            core: Rc::new(RefCell::new(core)),
        })
    }

    /// `{ layers, hidden_size, vocab_size, max_context, gpu_bytes }`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let core = self
            .core
            .try_borrow()
            .map_err(|_| JsError::new("the engine is busy"))?;
        to_js(&core.info())
    }

    /// Generates for `request` (see [`GenerateRequest`]); `on_piece(text)` receives streamed text and
    /// may return `false` to stop. Resolves to `{ prompt_tokens, tokens, text }`.
    pub fn generate(
        &self,
        request: JsValue,
        on_piece: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let core = self.core.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let req: GenerateRequest =
                serde_wasm_bindgen::from_value(request).map_err(|e| JsValue::from(js_err(e)))?;
            let mut core = core
                .try_borrow_mut()
                .map_err(|_| JsValue::from(JsError::new("the engine is busy")))?;
            let result = core
                .generate(&req, |piece| match &on_piece {
                    Some(f) => f
                        .call1(&JsValue::NULL, &JsValue::from_str(piece))
                        .map(|v| v.as_bool() != Some(false))
                        .unwrap_or(true),
                    None => true,
                })
                .await
                .map_err(|e| JsValue::from(js_err(e)))?;
            to_js(&result).map_err(JsValue::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/tiny/tiny-llama.gguf"
        ))
        .unwrap()
    }

    #[test]
    fn generates_from_gguf_bytes_deterministically() {
        let gpu = pollster::block_on(Gpu::new(&hearth_gpu::GpuOptions::default())).unwrap();
        let mut core = pollster::block_on(EngineCore::from_gguf(&gpu, &tiny(), 64)).unwrap();
        let req = GenerateRequest {
            prompt: Some("Hello".into()),
            max_tokens: Some(8),
            ..Default::default()
        };
        let mut pieces = String::new();
        let a = pollster::block_on(core.generate(&req, |p| {
            pieces.push_str(p);
            true
        }))
        .unwrap();
        assert!(!a.prompt_tokens.is_empty());
        assert!(a.tokens.len() <= 8, "{a:?}");
        assert_eq!(pieces, a.text, "streamed pieces add up to the decoded text");
        let b = pollster::block_on(core.generate(&req, |_| true)).unwrap();
        assert_eq!(
            a.tokens, b.tokens,
            "greedy generation restarts from a fresh context"
        );
        let none = GenerateRequest::default();
        assert!(pollster::block_on(core.generate(&none, |_| true)).is_err());
        assert!(pollster::block_on(EngineCore::from_gguf(&gpu, &tiny()[..1000], 64)).is_err());
    }
}
