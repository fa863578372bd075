//! Llama weights in host memory, in the formats the kernels consume (`hearth_gpu::quant`).
//!
//! Shapes use `D` = hidden_size, `H` = attention heads, `KV` = key/value heads, `hd` = head_dim,
//! `F` = intermediate_size, `V` = vocab_size. Matrices are `[rows, cols]` = `[out, in]`.

use half::f16;
use hearth_gpu::quant::{pack_f16x2, GROUP};
use hearth_gpu::{HostMatrix, WeightFormat};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>, // [D]
    pub wq: HostMatrix,      // [H·hd, D]
    pub wk: HostMatrix,      // [KV·hd, D]
    pub wv: HostMatrix,      // [KV·hd, D]
    pub wo: HostMatrix,      // [D, H·hd]
    pub ffn_norm: Vec<f32>,  // [D]
    pub w_gate: HostMatrix,  // [F, D]
    pub w_up: HostMatrix,    // [F, D]
    pub w_down: HostMatrix,  // [D, F]
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaWeights {
    pub config: LlamaConfig,
    pub embed: HostMatrix, // [V, D]
    pub layers: Vec<LayerWeights>,
    pub norm: Vec<f32>, // [D]
    /// `[V, D]`; `None` = tied to `embed`.
    pub lm_head: Option<HostMatrix>,
}

/// Expected `[rows, cols]` of every matrix of a layer, in `LayerWeights` field order.
pub(crate) fn layer_matrix_shapes(c: &LlamaConfig) -> [(&'static str, [usize; 2]); 7] {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
    );
    [
        ("wq", [q, d]),
        ("wk", [kv, d]),
        ("wv", [kv, d]),
        ("wo", [d, q]),
        ("w_gate", [f, d]),
        ("w_up", [f, d]),
        ("w_down", [d, f]),
    ]
}

impl LayerWeights {
    pub fn matrices(&self) -> [&HostMatrix; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
    }
}

fn check_matrix(what: &str, m: &HostMatrix, [rows, cols]: [usize; 2]) -> Result<()> {
    if m.rows != rows || m.cols != cols {
        return Err(ModelError::TensorShape {
            name: what.into(),
            expected: vec![rows, cols],
            found: vec![m.rows, m.cols],
        });
    }
    m.validate()?;
    Ok(())
}

fn check_vector(what: &str, v: &[f32], n: usize) -> Result<()> {
    if v.len() != n {
        return Err(ModelError::TensorShape {
            name: what.into(),
            expected: vec![n],
            found: vec![v.len()],
        });
    }
    Ok(())
}

impl LlamaWeights {
    /// Checks every shape against `config` (and every buffer against its shape).
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        c.validate()?;
        let (v, d) = (c.vocab_size, c.hidden_size);
        check_matrix("embed", &self.embed, [v, d])?;
        check_vector("norm", &self.norm, d)?;
        match (&self.lm_head, c.tie_word_embeddings) {
            (Some(h), false) => check_matrix("lm_head", h, [v, d])?,
            (None, true) => {}
            (h, tie) => {
                return Err(ModelError::Config(format!(
                    "tie_word_embeddings = {tie} but lm_head is {}",
                    if h.is_some() { "present" } else { "absent" }
                )))
            }
        }
        if self.layers.len() != c.num_hidden_layers {
            return Err(ModelError::Config(format!(
                "{} layers, config says {}",
                self.layers.len(),
                c.num_hidden_layers
            )));
        }
        let shapes = layer_matrix_shapes(c);
        for (i, l) in self.layers.iter().enumerate() {
            check_vector(&format!("layers.{i}.attn_norm"), &l.attn_norm, d)?;
            check_vector(&format!("layers.{i}.ffn_norm"), &l.ffn_norm, d)?;
            for (m, (name, shape)) in l.matrices().into_iter().zip(shapes) {
                check_matrix(&format!("layers.{i}.{name}"), m, shape)?;
            }
        }
        Ok(())
    }

    /// Random weights of `config`'s shapes in `format`, for tests and benchmarks. Linear weights have
    /// standard deviation ≈ 1/√cols (so activations keep their scale); norms are 1. Quantised codes
    /// are drawn directly (no f32 intermediate), so 1B-parameter shapes take seconds.
    pub fn random(config: &LlamaConfig, format: WeightFormat, seed: u64) -> Result<Self> {
        config.validate()?;
        let c = config;
        let mut rng = SplitMix(seed ^ 0x4845_4152_5448); // "HEARTH"
        let mut matrix = |rows: usize, cols: usize| random_matrix(&mut rng, format, rows, cols);
        let embed = matrix(c.vocab_size, c.hidden_size)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for _ in 0..c.num_hidden_layers {
            let [q, k, v, o, g, u, dn] = layer_matrix_shapes(c).map(|(_, s)| s);
            layers.push(LayerWeights {
                attn_norm: vec![1.0; c.hidden_size],
                wq: matrix(q[0], q[1])?,
                wk: matrix(k[0], k[1])?,
                wv: matrix(v[0], v[1])?,
                wo: matrix(o[0], o[1])?,
                ffn_norm: vec![1.0; c.hidden_size],
                w_gate: matrix(g[0], g[1])?,
                w_up: matrix(u[0], u[1])?,
                w_down: matrix(dn[0], dn[1])?,
            });
        }
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(matrix(c.vocab_size, c.hidden_size)?)
        };
        let w = LlamaWeights {
            config: c.clone(),
            embed,
            layers,
            norm: vec![1.0; c.hidden_size],
            lm_head,
        };
        w.validate()?;
        Ok(w)
    }
}

/// splitmix64: tiny, fast and good enough for test weights (no `rand` dependency at run time).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn fill_u32(rng: &mut SplitMix, n: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let r = rng.next();
        v.push(r as u32);
        v.push((r >> 32) as u32);
    }
    if n % 2 == 1 {
        v.push(rng.next() as u32);
    }
    v
}

fn random_matrix(
    rng: &mut SplitMix,
    format: WeightFormat,
    rows: usize,
    cols: usize,
) -> Result<HostMatrix> {
    let std = 1.0 / (cols as f32).sqrt();
    let groups = rows * cols / GROUP;
    let (qs, scales) = match format {
        WeightFormat::F32 => {
            // Uniform on [-a, a] has standard deviation a/√3.
            let a = std * 3f32.sqrt();
            let qs = (0..rows * cols)
                .map(|_| ((rng.unit() * 2.0 - 1.0) * a).to_bits())
                .collect();
            (qs, vec![])
        }
        WeightFormat::Q4 => {
            // Codes uniform in 0..16 (std ≈ 4.61) centred by min = -7.5·scale.
            let qs = fill_u32(rng, rows * cols / 8);
            let scales = (0..groups)
                .map(|_| {
                    let s = f16::from_f32(std / 4.61 * (0.75 + 0.5 * rng.unit()));
                    pack_f16x2(s, f16::from_f32(-7.5 * s.to_f32()))
                })
                .collect();
            (qs, scales)
        }
        WeightFormat::Q4S => {
            // Codes uniform in 0..16, w = d·(q − 8): std ≈ 4.61·|d|, mean −0.5·d, which a random sign
            // of d per group (as Q4_0's d carries) centres.
            let qs = fill_u32(rng, rows * cols / 8);
            let sw = format.scale_words(cols);
            let mut scales = vec![0u32; rows * sw];
            for g in 0..groups {
                let d = std / 4.61 * (0.75 + 0.5 * rng.unit());
                let d = f16::from_f32(if rng.next() & 1 == 0 { d } else { -d });
                let (r, j) = (g / (cols / GROUP), g % (cols / GROUP));
                scales[r * sw + j / 2] |= (d.to_bits() as u32) << (16 * (j % 2));
            }
            (qs, scales)
        }
        WeightFormat::Q8 => {
            // Codes uniform over all bytes (std ≈ 73.9).
            let qs = fill_u32(rng, rows * cols / 4);
            let scales = (0..groups)
                .map(|_| {
                    let d = f16::from_f32(std / 73.9 * (0.75 + 0.5 * rng.unit()));
                    d.to_f32().to_bits()
                })
                .collect();
            (qs, scales)
        }
    };
    Ok(HostMatrix::new(format, rows, cols, qs, scales)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RopeStyle;

    pub(crate) fn tiny_config() -> LlamaConfig {
        LlamaConfig {
            vocab_size: 96,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 16,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: None,
            rope_style: RopeStyle::Half,
            max_position_embeddings: 128,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    #[test]
    fn random_weights_validate_and_have_the_intended_spread() {
        for format in WeightFormat::ALL {
            let w = LlamaWeights::random(&tiny_config(), format, 7).unwrap();
            w.validate().unwrap();
            assert_eq!(w, LlamaWeights::random(&tiny_config(), format, 7).unwrap());
            assert_ne!(
                w.layers[0].wq,
                LlamaWeights::random(&tiny_config(), format, 8)
                    .unwrap()
                    .layers[0]
                    .wq
            );
            let x = w.layers[1].w_down.dequantize();
            let n = x.len() as f32;
            let mean = x.iter().sum::<f32>() / n;
            let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
            let want = 1.0 / (128f32).sqrt();
            assert!(mean.abs() < 0.1 * want, "{format:?} mean {mean}");
            assert!(
                (std / want - 1.0).abs() < 0.15,
                "{format:?} std {std} vs {want}"
            );
        }
    }

    #[test]
    fn validate_catches_wrong_shapes() {
        let mut w = LlamaWeights::random(&tiny_config(), WeightFormat::Q4, 1).unwrap();
        w.layers[1].wk = w.layers[1].wq.clone();
        assert!(matches!(
            w.validate(),
            Err(ModelError::TensorShape { name, .. }) if name == "layers.1.wk"
        ));
        let mut w = LlamaWeights::random(&tiny_config(), WeightFormat::Q4, 1).unwrap();
        w.norm.pop();
        assert!(matches!(w.validate(), Err(ModelError::TensorShape { .. })));
        let mut w = LlamaWeights::random(&tiny_config(), WeightFormat::Q4, 1).unwrap();
        w.lm_head = Some(w.embed.clone());
        assert!(matches!(w.validate(), Err(ModelError::Config(_))));
        let mut w = LlamaWeights::random(&tiny_config(), WeightFormat::Q4, 1).unwrap();
        w.layers[0].w_up.qs.pop();
        assert!(matches!(w.validate(), Err(ModelError::Gpu(_))));
    }

    /// Llama-3.2-1B shapes (1.24 B weights). Run with
    /// `cargo test --release -p hearth-models random_1b -- --ignored --nocapture`.
    #[test]
    #[ignore = "allocates ~0.7 GB; a timing check"]
    fn random_1b_q4s_takes_seconds() {
        let c = LlamaConfig::llama_3_2_1b();
        let t = std::time::Instant::now();
        let w = LlamaWeights::random(&c, WeightFormat::Q4S, 1).unwrap();
        let n: usize = w.embed.rows * w.embed.cols
            + w.layers
                .iter()
                .flat_map(|l| l.matrices())
                .map(|m| m.rows * m.cols)
                .sum::<usize>();
        let dt = t.elapsed();
        eprintln!("{n} random Q4S weights in {dt:?}");
        assert!(n > 1_200_000_000);
        assert!(dt.as_secs() < 30, "{dt:?}");
    }
}
