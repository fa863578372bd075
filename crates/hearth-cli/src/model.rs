//! Loading a model for the CLI: files → weights → GPU, with progress on stderr.

use std::path::{Path, PathBuf};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use hearth_gpu::{Gpu, GpuOptions};
use hearth_models::chat::ChatTemplate;
use hearth_models::llama::{Llama, LlamaOptions};
use hearth_models::loader::{self, LoadReport, ModelFiles};
use hearth_models::tokenizer::Tokenizer;

use crate::run::CliError;

pub const DEFAULT_GENERATOR: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

pub struct Loaded {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub timings: LoadTimings,
}

/// Where a model load's time went (`hearth generate --json` reports it as `timings`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadTimings {
    /// wgpu instance, adapter and device (created while the files are read, by `load`).
    pub device_s: f64,
    /// Reading and parsing the model's files.
    pub read_s: f64,
    /// Checksumming that did not overlap reading.
    pub verify_s: f64,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    /// Tokenizer and chat template, built on another thread (for a pack, from before its weights
    /// are read).
    pub tokenizer_s: f64,
    /// Weights to the GPU, KV cache and buffers.
    pub upload_s: f64,
}

/// The model at `path`, or the embedded default generator from the model cache.
pub fn resolve(path: Option<&Path>) -> Result<PathBuf, CliError> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => loader::default_model_path(DEFAULT_GENERATOR).ok_or_else(|| {
            CliError::Msg(format!("the default model {DEFAULT_GENERATOR} is not in the model cache: run `make models`"))
        }),
    }
}

pub fn gpu() -> Result<Gpu, CliError> {
    let gpu = pollster::block_on(Gpu::new(&GpuOptions::from_env()))?;
    eprintln!("gpu: {}", gpu.describe());
    Ok(gpu)
}

/// Loads the model at `path` (or the default) on a new GPU. The device is created on a second
/// thread while the files are read, and the tokenizer on a third from the moment its files are
/// checked until the weights are on the GPU.
pub fn load(path: Option<&Path>, options: LlamaOptions) -> Result<Loaded, CliError> {
    let path = resolve(path)?;
    std::thread::scope(|s| {
        let device = s.spawn(|| {
            let t = Instant::now();
            gpu().map(|gpu| (gpu, t.elapsed().as_secs_f64()))
        });
        let read = read(s, &path);
        let (gpu, device_s) = device
            .join()
            .map_err(|_| panicked("creating the GPU device"))??;
        let mut loaded = finish(&gpu, &path, read?, options)?;
        loaded.timings.device_s = device_s;
        Ok(loaded)
    })
}

/// [`load`] on a given GPU (the assistant shares one between the encoder and the generator).
pub fn load_on(gpu: &Gpu, path: Option<&Path>, options: LlamaOptions) -> Result<Loaded, CliError> {
    let path = resolve(path)?;
    std::thread::scope(|s| finish(gpu, &path, read(s, &path)?, options))
}

fn panicked(what: &str) -> CliError {
    CliError::Msg(format!("a thread panicked while {what}"))
}

/// A tokenizer and chat template with the seconds they took to build.
type Built = Result<((Tokenizer, ChatTemplate), f64), hearth_models::ModelError>;

/// The model's files, read and checked, and the thread building its tokenizer and chat template,
/// started as soon as their files were checked (for a pack, before its weights are read).
struct Read<'scope> {
    files: ModelFiles,
    report: LoadReport,
    tokenizer: ScopedJoinHandle<'scope, Built>,
}

/// Reads the model's files with a progress bar on stderr; the tokenizer is built on a thread of
/// `s`.
fn read<'scope>(s: &'scope Scope<'scope, '_>, path: &Path) -> Result<Read<'scope>, CliError> {
    let bar = indicatif::ProgressBar::new(1).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("loading {}", path.display()));
    let mut tokenizer = None;
    let files = loader::load_path_with(
        path,
        &mut |done, total| {
            bar.set_length(total.max(1));
            bar.set_position(done);
        },
        &mut |t| {
            // A copy, so the build can outlast the load (the copy is made off the main thread
            // for a pack, and costs far less than the build).
            let t = t.clone();
            tokenizer = Some(s.spawn(move || {
                let start = Instant::now();
                let tt = hearth_models::adapters::tokenizer_and_template(&t)?;
                Ok((tt, start.elapsed().as_secs_f64()))
            }));
        },
    );
    bar.finish_and_clear();
    let (files, report) = files?;
    eprintln!("read {}", path.display());
    let tokenizer = tokenizer
        .ok_or_else(|| CliError::Msg("the loader did not hand over the tokenizer".into()))?;
    Ok(Read {
        files,
        report,
        tokenizer,
    })
}

/// Uploads the weights, then waits for the tokenizer.
fn finish(gpu: &Gpu, path: &Path, read: Read, options: LlamaOptions) -> Result<Loaded, CliError> {
    let Read {
        files,
        report,
        tokenizer,
    } = read;
    let weights = files.weights;
    let t0 = Instant::now();
    let model = pollster::block_on(Llama::new(gpu, &weights, options))?;
    let upload_s = t0.elapsed().as_secs_f64();
    let ((tokenizer, template), tokenizer_s) = tokenizer
        .join()
        .map_err(|_| panicked("building the tokenizer"))??;
    let LoadReport {
        bytes_read,
        bytes_hashed,
        read_s,
        verify_s,
    } = report;
    let timings = LoadTimings {
        device_s: 0.0,
        read_s,
        verify_s,
        bytes_read,
        bytes_hashed,
        tokenizer_s,
        upload_s,
    };
    eprintln!(
        "loaded {} in {:.2}s (read {:.2}s, checksums {:.2}s for {} MB, GPU upload {:.2}s, tokenizer {:.2}s beside them): {} layers, hidden {}, vocab {}, {:.0} MB on the GPU",
        path.display(),
        read_s + verify_s + t0.elapsed().as_secs_f64(),
        read_s,
        verify_s,
        bytes_hashed / 1_000_000,
        upload_s,
        tokenizer_s,
        weights.config.num_hidden_layers,
        weights.config.hidden_size,
        weights.config.vocab_size,
        model.gpu_bytes() as f64 / 1e6
    );
    // The host copy of the weights (the model's size again) is freed on another thread: handing
    // a gigabyte back to the system takes tens of milliseconds the first token need not wait for.
    // (If no thread can be made, the closure and the weights are dropped here.)
    let _ = std::thread::Builder::new().spawn(move || drop(weights));
    Ok(Loaded {
        model,
        tokenizer,
        template,
        timings,
    })
}
