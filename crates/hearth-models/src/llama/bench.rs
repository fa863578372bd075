//! Prefill and decode timing, shared by `hearth bench` (native) and the wasm `benchLlama` (the
//! browser): the same warm-up, the same prompts and the same pipelined decode loop everywhere, with
//! the clock passed in (`std::time::Instant` does not exist on wasm32).

use hearth_gpu::WeightFormat;
use serde::Serialize;

use super::{Llama, LlamaOptions};
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::weights::LlamaWeights;

/// Seconds since some fixed instant.
pub type Clock<'a> = &'a dyn Fn() -> f64;

#[derive(Clone, Debug, Serialize)]
pub struct PrefillRow {
    pub tokens: usize,
    pub seconds: f64,
    pub tok_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecodeRow {
    pub depth: usize,
    pub tokens: usize,
    pub tok_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchRows {
    pub prefill: Vec<PrefillRow>,
    pub decode: Vec<DecodeRow>,
}

/// Shapes `hearth bench` and the browser bench can build random INT4 weights for.
pub fn bench_config(shape: &str) -> Result<LlamaConfig> {
    let full = LlamaConfig::llama_3_2_1b();
    match shape {
        "llama-3.2-1b" => Ok(full),
        // Llama-3.2-1B's structure (GQA 4:1, head 64, Llama-3 RoPE, tied) at a size SwiftShader
        // runs in seconds: a smoke test of the browser path, not a speed figure.
        "tiny" => Ok(LlamaConfig {
            vocab_size: 2048,
            hidden_size: 256,
            intermediate_size: 1024,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 1,
            ..full
        }),
        s => Err(ModelError::Config(format!(
            "unknown bench shape `{s}` (llama-3.2-1b or tiny)"
        ))),
    }
}

/// Random INT4 (group 32) weights of `shape` on the GPU, sized for `plan`.
pub async fn random_model(gpu: &hearth_gpu::Gpu, shape: &str, plan: &BenchPlan) -> Result<Llama> {
    let weights = LlamaWeights::random(&bench_config(shape)?, WeightFormat::Q4, 1)?;
    Llama::new(gpu, &weights, plan.options()).await
}

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub prefills: Vec<usize>,
    pub depths: Vec<usize>,
    pub decode_tokens: usize,
}

impl BenchPlan {
    /// Model options that fit every measurement (at least a 4,096-token context).
    pub fn options(&self) -> LlamaOptions {
        let longest = self
            .prefills
            .iter()
            .chain(&self.depths)
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        LlamaOptions {
            max_context: (longest + self.decode_tokens + 1).max(4096),
            prefill_chunk: self
                .prefills
                .iter()
                .copied()
                .max()
                .unwrap_or(1)
                .clamp(1, 2048),
            logits_rows: 1,
        }
    }
}

fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 101) % vocab) as u32).collect()
}

/// Seconds to prefill `n` tokens from an empty context (until the sampled id is back on the host).
pub async fn time_prefill(m: &mut Llama, n: usize, now: Clock<'_>) -> Result<f64> {
    m.reset();
    let p = prompt(n, m.config().vocab_size);
    let t = now();
    m.prefill(&p).await?;
    m.read_token().await?;
    Ok(now() - t)
}

/// Tokens per second decoding `n` tokens after a context of `depth` tokens.
pub async fn time_decode(m: &mut Llama, depth: usize, n: usize, now: Clock<'_>) -> Result<f64> {
    m.reset();
    m.prefill(&prompt(depth.max(1), m.config().vocab_size))
        .await?;
    m.read_token().await?;
    let start = m.position();
    let t = now();
    // As `Llama::generate` runs: step k + 1 is queued before the id of step k is read back.
    m.decode_step().await?;
    for i in 1..=n {
        if i < n {
            m.decode_step().await?;
        }
        m.read_token_at(start + i).await?;
    }
    Ok(n as f64 / (now() - t))
}

/// Warms up (records and compiles every program the measurements use), then times `plan`.
/// `report` sees each row's line as it is measured.
pub async fn run(
    m: &mut Llama,
    plan: &BenchPlan,
    now: Clock<'_>,
    report: &mut dyn FnMut(&str),
) -> Result<BenchRows> {
    for &n in &plan.prefills {
        time_prefill(m, n, now).await?;
    }
    time_decode(m, 1, 4.min(plan.decode_tokens).max(1), now).await?;
    let mut rows = BenchRows {
        prefill: Vec::new(),
        decode: Vec::new(),
    };
    for &n in &plan.prefills {
        let seconds = time_prefill(m, n, now).await?;
        let tok_s = n as f64 / seconds;
        report(&format!(
            "prefill {n:>5}: {tok_s:>10.1} tok/s ({seconds:.4} s)"
        ));
        rows.prefill.push(PrefillRow {
            tokens: n,
            seconds,
            tok_s,
        });
    }
    for &depth in &plan.depths {
        let tok_s = time_decode(m, depth, plan.decode_tokens, now).await?;
        report(&format!("decode at depth {depth:>5}: {tok_s:>10.1} tok/s"));
        rows.decode.push(DecodeRow {
            depth,
            tokens: plan.decode_tokens,
            tok_s,
        });
    }
    Ok(rows)
}
