//! `benchLlama`: `hearth bench`'s timing (`hearth_models::llama::bench`, the same code) on the
//! browser's WebGPU, with random INT4 weights of a named shape. On SwiftShader (CI) it proves the
//! path and gives smoke figures; on a real GPU, real ones.

use hearth_gpu::Gpu;
use hearth_models::llama::bench::{self, BenchPlan, DecodeRow, PrefillRow};
use hearth_models::ModelError;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::{gpu_report, js_err, shared_gpu, to_js, GpuReport};

/// Bounds a request can ask for (the service worker checks them too).
const MAX_TOKENS: usize = 4096;
const MAX_ROWS: usize = 4;

#[derive(Clone, Debug, Deserialize)]
pub struct BenchRequest {
    /// `tiny` or `llama-3.2-1b`.
    pub shape: String,
    pub prefill: Vec<usize>,
    pub depths: Vec<usize>,
    pub decode_tokens: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub shape: String,
    pub gpu: GpuReport,
    pub prefill: Vec<PrefillRow>,
    pub decode: Vec<DecodeRow>,
    pub gpu_bytes: u64,
    /// Random weights made and uploaded.
    pub load_s: f64,
}

/// Runs `req` on `gpu`; `now` is seconds since a fixed instant.
pub async fn bench_report(
    gpu: &Gpu,
    req: &BenchRequest,
    now: &dyn Fn() -> f64,
) -> Result<BenchReport, ModelError> {
    let rows_ok =
        |v: &[usize]| v.len() <= MAX_ROWS && v.iter().all(|&n| (1..=MAX_TOKENS).contains(&n));
    if !rows_ok(&req.prefill)
        || !rows_ok(&req.depths)
        || !(1..=MAX_TOKENS).contains(&req.decode_tokens)
    {
        return Err(ModelError::Config(format!(
            "bench: at most {MAX_ROWS} prompt lengths and depths, each and the decode count 1..={MAX_TOKENS}"
        )));
    }
    let plan = BenchPlan {
        prefills: req.prefill.clone(),
        depths: req.depths.clone(),
        decode_tokens: req.decode_tokens,
        profile: false,
        peak_gb_s: None,
        prefill_chunk: None,
    };
    let t = now();
    let mut m = bench::random_model(gpu, &req.shape, &plan).await?;
    let load_s = now() - t;
    let rows = bench::run(&mut m, &plan, now, &mut |_| {}).await?;
    Ok(BenchReport {
        shape: req.shape.clone(),
        gpu: gpu_report(gpu),
        prefill: rows.prefill,
        decode: rows.decode,
        gpu_bytes: m.gpu_bytes(),
        load_s,
    })
}

/// `{ shape, gpu, prefill: [{tokens, seconds, tok_s}], decode: [{depth, tokens, tok_s}], gpu_bytes, load_s }`.
#[wasm_bindgen(js_name = benchLlama)]
pub async fn bench_llama(request: JsValue) -> Result<JsValue, JsError> {
    let req: BenchRequest = serde_wasm_bindgen::from_value(request).map_err(js_err)?;
    let gpu = shared_gpu().await.map_err(js_err)?;
    let now = || js_sys::Date::now() / 1000.0;
    let report = bench_report(&gpu, &req, &now).await.map_err(js_err)?;
    to_js(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_bench_times_every_row_and_refuses_huge_requests() {
        let gpu = pollster::block_on(Gpu::new(&hearth_gpu::GpuOptions::default())).unwrap();
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_secs_f64();
        let req = BenchRequest {
            shape: "tiny".into(),
            prefill: vec![16, 32],
            depths: vec![1, 40],
            decode_tokens: 4,
        };
        let r = pollster::block_on(bench_report(&gpu, &req, &now)).unwrap();
        assert_eq!(
            r.prefill.iter().map(|p| p.tokens).collect::<Vec<_>>(),
            [16, 32]
        );
        assert_eq!(
            r.decode.iter().map(|d| d.depth).collect::<Vec<_>>(),
            [1, 40]
        );
        assert!(r
            .prefill
            .iter()
            .all(|p| p.tok_s.is_finite() && p.tok_s > 0.0));
        assert!(r
            .decode
            .iter()
            .all(|d| d.tok_s.is_finite() && d.tok_s > 0.0));
        assert!(r.gpu_bytes > 0);
        let huge = BenchRequest {
            decode_tokens: 1 << 20,
            ..req.clone()
        };
        assert!(pollster::block_on(bench_report(&gpu, &huge, &now)).is_err());
        let unknown = BenchRequest {
            shape: "llama-70b".into(),
            ..req
        };
        assert!(pollster::block_on(bench_report(&gpu, &unknown, &now)).is_err());
    }
}
