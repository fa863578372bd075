//! Prefill and decode timing, shared by `hearth bench` (native) and the wasm `benchLlama` (the
//! browser): the same warm-up, the same prompts and the same pipelined decode loop everywhere, with
//! the clock passed in (`std::time::Instant` does not exist on wasm32).

use hearth_gpu::profile::{summarize, KernelRow};
use hearth_gpu::WeightFormat;
use serde::Serialize;

use super::{Llama, LlamaOptions, DECODE_AHEAD};
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
    /// Host time per token spent recording and submitting the step (the GPU runs meanwhile).
    pub cpu_us_per_token: f64,
    /// The same steps all queued before any id is read back: the GPU's own pace, which the
    /// pipelined figure (`tok_s`) falls short of when the host or the readback holds it up.
    pub queued_tok_s: f64,
}

/// Where one pass's GPU time goes, per kernel role (see [`hearth_gpu::profile`]).
#[derive(Clone, Debug, Serialize)]
pub struct ProfileTable {
    /// "decode at depth N" or "prefill N".
    pub pass: String,
    /// Passes averaged.
    pub runs: usize,
    /// Sum of the kernels' GPU time per pass, µs.
    pub gpu_us: f64,
    /// Whether each kernel ran in its own compute pass (no timestamps inside passes).
    pub split_passes: bool,
    pub kernels: Vec<KernelRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchRows {
    pub prefill: Vec<PrefillRow>,
    pub decode: Vec<DecodeRow>,
    pub profiles: Vec<ProfileTable>,
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

/// The format of the random weights: symmetric INT4 (group 32), what `hearth convert` makes of a
/// Hugging Face checkpoint by default and GGUF Q4_0 loads as.
pub const RANDOM_FORMAT: WeightFormat = WeightFormat::Q4S;

/// Random [`RANDOM_FORMAT`] weights of `shape` in host memory.
pub fn random_weights(shape: &str) -> Result<LlamaWeights> {
    LlamaWeights::random(&bench_config(shape)?, RANDOM_FORMAT, 1)
}

/// [`random_weights`] of `shape` on the GPU, sized for `plan`.
pub async fn random_model(gpu: &hearth_gpu::Gpu, shape: &str, plan: &BenchPlan) -> Result<Llama> {
    Llama::new(gpu, &random_weights(shape)?, plan.options()).await
}

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub prefills: Vec<usize>,
    pub depths: Vec<usize>,
    pub decode_tokens: usize,
    /// Also profile every measured pass per kernel (needs timestamp queries).
    pub profile: bool,
    /// The device's memory bandwidth, GB/s, to state each mat-vec's fraction of it.
    pub peak_gb_s: Option<f64>,
    /// Tokens per prefill pass (longer prompts go in several); default: the longest prompt, ≤ 2,048.
    /// The scratch activations, and so the GPU memory, scale with it.
    pub prefill_chunk: Option<usize>,
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
                .prefill_chunk
                .unwrap_or_else(|| self.prefills.iter().copied().max().unwrap_or(1))
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

/// A fresh context of `depth` (at least 1) prompt tokens with its sampled id read back: where the
/// decode timings and profiles start. Returns the position.
async fn decode_ready(m: &mut Llama, depth: usize) -> Result<usize> {
    m.reset();
    m.prefill(&prompt(depth.max(1), m.config().vocab_size))
        .await?;
    m.read_token().await?;
    Ok(m.position())
}

/// Tokens per second decoding `n` tokens after a context of `depth` tokens, and the host µs per
/// token spent recording and submitting steps.
pub async fn time_decode(
    m: &mut Llama,
    depth: usize,
    n: usize,
    now: Clock<'_>,
) -> Result<(f64, f64)> {
    let start = decode_ready(m, depth).await?;
    let mut host = 0.0;
    let t = now();
    // As `Llama::generate` runs: up to DECODE_AHEAD steps are queued before an id is read back.
    for i in 1..=n {
        while m.position() - start < (i + DECODE_AHEAD).min(n) {
            let s = now();
            m.decode_step().await?;
            host += now() - s;
        }
        m.read_token_at(start + i).await?;
    }
    Ok((n as f64 / (now() - t), host * 1e6 / n as f64))
}

/// Tokens per second decoding `n` tokens after `depth` with every step queued before the last
/// id is read back (each step samples on the GPU and feeds the next).
pub async fn time_decode_queued(
    m: &mut Llama,
    depth: usize,
    n: usize,
    now: Clock<'_>,
) -> Result<f64> {
    decode_ready(m, depth).await?;
    let t = now();
    for _ in 0..n {
        m.decode_step().await?;
    }
    m.read_token().await?;
    Ok(n as f64 / (now() - t))
}

/// Per-kernel GPU time of `runs` decode steps after `depth` tokens, or of one prefill of `n`.
async fn profile(m: &mut Llama, what: Profiled, runs: usize) -> Result<ProfileTable> {
    m.reset();
    let vocab = m.config().vocab_size;
    let mut all = Vec::new();
    let pass = match what {
        Profiled::Decode(depth) => {
            decode_ready(m, depth).await?;
            for _ in 0..runs {
                all.push(m.profile_decode_step().await?);
            }
            format!("decode at depth {depth}")
        }
        Profiled::Prefill(n) => {
            for _ in 0..runs {
                m.reset();
                all.push(m.profile_prefill(&prompt(n, vocab)).await?);
            }
            format!("prefill {n}")
        }
    };
    let kernels = summarize(&all);
    Ok(ProfileTable {
        pass,
        runs,
        gpu_us: kernels.iter().map(|k| k.us).sum(),
        split_passes: hearth_gpu::profile::per_dispatch_passes(m.gpu()),
        kernels,
    })
}

enum Profiled {
    Decode(usize),
    Prefill(usize),
}

/// The lines `report` prints for a profile: one per kernel role.
pub fn profile_lines(t: &ProfileTable, peak_gb_s: Option<f64>) -> Vec<String> {
    let mut out = vec![format!(
        "profile of {} (mean of {}, {}): {:.1} µs of GPU time per pass",
        t.pass,
        t.runs,
        if t.split_passes {
            "one compute pass per kernel"
        } else {
            "timestamps inside the pass"
        },
        t.gpu_us
    )];
    for k in &t.kernels {
        let mut line = format!(
            "  {:<10} {:>4} dispatches {:>9.1} µs {:>5.1} %",
            k.name,
            k.dispatches,
            k.us,
            100.0 * k.us / t.gpu_us.max(1e-9)
        );
        if k.weight_bytes > 0 {
            line += &format!(
                " {:>8.1} MB {:>7.0} GB/s",
                k.weight_bytes as f64 / 1e6,
                k.gb_s
            );
            if let Some(peak) = peak_gb_s {
                line += &format!(" ({:.0} % of {peak:.0})", 100.0 * k.gb_s / peak);
            }
        }
        out.push(line);
    }
    out
}

/// Warms up (records and compiles every program the measurements use), then times `plan`.
/// `report` sees each row's line as it is measured.
pub async fn run(
    m: &mut Llama,
    plan: &BenchPlan,
    now: Clock<'_>,
    report: &mut dyn FnMut(&str),
) -> Result<BenchRows> {
    // Every pass measured, again and again for two seconds before timing anything: a GPU that
    // idled drops its clocks, and the process's first seconds run slow (on the H200, the first
    // Hearth process after llama-bench: prefill 512 at 19k tok/s and pipelined decode at 932
    // tok/s with half a second of decode as warm-up, where the next process gave 26k and 1,093).
    let warm = now();
    while now() - warm < 2.0 {
        for &n in &plan.prefills {
            time_prefill(m, n, now).await?;
        }
        time_decode(m, 1, 4.min(plan.decode_tokens).max(1), now).await?;
    }
    let mut rows = BenchRows {
        prefill: Vec::new(),
        decode: Vec::new(),
        profiles: Vec::new(),
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
        let (tok_s, cpu_us_per_token) = time_decode(m, depth, plan.decode_tokens, now).await?;
        let queued_tok_s = time_decode_queued(m, depth, plan.decode_tokens, now).await?;
        report(&format!(
            "decode at depth {depth:>5}: {tok_s:>10.1} tok/s ({cpu_us_per_token:.0} µs/token host encode+submit; all steps queued: {queued_tok_s:.1} tok/s)"
        ));
        rows.decode.push(DecodeRow {
            depth,
            tokens: plan.decode_tokens,
            tok_s,
            cpu_us_per_token,
            queued_tok_s,
        });
    }
    if plan.profile {
        let passes = plan
            .prefills
            .iter()
            .filter(|&&n| n <= plan.options().prefill_chunk)
            .map(|&n| (Profiled::Prefill(n), 3))
            .chain(plan.depths.iter().map(|&d| (Profiled::Decode(d), 20)));
        for (what, runs) in passes {
            let table = profile(m, what, runs).await?;
            for line in profile_lines(&table, plan.peak_gb_s) {
                report(&line);
            }
            rows.profiles.push(table);
        }
    }
    Ok(rows)
}
