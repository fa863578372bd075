//! `hearth bench`: prefill and decode speed on the current adapter with random weights of
//! Llama-3.2-1B's exact shapes (INT4), so it needs no download.

use std::path::Path;
use std::time::Instant;

use hearth_gpu::WeightFormat;
use hearth_models::llama::{Llama, LlamaOptions};
use hearth_models::weights::LlamaWeights;
use hearth_models::LlamaConfig;

use crate::model;
use crate::run::CliError;

const RANDOM: &str = "Llama-3.2-1B shapes, random INT4 (group 32) weights, tied embeddings";

fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 101) % vocab) as u32).collect()
}

/// Seconds to prefill `n` tokens from an empty context (until the sampled id is back on the host).
fn prefill(m: &mut Llama, n: usize) -> Result<f64, CliError> {
    m.reset();
    let p = prompt(n, m.config().vocab_size);
    let t = Instant::now();
    pollster::block_on(m.prefill(&p))?;
    pollster::block_on(m.read_token())?;
    Ok(t.elapsed().as_secs_f64())
}

/// Tokens per second decoding `n` tokens after a context of `depth` tokens.
fn decode(m: &mut Llama, depth: usize, n: usize) -> Result<f64, CliError> {
    m.reset();
    pollster::block_on(m.prefill(&prompt(depth.max(1), m.config().vocab_size)))?;
    pollster::block_on(m.read_token())?;
    let start = m.position();
    let t = Instant::now();
    // As `Llama::generate` runs: step k + 1 is queued before the id of step k is read back.
    pollster::block_on(m.decode_step())?;
    for i in 1..=n {
        if i < n {
            pollster::block_on(m.decode_step())?;
        }
        pollster::block_on(m.read_token_at(start + i))?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

pub fn run(
    json: bool,
    model_path: Option<&Path>,
    decode_tokens: usize,
    prefills: &[usize],
    depths: &[usize],
) -> Result<(), CliError> {
    let longest = prefills
        .iter()
        .chain(depths)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let gpu = model::gpu()?;
    let (weights, described) = match model_path {
        // The same file another engine is timed on (e.g. scripts/bench/make_llama1b_gguf.py's).
        Some(path) => {
            eprintln!("reading {} …", path.display());
            let files = hearth_models::load_path(path)?;
            (files.weights, format!("{}", path.display()))
        }
        None => {
            eprintln!("making random Llama-3.2-1B-shaped INT4 weights …");
            let config = LlamaConfig::llama_3_2_1b();
            let w = LlamaWeights::random(&config, WeightFormat::Q4, 1)?;
            (w, RANDOM.to_string())
        }
    };
    let t = Instant::now();
    let opts = LlamaOptions {
        max_context: (longest + decode_tokens + 1).max(4096),
        prefill_chunk: prefills.iter().copied().max().unwrap_or(1).clamp(1, 2048),
        logits_rows: 1,
    };
    let mut m = pollster::block_on(Llama::new(&gpu, &weights, opts))?;
    let load = t.elapsed().as_secs_f64();
    drop(weights);
    eprintln!("uploaded in {load:.2}s; warming up …");
    // Record and compile every program the measurements use.
    for &n in prefills {
        prefill(&mut m, n)?;
    }
    decode(&mut m, 1, 4.min(decode_tokens))?;

    let mut prefill_rows = Vec::new();
    for &n in prefills {
        let secs = prefill(&mut m, n)?;
        eprintln!(
            "prefill {n:>5}: {:>10.1} tok/s ({secs:.4} s)",
            n as f64 / secs
        );
        prefill_rows
            .push(serde_json::json!({ "tokens": n, "seconds": secs, "tok_s": n as f64 / secs }));
    }
    let mut decode_rows = Vec::new();
    for &depth in depths {
        let rate = decode(&mut m, depth, decode_tokens)?;
        eprintln!("decode at depth {depth:>5}: {rate:>10.1} tok/s");
        decode_rows
            .push(serde_json::json!({ "depth": depth, "tokens": decode_tokens, "tok_s": rate }));
    }
    let report = serde_json::json!({
        "device": gpu.describe(),
        "model": described,
        "prefill": prefill_rows,
        "decode": decode_rows,
        "gpu_bytes": m.gpu_bytes(),
        "weight_bytes": m.weight_bytes(),
        "max_context": m.max_context(),
        "load_s": load,
        "kv_cache_f16": gpu.features().f16,
        "subgroups": gpu.features().subgroups,
    });
    if json {
        println!("{report}");
    } else {
        println!("device      {}", gpu.describe());
        println!(
            "GPU memory  {:.1} MB ({:.1} MB weights)",
            m.gpu_bytes() as f64 / 1e6,
            m.weight_bytes() as f64 / 1e6
        );
        println!("load        {load:.2} s");
    }
    Ok(())
}
