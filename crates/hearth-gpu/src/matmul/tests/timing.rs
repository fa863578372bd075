//! Timing sweeps of the linear kernels on a real GPU (ignored by default; run with `--ignored`).

use super::*;

/// Rough timings (lavapipe gives CPU numbers only): `cargo test -p hearth-gpu --release matmul_timing
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_timing() {
    use std::time::Instant;
    let gpu = gpu();
    eprintln!("{}", gpu.describe());
    let (n, k) = (2048, 2048);
    let hm = host(WeightFormat::Q4, n, k, 1);
    let w = GpuMatrix::upload(&gpu, "w", &hm).unwrap();
    let spec = LinearSpec {
        weight: &w,
        norm: None,
        epilogue: Epilogue::Store,
        bias: None,
    };
    for m in [1usize, 512] {
        let x = Tensor::from_slice(&gpu, "x", &[m, k], &random(2, m * k, 1.0)).unwrap();
        let out = Tensor::<f32>::zeros(&gpu, "out", &[m, n]).unwrap();
        let mut p = Program::new();
        p.extend(block(linear(&gpu, &spec, &x, 0, m, &out)).unwrap());
        let reps = if m == 1 { 20 } else { 3 };
        // Warm-up (compilation, first-touch).
        gpu.submit(&p);
        block(out.read(&gpu)).unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            gpu.submit(&p);
        }
        block(out.read(&gpu)).unwrap();
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        let bytes = w.bytes() as f64;
        eprintln!(
            "Q4 [{n}, {k}] m={m}: {:.3} ms/iter ({:.2} GB/s of weights, {:.2} GFLOP/s)",
            dt * 1e3,
            bytes / dt / 1e9,
            2.0 * (m * n * k) as f64 / dt / 1e9
        );
    }
}

/// Seconds per run of `p`, after keeping the GPU busy with it for ~0.3 s (clocks drop while idle).
fn time_program(gpu: &Gpu, p: &Program, runs_per_submit: usize) -> f64 {
    use std::time::{Duration, Instant};
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        gpu.submit(p);
        gpu.poll_wait();
    }
    let t = Instant::now();
    for _ in 0..3 {
        gpu.submit(p);
    }
    gpu.poll_wait();
    t.elapsed().as_secs_f64() / (3 * runs_per_submit) as f64
}

/// Mat-vec launch-shape sweep on a real GPU (prints GB/s of weights streamed):
/// `cargo test -p hearth-gpu --release matvec_sweep -- --ignored --nocapture`.
#[test]
#[ignore]
fn matvec_sweep() {
    use std::time::Instant;
    for allow_subgroups in [true, false] {
        let gpu = gpu_with(&GpuOptions {
            allow_subgroups,
            ..GpuOptions::default()
        });
        eprintln!("{} subgroups={}", gpu.describe(), gpu.features().subgroups);
        if allow_subgroups {
            // Baseline: the elementwise add kernel streaming 2 × 256 MB in, 256 MB out.
            let n = 64 << 20;
            let a = Tensor::<f32>::zeros(&gpu, "a", &[n]).unwrap();
            let b = Tensor::<f32>::zeros(&gpu, "b", &[n]).unwrap();
            let mut p = Program::new();
            for _ in 0..10 {
                p.push(block(crate::elementwise::add(&gpu, &a, &b)).unwrap());
            }
            // Also the warm-up that brings the clocks up (~0.5 s).
            for _ in 0..15 {
                gpu.submit(&p);
            }
            gpu.poll_wait();
            let t = Instant::now();
            gpu.submit(&p);
            gpu.poll_wait();
            let dt = t.elapsed().as_secs_f64() / 10.0;
            eprintln!(
                "elementwise add of 64M f32: {:.1} us, {:.0} GB/s (3 streams)",
                dt * 1e6,
                3.0 * 4.0 * n as f64 / dt / 1e9
            );
        }
        let shapes: &[(WeightFormat, usize, usize)] = if allow_subgroups {
            &[
                (WeightFormat::Q4, 64, 64),
                (WeightFormat::F32, 32768, 4096),
                (WeightFormat::Q4, 2048, 2048),
                (WeightFormat::Q4, 16384, 2048),
                (WeightFormat::Q4, 2048, 8192),
                (WeightFormat::Q4, 4096, 4096),
                (WeightFormat::Q4S, 4096, 4096),
                (WeightFormat::Q4, 28672, 4096),
                (WeightFormat::Q4, 128256, 2048),
                (WeightFormat::Q4S, 128256, 2048),
                (WeightFormat::Q8, 4096, 4096),
                (WeightFormat::F32, 4096, 4096),
            ]
        } else {
            &[(WeightFormat::Q4, 4096, 4096)]
        };
        for &(format, n, k) in shapes {
            let hm = host(format, n, k, 1);
            let w = GpuMatrix::upload(&gpu, "w", &hm).unwrap();
            let spec = LinearSpec {
                weight: &w,
                norm: None,
                epilogue: Epilogue::Store,
                bias: None,
            };
            let x = Tensor::from_slice(&gpu, "x", &[1, k], &random(2, k, 1.0)).unwrap();
            let out = Tensor::<f32>::zeros(&gpu, "out", &[1, n]).unwrap();
            let reps = (2e8 / w.bytes() as f64).clamp(10.0, 500.0) as usize;
            for groups in [1, 2] {
                for iters in [1, 2, 4, 16] {
                    let tune = Tune { groups, iters };
                    let mut p = Program::new();
                    for _ in 0..reps {
                        p.extend(block(linear_tuned(&gpu, &spec, &x, 0, 1, &out, tune)).unwrap());
                    }
                    let dt = time_program(&gpu, &p, reps);
                    eprintln!(
                        "{format:?} [{n:6}, {k:5}] rows={} iters={iters:2}: {:8.2} us {:7.1} GB/s",
                        4 * groups,
                        dt * 1e6,
                        w.bytes() as f64 / dt / 1e9
                    );
                }
            }
        }
    }
}

/// Mat-mat throughput on a real GPU: `cargo test -p hearth-gpu --release matmul_sweep -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_sweep() {
    let gpu = gpu();
    eprintln!("{}", gpu.describe());
    for (format, m, n, k) in [
        (WeightFormat::Q4, 512, 2048, 2048),
        (WeightFormat::Q4, 512, 16384, 2048),
        (WeightFormat::Q4, 2048, 4096, 4096),
        (WeightFormat::Q4S, 2048, 4096, 4096),
        (WeightFormat::Q8, 512, 4096, 4096),
        (WeightFormat::F32, 512, 4096, 4096),
    ] {
        let hm = host(format, n, k, 1);
        let w = GpuMatrix::upload(&gpu, "w", &hm).unwrap();
        let spec = LinearSpec {
            weight: &w,
            norm: None,
            epilogue: Epilogue::Store,
            bias: None,
        };
        let x = Tensor::from_slice(&gpu, "x", &[m, k], &random(2, m * k, 1.0)).unwrap();
        let out = Tensor::<f32>::zeros(&gpu, "out", &[m, n]).unwrap();
        let reps = 20;
        let mut p = Program::new();
        for _ in 0..reps {
            p.extend(block(linear(&gpu, &spec, &x, 0, m, &out)).unwrap());
        }
        let dt = time_program(&gpu, &p, reps);
        eprintln!(
            "{format:?} m={m} [{n}, {k}]: {:8.1} us {:7.2} TFLOP/s",
            dt * 1e6,
            2.0 * (m * n * k) as f64 / dt / 1e12
        );
    }
}
