//! BERT encoder and sentence-transformers settings, read from a model directory's `config.json`,
//! `sentence_bert_config.json`, `modules.json` and `1_Pooling/config.json` (Hugging Face names).

use serde::Deserialize;

use crate::error::{ModelError, Result};
use hearth_gpu::norm::Pooling;

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Config(msg.into())
}

/// `config.json` of a `BertModel` (the fields the encoder uses).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Self =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("config.json: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// What the kernels need: linear inputs a multiple of 32, an even head size ≤ 256, the exact
    /// GELU and absolute positions.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        if c.vocab_size == 0 || c.num_hidden_layers == 0 || c.num_attention_heads == 0 {
            return Err(bad("config.json: empty vocabulary, layers or heads"));
        }
        if c.hidden_size == 0 || !c.hidden_size.is_multiple_of(32) {
            return Err(bad(format!(
                "hidden_size {} (must be a positive multiple of 32)",
                c.hidden_size
            )));
        }
        if !c.intermediate_size.is_multiple_of(32) || c.intermediate_size == 0 {
            return Err(bad(format!(
                "intermediate_size {} (must be a positive multiple of 32)",
                c.intermediate_size
            )));
        }
        let hd = c.head_dim();
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) || !hd.is_multiple_of(2) || hd > 256
        {
            return Err(bad(format!(
                "{} heads over hidden_size {} (head size must be even and ≤ 256)",
                c.num_attention_heads, c.hidden_size
            )));
        }
        if c.max_position_embeddings < 2 || c.type_vocab_size == 0 {
            return Err(bad("config.json: no positions or token types"));
        }
        if c.hidden_act != "gelu" {
            return Err(ModelError::Unsupported(format!(
                "hidden_act `{}` (the encoder implements BERT's exact `gelu`)",
                c.hidden_act
            )));
        }
        if c.position_embedding_type != "absolute" {
            return Err(ModelError::Unsupported(format!(
                "position_embedding_type `{}` (absolute only)",
                c.position_embedding_type
            )));
        }
        if !(c.layer_norm_eps > 0.0 && c.layer_norm_eps < 1.0) {
            return Err(bad(format!("layer_norm_eps {}", c.layer_norm_eps)));
        }
        Ok(())
    }
}

/// How a sentence-transformers model turns token states into one vector, and its input limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentenceConfig {
    pub pooling: Pooling,
    /// A `Normalize` module follows pooling (unit-length embeddings).
    pub normalize: bool,
    /// Tokens per input, special tokens included; longer inputs are truncated.
    pub max_seq_length: usize,
}

#[derive(Deserialize)]
struct PoolingJson {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SbertJson {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct ModuleJson {
    #[serde(rename = "type")]
    kind: String,
}

impl SentenceConfig {
    /// From the optional sentence-transformers files. Without them: mean pooling, normalised,
    /// the model's full position range (as sentence-transformers does for a plain BERT).
    pub fn from_files(
        bert: &BertConfig,
        pooling: Option<&[u8]>,
        sbert: Option<&[u8]>,
        modules: Option<&[u8]>,
    ) -> Result<Self> {
        let pooling = match pooling {
            None => Pooling::Mean,
            Some(b) => {
                let p: PoolingJson = serde_json::from_slice(b)
                    .map_err(|e| bad(format!("1_Pooling/config.json: {e}")))?;
                match (
                    p.pooling_mode_cls_token,
                    p.pooling_mode_mean_tokens,
                    p.pooling_mode_max_tokens || p.pooling_mode_mean_sqrt_len_tokens,
                ) {
                    (true, false, false) => Pooling::Cls,
                    (false, true, false) => Pooling::Mean,
                    _ => {
                        return Err(ModelError::Unsupported(
                            "pooling other than exactly one of mean or CLS".into(),
                        ))
                    }
                }
            }
        };
        let max_seq_length = match sbert {
            None => None,
            Some(b) => {
                serde_json::from_slice::<SbertJson>(b)
                    .map_err(|e| bad(format!("sentence_bert_config.json: {e}")))?
                    .max_seq_length
            }
        }
        .unwrap_or(bert.max_position_embeddings)
        .min(bert.max_position_embeddings);
        if max_seq_length < 2 {
            return Err(bad(format!("max_seq_length {max_seq_length}")));
        }
        let normalize = match modules {
            None => true,
            Some(b) => serde_json::from_slice::<Vec<ModuleJson>>(b)
                .map_err(|e| bad(format!("modules.json: {e}")))?
                .iter()
                .any(|m| m.kind.ends_with(".Normalize")),
        };
        Ok(Self {
            pooling,
            normalize,
            max_seq_length,
        })
    }
}
