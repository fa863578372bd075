//! The Llama decoder on Hearth's GPU kernels.
//!
//! Weights are uploaded once; the forward pass for a batch of `m` tokens is recorded once as a
//! [`Program`] (pipelines and bind groups made up front) and replayed with a new [`Step`] position, so
//! a decode step is one command buffer whose only readback is the sampled token id. The token history
//! lives on the GPU: the embedding gather reads `tokens[pos + i]` and sampling writes `tokens[pos + m]`.

pub mod bench;
mod generate;

use std::collections::HashMap;

use hearth_gpu::attention::{rope_attention, AttentionScratch, Rope};
use hearth_gpu::embed::embed;
use hearth_gpu::kv_cache::KvCache;
use hearth_gpu::matmul::{linear, Epilogue, LinearSpec};
use hearth_gpu::profile::KernelTime;
use hearth_gpu::rope::RopeStyle as GpuRope;
use hearth_gpu::sample::{Sampler, SamplingParams};
use hearth_gpu::{wgpu, Gpu, GpuMatrix, Program, Step, Tensor};

pub use generate::{GenerateOptions, Generation, StopReason};

use crate::config::{LlamaConfig, RopeStyle};
use crate::error::{ModelError, Result};
use crate::weights::LlamaWeights;

/// Decode steps queued ahead of the token being read back. With one, the GPU idles whenever the
/// host takes longer than a step to wake, read and queue the next (the H200's first bench
/// process decoded at 630 tok/s pipelined against 1,056 with every step queued); two leave a
/// whole step of slack.
pub const DECODE_AHEAD: usize = 2;
const READBACK_SLOTS: usize = DECODE_AHEAD + 1;

/// Sizes of the per-request buffers.
#[derive(Clone, Debug)]
pub struct LlamaOptions {
    /// Context to allocate the KV cache for (clamped to the model's limit).
    pub max_context: usize,
    /// Prompt tokens processed per prefill submission (bounds activation memory).
    pub prefill_chunk: usize,
    /// Rows of logits kept for teacher forcing (`logits_all`); 1 is enough for generation.
    pub logits_rows: usize,
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            max_context: 4096,
            prefill_chunk: 512,
            logits_rows: 1,
        }
    }
}

/// One decoder block on the GPU.
struct Layer {
    attn_norm: Tensor<f32>, // [D]
    wqkv: GpuMatrix,        // [(H + 2·KV)·hd, D]: q heads, k heads, v heads
    wo: GpuMatrix,          // [D, H·hd]
    ffn_norm: Tensor<f32>,  // [D]
    w_gate_up: GpuMatrix,   // [2F, D]: gate rows then up rows
    w_down: GpuMatrix,      // [D, F]
}

/// Activations for up to `rows` tokens.
struct Scratch {
    rows: usize,
    x: Tensor<f32>,          // [rows, D] residual stream
    qkv: Tensor<f32>,        // [rows, (H + 2·KV)·hd]
    attn: Tensor<f32>,       // [rows, H·hd]
    h: Tensor<f32>,          // [rows, F]
    logits: Tensor<f32>,     // [V] the last row's, which sampling reads
    logits_all: Tensor<f32>, // [logits_rows, V] teacher forcing
}

/// What the end of a recorded forward pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Head {
    /// Only fill the KV cache (an early prompt chunk).
    None,
    /// LM head on the last row, then sample into the token history.
    Sample,
    /// LM head on every row (teacher forcing).
    AllLogits,
}

pub struct Llama {
    gpu: Gpu,
    config: LlamaConfig,
    options: LlamaOptions,
    embed: GpuMatrix, // [V, D]
    layers: Vec<Layer>,
    norm: Tensor<f32>,          // [D]
    lm_head: Option<GpuMatrix>, // [V, D]; None = tied to `embed`
    inv_freq: Tensor<f32>,      // [hd/2]
    cache: KvCache,
    attn_scratch: AttentionScratch,
    step: Step,
    tokens: Tensor<u32>, // [max_context + 1] token history
    scratch: Scratch,
    sampler: Sampler,
    programs: HashMap<(usize, Head), Program>,
    /// Tokens already in the KV cache.
    pos: usize,
    /// Host-readable slots for sampled ids, by position modulo [`READBACK_SLOTS`]: the id of step
    /// `k` can be read while the steps queued after it (up to [`DECODE_AHEAD`]) run.
    readback: [wgpu::Buffer; READBACK_SLOTS],
    /// Per slot: the position whose id a submitted copy put there, and that submission.
    copied: [Option<(usize, wgpu::SubmissionIndex)>; READBACK_SLOTS],
    weight_bytes: u64,
}

impl Llama {
    /// Uploads `w` and prepares buffers for `options`.
    pub async fn new(gpu: &Gpu, w: &LlamaWeights, options: LlamaOptions) -> Result<Self> {
        w.validate()?;
        let c = w.config.clone();
        let max_context = options.max_context.min(c.max_position_embeddings).max(1);
        let options = LlamaOptions {
            max_context,
            prefill_chunk: options.prefill_chunk.clamp(1, max_context),
            logits_rows: options.logits_rows.clamp(1, max_context),
        };
        let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        // Every matrix in one batch, so natively they upload on several threads.
        let mut jobs = vec![("embed".to_string(), vec![&w.embed])];
        if let Some(h) = &w.lm_head {
            jobs.push(("lm_head".into(), vec![h]));
        }
        for (i, l) in w.layers.iter().enumerate() {
            jobs.push((format!("blk{i}.qkv"), vec![&l.wq, &l.wk, &l.wv]));
            jobs.push((format!("blk{i}.o"), vec![&l.wo]));
            jobs.push((format!("blk{i}.gate_up"), vec![&l.w_gate, &l.w_up]));
            jobs.push((format!("blk{i}.down"), vec![&l.w_down]));
        }
        let mut uploaded = GpuMatrix::upload_many(gpu, &jobs)?.into_iter();
        let mut next = || {
            uploaded
                .next()
                .ok_or_else(|| ModelError::Config("an upload went missing".into()))
        };
        let embed = next()?;
        let lm_head = w.lm_head.as_ref().map(|_| next()).transpose()?;
        let mut layers = Vec::with_capacity(w.layers.len());
        for l in &w.layers {
            layers.push(Layer {
                attn_norm: Tensor::from_slice(gpu, "attn_norm", &[d], &l.attn_norm)?,
                wqkv: next()?,
                wo: next()?,
                ffn_norm: Tensor::from_slice(gpu, "ffn_norm", &[d], &l.ffn_norm)?,
                w_gate_up: next()?,
                w_down: next()?,
            });
        }
        let weight_bytes = embed.bytes()
            + lm_head.as_ref().map_or(0, |m| m.bytes())
            + layers
                .iter()
                .map(|l| {
                    l.wqkv.bytes()
                        + l.wo.bytes()
                        + l.w_gate_up.bytes()
                        + l.w_down.bytes()
                        + 8 * d as u64
                })
                .sum::<u64>();
        let rows = options.prefill_chunk.max(options.logits_rows);
        let scratch = Scratch {
            rows,
            x: Tensor::zeros(gpu, "x", &[rows, d])?,
            qkv: Tensor::zeros(gpu, "qkv", &[rows, c.qkv_rows()])?,
            attn: Tensor::zeros(gpu, "attn", &[rows, c.num_attention_heads * c.head_dim])?,
            h: Tensor::zeros(gpu, "h", &[rows, f])?,
            logits: Tensor::zeros(gpu, "logits", &[v])?,
            logits_all: Tensor::zeros(gpu, "logits_all", &[options.logits_rows, v])?,
        };
        let cache = KvCache::new(
            gpu,
            c.num_hidden_layers,
            c.num_key_value_heads,
            c.head_dim,
            max_context,
        )?;
        let attn_scratch = AttentionScratch::new(
            gpu,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
            max_context,
        )?;
        let readback =
            std::array::from_fn(|_| hearth_gpu::tensor::staging(gpu, "token readback", 4));
        let model = Self {
            gpu: gpu.clone(),
            embed,
            layers,
            norm: Tensor::from_slice(gpu, "norm", &[d], &w.norm)?,
            lm_head,
            inv_freq: Tensor::from_slice(gpu, "inv_freq", &[c.head_dim / 2], &c.rope_inv_freq())?,
            cache,
            attn_scratch,
            step: Step::new(gpu),
            tokens: Tensor::zeros(gpu, "tokens", &[max_context + 1])?,
            scratch,
            sampler: Sampler::new(gpu, v, &SamplingParams::greedy())?,
            programs: HashMap::new(),
            pos: 0,
            readback,
            copied: Default::default(),
            weight_bytes,
            options,
            config: c,
        };
        gpu.take_uncaptured_error()?;
        Ok(model)
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Tokens the KV cache can hold.
    pub fn max_context(&self) -> usize {
        self.options.max_context
    }
    /// Tokens currently in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Forgets the conversation (the KV cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.truncate(0);
    }
    /// Keeps only the first `n` tokens of the context (no-op when it holds fewer): the next
    /// prefill continues after them, reusing their cached keys and values.
    pub fn truncate(&mut self, n: usize) {
        if n < self.pos {
            self.pos = n;
            self.copied = Default::default();
        }
    }
    /// GPU memory held by the weights.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }
    /// GPU memory held by the model: weights, KV cache and activations (with the device's shared
    /// scratch buffers, which the tensor-core prefill uses).
    pub fn gpu_bytes(&self) -> u64 {
        let s = &self.scratch;
        self.weight_bytes
            + self.cache.bytes()
            + self.gpu.scratch_bytes()
            + [
                s.x.bytes(),
                s.qkv.bytes(),
                s.attn.bytes(),
                s.h.bytes(),
                s.logits.bytes(),
                s.logits_all.bytes(),
                self.tokens.bytes(),
            ]
            .iter()
            .sum::<u64>()
    }

    /// Records the forward pass of `m` tokens starting at `step.pos`.
    async fn record(&self, m: usize, head: Head) -> Result<Program> {
        let (gpu, c, s) = (&self.gpu, &self.config, &self.scratch);
        let (nh, nkv, hd, eps) = (
            c.num_attention_heads,
            c.num_key_value_heads,
            c.head_dim,
            c.rms_norm_eps,
        );
        let rope = Rope {
            style: match c.rope_style {
                RopeStyle::Adjacent => GpuRope::Adjacent,
                RopeStyle::Half => GpuRope::Half,
            },
            inv_freq: &self.inv_freq,
        };
        let mut p = Program::new();
        p.tagged(
            "embed",
            embed(gpu, &self.embed, &self.tokens, &self.step, m, &s.x).await?,
        );
        for (l, layer) in self.layers.iter().enumerate() {
            // x += Wo · attention(rope(Wqkv · norm(x)))
            let qkv = LinearSpec {
                weight: &layer.wqkv,
                norm: Some((&layer.attn_norm, eps)),
                epilogue: Epilogue::Store,
                bias: None,
            };
            p.tagged("qkv", linear(gpu, &qkv, &s.x, 0, m, &s.qkv).await?);
            // RoPE, the KV-cache store and attention: one dispatch for a decode step.
            p.tagged(
                "attention",
                rope_attention(
                    gpu,
                    &s.qkv,
                    m,
                    nh,
                    nkv,
                    hd,
                    rope,
                    &self.cache,
                    l,
                    &self.step,
                    &self.attn_scratch,
                    &s.attn,
                )
                .await?,
            );
            let wo = LinearSpec {
                weight: &layer.wo,
                norm: None,
                epilogue: Epilogue::Accumulate,
                bias: None,
            };
            p.tagged("o_proj", linear(gpu, &wo, &s.attn, 0, m, &s.x).await?);
            // x += Wdown · (silu(Wgate · norm(x)) ⊙ Wup · norm(x))
            let gate_up = LinearSpec {
                weight: &layer.w_gate_up,
                norm: Some((&layer.ffn_norm, eps)),
                epilogue: Epilogue::SiluGate,
                bias: None,
            };
            p.tagged("gate_up", linear(gpu, &gate_up, &s.x, 0, m, &s.h).await?);
            let down = LinearSpec {
                weight: &layer.w_down,
                norm: None,
                epilogue: Epilogue::Accumulate,
                bias: None,
            };
            p.tagged("down", linear(gpu, &down, &s.h, 0, m, &s.x).await?);
        }
        let lm = LinearSpec {
            weight: self.lm_head.as_ref().unwrap_or(&self.embed),
            norm: Some((&self.norm, eps)),
            epilogue: Epilogue::Store,
            bias: None,
        };
        match head {
            Head::None => {}
            Head::Sample => {
                p.tagged(
                    "lm_head",
                    linear(gpu, &lm, &s.x, m - 1, 1, &s.logits).await?,
                );
                p.tagged(
                    "sample",
                    self.sampler
                        .sample(gpu, &s.logits, &self.tokens, &self.step)
                        .await?,
                );
            }
            Head::AllLogits => p.tagged(
                "lm_head",
                linear(gpu, &lm, &s.x, 0, m, &s.logits_all).await?,
            ),
        }
        Ok(p)
    }

    /// Runs the pass for `m` tokens at the current position (recording it on first use).
    async fn run(&mut self, m: usize, head: Head) -> Result<()> {
        if m == 0
            || m > self.scratch.rows
            || (head == Head::AllLogits && m > self.options.logits_rows)
        {
            return Err(ModelError::Config(format!(
                "batch of {m} tokens outside 1..={}",
                self.scratch.rows
            )));
        }
        self.check_room(m)?;
        self.ensure_program(m, head).await?;
        self.step.set(&self.gpu, self.pos as u32, m as u32);
        let mut enc = self
            .gpu
            .device()
            .create_command_encoder(&Default::default());
        if let Some(p) = self.programs.get(&(m, head)) {
            p.encode(&mut enc);
        }
        self.pos += m;
        // The sampled id rides back in the same command buffer: one submit per decode step.
        let slot = self.pos % READBACK_SLOTS;
        if head == Head::Sample {
            enc.copy_buffer_to_buffer(
                self.tokens.buffer(),
                4 * self.pos as u64,
                &self.readback[slot],
                0,
                4,
            );
        }
        let submission = self.gpu.queue().submit([enc.finish()]);
        self.copied[slot] = (head == Head::Sample).then_some((self.pos, submission));
        Ok(())
    }

    async fn ensure_program(&mut self, m: usize, head: Head) -> Result<()> {
        if !self.programs.contains_key(&(m, head)) {
            // Prompt lengths vary: keep the decode program and a few recent prefill programs.
            if self.programs.len() > 8 {
                self.programs.retain(|(k, _), _| *k == 1);
            }
            let program = self.record(m, head).await?;
            self.programs.insert((m, head), program);
        }
        Ok(())
    }

    /// [`Llama::decode_step`] with a GPU timestamp around every kernel: their times.
    pub async fn profile_decode_step(&mut self) -> Result<Vec<KernelTime>> {
        self.check_room(1)?;
        self.profile_pass(1).await
    }

    /// A prefill of `tokens` (at most `prefill_chunk`, one pass) with a GPU timestamp around
    /// every kernel: their times. The context advances as in [`Llama::prefill`].
    pub async fn profile_prefill(&mut self, tokens: &[u32]) -> Result<Vec<KernelTime>> {
        if tokens.is_empty() || tokens.len() > self.options.prefill_chunk {
            return Err(ModelError::Config(format!(
                "a profiled prefill takes 1..={} tokens, not {}",
                self.options.prefill_chunk,
                tokens.len()
            )));
        }
        self.check_ids(tokens)?;
        self.check_room(tokens.len())?;
        self.tokens.write_at(&self.gpu, self.pos, tokens)?;
        self.profile_pass(tokens.len()).await
    }

    /// Callers have checked that `m` more tokens fit.
    async fn profile_pass(&mut self, m: usize) -> Result<Vec<KernelTime>> {
        self.ensure_program(m, Head::Sample).await?;
        self.step.set(&self.gpu, self.pos as u32, m as u32);
        let times = match self.programs.get(&(m, Head::Sample)) {
            Some(p) => p.profile(&self.gpu, |_| {}).await?,
            None => Vec::new(),
        };
        self.pos += m;
        Ok(times)
    }

    /// Appends `tokens` to the context and samples the token that follows into the history
    /// (read it with [`Llama::read_token`]). Long prompts go in chunks of `prefill_chunk`.
    pub async fn prefill(&mut self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(ModelError::Config("empty prompt".into()));
        }
        self.check_ids(tokens)?;
        self.check_room(tokens.len())?;
        self.tokens.write_at(&self.gpu, self.pos, tokens)?;
        let chunks: Vec<usize> = tokens
            .chunks(self.options.prefill_chunk)
            .map(|c| c.len())
            .collect();
        for (i, &m) in chunks.iter().enumerate() {
            let head = if i + 1 == chunks.len() {
                Head::Sample
            } else {
                Head::None
            };
            self.run(m, head).await?;
        }
        Ok(())
    }

    /// Feeds the last sampled token (already in the GPU history) and samples the next one.
    pub async fn decode_step(&mut self) -> Result<()> {
        self.run(1, Head::Sample).await
    }

    /// The sampled token at the end of the context (`tokens[pos]`): the only per-step readback.
    pub async fn read_token(&mut self) -> Result<u32> {
        self.read_token_at(self.pos).await
    }

    /// The token sampled at position `at` (≤ `pos`): after `decode_step` has already queued the
    /// next step, this waits only for the step that sampled `at`, so the GPU never idles while
    /// the host reads, detokenizes and decides whether to go on.
    pub async fn read_token_at(&mut self, at: usize) -> Result<u32> {
        if at > self.pos {
            return Err(ModelError::Config(format!(
                "no token at position {at} (context holds {})",
                self.pos
            )));
        }
        let slot = at % READBACK_SLOTS;
        let submission = match self.copied[slot].take() {
            Some((p, s)) if p == at => s,
            _ => {
                let mut enc = self
                    .gpu
                    .device()
                    .create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(
                    self.tokens.buffer(),
                    4 * at as u64,
                    &self.readback[slot],
                    0,
                    4,
                );
                self.gpu.queue().submit([enc.finish()])
            }
        };
        let bytes = hearth_gpu::tensor::map_read_after(
            &self.gpu,
            &self.readback[slot],
            4,
            Some(submission),
        )
        .await?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Sets the sampling parameters used by the next steps. The recorded passes hold the sampler's
    /// dispatches, which depend on the kind of sampling (greedy, temperature, top-k / top-p): a
    /// change of kind records them again.
    pub fn set_sampling(&mut self, params: &SamplingParams) {
        if self.sampler.set_params(&self.gpu, params) {
            self.programs.retain(|&(_, head), _| head != Head::Sample);
        }
    }

    /// Teacher forcing from position 0: row `i` holds the logits `[vocab]` after `tokens[..=i]`.
    pub async fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.check_ids(tokens)?;
        if tokens.len() > self.options.max_context {
            return Err(ModelError::ContextOverflow {
                tokens: tokens.len(),
                context: self.options.max_context,
            });
        }
        self.reset();
        self.tokens.write_at(&self.gpu, 0, tokens)?;
        let v = self.config.vocab_size;
        let mut out = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(self.options.logits_rows) {
            self.run(chunk.len(), Head::AllLogits).await?;
            let all = self.scratch.logits_all.read(&self.gpu).await?;
            out.extend(all.chunks_exact(v).take(chunk.len()).map(|r| r.to_vec()));
        }
        Ok(out)
    }

    /// Logits of the last sampled position (valid after `prefill` or `decode_step`).
    pub async fn last_logits(&self) -> Result<Vec<f32>> {
        let mut all = self.scratch.logits.read(&self.gpu).await?;
        all.truncate(self.config.vocab_size);
        Ok(all)
    }

    /// Errors unless `n` more tokens fit in the context.
    fn check_room(&self, n: usize) -> Result<()> {
        if self.pos + n > self.options.max_context {
            return Err(ModelError::ContextOverflow {
                tokens: self.pos + n,
                context: self.options.max_context,
            });
        }
        Ok(())
    }

    fn check_ids(&self, tokens: &[u32]) -> Result<()> {
        match tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            Some(t) => Err(ModelError::Config(format!(
                "token id {t} outside the vocabulary of {}",
                self.config.vocab_size
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
