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

/// A 1-row mat-vec's operands on the GPU (x random, gamma ones), for the timing tests below.
struct MatvecOperands {
    w: GpuMatrix,
    gamma: Tensor<f32>,
    x: Tensor<f32>,
    out: Tensor<f32>,
}

impl MatvecOperands {
    fn new(gpu: &Gpu, format: WeightFormat, n: usize, k: usize) -> Self {
        Self {
            w: GpuMatrix::upload(gpu, "w", &host(format, n, k, 1)).unwrap(),
            gamma: Tensor::from_slice(gpu, "g", &[k], &vec![1.0; k]).unwrap(),
            x: Tensor::from_slice(gpu, "x", &[1, k], &random(2, k, 1.0)).unwrap(),
            out: Tensor::<f32>::zeros(gpu, "out", &[1, n]).unwrap(),
        }
    }

    /// `reps` back-to-back dispatches of the mat-vec with `tune`.
    fn program(
        &self,
        gpu: &Gpu,
        epilogue: Epilogue,
        norm: bool,
        tune: Tune,
        reps: usize,
    ) -> Program {
        let spec = LinearSpec {
            weight: &self.w,
            norm: norm.then_some((&self.gamma, 1e-5)),
            epilogue,
            bias: None,
        };
        let mut p = Program::new();
        for _ in 0..reps {
            p.extend(block(linear_tuned(gpu, &spec, &self.x, 0, 1, &self.out, tune)).unwrap());
        }
        p
    }
}

/// Mat-vec launch-shape sweep on a real GPU, with f32 and int8 activations (int8 where the format
/// allows it; prints GB/s of weights streamed): `cargo test -p hearth-gpu --release matvec_sweep -- --ignored --nocapture`.
/// `HEARTH_SWEEP=llama` limits it to Llama-3.2-1B's decode matrices (Q4S).
#[test]
#[ignore]
fn matvec_sweep() {
    use std::time::Instant;
    let llama = std::env::var("HEARTH_SWEEP").is_ok_and(|v| v == "llama");
    for (allow_subgroups, allow_int8_dot) in [(true, false), (true, true), (false, true)] {
        let gpu = gpu_with(&GpuOptions {
            allow_subgroups,
            allow_int8_dot,
            ..GpuOptions::default()
        });
        let f = gpu.features();
        eprintln!(
            "{} subgroups={} int8={}",
            gpu.describe(),
            f.subgroups,
            f.int8_dot
        );
        if allow_subgroups && !allow_int8_dot && !llama {
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
        use Epilogue::{Accumulate as Acc, SiluGate as Silu, Store};
        use WeightFormat::{Q4, Q4S, Q8};
        // (format, N, K, epilogue, fused norm): Llama-3.2-1B's qkv, o_proj, gate_up, down, lm_head.
        let llama_1b = [
            (Q4S, 3072, 2048, Store, true),
            (Q4S, 2048, 2048, Acc, false),
            (Q4S, 16384, 2048, Silu, true),
            (Q4S, 2048, 8192, Acc, false),
            (Q4S, 128256, 2048, Store, true),
        ];
        let others = [
            (Q4, 64, 64, Store, false),
            (WeightFormat::F32, 32768, 4096, Store, false),
            (Q4, 4096, 4096, Store, false),
            (Q4, 28672, 4096, Store, false),
            (Q8, 4096, 4096, Store, false),
            (WeightFormat::F32, 4096, 4096, Store, false),
        ];
        let shapes: Vec<_> = match (allow_subgroups, llama) {
            (false, _) => vec![(Q4, 4096, 4096, Store, false)],
            (true, true) => llama_1b.to_vec(),
            (true, false) => llama_1b.iter().chain(&others).copied().collect(),
        };
        for (format, n, k, epilogue, norm) in shapes {
            let ops = MatvecOperands::new(&gpu, format, n, k);
            let bytes = ops.w.bytes() as f64;
            let reps = (2e8 / bytes).clamp(10.0, 500.0) as usize;
            for groups in [1, 2] {
                for iters in [1, 2, 4] {
                    if epilogue == Silu && groups == 1 {
                        continue; // gating always takes 2 groups
                    }
                    let tune = Tune {
                        groups,
                        iters,
                        xq: f.int8_dot,
                        ..COOP_SHAPE
                    };
                    let p = ops.program(&gpu, epilogue, norm, tune, reps);
                    let dt = time_program(&gpu, &p, reps);
                    eprintln!(
                        "{format:?} [{n:6}, {k:5}] {epilogue:?} norm={norm} int8={} rows={} iters={iters}: {:8.2} us {:7.1} GB/s",
                        int8_activations(&gpu, format, 1, tune.xq),
                        4 * groups,
                        dt * 1e6,
                        bytes / dt / 1e9
                    );
                }
            }
        }
    }
}

/// Mat-mat throughput on a real GPU, for Llama-3.2-1B's four layer matrices at prefill sizes and
/// (with cooperative matrices) each tensor-core workgroup shape:
/// `cargo test -p hearth-gpu --release matmul_sweep -- --ignored --nocapture`.
#[test]
#[ignore]
fn matmul_sweep() {
    let gpu = gpu();
    eprintln!("{}", gpu.describe());
    let shapes: &[(u32, u32)] = if gpu.features().coop {
        &[(4, 2), (4, 1), (2, 2), (8, 1)]
    } else {
        &[(2, 2)]
    };
    // (what, m, rows, k, norm, epilogue)
    for (what, m, n, k, norm, epi) in [
        ("qkv", 2048, 3072, 2048, true, Epilogue::Store),
        ("o_proj", 2048, 2048, 2048, false, Epilogue::Accumulate),
        ("gate_up", 2048, 16384, 2048, true, Epilogue::SiluGate),
        ("down", 2048, 2048, 8192, false, Epilogue::Accumulate),
        ("gate_up", 512, 16384, 2048, true, Epilogue::SiluGate),
    ] {
        let hm = host(WeightFormat::Q4S, n, k, 1);
        let w = GpuMatrix::upload(&gpu, "w", &hm).unwrap();
        let gamma = Tensor::from_slice(&gpu, "g", &[k], &vec![1.0; k]).unwrap();
        let spec = LinearSpec {
            weight: &w,
            norm: norm.then_some((&gamma, 1e-5)),
            epilogue: epi,
            bias: None,
        };
        let x = Tensor::from_slice(&gpu, "x", &[m, k], &random(2, m * k, 1.0)).unwrap();
        let n_out = if epi == Epilogue::SiluGate { n / 2 } else { n };
        let out = Tensor::<f32>::zeros(&gpu, "out", &[m, n_out]).unwrap();
        for &(coop_wgm, coop_wgn) in shapes {
            let tune = Tune {
                coop_wgm,
                coop_wgn,
                ..Tune::for_shape(WeightFormat::Q4S, n, k, epi == Epilogue::SiluGate)
            };
            let reps = 10;
            let mut p = Program::new();
            for _ in 0..reps {
                p.extend(block(linear_tuned(&gpu, &spec, &x, 0, m, &out, tune)).unwrap());
            }
            // The tensor-core product alone, and its staging passes alone.
            let part = |gemm: bool| Program {
                dispatches: p
                    .dispatches
                    .iter()
                    .filter(|d| (d.kernel.key.entry == "gemm") == gemm)
                    .cloned()
                    .collect(),
            };
            if gpu.features().coop {
                let (g, st) = (part(true), part(false));
                let (dg, ds) = (time_program(&gpu, &g, reps), time_program(&gpu, &st, reps));
                eprintln!(
                    "  gemm alone {:9.1} us {:7.2} TFLOP/s, staging alone {:9.1} us",
                    dg * 1e6,
                    2.0 * (m * n * k) as f64 / dg / 1e12,
                    ds * 1e6
                );
            }
            let dt = time_program(&gpu, &p, reps);
            eprintln!(
                "{what:8} m={m:5} [{n:5}, {k:5}] wg {coop_wgm}x{coop_wgn}: {:9.1} us {:7.2} TFLOP/s",
                dt * 1e6,
                2.0 * (m * n * k) as f64 / dt / 1e12
            );
        }
    }
}

/// What the tensor cores give through wgpu's cooperative matrices on this adapter, apart from any
/// mat-mul's memory traffic: 4 subgroups per workgroup, each multiplying 2 × 4 f16 tiles into 8 f32
/// accumulators `ITERS` times, with the operands in registers (`regs`), reloaded from workgroup
/// memory (`shared`) or from a storage buffer (`global`) every iteration.
/// `cargo test -p hearth-gpu --release coop_peak -- --ignored --nocapture`.
#[test]
#[ignore]
#[allow(unsafe_code)] // the kernel is unchecked like the real ones (naga's loop counters cost 10×)
fn coop_peak() {
    const ITERS: u32 = 1024;
    const GROUPS: u32 = 4096;
    let body = |load: &str| {
        format!(
            "enable f16;\nenable wgpu_cooperative_matrix;\n\
@group(0) @binding(0) var<storage, read> src: array<f16>;\n\
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;\n\
var<workgroup> sh: array<f16, 4096>;\n\
alias A16 = coop_mat16x16<f16, A>;\nalias B16 = coop_mat16x16<f16, B>;\nalias C32 = coop_mat16x16<f32, C>;\n\
@compute @workgroup_size(128)\n\
fn main(@builtin(local_invocation_index) t: u32, @builtin(subgroup_id) sg: u32, @builtin(workgroup_id) wid: vec3<u32>) {{\n\
  for (var i = t; i < 4096u; i += 128u) {{ sh[i] = src[i]; }}\n\
  workgroupBarrier();\n\
  var x0 = coopLoadT<A16>(&sh[0], 16u); var x1 = coopLoadT<A16>(&sh[256], 16u);\n\
  var w0 = coopLoad<B16>(&sh[512], 16u); var w1 = coopLoad<B16>(&sh[768], 16u);\n\
  var w2 = coopLoad<B16>(&sh[1024], 16u); var w3 = coopLoad<B16>(&sh[1280], 16u);\n\
  var c00 = C32(); var c01 = C32(); var c02 = C32(); var c03 = C32();\n\
  var c10 = C32(); var c11 = C32(); var c12 = C32(); var c13 = C32();\n\
  for (var it = 0u; it < {ITERS}u; it++) {{\n\
    let o = (it & 3u) * 16u;\n{load}\
    c00 = coopMultiplyAdd(x0, w0, c00); c01 = coopMultiplyAdd(x0, w1, c01);\n\
    c02 = coopMultiplyAdd(x0, w2, c02); c03 = coopMultiplyAdd(x0, w3, c03);\n\
    c10 = coopMultiplyAdd(x1, w0, c10); c11 = coopMultiplyAdd(x1, w1, c11);\n\
    c12 = coopMultiplyAdd(x1, w2, c12); c13 = coopMultiplyAdd(x1, w3, c13);\n\
  }}\n\
  let d = (wid.x * 4u + sg) * 256u;\n\
  coopStoreT(c00 + c01 + c02 + c03 + c10 + c11 + c12 + c13, &dst[d], 16u);\n\
}}\n"
        )
    };
    let from = |arr: &str| {
        format!(
            "    x0 = coopLoadT<A16>(&{arr}[o], 64u); x1 = coopLoadT<A16>(&{arr}[1024u + o], 64u);\n\
    w0 = coopLoad<B16>(&{arr}[2048u + o], 64u); w1 = coopLoad<B16>(&{arr}[3072u + o], 64u);\n\
    w2 = coopLoad<B16>(&{arr}[2048u + 16u + o], 64u); w3 = coopLoad<B16>(&{arr}[3072u + 16u + o], 64u);\n"
        )
    };
    // Operands streamed like a mat-mul's: rows 2,048 halves apart, k advancing 16 each iteration
    // through 128 steps (a 512 KiB region, cache-resident).
    let wide = "    let q = (it & 127u) * 16u;\n\
    x0 = coopLoadT<A16>(&src[q], 2048u); x1 = coopLoadT<A16>(&src[32768u + q], 2048u);\n\
    w0 = coopLoad<B16>(&src[65536u + q], 2048u); w1 = coopLoad<B16>(&src[98304u + q], 2048u);\n\
    w2 = coopLoad<B16>(&src[131072u + q], 2048u); w3 = coopLoad<B16>(&src[163840u + q], 2048u);\n";
    // Workgroup memory with rows padded to 24 halves (no bank conflicts between rows).
    let padded = "    x0 = coopLoadT<A16>(&sh[o], 24u); x1 = coopLoadT<A16>(&sh[512u + o], 24u);\n\
    w0 = coopLoad<B16>(&sh[1024u + o], 24u); w1 = coopLoad<B16>(&sh[1536u + o], 24u);\n\
    w2 = coopLoad<B16>(&sh[2048u + o], 24u); w3 = coopLoad<B16>(&sh[2560u + o], 24u);\n";
    let variants = [
        ("regs", body("")),
        ("shared", body(&from("sh"))),
        ("shared24", body(padded)),
        ("global", body(&from("src"))),
        ("wide", body(wide)),
    ];
    for (name, src) in &variants {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    }
    let gpu = gpu();
    if !gpu.features().coop {
        eprintln!("no cooperative matrices on {}", gpu.describe());
        return;
    }
    let src_h: Vec<u16> = (0..262_144)
        .map(|i| half::f16::from_f32(((i % 7) as f32 - 3.0) / 64.0).to_bits())
        .collect();
    let src = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("src"),
        size: 2 * 262_144,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bytes: Vec<u8> = src_h.iter().flat_map(|h| h.to_le_bytes()).collect();
    gpu.queue().write_buffer(&src, 0, &bytes);
    let dst = Tensor::<f32>::zeros(&gpu, "dst", &[(GROUPS * 4 * 256) as usize]).unwrap();
    for (name, text) in variants {
        let module = unsafe {
            gpu.device().create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some("coop_peak"),
                    source: wgpu::ShaderSource::Wgsl(text.into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        };
        let pipeline = gpu
            .device()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("coop_peak"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let bg = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: src.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: dst.buffer().as_entire_binding(),
                },
            ],
        });
        let run = |reps: usize| {
            let t = std::time::Instant::now();
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bg, &[]);
                for _ in 0..reps {
                    pass.dispatch_workgroups(GROUPS, 1, 1);
                }
            }
            gpu.queue().submit([enc.finish()]);
            gpu.poll_wait();
            t.elapsed().as_secs_f64() / reps as f64
        };
        run(3);
        let dt = run(10);
        let flop = 2.0 * 16.0 * 16.0 * 16.0 * 8.0 * ITERS as f64 * 4.0 * GROUPS as f64;
        eprintln!(
            "coop_peak {name:6}: {:8.1} us per dispatch, {:7.1} TFLOP/s",
            dt * 1e6,
            flop / dt / 1e12
        );
    }
}

/// Repeated timings (min and median of 7) of a few mat-vec configurations, to tell run-to-run noise
/// from real differences: `HEARTH_PROBE="Q4S:128256:2048:store:norm:8:2,..."` (format, N, K,
/// store|acc|silu, norm|plain, rows per workgroup, iters[, blocks per workgroup]); int8 activations
/// unless `HEARTH_NO_INT8=1`.
#[test]
#[ignore]
fn matvec_probe() {
    let gpu = gpu();
    eprintln!("{} int8={}", gpu.describe(), gpu.features().int8_dot);
    let spec = std::env::var("HEARTH_PROBE").unwrap_or_default();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let f: Vec<&str> = item.split(':').collect();
        let format = match f[0] {
            "Q4" => WeightFormat::Q4,
            "Q4S" => WeightFormat::Q4S,
            "Q8" => WeightFormat::Q8,
            _ => WeightFormat::F32,
        };
        let (n, k): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let epilogue = match f[3] {
            "acc" => Epilogue::Accumulate,
            "silu" => Epilogue::SiluGate,
            _ => Epilogue::Store,
        };
        let norm = f[4] == "norm";
        let tune = Tune {
            groups: f[5].parse::<u32>().unwrap() / 4,
            iters: f[6].parse().unwrap(),
            bpw: f.get(7).map_or(1, |b| b.parse().unwrap()),
            xq: gpu.features().int8_dot,
            ..COOP_SHAPE
        };
        let ops = MatvecOperands::new(&gpu, format, n, k);
        let reps = (2e8 / ops.w.bytes() as f64).clamp(20.0, 500.0) as usize;
        let p = ops.program(&gpu, epilogue, norm, tune, reps);
        let mut ts: Vec<f64> = (0..7).map(|_| time_program(&gpu, &p, reps) * 1e6).collect();
        ts.sort_by(f64::total_cmp);
        eprintln!(
            "{item}: min {:.2} us ({:.0} GB/s), median {:.2} us, max {:.2} us",
            ts[0],
            ops.w.bytes() as f64 / ts[0] / 1e3,
            ts[3],
            ts[6]
        );
    }
}
