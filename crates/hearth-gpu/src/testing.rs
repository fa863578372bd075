//! Helpers for kernel tests (native): a device, seeded random data, and comparisons that report the
//! worst index, both values and the max/mean error before failing.

use rand::{Rng, SeedableRng};

use crate::{Gpu, GpuOptions};

/// A device for tests, honouring `HEARTH_NO_F16` / `HEARTH_NO_SUBGROUPS` / `HEARTH_MAX_BINDING`.
/// Panics (tests only) when there is no adapter: a GPU test must never pass by skipping.
pub fn gpu() -> Gpu {
    gpu_with(&GpuOptions::from_env())
}

pub fn gpu_with(opts: &GpuOptions) -> Gpu {
    match pollster::block_on(Gpu::new(opts)) {
        Ok(g) => g,
        Err(e) => panic!("no GPU for tests ({e}); install mesa-vulkan-drivers for lavapipe"),
    }
}

/// Blocks on a future (native tests and the CLI).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// `n` values uniform in `[-scale, scale)` from `seed`.
pub fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

/// Max and mean absolute error, and the worst index.
pub fn errors(got: &[f32], want: &[f32]) -> (f32, f32, usize) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut max = 0f32;
    let mut sum = 0f64;
    let mut at = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = if g.is_nan() != w.is_nan() {
            f32::INFINITY
        } else {
            (g - w).abs()
        };
        if e > max {
            max = e;
            at = i;
        }
        sum += e as f64;
    }
    (max, (sum / got.len().max(1) as f64) as f32, at)
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere, reporting the worst index on failure and
/// the error figures always (visible with `--nocapture`).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    let (max, mean, at) = errors(got, want);
    let scale = want.iter().fold(0f32, |a, w| a.max(w.abs()));
    eprintln!(
        "{what}: n={} max_err={max:.3e} mean_err={mean:.3e} (worst at {at}), max|want|={scale:.3e}",
        got.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        assert!(ok, "{what}: index {i}: got {g}, want {w} (max err {max:.3e}, mean {mean:.3e}, worst at {at})");
    }
}
