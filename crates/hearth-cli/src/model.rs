//! Loading a model for the CLI: files → weights → GPU, with progress on stderr.

use std::path::{Path, PathBuf};
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
    /// wgpu instance, adapter and device.
    pub device_s: f64,
    /// Reading and parsing the model's files.
    pub read_s: f64,
    /// Checksumming that did not overlap reading.
    pub verify_s: f64,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    /// Tokenizer and chat template.
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

pub fn load(path: Option<&Path>, options: LlamaOptions) -> Result<Loaded, CliError> {
    let t = Instant::now();
    let gpu = gpu()?;
    let device_s = t.elapsed().as_secs_f64();
    let mut loaded = load_on(&gpu, path, options)?;
    loaded.timings.device_s = device_s;
    Ok(loaded)
}

/// [`load`] on a given GPU (the assistant shares one between the encoder and the generator).
pub fn load_on(gpu: &Gpu, path: Option<&Path>, options: LlamaOptions) -> Result<Loaded, CliError> {
    let path = resolve(path)?;
    let t0 = Instant::now();
    let bar = indicatif::ProgressBar::new(1).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("loading {}", path.display()));
    let files = loader::load_path_with(&path, &mut |done, total| {
        bar.set_length(total.max(1));
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let (
        ModelFiles {
            weights, tokenizer, ..
        },
        report,
    ) = files?;
    eprintln!("read {}", path.display());
    let t_tok = Instant::now();
    let (tok, template) = hearth_models::adapters::tokenizer_and_template(&tokenizer)?;
    let t1 = Instant::now();
    let model = pollster::block_on(Llama::new(gpu, &weights, options))?;
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
        tokenizer_s: (t1 - t_tok).as_secs_f64(),
        upload_s: t1.elapsed().as_secs_f64(),
    };
    eprintln!(
        "loaded in {:.2}s (read {:.2}s, of which checksums {:.2}s; GPU {:.2}s): {} layers, hidden {}, vocab {}, {:.0} MB on the GPU",
        t0.elapsed().as_secs_f64(),
        (t_tok - t0).as_secs_f64(),
        verify_s,
        timings.upload_s,
        weights.config.num_hidden_layers,
        weights.config.hidden_size,
        weights.config.vocab_size,
        model.gpu_bytes() as f64 / 1e6
    );
    Ok(Loaded {
        model,
        tokenizer: tok,
        template,
        timings,
    })
}
