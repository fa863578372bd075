//! Hearth packs: a directory of the weights already in kernel formats, so loading is a checksum and
//! a copy, with no conversion.
//!
//! - `model.safetensors`: per matrix `<hf name>.qs` `[rows, qs_words]` U32 and (quantised formats)
//!   `<hf name>.scales` `[rows, scale_words]` U32, its format (`f32`/`q8`/`q4`/`q4s`, layouts in
//!   `hearth_gpu::quant`) under `<hf name>` in the safetensors `__metadata__`; norms as F32 under
//!   their Hugging Face names. Loading checks every tensor's dtype and shape against its format.
//! - `config.json`: our `LlamaConfig`.
//! - tokenizer: `tokenizer.json` (+ `tokenizer_config.json`) for Hugging Face sources, or
//!   `tokenizer.gguf-meta.json` (the GGUF metadata map, serde-tagged `MetaValue`s) for GGUF sources.
//! - `manifest.json`: format, version, architecture, quantisation, source, and every other file with
//!   its size and sha256. Loading verifies every checksum before parsing anything else.

use std::collections::BTreeMap;

use ::safetensors::{Dtype, SafeTensors};
use hearth_gpu::{HostMatrix, WeightFormat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::gguf::MetaValue;
use crate::loader::{ModelFiles, ModelKind, TokenizerFiles};
use crate::safetensors::{hf_layer_names, is_plain_file_name};
use crate::weights::{layer_matrix_shapes, LayerWeights, LlamaWeights};

pub const MANIFEST: &str = "manifest.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const CONFIG: &str = "config.json";
pub const TOKENIZER_JSON: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";
pub const GGUF_META: &str = "tokenizer.gguf-meta.json";
pub const FORMAT: &str = "hearth-pack";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub architecture: String,
    /// Distinct matrix formats, e.g. `"q4s"` or `"q4+q8"`.
    pub quantization: String,
    /// What the pack was made from.
    pub source: ModelKind,
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

fn bad(m: impl Into<String>) -> ModelError {
    ModelError::Pack(m.into())
}

/// Loads a pack through `files` (see [`crate::loader::load_pack_files`]).
pub(crate) fn load_pack(files: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<ModelFiles> {
    let manifest: Manifest =
        serde_json::from_slice(&files(MANIFEST)?).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(ModelError::Unsupported(format!(
            "pack format {} version {} (this build reads {FORMAT} {VERSION})",
            manifest.format, manifest.version
        )));
    }
    if manifest.architecture != "llama" {
        return Err(ModelError::Unsupported(format!(
            "pack architecture `{}`",
            manifest.architecture
        )));
    }
    let mut blobs = BTreeMap::new();
    for f in &manifest.files {
        if !is_plain_file_name(&f.name) {
            return Err(bad(format!(
                "{MANIFEST} lists a bad file name {:?}",
                f.name
            )));
        }
        if f.name == MANIFEST || blobs.contains_key(&f.name) {
            return Err(bad(format!("{MANIFEST} lists `{}` twice", f.name)));
        }
        let bytes = files(&f.name)?;
        let found = hex::encode(Sha256::digest(&bytes));
        if bytes.len() as u64 != f.size || !found.eq_ignore_ascii_case(&f.sha256) {
            return Err(ModelError::Checksum {
                file: f.name.clone(),
                expected: format!("{} bytes, sha256 {}", f.size, f.sha256),
                found: format!("{} bytes, sha256 {found}", bytes.len()),
            });
        }
        blobs.insert(f.name.clone(), bytes);
    }
    let need = |name: &str| {
        blobs
            .get(name)
            .ok_or_else(|| bad(format!("{MANIFEST} does not list {name}")))
    };
    let config: LlamaConfig = serde_json::from_slice(need(CONFIG)?)
        .map_err(|e| ModelError::Config(format!("pack {CONFIG}: {e}")))?;
    config.validate()?;
    let weights = read_weights(config, need(WEIGHTS)?)?;
    let tokenizer = if let Some(meta) = blobs.get(GGUF_META) {
        TokenizerFiles::Gguf(
            serde_json::from_slice::<BTreeMap<String, MetaValue>>(meta)
                .map_err(|e| bad(format!("{GGUF_META}: {e}")))?,
        )
    } else {
        TokenizerFiles::Hf {
            tokenizer_json: need(TOKENIZER_JSON)?.clone(),
            tokenizer_config_json: blobs.get(TOKENIZER_CONFIG_JSON).cloned(),
        }
    };
    Ok(ModelFiles {
        weights,
        tokenizer,
        kind: ModelKind::Pack,
    })
}

fn read_weights(config: LlamaConfig, bytes: &[u8]) -> Result<LlamaWeights> {
    let (n, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| ModelError::Safetensors(format!("pack {WEIGHTS}: {e}")))?;
    let data = bytes.get(8 + n..).unwrap_or_default();
    let formats = header.metadata().clone().unwrap_or_default();
    let words = |name: &str, dtype: Dtype, want: &[usize]| -> Result<Vec<u32>> {
        let t = header
            .info(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        if t.dtype != dtype || t.shape != want {
            return Err(ModelError::TensorShape {
                name: format!("{name} ({:?}, expected {dtype:?})", t.dtype),
                expected: want.to_vec(),
                found: t.shape.clone(),
            });
        }
        // `read_metadata` checked that the offsets tile `data` exactly.
        let raw = data
            .get(t.data_offsets.0..t.data_offsets.1)
            .ok_or_else(|| ModelError::Safetensors(format!("`{name}` out of bounds")))?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let matrix = |name: &str, [rows, cols]: [usize; 2]| -> Result<HostMatrix> {
        let sym = formats
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
        let format =
            WeightFormat::from_sym(sym).ok_or_else(|| bad(format!("`{name}` format `{sym}`")))?;
        let qs = words(
            &format!("{name}.qs"),
            Dtype::U32,
            &[rows, format.qs_words(cols)],
        )?;
        let scales = match format.scale_words(cols) {
            0 => vec![],
            sw => words(&format!("{name}.scales"), Dtype::U32, &[rows, sw])?,
        };
        let m = HostMatrix {
            format,
            rows,
            cols,
            qs,
            scales,
        };
        m.validate()?;
        Ok(m)
    };
    let vector = |name: &str, n: usize| -> Result<Vec<f32>> {
        Ok(words(name, Dtype::F32, &[n])?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    };
    let (v, d) = (config.vocab_size, config.hidden_size);
    let shapes = layer_matrix_shapes(&config);
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let names = hf_layer_names(i);
        let m = |j: usize| matrix(&names[j], shapes[j].1);
        let p = format!("model.layers.{i}");
        layers.push(LayerWeights {
            attn_norm: vector(&format!("{p}.input_layernorm.weight"), d)?,
            wq: m(0)?,
            wk: m(1)?,
            wv: m(2)?,
            wo: m(3)?,
            ffn_norm: vector(&format!("{p}.post_attention_layernorm.weight"), d)?,
            w_gate: m(4)?,
            w_up: m(5)?,
            w_down: m(6)?,
        });
    }
    let lm_head = match config.tie_word_embeddings {
        true => None,
        false => Some(matrix("lm_head.weight", [v, d])?),
    };
    let w = LlamaWeights {
        embed: matrix("model.embed_tokens.weight", [v, d])?,
        layers,
        norm: vector("model.norm.weight", d)?,
        lm_head,
        config,
    };
    w.validate()?;
    Ok(w)
}

mod write;

#[cfg(not(target_arch = "wasm32"))]
pub use write::write_pack;
pub use write::{write_pack_to, PackSink};
