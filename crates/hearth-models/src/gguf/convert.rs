//! llama.cpp metadata → `LlamaConfig`, GGUF tensors → `LlamaWeights`, losslessly:
//! Q4_1 (`d·q + m`) → Q4 with scale `d`, min `m`; Q4_0 (`d·(q − 8)`) → Q4S with the same `d` and codes;
//! Q8_0 → Q8; F16/F32 matrices → F32; norms → `Vec<f32>`. Every dequantised value equals ggml's bit
//! for bit (signed zeros included).

use half::f16;
use hearth_gpu::quant::pack_f16x2;
use hearth_gpu::{HostMatrix, WeightFormat};

use super::{GgmlType, Gguf, Metadata, TensorInfo};
use crate::config::{Llama3RopeScaling, LlamaConfig, RopeStyle};
use crate::error::{ModelError, Result};
use crate::weights::{layer_matrix_shapes, LayerWeights, LlamaWeights};

const SUPPORTED: &str = "supported: F32, F16, Q4_0, Q4_1, Q8_0";

impl Gguf {
    /// The Llama hyper-parameters from llama.cpp metadata (`rope_style: Adjacent`).
    pub fn llama_config(&self, bytes: &[u8]) -> Result<LlamaConfig> {
        let arch = self.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::Unsupported(format!(
                "GGUF architecture `{arch}` (only `llama`)"
            )));
        }
        let k = |s: &str| format!("llama.{s}");
        let usize_of = |key: &str| self.get_u64(&k(key)).map(|v| v as usize);
        let hidden = usize_of("embedding_length")?;
        let heads = usize_of("attention.head_count")?;
        let kv_heads = match self.opt_u32(&k("attention.head_count_kv"))? {
            Some(v) => v as usize,
            None => heads,
        };
        let head_dim = match self.opt_u32(&k("attention.key_length"))? {
            Some(v) => v as usize,
            None if heads > 0 && hidden.is_multiple_of(heads) => hidden / heads,
            None => {
                return Err(ModelError::Config(format!(
                    "embedding_length {hidden} is not a multiple of head_count {heads}"
                )))
            }
        };
        if let Some(v) = self.opt_u32(&k("attention.value_length"))? {
            if v as usize != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "value_length {v} != key_length {head_dim}"
                )));
            }
        }
        if let Some(r) = self.opt_u32(&k("rope.dimension_count"))? {
            if r as usize != head_dim {
                return Err(ModelError::Unsupported(format!(
                    "partial rotary embedding (rope.dimension_count {r}, head_dim {head_dim})"
                )));
            }
        }
        let vocab = match self.opt_u32(&k("vocab_size"))? {
            Some(v) => v as usize,
            None => match self.get_str_array("tokenizer.ggml.tokens") {
                Ok(t) => t.len(),
                Err(_) => self
                    .tensor("token_embd.weight")
                    .and_then(|t| t.dims.get(1).map(|&d| d as usize))
                    .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?,
            },
        };
        let scaling = self.opt_str(&k("rope.scaling.type"))?;
        let factor = self.opt_f32(&k("rope.scaling.factor"))?.unwrap_or(1.0);
        let linear = self.opt_f32(&k("rope.scale_linear"))?.unwrap_or(1.0);
        match (scaling, factor) {
            (None | Some("none"), _) | (Some("linear"), 1.0) if linear == 1.0 => {}
            (s, f) => {
                return Err(ModelError::Unsupported(format!(
                    "RoPE scaling {s:?} with factor {f} (scale_linear {linear})"
                )))
            }
        }
        let mut eos = Vec::new();
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Some(id) = self.opt_u32(key)? {
                if !eos.contains(&id) {
                    eos.push(id);
                }
            }
        }
        let mut config = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: usize_of("feed_forward_length")?,
            num_hidden_layers: usize_of("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: self.get_f32(&k("attention.layer_norm_rms_epsilon"))?,
            rope_theta: self.opt_f32(&k("rope.freq_base"))?.unwrap_or(10000.0),
            rope_scaling: None,
            rope_style: RopeStyle::Adjacent,
            max_position_embeddings: usize_of("context_length")?,
            tie_word_embeddings: self.tensor("output.weight").is_none(),
            bos_token_id: self.opt_u32("tokenizer.ggml.bos_token_id")?,
            eos_token_ids: eos,
        };
        config.validate()?;
        // Llama 3.x GGUFs carry Llama-3 RoPE scaling as precomputed per-frequency divisors.
        if self.tensor("rope_freqs.weight").is_some() {
            let f = self.vector(bytes, "rope_freqs.weight", head_dim / 2)?;
            config.rope_scaling = fit_llama3_scaling(&config, &f)?;
        }
        Ok(config)
    }

    /// Converts every tensor of a llama GGUF (after checking shapes against the metadata).
    pub fn llama_weights(&self, bytes: &[u8]) -> Result<LlamaWeights> {
        let config = self.llama_config(bytes)?;
        let (v, d) = (config.vocab_size, config.hidden_size);
        let shapes = layer_matrix_shapes(&config);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let names = [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ];
            let m =
                |j: usize| self.matrix(bytes, &format!("blk.{i}.{}.weight", names[j]), shapes[j].1);
            layers.push(LayerWeights {
                attn_norm: self.vector(bytes, &format!("blk.{i}.attn_norm.weight"), d)?,
                wq: m(0)?,
                wk: m(1)?,
                wv: m(2)?,
                wo: m(3)?,
                ffn_norm: self.vector(bytes, &format!("blk.{i}.ffn_norm.weight"), d)?,
                w_gate: m(4)?,
                w_up: m(5)?,
                w_down: m(6)?,
            });
        }
        let lm_head = match config.tie_word_embeddings {
            true => None,
            false => Some(self.matrix(bytes, "output.weight", [v, d])?),
        };
        let w = LlamaWeights {
            embed: self.matrix(bytes, "token_embd.weight", [v, d])?,
            layers,
            norm: self.vector(bytes, "output_norm.weight", d)?,
            lm_head,
            config,
        };
        w.validate()?;
        Ok(w)
    }

    fn checked(&self, name: &str, shape: &[usize]) -> Result<&TensorInfo> {
        let t = self
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        // ggml drops no dims but writers may add trailing 1s; compare without outer 1s.
        let outer_ones = shape.iter().take_while(|&&d| d == 1).count();
        let want = &shape[outer_ones.min(shape.len().saturating_sub(1))..];
        if t.shape() != want {
            return Err(ModelError::TensorShape {
                name: name.into(),
                expected: shape.to_vec(),
                found: t.shape(),
            });
        }
        Ok(t)
    }

    /// A `[rows, cols]` matrix in the closest lossless Hearth format.
    pub fn matrix(&self, bytes: &[u8], name: &str, [rows, cols]: [usize; 2]) -> Result<HostMatrix> {
        let t = self.checked(name, &[rows, cols])?;
        let data = self.tensor_data(bytes, name)?;
        let m = match t.dtype {
            GgmlType::F32 | GgmlType::F16 => {
                HostMatrix::from_f32(rows, cols, &floats(t.dtype, data))?
            }
            GgmlType::Q8_0 => repack_q8_0(rows, cols, data),
            GgmlType::Q4_0 => repack_q4(rows, cols, data, false),
            GgmlType::Q4_1 => repack_q4(rows, cols, data, true),
            other => {
                return Err(ModelError::Unsupported(format!(
                    "tensor `{name}` has ggml type {} ({SUPPORTED})",
                    other.name()
                )))
            }
        };
        m.validate()?;
        Ok(m)
    }

    /// An F32 or F16 vector of `n` values (norm weights).
    pub fn vector(&self, bytes: &[u8], name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.checked(name, &[n])?;
        match t.dtype {
            GgmlType::F32 | GgmlType::F16 => Ok(floats(t.dtype, self.tensor_data(bytes, name)?)),
            other => Err(ModelError::Unsupported(format!(
                "vector `{name}` has ggml type {} (F32 or F16 only)",
                other.name()
            ))),
        }
    }
}

/// F32 or F16 little-endian bytes → f32 (exact).
fn floats(dtype: GgmlType, data: &[u8]) -> Vec<f32> {
    if dtype == GgmlType::F16 {
        data.chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    } else {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

/// Q8_0 blocks `{ d: f16, qs: [i8; 32] }` → Q8: the same bytes, `d` widened to f32.
fn repack_q8_0(rows: usize, cols: usize, data: &[u8]) -> HostMatrix {
    let groups = rows * cols / 32;
    let mut qs = Vec::with_capacity(groups * 8);
    let mut scales = Vec::with_capacity(groups);
    for b in data.chunks_exact(34) {
        scales.push(f16::from_le_bytes([b[0], b[1]]).to_f32().to_bits());
        qs.extend(
            b[2..]
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
        );
    }
    HostMatrix {
        format: WeightFormat::Q8,
        rows,
        cols,
        qs,
        scales,
    }
}

/// Q4_1 blocks `{ d, m: f16, qs: [u8; 16] }` → Q4, or Q4_0 blocks `{ d: f16, qs: [u8; 16] }` → Q4S.
/// ggml puts element `j` in the low nibble of `qs[j]` and element `j + 16` in its high nibble;
/// Q4 and Q4S want element `8w + i` in bits `4i..4i+4` of word `w`.
fn repack_q4(rows: usize, cols: usize, data: &[u8], has_min: bool) -> HostMatrix {
    let block = if has_min { 20 } else { 18 };
    let format = if has_min {
        WeightFormat::Q4
    } else {
        WeightFormat::Q4S
    };
    let (groups, sw) = (cols / 32, format.scale_words(cols));
    let mut qs = Vec::with_capacity(rows * groups * 4);
    let mut scales = vec![0u32; if has_min { rows * groups } else { rows * sw }];
    for (g, b) in data.chunks_exact(block).enumerate() {
        let d = f16::from_le_bytes([b[0], b[1]]);
        let q = if has_min {
            scales[g] = pack_f16x2(d, f16::from_le_bytes([b[2], b[3]]));
            &b[4..20]
        } else {
            // Two scales a word: group j of row r in half j % 2 of word r·sw + j / 2.
            let (r, j) = (g / groups, g % groups);
            scales[r * sw + j / 2] |= (d.to_bits() as u32) << (16 * (j % 2));
            &b[2..18]
        };
        for w in 0..4 {
            let mut word = 0u32;
            for i in 0..8 {
                let e = 8 * w + i;
                let code = if e < 16 { q[e] & 0xF } else { q[e - 16] >> 4 };
                word |= (code as u32) << (4 * i);
            }
            qs.push(word);
        }
    }
    HostMatrix {
        format,
        rows,
        cols,
        qs,
        scales,
    }
}

/// llama.cpp stores Llama-3 RoPE scaling as `rope_freqs.weight` (divisors of each inverse
/// frequency) rather than the four parameters. Recover the parameters by trying the values Meta's
/// configs use and keeping the one that reproduces every divisor; anything else is unsupported.
fn fit_llama3_scaling(base: &LlamaConfig, divisors: &[f32]) -> Result<Option<Llama3RopeScaling>> {
    if divisors.iter().all(|&x| x == 1.0) {
        return Ok(None);
    }
    let plain = LlamaConfig {
        rope_scaling: None,
        ..base.clone()
    }
    .rope_inv_freq();
    let factor = divisors.iter().copied().fold(1.0f32, f32::max).round();
    for orig in [8192, 4096, 2048, 16384, 32768, 65536, 131072] {
        for low in [1.0, 0.5, 2.0] {
            for high in [4.0, 2.0, 8.0] {
                let s = Llama3RopeScaling {
                    factor,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: orig,
                };
                let cfg = LlamaConfig {
                    rope_scaling: Some(s),
                    ..base.clone()
                };
                let ok = cfg.validate().is_ok()
                    && cfg.rope_inv_freq().iter().zip(&plain).zip(divisors).all(
                        |((&got, &p), &div)| {
                            let want = p / div;
                            (got - want).abs() <= 1e-4 * want.abs()
                        },
                    );
                if ok {
                    return Ok(Some(s));
                }
            }
        }
    }
    Err(ModelError::Unsupported(
        "rope_freqs.weight does not match Llama-3 RoPE scaling".into(),
    ))
}
