//! `generate`, `logits` and `convert`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hearth_gpu::sample::SamplingParams;
use hearth_models::chat::Message;
use hearth_models::llama::{GenerateOptions, LlamaOptions};
use hearth_models::tokenizer::StreamDecoder;

use crate::model;
use crate::SamplingArgs;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Model(#[from] hearth_models::ModelError),
    #[error(transparent)]
    Gpu(#[from] hearth_gpu::GpuError),
    #[error(transparent)]
    Knowledge(#[from] hearth_knowledge::KnowledgeError),
    #[error(transparent)]
    Assistant(#[from] hearth_assistant::AssistantError),
    #[error("{0}")]
    Msg(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl SamplingArgs {
    fn params(&self) -> SamplingParams {
        if self.greedy || self.temperature.is_none_or(|t| t <= 0.0) {
            return SamplingParams {
                repetition_penalty: self.repeat_penalty,
                ..SamplingParams::greedy()
            };
        }
        SamplingParams {
            temperature: self.temperature.unwrap_or(0.8),
            top_k: self.top_k.unwrap_or(40),
            top_p: self.top_p.unwrap_or(0.95),
            repetition_penalty: self.repeat_penalty,
            penalty_last_n: 64,
            seed: self.seed.unwrap_or(0x4845_4152_5448),
        }
    }
}

pub fn generate(
    path: Option<&Path>,
    prompt: &str,
    chat: bool,
    max_tokens: usize,
    sampling: &SamplingArgs,
    json: bool,
    timings: bool,
) -> Result<(), CliError> {
    let mut m = model::load(path, LlamaOptions::default())?;
    let text = if chat {
        m.template.render(&[Message::user(prompt)], true)?
    } else {
        prompt.to_string()
    };
    let prompt_tokens = m.tokenizer.encode(&text, !chat)?;
    let max_ctx = m.model.max_context();
    if prompt_tokens.len() >= max_ctx {
        return Err(hearth_models::ModelError::ContextOverflow {
            tokens: prompt_tokens.len(),
            context: max_ctx,
        }
        .into());
    }
    let stop_ids = m.template.stop_ids(&m.tokenizer);
    let opts = GenerateOptions {
        max_tokens,
        sampling: sampling.params(),
        stop_ids,
    };
    let mut stream = StreamDecoder::new();
    let tokenizer = &m.tokenizer;
    let mut out = std::io::stdout().lock();
    let compiled_before = m.model.gpu().pipelines().compile_seconds();
    let t0 = Instant::now();
    let mut first: Option<f64> = None;
    let mut since_start: Option<f64> = None;
    let gen = pollster::block_on(m.model.generate(&prompt_tokens, &opts, |id| {
        first.get_or_insert(t0.elapsed().as_secs_f64());
        since_start.get_or_insert_with(crate::since_start);
        if !json {
            if let Ok(Some(piece)) = stream.step(tokenizer, id) {
                let _ = write!(out, "{piece}");
                let _ = out.flush();
            }
        }
        true
    }))?;
    let total = t0.elapsed().as_secs_f64();
    let text = m.tokenizer.decode(&gen.tokens)?;
    if json {
        // Cold start, phase by phase; `first_token_s` (prefill and sampling of the first token)
        // includes `compile_s`, pipelines being created when the forward pass is first recorded.
        let t = &m.timings;
        let timings = serde_json::json!({
            "device_s": t.device_s,
            "read_s": t.read_s,
            "verify_s": t.verify_s,
            "bytes_read": t.bytes_read,
            "bytes_hashed": t.bytes_hashed,
            "tokenizer_s": t.tokenizer_s,
            "upload_s": t.upload_s,
            "compile_s": m.model.gpu().pipelines().compile_seconds() - compiled_before,
            "first_token_s": first,
            "process_to_first_token_s": since_start,
        });
        let obj = serde_json::json!({ "prompt_tokens": prompt_tokens, "tokens": gen.tokens, "text": text, "timings": timings });
        writeln!(out, "{obj}").map_err(io(Path::new("stdout")))?;
    } else {
        if let Ok(Some(rest)) = stream.flush(tokenizer) {
            write!(out, "{rest}").map_err(io(Path::new("stdout")))?;
        }
        writeln!(out).map_err(io(Path::new("stdout")))?;
    }
    if timings {
        let ttft = first.unwrap_or(total);
        let n = gen.tokens.len();
        let rate = if n > 1 {
            (n - 1) as f64 / (total - ttft).max(1e-9)
        } else {
            0.0
        };
        eprintln!(
            "prompt {} tokens, time to first token {:.3}s, {} tokens, {:.1} tok/s, stop: {:?}",
            prompt_tokens.len(),
            ttft,
            n,
            rate,
            gen.stop
        );
    }
    Ok(())
}

pub fn logits(path: Option<&Path>, tokens_json: &Path, top: usize) -> Result<(), CliError> {
    #[derive(serde::Deserialize)]
    struct Input {
        tokens: Vec<u32>,
    }
    let raw = std::fs::read(tokens_json).map_err(io(tokens_json))?;
    let input: Input = serde_json::from_slice(&raw)
        .map_err(|e| CliError::Msg(format!("{}: {e}", tokens_json.display())))?;
    if input.tokens.is_empty() {
        return Err(CliError::Msg("no tokens".into()));
    }
    let opts = LlamaOptions {
        max_context: input.tokens.len().max(1),
        prefill_chunk: 64,
        logits_rows: 64,
    };
    let mut m = model::load(path, opts)?;
    let all = pollster::block_on(m.model.logits_all(&input.tokens))?;
    let positions: Vec<serde_json::Value> = all
        .iter()
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            let k = top.clamp(1, row.len());
            idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            idx.truncate(k);
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            serde_json::json!({ "top_ids": idx, "top_logits": idx.iter().map(|&i| row[i]).collect::<Vec<_>>() })
        })
        .collect();
    println!("{}", serde_json::json!({ "positions": positions }));
    Ok(())
}

/// `quant`: what a Hugging Face checkpoint is quantised to (`None`: the loader's default).
pub fn convert(
    path: &Path,
    out: &Path,
    quant: Option<hearth_gpu::WeightFormat>,
) -> Result<(), CliError> {
    let t0 = Instant::now();
    eprintln!("reading {} …", path.display());
    let files = hearth_models::loader::load_path_as(path, quant, &mut |_, _| {})?;
    eprintln!("writing pack to {} …", out.display());
    hearth_models::pack::write_pack(&files, out)?;
    eprintln!("done in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}
