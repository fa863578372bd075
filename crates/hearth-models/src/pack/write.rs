//! The one pack writer, [`write_pack_to`]: it hands every file to a [`PackSink`] in pieces, hashing
//! on the way, and `manifest.json` last. Natively [`write_pack`] sinks into a temporary directory
//! renamed into place; in the browser the sink writes to OPFS.
//!
//! `model.safetensors` is laid out here rather than by `safetensors::serialize`, which needs every
//! tensor's bytes at once: the header is computed from the shapes first, then each tensor's words
//! are emitted straight from the weights, so the model is held in memory only once. Tensors are
//! sorted by name and `__metadata__` keys too, which makes a pack's bytes reproducible.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::{
    bad, Manifest, ManifestFile, CONFIG, FORMAT, GGUF_META, MANIFEST, TOKENIZER_CONFIG_JSON,
    TOKENIZER_JSON, VERSION, WEIGHTS,
};
use crate::error::{ModelError, Result};
use crate::loader::{ModelFiles, TokenizerFiles};
use crate::safetensors::hf_layer_names;
use crate::weights::LlamaWeights;
use hearth_gpu::HostMatrix;

/// Receives a pack's files one after another, each as `begin`, any number of `write`s, `end`.
pub trait PackSink {
    fn begin(&mut self, name: &str) -> Result<()>;
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    fn end(&mut self) -> Result<()>;
}

/// Words emitted per `write` (4 MiB).
const PIECE_WORDS: usize = 1 << 20;

/// Every matrix with its Hugging Face name.
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

/// One tensor of the pack's `model.safetensors`: 32-bit words, U32 or F32.
struct Raw<'a> {
    dtype: &'static str,
    shape: [usize; 2],
    rank: usize,
    words: &'a [u32],
}

/// The tensors (sorted by name) and `__metadata__` of a pack's `model.safetensors`.
fn pack_tensors(w: &LlamaWeights) -> (BTreeMap<String, Raw<'_>>, BTreeMap<String, String>) {
    let mut tensors = BTreeMap::new();
    let mut meta = BTreeMap::from([("format".to_string(), format!("{FORMAT}/{VERSION}"))]);
    for (name, m) in named_matrices(w) {
        let f = m.format;
        tensors.insert(
            format!("{name}.qs"),
            Raw {
                dtype: "U32",
                shape: [m.rows, f.qs_words(m.cols)],
                rank: 2,
                words: &m.qs,
            },
        );
        if f.scale_words(m.cols) > 0 {
            tensors.insert(
                format!("{name}.scales"),
                Raw {
                    dtype: "U32",
                    shape: [m.rows, f.scale_words(m.cols)],
                    rank: 2,
                    words: &m.scales,
                },
            );
        }
        meta.insert(name, f.sym().to_string());
    }
    for (name, v) in named_vectors(w) {
        tensors.insert(
            name,
            Raw {
                dtype: "F32",
                shape: [v.len(), 0],
                rank: 1,
                words: bytemuck::cast_slice(v),
            },
        );
    }
    (tensors, meta)
}

/// The safetensors header (length prefix included), padded with spaces to 8 bytes as the
/// `safetensors` crate does.
fn safetensors_header(
    tensors: &BTreeMap<String, Raw<'_>>,
    meta: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut h = format!("{{\"__metadata__\":{}", json(meta)?);
    let mut at = 0usize;
    for (name, t) in tensors {
        let end = at + 4 * t.words.len();
        h.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{at},{end}]}}",
            json(name)?,
            t.dtype,
            json(&t.shape[..t.rank])?,
        ));
        at = end;
    }
    h.push('}');
    let mut bytes = h.into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    let mut out = (bytes.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&bytes);
    Ok(out)
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| bad(e.to_string()))
}

/// Wraps the sink: counts and hashes every byte of the current file, and reports progress.
struct Hashing<'a> {
    sink: &'a mut dyn PackSink,
    progress: &'a mut dyn FnMut(u64, u64),
    done: u64,
    total: u64,
    files: Vec<ManifestFile>,
    hasher: Sha256,
    size: u64,
}

impl Hashing<'_> {
    fn begin(&mut self, name: &str) -> Result<()> {
        self.hasher = Sha256::new();
        self.size = 0;
        self.sink.begin(name)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.sink.write(bytes)?;
        self.done += bytes.len() as u64;
        (self.progress)(self.done, self.total);
        Ok(())
    }

    fn words(&mut self, words: &[u32]) -> Result<()> {
        for piece in words.chunks(PIECE_WORDS) {
            if cfg!(target_endian = "little") {
                self.write(bytemuck::cast_slice(piece))?;
            } else {
                let le: Vec<u8> = piece.iter().flat_map(|w| w.to_le_bytes()).collect();
                self.write(&le)?;
            }
        }
        Ok(())
    }

    fn end(&mut self, name: &str) -> Result<()> {
        self.sink.end()?;
        let hasher = std::mem::take(&mut self.hasher);
        self.files.push(ManifestFile {
            name: name.into(),
            size: self.size,
            sha256: hex::encode(hasher.finalize()),
        });
        Ok(())
    }

    fn whole(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.begin(name)?;
        self.write(bytes)?;
        self.end(name)
    }
}

/// Writes `files` as a pack into `sink`: `model.safetensors`, `config.json`, the tokenizer files,
/// and `manifest.json` last (with every other file's size and sha256). `progress` gets
/// `(bytes written, total)`. Returns the manifest.
pub fn write_pack_to(
    files: &ModelFiles,
    sink: &mut dyn PackSink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Manifest> {
    let w = &files.weights;
    w.validate()?;
    let (tensors, meta) = pack_tensors(w);
    let header = safetensors_header(&tensors, &meta)?;
    let config =
        serde_json::to_vec_pretty(&w.config).map_err(|e| ModelError::Config(e.to_string()))?;
    let mut small: Vec<(&str, Vec<u8>)> = vec![(CONFIG, config)];
    match &files.tokenizer {
        TokenizerFiles::Gguf(meta) => {
            if let Some((k, _)) = meta.iter().find(|(_, v)| !v.is_finite()) {
                return Err(ModelError::Unsupported(format!(
                    "GGUF metadata `{k}` holds a non-finite float (JSON cannot store it)"
                )));
            }
            let json = serde_json::to_vec(meta).map_err(|e| bad(e.to_string()))?;
            small.push((GGUF_META, json));
        }
        TokenizerFiles::Hf {
            tokenizer_json,
            tokenizer_config_json,
        } => {
            small.push((TOKENIZER_JSON, tokenizer_json.clone()));
            if let Some(c) = tokenizer_config_json {
                small.push((TOKENIZER_CONFIG_JSON, c.clone()));
            }
        }
    }
    let data: u64 = tensors.values().map(|t| 4 * t.words.len() as u64).sum();
    let total = header.len() as u64 + data + small.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let mut out = Hashing {
        sink,
        progress,
        done: 0,
        total,
        files: Vec::new(),
        hasher: Sha256::new(),
        size: 0,
    };
    out.begin(WEIGHTS)?;
    out.write(&header)?;
    for t in tensors.values() {
        out.words(t.words)?;
    }
    out.end(WEIGHTS)?;
    for (name, bytes) in &small {
        out.whole(name, bytes)?;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        architecture: "llama".into(),
        quantization: quantization(w),
        source: files.kind,
        files: out.files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| bad(e.to_string()))?;
    out.sink.begin(MANIFEST)?;
    out.sink.write(&json)?;
    out.sink.end()?;
    Ok(manifest)
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::write_pack;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::{bad, write_pack_to, PackSink};
    use crate::error::{ModelError, Result};
    use crate::loader::ModelFiles;
    use crate::pack::MANIFEST;

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |e| ModelError::Io {
            path: path.display().to_string(),
            source: e,
        }
    }

    /// Files created in a directory, each synced when it ends.
    struct DirSink {
        dir: PathBuf,
        open: Option<(PathBuf, fs::File)>,
    }

    impl PackSink for DirSink {
        fn begin(&mut self, name: &str) -> Result<()> {
            let path = self.dir.join(name);
            let f = fs::File::create(&path).map_err(io(&path))?;
            self.open = Some((path, f));
            Ok(())
        }

        fn write(&mut self, bytes: &[u8]) -> Result<()> {
            let (path, f) = self
                .open
                .as_mut()
                .ok_or_else(|| bad("write before begin"))?;
            f.write_all(bytes).map_err(io(path))
        }

        fn end(&mut self) -> Result<()> {
            let (path, f) = self.open.take().ok_or_else(|| bad("end before begin"))?;
            f.sync_all().map_err(io(&path))
        }
    }

    /// Writes `files` as a pack into `out_dir` atomically: everything goes to a temporary sibling
    /// directory that is renamed into place at the end. An existing `out_dir` is replaced only if
    /// it is empty or a pack.
    pub fn write_pack(files: &ModelFiles, out_dir: &Path) -> Result<()> {
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
        let mut sink = DirSink {
            dir: tmp.clone(),
            open: None,
        };
        let result = write_pack_to(files, &mut sink, &mut |_, _| {}).and_then(|manifest| {
            // The files were hashed as they were written: stamp them so the first load need not
            // hash them again (best effort: without a stamp the load hashes).
            let _ = crate::pack::stamp::stamp_written(&tmp, &manifest);
            replace_dir(&tmp, out_dir, &parent, &name)
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
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
