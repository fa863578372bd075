//! One entry point for every model source: a `.gguf` file, a Hugging Face directory or a Hearth pack
//! (a directory with `manifest.json`). The byte-based entry points work on wasm32 (no filesystem).

use std::collections::BTreeMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::{Path, PathBuf};

#[cfg(not(target_arch = "wasm32"))]
use crate::error::ModelError;
use crate::error::Result;
use crate::gguf::{Gguf, MetaValue};
use crate::weights::LlamaWeights;
#[cfg(not(target_arch = "wasm32"))]
use hearth_gpu::WeightFormat;

/// What the tokenizer is built from.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenizerFiles {
    /// The GGUF metadata (all keys; the tokenizer reads `tokenizer.*`).
    Gguf(BTreeMap<String, MetaValue>),
    /// Hugging Face `tokenizer.json` and, if present, `tokenizer_config.json` (chat template).
    Hf {
        tokenizer_json: Vec<u8>,
        tokenizer_config_json: Option<Vec<u8>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelKind {
    Gguf,
    HuggingFace,
    Pack,
}

/// What loading a model cost, for `hearth generate --json`'s timings and for tests (the byte
/// counts are the timing-free observables).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// Bytes read from the model's files.
    pub bytes_read: u64,
    /// Bytes whose sha256 was computed.
    pub bytes_hashed: u64,
    /// Seconds reading and parsing files (natively; 0 on wasm32, which has no clock here).
    pub read_s: f64,
    /// Seconds of checksumming that did not overlap reading.
    pub verify_s: f64,
}

impl LoadReport {
    /// Only the time: a load that read and parsed without checksums.
    #[cfg(not(target_arch = "wasm32"))]
    fn read_in(clock: Stopwatch) -> Self {
        Self {
            read_s: clock.secs(),
            ..Self::default()
        }
    }
}

/// Seconds since it was started, natively; always 0 on wasm32 (`std::time::Instant` panics there).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch(#[cfg(not(target_arch = "wasm32"))] std::time::Instant);

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Self(
            #[cfg(not(target_arch = "wasm32"))]
            std::time::Instant::now(),
        )
    }

    pub(crate) fn secs(&self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        return self.0.elapsed().as_secs_f64();
        #[cfg(target_arch = "wasm32")]
        0.0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelFiles {
    pub weights: LlamaWeights,
    pub tokenizer: TokenizerFiles,
    pub kind: ModelKind,
}

/// A whole GGUF file in memory (the weights are converted losslessly; see `gguf::convert`).
pub fn load_gguf_bytes(bytes: &[u8]) -> Result<ModelFiles> {
    let gguf = Gguf::parse(bytes)?;
    let weights = gguf.llama_weights(bytes)?;
    Ok(ModelFiles {
        weights,
        tokenizer: TokenizerFiles::Gguf(gguf.metadata),
        kind: ModelKind::Gguf,
    })
}

/// A Hearth pack from any file source: `files(name)` returns the bytes of the pack's file `name`
/// (on wasm, e.g. from OPFS). Every file's sha256 is checked against `manifest.json`.
pub fn load_pack_files(files: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<ModelFiles> {
    crate::pack::load_pack(files)
}

/// Loads a `.gguf` file, a Hugging Face directory (`config.json` + safetensors) or a Hearth pack
/// directory (detected by `manifest.json`).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_path(path: &Path) -> Result<ModelFiles> {
    Ok(load_path_with(path, &mut |_, _| {}, &mut |_| {})?.0)
}

/// [`load_path`], reporting progress as `(done, total)` in bytes read (GGUF files) or tensors
/// read and quantised (Hugging Face directories: the slow case, gigabytes of bf16), with what the
/// load cost. `tokenizer` is called once with the tokenizer files as soon as they are read and
/// checked: for a pack on a second thread while its weights are read, so the caller can build
/// the tokenizer meanwhile; for the other sources when everything is read.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_path_with(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
    tokenizer: &mut (dyn FnMut(&TokenizerFiles) + Send),
) -> Result<(ModelFiles, LoadReport)> {
    load_path_full(path, None, progress, tokenizer)
}

/// [`load_path`] with a Hugging Face checkpoint quantised to `hf_format` (default:
/// [`crate::safetensors::DEFAULT_FORMAT`]). GGUF files and packs load as stored, so asking them for
/// a format is an error rather than silently ignored.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_path_as(
    path: &Path,
    hf_format: Option<WeightFormat>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ModelFiles> {
    Ok(load_path_full(path, hf_format, progress, &mut |_| {})?.0)
}

#[cfg(not(target_arch = "wasm32"))]
fn load_path_full(
    path: &Path,
    hf_format: Option<WeightFormat>,
    progress: &mut dyn FnMut(u64, u64),
    tokenizer: &mut (dyn FnMut(&TokenizerFiles) + Send),
) -> Result<(ModelFiles, LoadReport)> {
    let clock = Stopwatch::start();
    let io = |e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let as_stored = |what: &str| match hf_format {
        Some(f) => Err(ModelError::Unsupported(format!(
            "{}: a {what} loads as stored; only Hugging Face checkpoints can be quantised to {}",
            path.display(),
            f.sym()
        ))),
        None => Ok(()),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let (files, report) = if meta.is_dir() {
        if path.join(crate::pack::MANIFEST).is_file() {
            as_stored("Hearth pack")?;
            return crate::pack::load_pack_dir(path, tokenizer);
        }
        if !path.join("config.json").is_file() {
            return Err(ModelError::Unsupported(format!(
                "{}: a directory with neither {} (Hearth pack) nor config.json (Hugging Face)",
                path.display(),
                crate::pack::MANIFEST
            )));
        }
        let format = hf_format.unwrap_or(crate::safetensors::DEFAULT_FORMAT);
        let files = crate::safetensors::load_hf_dir_with(path, format, progress)?;
        (files, LoadReport::read_in(clock))
    } else {
        let bytes = read_file_with(path, progress)?;
        if !Gguf::sniff(&bytes) {
            return Err(ModelError::Unsupported(format!(
                "{}: not a GGUF file, Hugging Face directory or Hearth pack",
                path.display()
            )));
        }
        as_stored("GGUF file")?;
        let files = load_gguf_bytes(&bytes)?;
        let report = LoadReport {
            bytes_read: bytes.len() as u64,
            ..LoadReport::read_in(clock)
        };
        (files, report)
    };
    tokenizer(&files.tokenizer);
    Ok((files, report))
}

/// A whole file, read in 8 MiB pieces with progress in bytes.
#[cfg(not(target_arch = "wasm32"))]
fn read_file_with(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let total = f.metadata().map_err(io)?.len();
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        progress(out.len() as u64, total);
    }
    Ok(out)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Where a downloaded model lives: `$HEARTH_MODELS/<name>` if that exists, else
/// `~/.cache/hearth/models/<name>` if that exists (`name` may contain `/`).
#[cfg(not(target_arch = "wasm32"))]
pub fn default_model_path(name: &str) -> Option<PathBuf> {
    let env = std::env::var_os("HEARTH_MODELS").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hearth/models"));
    [env, home]
        .into_iter()
        .flatten()
        .map(|root| root.join(name))
        .find(|p| p.exists())
}
