//! Sentence embeddings with a BERT-family encoder (all-MiniLM-L6-v2 by default, any
//! sentence-transformers `BertModel` in the same format) on `hearth-gpu` kernels.
//!
//! Batches are packed, not padded: the tokens of many inputs sit back to back in one `[T, D]`
//! matrix, attention masks each token to its own sequence's range, and pooling averages each
//! sequence's rows. Every dispatch is as large as the batch (up to [`SentenceEncoder::batch_tokens`]
//! tokens) and no work is spent on padding. Batches are submitted back to back, each copying its
//! embeddings to its own staging buffer, so the CPU tokenizes and encodes the next batch while the
//! GPU runs the last; everything is read back at the end.
//!
//! Per layer (post-LayerNorm BERT), for the packed hidden states `h` `[T, D]`:
//! `qkv = h·Wqkvᵀ + b` → `ctx = attention(qkv)` per sequence → `h += ctx·Woᵀ + bo` →
//! `a = LN(h)` → `a += gelu(a·W1ᵀ + b1)·W2ᵀ + b2` → `h = LN(a)`.

pub mod config;
pub mod reference;
#[cfg(test)]
mod tests;
pub mod weights;

use std::cell::RefCell;

use hearth_gpu::matmul::{linear, Epilogue, LinearSpec};
use hearth_gpu::norm::{embed_layer_norm, layer_norm, pool, EmbeddingTables};
use hearth_gpu::{attention, tensor, wgpu, Gpu, GpuMatrix, HostMatrix, Program, Step, Tensor};
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

pub use config::{BertConfig, SentenceConfig};
pub use hearth_gpu::norm::Pooling;
pub use weights::{BertLayer, BertWeights};

use crate::error::{ModelError, Result};

/// Token budget of one batch on a discrete GPU, and on a CPU adapter (lavapipe, SwiftShader), where
/// a smaller batch bounds memory and the time of one submit.
const BATCH_TOKENS_GPU: usize = 16384;
const BATCH_TOKENS_CPU: usize = 2048;
/// Texts tokenized at a time (in parallel natively) before their batches are submitted.
const TOKENIZE_GROUP: usize = 512;

/// The files of a sentence-transformers model directory, as bytes (so the browser can supply them).
pub struct EncoderFiles<'a> {
    pub config: &'a [u8],
    pub weights: &'a [u8],
    pub tokenizer: &'a [u8],
    /// `1_Pooling/config.json`, `sentence_bert_config.json`, `modules.json` when present.
    pub pooling: Option<&'a [u8]>,
    pub sentence: Option<&'a [u8]>,
    pub modules: Option<&'a [u8]>,
}

struct GpuLayer {
    wqkv: GpuMatrix,
    bqkv: Tensor<f32>,
    wo: GpuMatrix,
    bo: Tensor<f32>,
    attn_norm: (Tensor<f32>, Tensor<f32>),
    w1: GpuMatrix,
    b1: Tensor<f32>,
    w2: GpuMatrix,
    b2: Tensor<f32>,
    ffn_norm: (Tensor<f32>, Tensor<f32>),
}

/// Activations sized for one batch of `cap` tokens (`seqs` ≤ `cap` sequences).
struct Scratch {
    /// `[cap, 2]` (token id, position)
    tok: Tensor<u32>,
    /// `[cap, 2]` each token's sequence range
    token_ranges: Tensor<u32>,
    /// `[cap, 2]` each sequence's range
    seq_ranges: Tensor<u32>,
    /// `[cap, D]` hidden states, and the post-attention residual
    h: Tensor<f32>,
    a: Tensor<f32>,
    /// `[cap, 3D]`
    qkv: Tensor<f32>,
    /// `[cap, D]`
    ctx: Tensor<f32>,
    /// `[cap, F]`
    ffn: Tensor<f32>,
    /// `[cap, D]` one embedding per sequence
    out: Tensor<f32>,
    step: Step,
}

pub struct SentenceEncoder {
    gpu: Gpu,
    config: BertConfig,
    sentence: SentenceConfig,
    /// Truncates to `max_seq_length` (embedding) / counts everything (chunking).
    tokenizer: tokenizers::Tokenizer,
    counter: tokenizers::Tokenizer,
    word: Tensor<f32>,
    position: Tensor<f32>,
    token_type: Tensor<f32>,
    emb_norm: (Tensor<f32>, Tensor<f32>),
    layers: Vec<GpuLayer>,
    cap: usize,
    /// Borrowed for the length of one `embed` call: a second concurrent call gets an error.
    scratch: RefCell<Scratch>,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl SentenceEncoder {
    /// Loads a model from its files' bytes: config and weights checked, weights uploaded (f32).
    pub fn from_files(gpu: &Gpu, files: &EncoderFiles<'_>) -> Result<Self> {
        let config = BertConfig::from_json(files.config)?;
        let sentence =
            SentenceConfig::from_files(&config, files.pooling, files.sentence, files.modules)?;
        let weights = BertWeights::from_safetensors(&config, files.weights)?;
        let counter = tokenizers::Tokenizer::from_bytes(files.tokenizer).map_err(tok_err)?;
        Self::new(gpu, weights, sentence, counter)
    }

    /// An encoder over given weights and tokenizer (tests build random ones).
    pub fn new(
        gpu: &Gpu,
        weights: BertWeights,
        sentence: SentenceConfig,
        mut counter: tokenizers::Tokenizer,
    ) -> Result<Self> {
        let config = weights.config.clone();
        // The tokenizer file's own truncation and padding (MiniLM's says pad to 128) are not
        // sentence-transformers' behaviour: it truncates to max_seq_length and pads nothing that
        // reaches the pooled output.
        counter.with_padding(None);
        counter.with_truncation(None).map_err(tok_err)?;
        // Every id the tokenizer can produce must index the embedding table (ids may have gaps,
        // so the largest one counts, not how many there are).
        let top = counter.get_vocab(true).into_values().max().unwrap_or(0) as usize;
        if top >= config.vocab_size {
            return Err(ModelError::Config(format!(
                "tokenizer ids go up to {top}, the model's vocabulary has {} rows",
                config.vocab_size
            )));
        }
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: sentence.max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(tok_err)?;

        let (d, f) = (config.hidden_size, config.intermediate_size);
        let t = |name: &str, shape: &[usize], v: &[f32]| Tensor::from_slice(gpu, name, shape, v);
        let m = |name: &str, rows: usize, cols: usize, v: &[f32]| -> Result<GpuMatrix> {
            Ok(GpuMatrix::upload(
                gpu,
                name,
                &HostMatrix::from_f32(rows, cols, v)?,
            )?)
        };
        let mut layers = Vec::with_capacity(weights.layers.len());
        for l in &weights.layers {
            layers.push(GpuLayer {
                wqkv: m("bert.wqkv", 3 * d, d, &l.wqkv)?,
                bqkv: t("bert.bqkv", &[3 * d], &l.bqkv)?,
                wo: m("bert.wo", d, d, &l.wo)?,
                bo: t("bert.bo", &[d], &l.bo)?,
                attn_norm: (
                    t("bert.ln1.w", &[d], &l.attn_norm_w)?,
                    t("bert.ln1.b", &[d], &l.attn_norm_b)?,
                ),
                w1: m("bert.w1", f, d, &l.w1)?,
                b1: t("bert.b1", &[f], &l.b1)?,
                w2: m("bert.w2", d, f, &l.w2)?,
                b2: t("bert.b2", &[d], &l.b2)?,
                ffn_norm: (
                    t("bert.ln2.w", &[d], &l.ffn_norm_w)?,
                    t("bert.ln2.b", &[d], &l.ffn_norm_b)?,
                ),
            });
        }
        let w = &weights;
        let word = t("bert.word", &[config.vocab_size, d], &w.word_embeddings)?;
        let position = t(
            "bert.position",
            &[config.max_position_embeddings, d],
            &w.position_embeddings,
        )?;
        let token_type = t(
            "bert.type",
            &[config.type_vocab_size, d],
            &w.token_type_embeddings,
        )?;
        let emb_norm = (
            t("bert.ln0.w", &[d], &w.emb_norm_w)?,
            t("bert.ln0.b", &[d], &w.emb_norm_b)?,
        );

        let cap = Self::batch_capacity(gpu, &config, sentence.max_seq_length);
        let z = |name: &str, shape: &[usize]| Tensor::<f32>::zeros(gpu, name, shape);
        let u = |name: &str| Tensor::<u32>::zeros(gpu, name, &[cap, 2]);
        let scratch = Scratch {
            tok: u("bert.tok")?,
            token_ranges: u("bert.token_ranges")?,
            seq_ranges: u("bert.seq_ranges")?,
            h: z("bert.h", &[cap, d])?,
            a: z("bert.a", &[cap, d])?,
            qkv: z("bert.qkv", &[cap, 3 * d])?,
            ctx: z("bert.ctx", &[cap, d])?,
            ffn: z("bert.ffn", &[cap, f])?,
            out: z("bert.out", &[cap, d])?,
            step: Step::new(gpu),
        };
        Ok(Self {
            gpu: gpu.clone(),
            config,
            sentence,
            tokenizer,
            counter,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            cap,
            scratch: RefCell::new(scratch),
        })
    }

    /// Tokens per batch: the adapter's budget, within its largest binding (the `[T, F]` and
    /// `[T, 3D]` activations), never below one full-length input.
    fn batch_capacity(gpu: &Gpu, c: &BertConfig, max_seq: usize) -> usize {
        let budget = if gpu.info().device_type == wgpu::DeviceType::Cpu {
            BATCH_TOKENS_CPU
        } else {
            BATCH_TOKENS_GPU
        };
        let widest = c.intermediate_size.max(3 * c.hidden_size) * 4;
        let by_binding = (gpu.max_binding() as usize / widest).max(1);
        budget.min(by_binding).max(max_seq)
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }
    pub fn sentence_config(&self) -> &SentenceConfig {
        &self.sentence
    }
    /// Length of every embedding.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }
    /// Longest input in tokens, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.sentence.max_seq_length
    }
    /// Tokens per GPU batch.
    pub fn batch_tokens(&self) -> usize {
        self.cap
    }

    /// Token count of `text` with special tokens, without truncation (0 if it cannot be tokenized).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.counter
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .unwrap_or(0)
    }

    /// Input ids as the model sees them: special tokens added, truncated to `max_tokens`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let e = self.tokenizer.encode(text, true).map_err(tok_err)?;
        Ok(e.get_ids().to_vec())
    }

    /// [`Self::token_ids`] of each text; on native targets spread over the CPU's cores (the
    /// tokenizer would otherwise bound a fast GPU's throughput).
    pub fn token_ids_many(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let per = texts.len().div_ceil(cores).max(32);
            if texts.len() > per {
                // The tokenizer is shared, not the encoder (its scratch is not Sync).
                let tokenizer = &self.tokenizer;
                let ids = move |t: &str| -> Result<Vec<u32>> {
                    Ok(tokenizer
                        .encode(t, true)
                        .map_err(tok_err)?
                        .get_ids()
                        .to_vec())
                };
                return std::thread::scope(|scope| {
                    let handles: Vec<_> = texts
                        .chunks(per)
                        .map(|part| {
                            scope.spawn(move || {
                                part.iter().map(|t| ids(t)).collect::<Result<Vec<_>>>()
                            })
                        })
                        .collect();
                    let mut out = Vec::with_capacity(texts.len());
                    for h in handles {
                        let part = h.join().map_err(|_| {
                            ModelError::Tokenizer("a tokenizer thread panicked".into())
                        })??;
                        out.extend(part);
                    }
                    Ok(out)
                });
            }
        }
        texts.iter().map(|t| self.token_ids(t)).collect()
    }

    /// One embedding per text, in order (unit length when the model normalises).
    // The scratch borrow spans the awaits on purpose: a second call while one runs fails cleanly.
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut scratch = self.scratch.try_borrow_mut().map_err(|_| {
            ModelError::Unsupported("the encoder is already embedding (one call at a time)".into())
        })?;
        let d = self.dim();
        let mut pending = Vec::new();
        let mut batch: Vec<Vec<u32>> = Vec::new();
        let mut tokens = 0;
        // Tokenize a group while the GPU runs the batches of the previous one.
        for (g, group) in texts.chunks(TOKENIZE_GROUP).enumerate() {
            for (j, ids) in self.token_ids_many(group)?.into_iter().enumerate() {
                // Ids are inside the embedding table (checked against the tokenizer at load); a
                // tokenizer without [CLS]/[SEP] could still give an empty input.
                if ids.is_empty() {
                    return Err(ModelError::Tokenizer(format!(
                        "text {}: the tokenizer produced no tokens",
                        g * TOKENIZE_GROUP + j
                    )));
                }
                if tokens + ids.len() > self.cap {
                    pending.push(self.submit(&mut scratch, &batch).await?);
                    batch.clear();
                    tokens = 0;
                }
                tokens += ids.len();
                batch.push(ids);
            }
        }
        if !batch.is_empty() {
            pending.push(self.submit(&mut scratch, &batch).await?);
        }
        let mut out = Vec::with_capacity(texts.len());
        for (staging, seqs) in pending {
            let size = (seqs * d * 4) as u64;
            let bytes = tensor::map_read(&self.gpu, &staging, size).await?;
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            out.extend(values.chunks_exact(d).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Encodes and submits one packed batch; returns its staging buffer and sequence count.
    async fn submit(&self, s: &mut Scratch, batch: &[Vec<u32>]) -> Result<(wgpu::Buffer, usize)> {
        let p = self.record(s, batch).await?;
        let (gpu, b) = (&self.gpu, batch.len());
        let size = (b * self.dim() * 4) as u64;
        let staging = tensor::staging(gpu, "bert.embeddings", size);
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        p.encode(&mut enc);
        enc.copy_buffer_to_buffer(s.out.buffer(), 0, &staging, 0, size);
        gpu.queue().submit([enc.finish()]);
        Ok((staging, b))
    }

    /// Wall time of each kernel of one batch of `texts`, every dispatch submitted and waited for
    /// alone (so the sum exceeds a real run): where the time goes. Native only.
    #[cfg(not(target_arch = "wasm32"))]
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn profile(&self, texts: &[&str]) -> Result<Vec<(String, f64)>> {
        let mut s = self.scratch.try_borrow_mut().map_err(|_| {
            ModelError::Unsupported("the encoder is already embedding (one call at a time)".into())
        })?;
        let mut batch = Vec::new();
        let mut tokens = 0;
        for ids in self.token_ids_many(texts)? {
            if tokens + ids.len() > self.cap {
                break;
            }
            tokens += ids.len();
            batch.push(ids);
        }
        let p = self.record(&mut s, &batch).await?;
        self.gpu.submit(&p);
        self.gpu.poll_wait();
        let mut out = Vec::new();
        for d in &p.dispatches {
            let one = Program {
                dispatches: vec![d.clone()],
            };
            let t = std::time::Instant::now();
            self.gpu.submit(&one);
            self.gpu.poll_wait();
            let k = &d.kernel.key;
            out.push((
                format!("{}:{} {:?}", k.family, k.entry, d.workgroups),
                t.elapsed().as_secs_f64(),
            ));
        }
        Ok(out)
    }

    /// Records the program of one packed batch (inputs written, nothing submitted).
    async fn record(&self, s: &mut Scratch, batch: &[Vec<u32>]) -> Result<Program> {
        let gpu = &self.gpu;
        let c = &self.config;
        let (d, nh, hd) = (c.hidden_size, c.num_attention_heads, c.head_dim());
        let eps = c.layer_norm_eps as f32;
        let (mut tok, mut token_ranges, mut seq_ranges) = (Vec::new(), Vec::new(), Vec::new());
        for ids in batch {
            let start = (tok.len() / 2) as u32;
            let end = start + ids.len() as u32;
            for (p, &id) in ids.iter().enumerate() {
                tok.extend([id, p as u32]);
                token_ranges.extend([start, end]);
            }
            seq_ranges.extend([start, end]);
        }
        let (t, b) = (tok.len() / 2, batch.len());
        s.tok.write_at(gpu, 0, &tok)?;
        s.token_ranges.write_at(gpu, 0, &token_ranges)?;
        s.seq_ranges.write_at(gpu, 0, &seq_ranges)?;
        s.step.set(gpu, 0, t as u32);

        let mut p = Program::new();
        let tables = EmbeddingTables {
            word: &self.word,
            position: &self.position,
            token_type: &self.token_type,
        };
        let (g0, b0) = (&self.emb_norm.0, &self.emb_norm.1);
        p.push(embed_layer_norm(gpu, &tables, &s.tok, g0, b0, eps, t, &s.h).await?);
        for l in &self.layers {
            let lin = |w, bias, epilogue| LinearSpec {
                weight: w,
                norm: None,
                epilogue,
                bias: Some(bias),
            };
            let qkv = lin(&l.wqkv, &l.bqkv, Epilogue::Store);
            p.extend(linear(gpu, &qkv, &s.h, 0, t, &s.qkv).await?);
            p.push(
                attention::attention_packed(
                    gpu,
                    &s.qkv,
                    t,
                    nh,
                    nh,
                    hd,
                    &s.token_ranges,
                    &s.step,
                    &s.ctx,
                )
                .await?,
            );
            let wo = lin(&l.wo, &l.bo, Epilogue::Accumulate);
            p.extend(linear(gpu, &wo, &s.ctx, 0, t, &s.h).await?);
            let (g1, b1) = (&l.attn_norm.0, &l.attn_norm.1);
            p.push(layer_norm(gpu, &s.h, g1, b1, eps, t, &s.a).await?);
            let up = lin(&l.w1, &l.b1, Epilogue::Gelu);
            p.extend(linear(gpu, &up, &s.a, 0, t, &s.ffn).await?);
            let down = lin(&l.w2, &l.b2, Epilogue::Accumulate);
            p.extend(linear(gpu, &down, &s.ffn, 0, t, &s.a).await?);
            let (g2, b2) = (&l.ffn_norm.0, &l.ffn_norm.1);
            p.push(layer_norm(gpu, &s.a, g2, b2, eps, t, &s.h).await?);
        }
        let pooling = self.sentence.pooling;
        let l2 = self.sentence.normalize;
        p.push(pool(gpu, &s.h, d, &s.seq_ranges, b, pooling, l2, &s.out).await?);
        Ok(p)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl SentenceEncoder {
    /// Loads a sentence-transformers directory (`config.json`, `model.safetensors`,
    /// `tokenizer.json`, and the optional pooling / max-length / modules files).
    pub fn load(gpu: &Gpu, dir: &std::path::Path) -> Result<Self> {
        use crate::loader::read_file;
        let optional = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                read_file(&p).map(Some)
            } else {
                Ok(None)
            }
        };
        let (pooling, sentence, modules) = (
            optional("1_Pooling/config.json")?,
            optional("sentence_bert_config.json")?,
            optional("modules.json")?,
        );
        let (config, weights, tokenizer) = (
            read_file(&dir.join("config.json"))?,
            read_file(&dir.join("model.safetensors"))?,
            read_file(&dir.join("tokenizer.json"))?,
        );
        Self::from_files(
            gpu,
            &EncoderFiles {
                config: &config,
                weights: &weights,
                tokenizer: &tokenizer,
                pooling: pooling.as_deref(),
                sentence: sentence.as_deref(),
                modules: modules.as_deref(),
            },
        )
    }
}

/// Where `make models` puts the default encoder (all-MiniLM-L6-v2), if it is there.
#[cfg(not(target_arch = "wasm32"))]
pub fn default_encoder_dir() -> Option<std::path::PathBuf> {
    crate::loader::default_model_path("all-minilm-l6-v2")
}
