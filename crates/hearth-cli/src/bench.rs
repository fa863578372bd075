//! `hearth bench`: prefill and decode speed on the current adapter with random weights of
//! Llama-3.2-1B's exact shapes (INT4), so it needs no download.

use std::time::Instant;

use hearth_gpu::WeightFormat;
use hearth_models::llama::{Llama, LlamaOptions};
use hearth_models::weights::LlamaWeights;
use hearth_models::{Llama3RopeScaling, LlamaConfig, RopeStyle};

use crate::model;
use crate::run::CliError;

/// Llama-3.2-1B-Instruct's `config.json`.
pub fn llama_3_2_1b() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 128256,
        hidden_size: 2048,
        intermediate_size: 8192,
        num_hidden_layers: 16,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 500000.0,
        rope_scaling: Some(Llama3RopeScaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }),
        rope_style: RopeStyle::Half,
        max_position_embeddings: 131072,
        tie_word_embeddings: true,
        bos_token_id: Some(128000),
        eos_token_ids: vec![128001, 128008, 128009],
    }
}

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
    let t = Instant::now();
    for _ in 0..n {
        pollster::block_on(m.decode_step())?;
        pollster::block_on(m.read_token())?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

pub fn run(json: bool, decode_tokens: usize) -> Result<(), CliError> {
    let config = llama_3_2_1b();
    let gpu = model::gpu()?;
    eprintln!("making random Llama-3.2-1B-shaped INT4 weights …");
    let weights = LlamaWeights::random(&config, WeightFormat::Q4, 1)?;
    let t = Instant::now();
    let opts = LlamaOptions {
        max_context: 4096,
        prefill_chunk: 2048,
        logits_rows: 1,
    };
    let mut m = pollster::block_on(Llama::new(&gpu, &weights, opts))?;
    let load = t.elapsed().as_secs_f64();
    drop(weights);
    eprintln!("uploaded in {load:.2}s; warming up …");
    // Record and compile every program the measurements use.
    prefill(&mut m, 512)?;
    prefill(&mut m, 2048)?;
    decode(&mut m, 1, 4)?;

    let p512 = 512.0 / prefill(&mut m, 512)?;
    let t2048 = prefill(&mut m, 2048)?;
    let d0 = decode(&mut m, 1, decode_tokens)?;
    let d2048 = decode(&mut m, 2048, decode_tokens)?;
    let report = serde_json::json!({
        "device": gpu.describe(),
        "model": "Llama-3.2-1B shapes, random INT4 (group 32) weights, tied embeddings",
        "prefill_512_tok_s": p512,
        "prefill_2048_tok_s": 2048.0 / t2048,
        "prefill_2048_s": t2048,
        "decode_depth0_tok_s": d0,
        "decode_depth2048_tok_s": d2048,
        "decode_tokens": decode_tokens,
        "gpu_bytes": m.gpu_bytes(),
        "load_s": load,
        "kv_cache_f16": gpu.features().f16,
    });
    if json {
        println!("{report}");
    } else {
        println!("device            {}", gpu.describe());
        println!("prefill 512       {p512:>10.1} tok/s");
        println!(
            "prefill 2048      {:>10.1} tok/s ({t2048:.3} s)",
            2048.0 / t2048
        );
        println!("decode depth 0    {d0:>10.1} tok/s");
        println!("decode depth 2048 {d2048:>10.1} tok/s");
        println!("GPU memory        {:>10.1} MB", m.gpu_bytes() as f64 / 1e6);
        println!("load              {load:>10.2} s");
    }
    Ok(())
}
