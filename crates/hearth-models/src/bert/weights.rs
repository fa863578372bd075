//! BERT encoder weights on the host, read from a `model.safetensors` held in memory (the same path
//! natively and in the browser), with every shape checked against the config at load.

use safetensors::{Dtype, SafeTensors};

use super::config::BertConfig;
use crate::error::{ModelError, Result};

/// One encoder layer (post-LayerNorm BERT). D = hidden_size, F = intermediate_size.
#[derive(Clone, Debug)]
pub struct BertLayer {
    /// `[3D, D]`: query, key and value weights stacked (one projection).
    pub wqkv: Vec<f32>,
    /// `[3D]`
    pub bqkv: Vec<f32>,
    /// `[D, D]` attention output projection, `[D]` its bias.
    pub wo: Vec<f32>,
    pub bo: Vec<f32>,
    /// `[D]` LayerNorm after the attention residual.
    pub attn_norm_w: Vec<f32>,
    pub attn_norm_b: Vec<f32>,
    /// `[F, D]`, `[F]`: intermediate (GELU) projection.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    /// `[D, F]`, `[D]`: output projection.
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
    /// `[D]` LayerNorm after the feed-forward residual.
    pub ffn_norm_w: Vec<f32>,
    pub ffn_norm_b: Vec<f32>,
}

#[derive(Clone, Debug)]
pub struct BertWeights {
    pub config: BertConfig,
    /// `[vocab, D]`
    pub word_embeddings: Vec<f32>,
    /// `[max positions, D]`
    pub position_embeddings: Vec<f32>,
    /// `[types, D]`
    pub token_type_embeddings: Vec<f32>,
    /// `[D]` LayerNorm of the embedding sum.
    pub emb_norm_w: Vec<f32>,
    pub emb_norm_b: Vec<f32>,
    pub layers: Vec<BertLayer>,
}

/// Tensor names as `BertModel` saves them; checkpoints of wrapper models add a prefix.
const PREFIXES: [&str; 3] = ["", "bert.", "model."];

struct Reader<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
}

impl Reader<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .tensor(&full)
            .map_err(|_| ModelError::MissingTensor(full.clone()))?;
        if t.shape() != shape {
            return Err(ModelError::TensorShape {
                name: full,
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        let data = t.data();
        Ok(match t.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            d => {
                return Err(ModelError::Unsupported(format!(
                    "tensor `{full}` has dtype {d:?} (f32, f16 or bf16 only)"
                )))
            }
        })
    }
}

impl BertWeights {
    /// Reads every tensor the encoder needs from safetensors bytes (f32, f16 or bf16; upcast to f32).
    pub fn from_safetensors(config: &BertConfig, bytes: &[u8]) -> Result<Self> {
        config.validate()?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::Safetensors(format!("model.safetensors: {e}")))?;
        let prefix = PREFIXES
            .into_iter()
            .find(|p| {
                st.tensor(&format!("{p}embeddings.word_embeddings.weight"))
                    .is_ok()
            })
            .ok_or_else(|| ModelError::MissingTensor("embeddings.word_embeddings.weight".into()))?;
        let r = Reader { st, prefix };
        let (d, f) = (config.hidden_size, config.intermediate_size);
        let emb = "embeddings";
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = format!("encoder.layer.{i}");
            let a = format!("{l}.attention");
            let mut wqkv = Vec::with_capacity(3 * d * d);
            let mut bqkv = Vec::with_capacity(3 * d);
            for part in ["query", "key", "value"] {
                wqkv.extend(r.get(&format!("{a}.self.{part}.weight"), &[d, d])?);
                bqkv.extend(r.get(&format!("{a}.self.{part}.bias"), &[d])?);
            }
            layers.push(BertLayer {
                wqkv,
                bqkv,
                wo: r.get(&format!("{a}.output.dense.weight"), &[d, d])?,
                bo: r.get(&format!("{a}.output.dense.bias"), &[d])?,
                attn_norm_w: r.get(&format!("{a}.output.LayerNorm.weight"), &[d])?,
                attn_norm_b: r.get(&format!("{a}.output.LayerNorm.bias"), &[d])?,
                w1: r.get(&format!("{l}.intermediate.dense.weight"), &[f, d])?,
                b1: r.get(&format!("{l}.intermediate.dense.bias"), &[f])?,
                w2: r.get(&format!("{l}.output.dense.weight"), &[d, f])?,
                b2: r.get(&format!("{l}.output.dense.bias"), &[d])?,
                ffn_norm_w: r.get(&format!("{l}.output.LayerNorm.weight"), &[d])?,
                ffn_norm_b: r.get(&format!("{l}.output.LayerNorm.bias"), &[d])?,
            });
        }
        let w = Self {
            config: config.clone(),
            word_embeddings: r.get(
                &format!("{emb}.word_embeddings.weight"),
                &[config.vocab_size, d],
            )?,
            position_embeddings: r.get(
                &format!("{emb}.position_embeddings.weight"),
                &[config.max_position_embeddings, d],
            )?,
            token_type_embeddings: r.get(
                &format!("{emb}.token_type_embeddings.weight"),
                &[config.type_vocab_size, d],
            )?,
            emb_norm_w: r.get(&format!("{emb}.LayerNorm.weight"), &[d])?,
            emb_norm_b: r.get(&format!("{emb}.LayerNorm.bias"), &[d])?,
            layers,
        };
        if let Some(bad) = w.non_finite() {
            return Err(ModelError::Safetensors(format!(
                "tensor `{bad}` holds NaN or infinite values"
            )));
        }
        Ok(w)
    }

    /// Name of the first tensor holding a NaN or infinity, if any (a corrupt file would otherwise
    /// surface as NaN embeddings much later).
    fn non_finite(&self) -> Option<String> {
        let bad = |v: &[f32]| v.iter().any(|x| !x.is_finite());
        for (name, v) in [
            ("word_embeddings", &self.word_embeddings),
            ("position_embeddings", &self.position_embeddings),
            ("token_type_embeddings", &self.token_type_embeddings),
        ] {
            if bad(v) {
                return Some(name.into());
            }
        }
        self.layers.iter().enumerate().find_map(|(i, l)| {
            [&l.wqkv, &l.bqkv, &l.wo, &l.bo, &l.w1, &l.b1, &l.w2, &l.b2]
                .into_iter()
                .any(|v| bad(v))
                .then(|| format!("encoder.layer.{i}"))
        })
    }
}
