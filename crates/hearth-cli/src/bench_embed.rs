//! `hearth bench --embed-texts FILE`: sentence-encoder throughput in inputs per second, tokenization
//! included, over the texts of a JSON file `{"texts": [...]}` (e.g. 240-word windows of the Rust Book
//! from `scripts/reference/book_text.py`, each filling the 256-token limit).

use std::path::Path;
use std::time::Instant;

use hearth_models::bert::default_encoder_dir;
use hearth_models::SentenceEncoder;

use crate::model;
use crate::run::CliError;

pub fn run(json: bool, texts: &Path, encoder: Option<&Path>, runs: usize) -> Result<(), CliError> {
    let bytes =
        std::fs::read(texts).map_err(|e| CliError::Msg(format!("{}: {e}", texts.display())))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Msg(format!("{}: {e}", texts.display())))?;
    let texts: Vec<String> = v["texts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        return Err(CliError::Msg(
            "no texts to embed (want {\"texts\": [...]})".into(),
        ));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let dir = match encoder {
        Some(p) => p.to_path_buf(),
        None => default_encoder_dir().ok_or_else(|| {
            CliError::Msg(
                "the default encoder all-minilm-l6-v2 is not in the model cache: run `make models`"
                    .into(),
            )
        })?,
    };
    let gpu = model::gpu()?;
    let t = Instant::now();
    let enc = SentenceEncoder::load(&gpu, &dir)?;
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let tokens: usize = refs
        .iter()
        .map(|s| enc.token_ids(s).map(|i| i.len()).unwrap_or(0))
        .sum();
    let tokenize = t.elapsed().as_secs_f64();
    eprintln!(
        "loaded in {load:.2}s; {} texts, {:.1} tokens each after truncation; warming up …",
        refs.len(),
        tokens as f64 / refs.len() as f64
    );
    pollster::block_on(enc.embed(&refs[..refs.len().min(256)]))?;
    if std::env::var_os("HEARTH_PROFILE").is_some() {
        // Each kernel of one batch alone (the sum exceeds a real run): where the time goes.
        let mut by_kind: Vec<(String, f64, usize)> = Vec::new();
        for (name, secs) in pollster::block_on(enc.profile(&refs))? {
            let kind = name.split(' ').next().unwrap_or("").to_string();
            eprintln!("  {secs:>9.6}s {name}");
            match by_kind.iter_mut().find(|k| k.0 == kind) {
                Some(k) => {
                    k.1 += secs;
                    k.2 += 1;
                }
                None => by_kind.push((kind, secs, 1)),
            };
        }
        for (kind, secs, n) in by_kind {
            eprintln!("profile {kind:<24} {n:>3} dispatches {secs:>9.4}s");
        }
    }
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = pollster::block_on(enc.embed(&refs))?;
        best = best.min(t.elapsed().as_secs_f64());
        if out.len() != refs.len() {
            return Err(CliError::Msg(
                "encoder returned the wrong number of embeddings".into(),
            ));
        }
    }
    let rate = refs.len() as f64 / best;
    eprintln!(
        "embed: {rate:.1} inputs/s ({:.0} tokens/s; best of {runs}: {best:.3}s; tokenizing alone {tokenize:.3}s)",
        tokens as f64 / best
    );
    if json {
        let r = serde_json::json!({
            "device": gpu.describe(),
            "encoder": dir.display().to_string(),
            "texts": refs.len(),
            "mean_tokens": tokens as f64 / refs.len() as f64,
            "batch_tokens": enc.batch_tokens(),
            "load_s": load,
            "seconds": best,
            "inputs_per_s": rate,
            "tokens_per_s": tokens as f64 / best,
            "tokenize_s": tokenize,
        });
        println!("{r}");
    }
    Ok(())
}
