//! Hugging Face Llama checkpoints: `config.json` + `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`), bf16/f16/f32 → `LlamaWeights` with every matrix (embedding and
//! lm_head included) quantised at load, by default to Q4S ([`DEFAULT_FORMAT`]: symmetric INT4, group
//! 32, round-to-nearest as llama.cpp's reference Q4_0 quantiser), or to any other [`WeightFormat`]
//! (e.g. the asymmetric Q4) through [`load_hf_as`].
//!
//! Memory: only shard headers are kept; each tensor is read from its file in chunks of rows that
//! are converted and quantised straight away, so a 2.5 GB checkpoint never sits in memory.

use std::collections::BTreeMap;

use hearth_gpu::WeightFormat;
use serde::Deserialize;

use crate::config::{Llama3RopeScaling, LlamaConfig, RopeStyle};
use crate::error::{ModelError, Result};

pub const CONFIG: &str = "config.json";
pub const SINGLE: &str = "model.safetensors";
pub const INDEX: &str = "model.safetensors.index.json";
/// What Hugging Face matrices are quantised to unless asked otherwise: 4.5 bits a weight (Q4, with a
/// min per group, takes 5).
pub const DEFAULT_FORMAT: WeightFormat = WeightFormat::Q4S;

/// The `config.json` fields Hearth reads (absent optional fields take `transformers`' defaults).
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f32>,
    rope_theta: Option<f32>,
    rope_scaling: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<serde_json::Value>,
    hidden_act: Option<String>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
}

fn config_err(m: impl Into<String>) -> ModelError {
    ModelError::Config(m.into())
}

/// Parses a Hugging Face Llama `config.json` (`rope_style: Half`) and validates it.
pub fn parse_hf_config(json: &[u8]) -> Result<LlamaConfig> {
    let c: HfConfig =
        serde_json::from_slice(json).map_err(|e| config_err(format!("config.json: {e}")))?;
    if let Some(t) = c.model_type.as_deref().filter(|t| *t != "llama") {
        return Err(ModelError::Unsupported(format!(
            "model_type `{t}` (only `llama`)"
        )));
    }
    if let Some(a) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(ModelError::Unsupported(format!(
            "hidden_act `{a}` (only `silu`)"
        )));
    }
    if c.attention_bias == Some(true) || c.mlp_bias == Some(true) {
        return Err(ModelError::Unsupported("attention or MLP biases".into()));
    }
    let heads = c.num_attention_heads;
    let head_dim = match c.head_dim {
        Some(h) => h,
        None if heads > 0 && c.hidden_size.is_multiple_of(heads) => c.hidden_size / heads,
        None => {
            return Err(config_err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                c.hidden_size
            )))
        }
    };
    let eos_token_ids = match c.eos_token_id {
        None | Some(serde_json::Value::Null) => vec![],
        Some(v) => serde_json::from_value::<EosIds>(v)
            .map_err(|e| config_err(format!("eos_token_id: {e}")))?
            .into_vec(),
    };
    let config = LlamaConfig {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_hidden_layers: c.num_hidden_layers,
        num_attention_heads: heads,
        num_key_value_heads: c.num_key_value_heads.unwrap_or(heads),
        head_dim,
        rms_norm_eps: c.rms_norm_eps.unwrap_or(1e-6),
        rope_theta: c.rope_theta.unwrap_or(10000.0),
        rope_scaling: parse_rope_scaling(c.rope_scaling)?,
        rope_style: RopeStyle::Half,
        max_position_embeddings: c.max_position_embeddings.unwrap_or(2048),
        tie_word_embeddings: c.tie_word_embeddings.unwrap_or(false),
        bos_token_id: c.bos_token_id,
        eos_token_ids,
    };
    config.validate()?;
    Ok(config)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EosIds {
    One(u32),
    Many(Vec<u32>),
}

impl EosIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            EosIds::One(i) => vec![i],
            EosIds::Many(v) => v,
        }
    }
}

fn parse_rope_scaling(v: Option<serde_json::Value>) -> Result<Option<Llama3RopeScaling>> {
    let Some(obj) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let factor = obj.get("factor").and_then(|f| f.as_f64());
    match (kind, factor) {
        ("llama3", _) => serde_json::from_value(obj.clone())
            .map(Some)
            .map_err(|e| config_err(format!("rope_scaling: {e}"))),
        ("default", _) | ("linear" | "dynamic", Some(1.0)) => Ok(None),
        _ => Err(ModelError::Unsupported(format!("rope_scaling {obj}"))),
    }
}

const HF_LAYER_MATRICES: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// Hugging Face tensor names for layer `i`, in `LayerWeights` matrix order.
pub fn hf_layer_names(i: usize) -> [String; 7] {
    HF_LAYER_MATRICES.map(|n| format!("model.layers.{i}.{n}.weight"))
}

/// `weight_map` of `model.safetensors.index.json`: tensor name → shard file name.
pub fn parse_index(json: &[u8]) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let idx: Index = serde_json::from_slice(json)
        .map_err(|e| ModelError::Safetensors(format!("{INDEX}: {e}")))?;
    if let Some(file) = idx.weight_map.values().find(|f| !is_plain_file_name(f)) {
        return Err(ModelError::Safetensors(format!(
            "{INDEX}: bad shard name {file:?}"
        )));
    }
    Ok(idx.weight_map)
}

/// Shard and pack file names must be plain names inside the model directory.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0', ':'])
        && !name.starts_with('.')
}

pub use checkpoint::{load_hf_as, load_hf_with};
#[cfg(not(target_arch = "wasm32"))]
pub use checkpoint::{load_hf_dir, load_hf_dir_with};

mod checkpoint {
    use std::collections::BTreeMap;

    use ::safetensors::tensor::{Metadata, TensorInfo};
    use ::safetensors::Dtype;
    use half::{bf16, f16};
    use hearth_gpu::{HostMatrix, WeightFormat};

    use super::{
        hf_layer_names, parse_hf_config, parse_index, CONFIG, DEFAULT_FORMAT, INDEX, SINGLE,
    };
    use crate::error::{ModelError, Result};
    use crate::loader::{ModelFiles, ModelKind, TokenizerFiles};
    use crate::source::{ModelSource, ReadAt};
    use crate::weights::{layer_matrix_shapes, LayerWeights, LlamaWeights};

    /// Largest safetensors header accepted (as the `safetensors` crate).
    const MAX_HEADER: u64 = 100_000_000;
    /// Values converted per read (bounds the f32 scratch to 4 MiB).
    const CHUNK: usize = 1 << 20;

    fn bad(file: &str, m: impl std::fmt::Display) -> ModelError {
        ModelError::Safetensors(format!("{file}: {m}"))
    }

    /// One safetensors file: its parsed header and an open handle for reading tensors.
    struct Shard<'s> {
        name: String,
        file: Box<dyn ReadAt + 's>,
        data_start: u64,
        meta: Metadata,
    }

    impl<'s> Shard<'s> {
        fn open(src: &'s dyn ModelSource, name: &str) -> Result<Self> {
            let mut file = src.open(name)?;
            let len = file.size();
            if len < 8 {
                return Err(bad(name, "shorter than a safetensors header"));
            }
            let mut n = [0u8; 8];
            file.read_at(0, &mut n)?;
            let n = u64::from_le_bytes(n);
            if n > MAX_HEADER || n > len - 8 {
                return Err(bad(name, format!("header length {n} in a {len}-byte file")));
            }
            let mut header = vec![0u8; n as usize];
            file.read_at(8, &mut header)?;
            // Deserialising `Metadata` checks that the tensors tile the data without gaps or overlap.
            let meta: Metadata = serde_json::from_slice(&header).map_err(|e| bad(name, e))?;
            let data_start = 8 + n;
            if data_start + meta.data_len() as u64 != len {
                return Err(bad(
                    name,
                    format!(
                        "{len} bytes, but the header describes {}",
                        data_start + meta.data_len() as u64
                    ),
                ));
            }
            Ok(Shard {
                name: name.to_owned(),
                file,
                data_start,
                meta,
            })
        }
    }

    /// A checkpoint of one or several shards, opened lazily.
    struct Checkpoint<'s> {
        src: &'s dyn ModelSource,
        /// What matrices are quantised to.
        format: WeightFormat,
        /// tensor → shard file; `None` for a single `model.safetensors`.
        map: Option<BTreeMap<String, String>>,
        shards: BTreeMap<String, Shard<'s>>,
    }

    impl<'s> Checkpoint<'s> {
        fn open(src: &'s dyn ModelSource, format: WeightFormat) -> Result<Self> {
            let map = if src.exists(INDEX) {
                Some(parse_index(&src.read_all(INDEX)?)?)
            } else if src.exists(SINGLE) {
                None
            } else {
                return Err(bad(
                    &src.describe(),
                    format!("neither {SINGLE} nor {INDEX}"),
                ));
            };
            Ok(Self {
                src,
                format,
                map,
                shards: BTreeMap::new(),
            })
        }

        /// The shard holding `name` and the tensor's header entry, checked against `shape`.
        fn locate(&mut self, name: &str, shape: &[usize]) -> Result<(&mut Shard<'s>, TensorInfo)> {
            let file = match &self.map {
                None => SINGLE.to_string(),
                Some(m) => m
                    .get(name)
                    .cloned()
                    .ok_or_else(|| ModelError::MissingTensor(name.into()))?,
            };
            if !self.shards.contains_key(&file) {
                let shard = Shard::open(self.src, &file)?;
                self.shards.insert(file.clone(), shard);
            }
            let shard = self
                .shards
                .get_mut(&file)
                .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
            let info = shard
                .meta
                .info(name)
                .cloned()
                .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
            if info.shape != shape {
                return Err(ModelError::TensorShape {
                    name: name.into(),
                    expected: shape.to_vec(),
                    found: info.shape,
                });
            }
            Ok((shard, info))
        }

        /// Streams tensor `name` (of `shape`) as f32 in chunks of whole multiples of `unit` values.
        fn read(
            &mut self,
            name: &str,
            shape: &[usize],
            unit: usize,
            mut f: impl FnMut(&[f32]) -> Result<()>,
        ) -> Result<()> {
            let (shard, info) = self.locate(name, shape)?;
            let size = match info.dtype {
                Dtype::BF16 | Dtype::F16 => 2,
                Dtype::F32 => 4,
                d => {
                    return Err(ModelError::Unsupported(format!(
                        "tensor `{name}` has dtype {d:?} (bf16, f16 or f32 only)"
                    )))
                }
            };
            let total: usize = shape.iter().product();
            if info.data_offsets.1 - info.data_offsets.0 != total * size {
                return Err(bad(
                    &shard.name,
                    format!("`{name}` has the wrong byte length"),
                ));
            }
            let mut at = shard.data_start + info.data_offsets.0 as u64;
            let per = (CHUNK / unit).max(1) * unit;
            let (mut raw, mut vals) = (vec![0u8; per.min(total) * size], Vec::new());
            let mut done = 0;
            while done < total {
                let n = per.min(total - done);
                let raw = &mut raw[..n * size];
                shard.file.read_at(at, raw)?;
                at += raw.len() as u64;
                vals.clear();
                match info.dtype {
                    Dtype::BF16 => vals.extend(
                        raw.chunks_exact(2)
                            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
                    ),
                    Dtype::F16 => vals.extend(
                        raw.chunks_exact(2)
                            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
                    ),
                    _ => vals.extend(
                        raw.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    ),
                }
                f(&vals)?;
                done += n;
            }
            Ok(())
        }

        /// A `[rows, cols]` matrix quantised to the checkpoint's format chunk by chunk (of whole rows).
        fn matrix(&mut self, name: &str, [rows, cols]: [usize; 2]) -> Result<HostMatrix> {
            let format = self.format;
            let mut m = HostMatrix {
                format,
                rows,
                cols,
                qs: Vec::with_capacity(rows * format.qs_words(cols)),
                scales: Vec::with_capacity(rows * format.scale_words(cols)),
            };
            self.read(name, &[rows, cols], cols, |chunk| {
                let part = HostMatrix::quantize(format, chunk.len() / cols, cols, chunk)?;
                m.qs.extend_from_slice(&part.qs);
                m.scales.extend_from_slice(&part.scales);
                Ok(())
            })?;
            m.validate()?;
            Ok(m)
        }

        fn vector(&mut self, name: &str, n: usize) -> Result<Vec<f32>> {
            let mut v = Vec::with_capacity(n);
            self.read(name, &[n], 1, |chunk| {
                v.extend_from_slice(chunk);
                Ok(())
            })?;
            Ok(v)
        }
    }

    /// Loads a Hugging Face Llama directory (weights quantised to [`DEFAULT_FORMAT`]; tokenizer
    /// files as bytes).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_hf_dir(dir: &std::path::Path) -> Result<ModelFiles> {
        load_hf_dir_with(dir, DEFAULT_FORMAT, &mut |_, _| {})
    }

    /// [`load_hf_dir`] quantising to `format`, reporting `(tensors done, total)` as each is read
    /// and quantised.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_hf_dir_with(
        dir: &std::path::Path,
        format: WeightFormat,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ModelFiles> {
        load_hf_as(&crate::source::DirSource::new(dir), format, progress)
    }

    /// Loads a Hugging Face Llama folder from any source (weights quantised to
    /// [`DEFAULT_FORMAT`]), reporting `(tensors done, total)` as each is read and quantised.
    pub fn load_hf_with(
        src: &dyn ModelSource,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ModelFiles> {
        load_hf_as(src, DEFAULT_FORMAT, progress)
    }

    /// [`load_hf_with`], every matrix quantised to `format`.
    pub fn load_hf_as(
        src: &dyn ModelSource,
        format: WeightFormat,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ModelFiles> {
        let config = parse_hf_config(&src.read_all(CONFIG)?)?;
        let tokenizer_json = match src.read_all("tokenizer.json") {
            Ok(b) => b,
            Err(e) => return Err(ModelError::Tokenizer(format!("tokenizer.json: {e}"))),
        };
        let tokenizer_config_json = match src.exists("tokenizer_config.json") {
            true => Some(src.read_all("tokenizer_config.json")?),
            false => None,
        };
        let mut ck = Checkpoint::open(src, format)?;
        let (v, d) = (config.vocab_size, config.hidden_size);
        // Embedding, 9 tensors per layer, final norm (and an untied head).
        let total =
            2 + 9 * config.num_hidden_layers as u64 + u64::from(!config.tie_word_embeddings);
        let embed = ck.matrix("model.embed_tokens.weight", [v, d])?;
        progress(1, total);
        let shapes = layer_matrix_shapes(&config);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let names = hf_layer_names(i);
            let p = format!("model.layers.{i}");
            let mut m = |j: usize| ck.matrix(&names[j], shapes[j].1);
            let (wq, wk, wv, wo) = (m(0)?, m(1)?, m(2)?, m(3)?);
            let (w_gate, w_up, w_down) = (m(4)?, m(5)?, m(6)?);
            layers.push(LayerWeights {
                attn_norm: ck.vector(&format!("{p}.input_layernorm.weight"), d)?,
                wq,
                wk,
                wv,
                wo,
                ffn_norm: ck.vector(&format!("{p}.post_attention_layernorm.weight"), d)?,
                w_gate,
                w_up,
                w_down,
            });
            progress(1 + 9 * (i as u64 + 1), total);
        }
        let norm = ck.vector("model.norm.weight", d)?;
        // Tied checkpoints sometimes still store `lm_head.weight` (a copy): it is ignored.
        let lm_head = match config.tie_word_embeddings {
            true => None,
            false => Some(ck.matrix("lm_head.weight", [v, d])?),
        };
        progress(total, total);
        let weights = LlamaWeights {
            config,
            embed,
            layers,
            norm,
            lm_head,
        };
        weights.validate()?;
        Ok(ModelFiles {
            weights,
            tokenizer: TokenizerFiles::Hf {
                tokenizer_json,
                tokenizer_config_json,
            },
            kind: ModelKind::HuggingFace,
        })
    }
}
