//! wasm-bindgen glue for the extension's service worker.
//!
//! Every export is `async` and returns `Result<_, JsError>`, so a failure reaches JavaScript as a
//! rejected promise with a readable message. wasm32 panics abort (they cannot be caught), so nothing
//! here may panic on input; the panic hook only makes a bug visible in the console before the trap.
//!
//! The logic lives in plain Rust functions ([`gpu_report`], [`self_test_report`]) that the native
//! tests run on lavapipe; the `#[wasm_bindgen]` wrappers only convert results to JS objects.

mod bench;
mod convert;
mod engine;
pub mod hearth;
mod hearth_js;
mod library;
pub mod parse;

use std::cell::RefCell;

use hearth_gpu::{elementwise, Gpu, GpuOptions, Program, Tensor};
use serde::Serialize;
use wasm_bindgen::prelude::*;

pub use bench::{bench_report, BenchReport, BenchRequest};
pub use engine::{Engine, EngineCore, GenerateRequest, GenerateResult, ModelInfo};
pub use hearth_js::Hearth;
pub use library::{ChunkInput, DocInput, DocListing, Library, LibraryCore, UpsertReport};

/// Runs when the module is instantiated: route Rust panics to `console.error`.
#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// One device per service-worker instance; creating one costs tens of milliseconds.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The shared device, created on first use.
async fn shared_gpu() -> Result<Gpu, hearth_gpu::GpuError> {
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    // Two concurrent first calls may both create a device; the later one wins, which is harmless.
    let gpu = Gpu::new(&GpuOptions::default()).await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    // Plain objects (not `Map`s) so that the value survives structured cloning into messages as-is.
    let ser = serde_wasm_bindgen::Serializer::json_compatible();
    v.serialize(&ser).map_err(js_err)
}

/// What the extension shows about the GPU and what the kernels may use.
#[derive(Clone, Debug, Serialize)]
pub struct GpuReport {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub features: FeatureReport,
    /// Largest storage binding in bytes (tensors above it are split).
    pub max_binding: u64,
    pub max_buffer_size: u64,
    pub max_workgroup_storage: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_storage_buffers_per_stage: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct FeatureReport {
    pub f16: bool,
    pub subgroups: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub timestamps: bool,
}

/// Describes `gpu`.
pub fn gpu_report(gpu: &Gpu) -> GpuReport {
    let info = gpu.info();
    let limits = gpu.limits();
    let f = gpu.features();
    GpuReport {
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        features: FeatureReport {
            f16: f.f16,
            subgroups: f.subgroups,
            subgroup_min_size: f.subgroup_min_size,
            subgroup_max_size: f.subgroup_max_size,
            timestamps: f.timestamps,
        },
        max_binding: gpu.max_binding(),
        max_buffer_size: limits.max_buffer_size,
        max_workgroup_storage: limits.max_compute_workgroup_storage_size,
        max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
    }
}

/// Result of [`self_test_report`]: the GPU sum compared with the CPU reference.
#[derive(Clone, Debug, Serialize)]
pub struct SelfTestReport {
    pub kernel: String,
    pub n: usize,
    pub max_abs_err: f32,
    /// First index whose error exceeds the tolerance, if any.
    pub first_bad: Option<usize>,
    pub passed: bool,
}

/// Deterministic values in [-1, 1) (xorshift64*): no `rand` on wasm32 and none needed.
fn pseudo_random(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 random bits
            (r as f32 / (1u32 << 23) as f32) - 1.0
        })
        .collect()
}

/// Runs `elementwise::add` on `gpu` over `n` values and compares with `elementwise::add_ref`.
pub async fn self_test_report(gpu: &Gpu, n: usize) -> Result<SelfTestReport, hearth_gpu::GpuError> {
    let x = pseudo_random(1, n);
    let y = pseudo_random(2, n);
    let a = Tensor::from_slice(gpu, "self_test.a", &[n], &x)?;
    let b = Tensor::from_slice(gpu, "self_test.b", &[n], &y)?;
    let mut program = Program::new();
    program.push(elementwise::add(gpu, &a, &b).await?);
    gpu.submit(&program);
    let got = a.read(gpu).await?;
    gpu.take_uncaptured_error()?;

    let mut want = x;
    elementwise::add_ref(&mut want, &y);
    if got.len() != want.len() {
        return Err(hearth_gpu::GpuError::Shape(format!(
            "self_test read {} values, expected {}",
            got.len(),
            want.len()
        )));
    }
    // A single f32 addition is correctly rounded on every conforming device.
    const ATOL: f32 = 1e-6;
    let mut max_abs_err = 0.0f32;
    let mut first_bad = None;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // A NaN counts as an infinite error.
        let e = if g.is_nan() {
            f32::INFINITY
        } else {
            (g - w).abs()
        };
        if e > ATOL && first_bad.is_none() {
            first_bad = Some(i);
        }
        max_abs_err = max_abs_err.max(e);
    }
    Ok(SelfTestReport {
        kernel: "elementwise.add".into(),
        n,
        max_abs_err,
        first_bad,
        passed: first_bad.is_none(),
    })
}

/// Values the self-test adds: not a multiple of the workgroup size, so the bounds check matters.
pub const SELF_TEST_N: usize = 100_003;

/// `{ adapter, backend, device_type, driver, features: { f16, subgroups, … }, max_binding, … }`.
#[wasm_bindgen(js_name = gpuInfo)]
pub async fn gpu_info() -> Result<JsValue, JsError> {
    let gpu = shared_gpu().await.map_err(js_err)?;
    to_js(&gpu_report(&gpu))
}

/// `{ kernel, n, max_abs_err, first_bad, passed }` for `elementwise.add` on the GPU vs the CPU.
#[wasm_bindgen(js_name = selfTest)]
pub async fn self_test() -> Result<JsValue, JsError> {
    let gpu = shared_gpu().await.map_err(js_err)?;
    let report = self_test_report(&gpu, SELF_TEST_N).await.map_err(js_err)?;
    to_js(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_is_deterministic_and_in_range() {
        let a = pseudo_random(7, 1000);
        assert_eq!(a, pseudo_random(7, 1000));
        assert_ne!(a, pseudo_random(8, 1000));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        // Not degenerate: the values spread over the interval.
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn self_test_passes_natively() {
        let gpu = pollster::block_on(Gpu::new(&GpuOptions::default())).unwrap();
        let report = pollster::block_on(self_test_report(&gpu, SELF_TEST_N)).unwrap();
        assert!(report.passed, "{report:?}");
        assert_eq!(report.n, SELF_TEST_N);
        let info = gpu_report(&gpu);
        assert!(!info.adapter.is_empty());
        assert!(info.max_binding > 0);
    }
}
