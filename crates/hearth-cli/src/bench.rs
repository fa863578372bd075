//! `hearth bench`: prefill and decode speed on the current adapter with random weights of
//! Llama-3.2-1B's exact shapes (INT4), so it needs no download — or of a given model file. The
//! timing itself is `hearth_models::llama::bench`, which the browser bench shares.

use std::path::Path;
use std::time::Instant;

use hearth_models::llama::bench::{self, BenchPlan};
use hearth_models::llama::Llama;

use crate::model;
use crate::run::CliError;

const RANDOM: &str =
    "Llama-3.2-1B shapes, random symmetric INT4 (Q4S, group 32) weights, tied embeddings";

pub fn run(json: bool, model_path: Option<&Path>, plan: &BenchPlan) -> Result<(), CliError> {
    let gpu = model::gpu()?;
    if plan.profile && !gpu.features().timestamps {
        return Err(CliError::Msg(format!(
            "--profile needs timestamp queries, which {} does not offer",
            gpu.describe()
        )));
    }
    let (weights, described) = match model_path {
        // The same file another engine is timed on (e.g. scripts/bench/make_llama1b_gguf.py's).
        Some(path) => {
            eprintln!("reading {} …", path.display());
            (
                hearth_models::load_path(path)?.weights,
                path.display().to_string(),
            )
        }
        None => {
            eprintln!("making random Llama-3.2-1B-shaped INT4 weights …");
            (bench::random_weights("llama-3.2-1b")?, RANDOM.to_string())
        }
    };
    // `load_s`: the upload of host weights to the GPU.
    let t = Instant::now();
    let mut m = pollster::block_on(Llama::new(&gpu, &weights, plan.options()))?;
    let load = t.elapsed().as_secs_f64();
    drop(weights);
    eprintln!("uploaded in {load:.2}s; warming up …");
    let clock = Instant::now();
    let now = || clock.elapsed().as_secs_f64();
    let rows = pollster::block_on(bench::run(&mut m, plan, &now, &mut |line| {
        eprintln!("{line}")
    }))?;
    let report = serde_json::json!({
        "device": gpu.describe(),
        "model": described,
        "prefill": rows.prefill,
        "decode": rows.decode,
        "profiles": rows.profiles,
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
