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
//!   its size and sha256. Loading checks every file before using any (`read`); natively, files a
//!   verification stamp vouches for are not hashed again (`stamp`).

use std::collections::BTreeMap;

use ::safetensors::Dtype;
use hearth_gpu::{HostMatrix, WeightFormat};
use serde::{Deserialize, Serialize};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::gguf::MetaValue;
use crate::loader::{LoadReport, ModelFiles, ModelKind, TokenizerFiles};
use crate::safetensors::hf_layer_names;
use crate::source::ReadAt;
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

/// Loads a pack through `files(name)`, which returns a whole file (see
/// [`crate::loader::load_pack_files`]); every file is checksummed.
pub(crate) fn load_pack(files: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<ModelFiles> {
    let open =
        |name: &str| -> Result<Box<dyn ReadAt + '_>> { Ok(Box::new(InMemory(files(name)?))) };
    let manifest = files(MANIFEST)?;
    let mut report = LoadReport::default();
    load_checked(&open, &manifest, &|_| false, &mut report, &mut |_| {})
}

/// A file already in memory.
struct InMemory(Vec<u8>);

impl ReadAt for InMemory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|at| self.0.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| {
                bad(format!(
                    "read of {} bytes at {offset} past the end",
                    buf.len()
                ))
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// The pack read through `open` (see [`read::read_pack`]), its tokenizer files handed to
/// `tokenizer` as soon as they are checked: natively on a second thread while the weights are
/// read.
fn load_checked(
    open: read::Open<'_>,
    manifest: &[u8],
    vouched: &dyn Fn(&str) -> bool,
    report: &mut LoadReport,
    tokenizer: &mut (dyn FnMut(&TokenizerFiles) + Send),
) -> Result<ModelFiles> {
    let mut early = None;
    let tensors = read::read_pack(open, manifest, vouched, report, &mut |mut small| {
        let config: LlamaConfig = serde_json::from_slice(&need(&mut small, CONFIG)?)
            .map_err(|e| ModelError::Config(format!("pack {CONFIG}: {e}")))?;
        config.validate()?;
        let files = tokenizer_files(small)?;
        tokenizer(&files);
        early = Some((config, files));
        Ok(())
    })?;
    let (config, tokenizer) = early.ok_or_else(|| bad("the pack's small files were not read"))?;
    Ok(ModelFiles {
        weights: read_weights(config, tensors)?,
        tokenizer,
        kind: ModelKind::Pack,
    })
}

fn need(small: &mut BTreeMap<String, Vec<u8>>, name: &str) -> Result<Vec<u8>> {
    small
        .remove(name)
        .ok_or_else(|| bad(format!("{MANIFEST} does not list {name}")))
}

/// The GGUF metadata map, or else `tokenizer.json` (+ `tokenizer_config.json`).
fn tokenizer_files(mut small: BTreeMap<String, Vec<u8>>) -> Result<TokenizerFiles> {
    if let Some(meta) = small.remove(GGUF_META) {
        return Ok(TokenizerFiles::Gguf(
            serde_json::from_slice::<BTreeMap<String, MetaValue>>(&meta)
                .map_err(|e| bad(format!("{GGUF_META}: {e}")))?,
        ));
    }
    Ok(TokenizerFiles::Hf {
        tokenizer_json: need(&mut small, TOKENIZER_JSON)?,
        tokenizer_config_json: small.remove(TOKENIZER_CONFIG_JSON),
    })
}

/// Takes tensor `name` out of `t`, checked against `dtype` and `want`.
fn take(t: &mut read::Tensors, name: &str, dtype: Dtype, want: &[usize]) -> Result<Vec<u32>> {
    let info = t
        .header
        .info(name)
        .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
    if info.dtype != dtype || info.shape != want {
        return Err(ModelError::TensorShape {
            name: format!("{name} ({:?}, expected {dtype:?})", info.dtype),
            expected: want.to_vec(),
            found: info.shape.clone(),
        });
    }
    // A tensor taken twice (a manifest naming one tensor for two uses) is missing the second time.
    t.words
        .remove(name)
        .ok_or_else(|| ModelError::MissingTensor(name.into()))
}

/// A matrix of `shape` and its format from the header's `__metadata__`.
fn matrix(t: &mut read::Tensors, name: &str, [rows, cols]: [usize; 2]) -> Result<HostMatrix> {
    let sym = t
        .header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(name))
        .ok_or_else(|| ModelError::MissingTensor(name.into()))?;
    let format =
        WeightFormat::from_sym(sym).ok_or_else(|| bad(format!("`{name}` format `{sym}`")))?;
    let qs = take(
        t,
        &format!("{name}.qs"),
        Dtype::U32,
        &[rows, format.qs_words(cols)],
    )?;
    let scales = match format.scale_words(cols) {
        0 => vec![],
        sw => take(t, &format!("{name}.scales"), Dtype::U32, &[rows, sw])?,
    };
    Ok(HostMatrix::new(format, rows, cols, qs, scales)?)
}

fn vector(t: &mut read::Tensors, name: &str, n: usize) -> Result<Vec<f32>> {
    let words = take(t, name, Dtype::F32, &[n])?;
    Ok(words.into_iter().map(f32::from_bits).collect())
}

fn read_weights(config: LlamaConfig, mut t: read::Tensors) -> Result<LlamaWeights> {
    let t = &mut t;
    let (v, d) = (config.vocab_size, config.hidden_size);
    let shapes = layer_matrix_shapes(&config);
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let names = hf_layer_names(i);
        let mut m = |j: usize| matrix(t, &names[j], shapes[j].1);
        let [wq, wk, wv, wo, w_gate, w_up, w_down] =
            [m(0)?, m(1)?, m(2)?, m(3)?, m(4)?, m(5)?, m(6)?];
        let p = format!("model.layers.{i}");
        layers.push(LayerWeights {
            attn_norm: vector(t, &format!("{p}.input_layernorm.weight"), d)?,
            wq,
            wk,
            wv,
            wo,
            ffn_norm: vector(t, &format!("{p}.post_attention_layernorm.weight"), d)?,
            w_gate,
            w_up,
            w_down,
        });
    }
    let lm_head = match config.tie_word_embeddings {
        true => None,
        false => Some(matrix(t, "lm_head.weight", [v, d])?),
    };
    let w = LlamaWeights {
        embed: matrix(t, "model.embed_tokens.weight", [v, d])?,
        layers,
        norm: vector(t, "model.norm.weight", d)?,
        lm_head,
        config,
    };
    w.validate()?;
    Ok(w)
}

mod read;
#[cfg(not(target_arch = "wasm32"))]
mod stamp;
mod write;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use stamp::load_pack_dir;
#[cfg(not(target_arch = "wasm32"))]
pub use stamp::STAMP;

#[cfg(not(target_arch = "wasm32"))]
pub use write::write_pack;
pub use write::{write_pack_to, PackSink};
