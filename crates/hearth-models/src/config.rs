//! Llama architecture hyper-parameters, from GGUF metadata or a Hugging Face `config.json`.

use crate::error::{ModelError, Result};

/// How RoPE pairs dimensions: GGUF (llama.cpp) files store Q/K permuted for adjacent pairs
/// `(2i, 2i+1)`; Hugging Face checkpoints rotate halves `(i, i + head_dim/2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RopeStyle {
    Adjacent,
    Half,
}

/// `rope_scaling` with `rope_type: "llama3"`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: u32,
}

/// Names mirror Hugging Face's `LlamaConfig`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub rope_style: RopeStyle,
    /// Context limit.
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl LlamaConfig {
    /// Rejects impossible shapes before anything is allocated.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Config(m));
        let limits = [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 1 << 16),
            ("intermediate_size", self.intermediate_size, 1 << 18),
            ("num_hidden_layers", self.num_hidden_layers, 1 << 10),
            ("num_attention_heads", self.num_attention_heads, 1 << 10),
            ("num_key_value_heads", self.num_key_value_heads, 1 << 10),
            ("head_dim", self.head_dim, 1 << 10),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                1 << 24,
            ),
        ];
        for (name, v, max) in limits {
            if v == 0 || v > max {
                return bad(format!("{name} = {v} (must be in 1..={max})"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head_dim {} is odd", self.head_dim));
        }
        for (name, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("q/k/v width", self.num_attention_heads * self.head_dim),
        ] {
            if !v.is_multiple_of(32) {
                return bad(format!(
                    "{name} = {v} is not a multiple of 32 (INT4 groups)"
                ));
            }
        }
        // Written positively so that NaN fails every check.
        let sane = self.rms_norm_eps > 0.0
            && self.rms_norm_eps < 1.0
            && self.rope_theta > 0.0
            && self.rope_theta.is_finite();
        if !sane {
            return bad(format!(
                "rms_norm_eps {} / rope_theta {}",
                self.rms_norm_eps, self.rope_theta
            ));
        }
        if let Some(s) = &self.rope_scaling {
            if !(s.factor >= 1.0
                && s.low_freq_factor > 0.0
                && s.high_freq_factor > s.low_freq_factor
                && s.original_max_position_embeddings > 0)
            {
                return bad(format!("rope_scaling {s:?}"));
            }
        }
        Ok(())
    }

    /// Llama-3.2-1B-Instruct's `config.json` (for `hearth bench` and shape tests with random weights).
    pub fn llama_3_2_1b() -> Self {
        Self {
            vocab_size: 128256,
            hidden_size: 2048,
            intermediate_size: 8192,
            num_hidden_layers: 16,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 500000.0,
            rope_scaling: Some(Llama3RopeScaling {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            }),
            rope_style: RopeStyle::Half,
            max_position_embeddings: 131072,
            tie_word_embeddings: true,
            bos_token_id: Some(128000),
            eos_token_ids: vec![128001, 128008, 128009],
        }
    }

    /// Rows of the fused Q/K/V projection.
    pub fn qkv_rows(&self) -> usize {
        (self.num_attention_heads + 2 * self.num_key_value_heads) * self.head_dim
    }

    /// RoPE inverse frequencies `[head_dim / 2]`, with Llama-3 frequency scaling when configured
    /// (as `transformers`' `_compute_llama3_parameters`).
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        (0..d / 2)
            .map(|i| {
                let f = 1.0 / (self.rope_theta as f64).powf(2.0 * i as f64 / d as f64);
                let Some(s) = &self.rope_scaling else {
                    return f as f32;
                };
                let old = s.original_max_position_embeddings as f64;
                let low_wavelen = old / s.low_freq_factor as f64;
                let high_wavelen = old / s.high_freq_factor as f64;
                let wavelen = 2.0 * std::f64::consts::PI / f;
                let scaled = if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor as f64
                } else {
                    let smooth = (old / wavelen - s.low_freq_factor as f64)
                        / (s.high_freq_factor - s.low_freq_factor) as f64;
                    (1.0 - smooth) * f / s.factor as f64 + smooth * f
                };
                scaled as f32
            })
            .collect()
    }
}
