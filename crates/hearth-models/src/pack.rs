//! Hearth packs: a directory of the weights already in kernel formats, so loading is a checksum and
//! a copy, with no conversion.
//!
//! - `model.safetensors`: per matrix `<hf name>.qs` `[rows, qs_words]` U32 and (quantised formats)
//!   `<hf name>.scales` `[rows, scale_words]` U32, its format (`f32`/`q8`/`q4`) under `<hf name>` in
//!   the safetensors `__metadata__`; norms as F32 under their Hugging Face names.
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
    /// Distinct matrix formats, e.g. `"q4"` or `"q4+q8"`.
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

fn parse_format(s: &str) -> Option<WeightFormat> {
    [WeightFormat::F32, WeightFormat::Q8, WeightFormat::Q4]
        .into_iter()
        .find(|f| f.sym() == s)
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
        let format = parse_format(sym).ok_or_else(|| bad(format!("`{name}` format `{sym}`")))?;
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

#[cfg(not(target_arch = "wasm32"))]
pub use write::write_pack;

#[cfg(not(target_arch = "wasm32"))]
mod write {
    use std::borrow::Cow;
    use std::collections::{BTreeSet, HashMap};
    use std::fs;
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};

    use ::safetensors::View;

    use super::*;

    /// Every matrix with its Hugging Face name and expected `[rows, cols]`.
    fn named_matrices(w: &LlamaWeights) -> Vec<(String, &HostMatrix)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &w.embed)];
        for (i, l) in w.layers.iter().enumerate() {
            out.extend(hf_layer_names(i).into_iter().zip(l.matrices()));
        }
        if let Some(h) = &w.lm_head {
            out.push(("lm_head.weight".into(), h));
        }
        out
    }

    fn named_vectors(w: &LlamaWeights) -> Vec<(String, &[f32])> {
        let mut out = vec![("model.norm.weight".to_string(), &w.norm[..])];
        for (i, l) in w.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), &l.attn_norm));
            out.push((format!("{p}.post_attention_layernorm.weight"), &l.ffn_norm));
        }
        out
    }

    fn quantization(w: &LlamaWeights) -> String {
        let set: BTreeSet<&str> = named_matrices(w)
            .iter()
            .map(|(_, m)| m.format.sym())
            .collect();
        set.into_iter().collect::<Vec<_>>().join("+")
    }

    /// A borrowed tensor for `safetensors` serialisation (little-endian words, no copy on LE hosts).
    struct Raw<'a> {
        dtype: Dtype,
        shape: Vec<usize>,
        words: &'a [u32],
    }

    impl View for Raw<'_> {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> Cow<'_, [u8]> {
            if cfg!(target_endian = "little") {
                Cow::Borrowed(bytemuck::cast_slice(self.words))
            } else {
                Cow::Owned(self.words.iter().flat_map(|w| w.to_le_bytes()).collect())
            }
        }
        fn data_len(&self) -> usize {
            4 * self.words.len()
        }
    }

    /// The tensors and `__metadata__` of a pack's `model.safetensors`.
    fn pack_tensors(w: &LlamaWeights) -> (Vec<(String, Raw<'_>)>, HashMap<String, String>) {
        let mut tensors = Vec::new();
        let mut meta = HashMap::from([("format".to_string(), format!("{FORMAT}/{VERSION}"))]);
        for (name, m) in named_matrices(w) {
            let f = m.format;
            tensors.push((
                format!("{name}.qs"),
                Raw {
                    dtype: Dtype::U32,
                    shape: vec![m.rows, f.qs_words(m.cols)],
                    words: &m.qs,
                },
            ));
            if f.scale_words(m.cols) > 0 {
                tensors.push((
                    format!("{name}.scales"),
                    Raw {
                        dtype: Dtype::U32,
                        shape: vec![m.rows, f.scale_words(m.cols)],
                        words: &m.scales,
                    },
                ));
            }
            meta.insert(name, f.sym().to_string());
        }
        for (name, v) in named_vectors(w) {
            let words: &[u32] = bytemuck::cast_slice(v);
            tensors.push((
                name,
                Raw {
                    dtype: Dtype::F32,
                    shape: vec![v.len()],
                    words,
                },
            ));
        }
        (tensors, meta)
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        }
    }

    fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
        let mut f = fs::File::create(path).map_err(io(path))?;
        f.write_all(bytes).map_err(io(path))?;
        f.sync_all().map_err(io(path))
    }

    fn describe(dir: &Path, name: &str) -> Result<ManifestFile> {
        let path = dir.join(name);
        let mut f = fs::File::open(&path).map_err(io(&path))?;
        let (mut hasher, mut buf, mut size) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
        loop {
            let n = f.read(&mut buf).map_err(io(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(ManifestFile {
            name: name.into(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Writes `files` as a pack into `out_dir` atomically: everything goes to a temporary sibling
    /// directory that is renamed into place at the end. An existing `out_dir` is replaced only if it
    /// is empty or a pack.
    pub fn write_pack(files: &ModelFiles, out_dir: &Path) -> Result<()> {
        let w = &files.weights;
        w.validate()?;
        let name = out_dir
            .file_name()
            .ok_or_else(|| bad(format!("{}: not a directory name", out_dir.display())))?
            .to_string_lossy()
            .into_owned();
        let parent = match out_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if out_dir.exists() {
            let empty = fs::read_dir(out_dir).map_err(io(out_dir))?.next().is_none();
            if !empty && !out_dir.join(MANIFEST).is_file() {
                return Err(bad(format!(
                    "{} exists and is not a Hearth pack; refusing to replace it",
                    out_dir.display()
                )));
            }
        }
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(".{name}.tmp-{}-{stamp}", std::process::id()));
        fs::create_dir(&tmp).map_err(io(&tmp))?;
        let result = fill(files, &tmp).and_then(|()| replace_dir(&tmp, out_dir, &parent, &name));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn fill(files: &ModelFiles, dir: &Path) -> Result<()> {
        let w = &files.weights;
        let mut names = vec![WEIGHTS.to_string(), CONFIG.to_string()];
        let (tensors, meta) = pack_tensors(w);
        let path = dir.join(WEIGHTS);
        ::safetensors::serialize_to_file(tensors, Some(meta), &path)
            .map_err(|e| ModelError::Safetensors(format!("{}: {e}", path.display())))?;
        let config =
            serde_json::to_vec_pretty(&w.config).map_err(|e| ModelError::Config(e.to_string()))?;
        write_file(&dir.join(CONFIG), &config)?;
        match &files.tokenizer {
            TokenizerFiles::Gguf(meta) => {
                if let Some((k, _)) = meta.iter().find(|(_, v)| !v.is_finite()) {
                    return Err(ModelError::Unsupported(format!(
                        "GGUF metadata `{k}` holds a non-finite float (JSON cannot store it)"
                    )));
                }
                let json = serde_json::to_vec(meta).map_err(|e| bad(e.to_string()))?;
                write_file(&dir.join(GGUF_META), &json)?;
                names.push(GGUF_META.into());
            }
            TokenizerFiles::Hf {
                tokenizer_json,
                tokenizer_config_json,
            } => {
                write_file(&dir.join(TOKENIZER_JSON), tokenizer_json)?;
                names.push(TOKENIZER_JSON.into());
                if let Some(c) = tokenizer_config_json {
                    write_file(&dir.join(TOKENIZER_CONFIG_JSON), c)?;
                    names.push(TOKENIZER_CONFIG_JSON.into());
                }
            }
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            architecture: "llama".into(),
            quantization: quantization(w),
            source: files.kind,
            files: names
                .iter()
                .map(|n| describe(dir, n))
                .collect::<Result<_>>()?,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| bad(e.to_string()))?;
        write_file(&dir.join(MANIFEST), &json)
    }

    fn replace_dir(tmp: &Path, out_dir: &Path, parent: &Path, name: &str) -> Result<()> {
        if !out_dir.exists() {
            return fs::rename(tmp, out_dir).map_err(io(out_dir));
        }
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        fs::rename(out_dir, &old).map_err(io(out_dir))?;
        if let Err(e) = fs::rename(tmp, out_dir) {
            // Put the previous pack back so a failure leaves things as they were.
            let _ = fs::rename(&old, out_dir);
            return Err(io(out_dir)(e));
        }
        fs::remove_dir_all(&old).map_err(io(&old))
    }
}
