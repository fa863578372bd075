//! Every path of [`linear`] against [`linear_ref`]: formats × norm × epilogue, mat-vec (1 and 5 rows)
//! and mat-mat (37 rows, partial tiles), subgroup and tree reductions, several shards, x_row_offset ≠ 0.
//!
//! Tolerance: the GPU sums ≤ 576 f32 products in its own order, the reference in f64; the expected
//! f32 error is ~√K·ε·|y| ≈ 1e-5 relative (outputs are |y| ≲ 30, SiLU-gated ≲ 300), so
//! `atol 1e-3 + rtol 1e-4` has ample margin, while any wrong weight, scale, row or column is far
//! outside it (one Q4 code off by one moves y by ≈ scale·|x| ≈ 0.13 · 0.5).

// Tests may unwrap (conventions).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::testing::*;
use crate::{GpuOptions, Program};

mod blocks;
mod timing;

const ATOL: f32 = 1e-3;
const RTOL: f32 = 1e-4;
const FORMATS: [WeightFormat; 4] = WeightFormat::ALL;
const EPILOGUES: [Epilogue; 4] = [
    Epilogue::Store,
    Epilogue::Accumulate,
    Epilogue::SiluGate,
    Epilogue::Gelu,
];

#[derive(Clone, Copy, Debug)]
struct Case {
    format: WeightFormat,
    /// Weight rows (2F for SiluGate).
    n: usize,
    k: usize,
    norm: bool,
    epi: Epilogue,
    bias: bool,
    m: usize,
    x_off: usize,
}

fn host(format: WeightFormat, rows: usize, cols: usize, seed: u64) -> HostMatrix {
    let w = random(seed, rows * cols, 1.0);
    HostMatrix::quantize(format, rows, cols, &w).unwrap()
}

/// Runs `c` on `gpu` and compares with the reference; returns the number of dispatches.
fn check(gpu: &Gpu, c: Case, seed: u64) -> usize {
    check_tuned(gpu, c, seed, None)
}

/// [`check`] with a launch shape other than the default.
fn check_tuned(gpu: &Gpu, c: Case, seed: u64, tune: Option<Tune>) -> usize {
    check_with(gpu, c, seed, tune, &|gpu, hm| {
        GpuMatrix::upload(gpu, "w", hm).unwrap()
    })
}

/// [`check`] with the weights uploaded by `upload`.
fn check_with(
    gpu: &Gpu,
    c: Case,
    seed: u64,
    tune: Option<Tune>,
    upload: &dyn Fn(&Gpu, &HostMatrix) -> GpuMatrix,
) -> usize {
    let hm = host(c.format, c.n, c.k, seed);
    let w = upload(gpu, &hm);
    let n_out = if c.epi == Epilogue::SiluGate {
        c.n / 2
    } else {
        c.n
    };
    let x_rows = c.x_off + c.m + 2;
    let xs = random(seed + 1, x_rows * c.k, 1.0);
    // gamma in [0.5, 1.5): a norm bug cannot hide behind gamma ≈ 0.
    let gamma: Vec<f32> = random(seed + 2, c.k, 0.5).iter().map(|g| g + 1.0).collect();
    let init = random(seed + 3, c.m * n_out, 1.0);
    let bias_host = random(seed + 4, c.n, 2.0);
    let bias = Tensor::from_slice(gpu, "bias", &[c.n], &bias_host).unwrap();
    let x = Tensor::from_slice(gpu, "x", &[x_rows, c.k], &xs).unwrap();
    let g = Tensor::from_slice(gpu, "gamma", &[c.k], &gamma).unwrap();
    let out = Tensor::from_slice(gpu, "out", &[c.m, n_out], &init).unwrap();
    let spec = LinearSpec {
        weight: &w,
        norm: c.norm.then_some((&g, 1e-5)),
        epilogue: c.epi,
        bias: c.bias.then_some(&bias),
    };
    let tune = tune.unwrap_or(Tune::for_shape(
        c.format,
        c.n,
        c.k,
        c.epi == Epilogue::SiluGate,
    ));
    let ds = block(linear_tuned(gpu, &spec, &x, c.x_off, c.m, &out, tune)).unwrap();
    let n_dispatches = ds.len();
    let mut p = Program::new();
    p.extend(ds);
    gpu.submit(&p);
    let got = block(out.read(gpu)).unwrap();
    let mut want = init;
    let norm = c.norm.then_some((&gamma[..], 1e-5));
    let b = c.bias.then_some(&bias_host[..]);
    let xq = int8_activations(gpu, c.format, c.m, tune.xq);
    let slack = linear_ref(&hm, norm, c.epi, b, &xs, c.x_off, c.m, &mut want, xq);
    let coop = gpu.features().coop && c.m > MATVEC_MAX_ROWS;
    let what = format!("{c:?} ({} shards, coop {coop})", w.shards.len());
    if coop {
        // Tensor-core tiles take x and w in f16 (relative rounding 2⁻¹¹ each) and accumulate in
        // f32: the error e of a K-term sum grows like √K. SiLU gating multiplies two such sums, so
        // its error is bounded through the reference gate g and up u: ≈ 1.1·e·(|g| + |u|).
        let e = 3e-3 * (c.k as f32).sqrt();
        if c.epi == Epilogue::SiluGate {
            let mut pre = vec![0.0; c.m * c.n];
            linear_ref(
                &hm,
                norm,
                Epilogue::Store,
                None,
                &xs,
                c.x_off,
                c.m,
                &mut pre,
                false,
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let (r, f) = (i / n_out, i % n_out);
                let (gate, up) = (pre[r * c.n + f], pre[r * c.n + n_out + f]);
                let tol = 1.1 * e * (gate.abs() + up.abs() + e) + 1e-3 * w.abs();
                assert!(
                    (g - w).abs() <= tol,
                    "{what}: [{i}] got {g}, want {w} (tolerance {tol})"
                );
            }
        } else {
            assert_close(&what, &got, &want, e, 1e-3);
        }
    } else {
        // With int8 activations the reference rounds x as the shader does; values next to a
        // rounding tie may round the other way there (their slack), almost never more than a few.
        let ties = slack.iter().filter(|&&e| e > 0.0).count();
        eprintln!("{what}: int8 activations {xq}, {ties} outputs with a tie");
        let tol: Vec<f32> = slack.iter().map(|&e| ATOL + e as f32).collect();
        for (i, ((g, w), t)) in got.iter().zip(&want).zip(&tol).enumerate() {
            assert!(
                (g - w).abs() <= t + RTOL * w.abs(),
                "{what}: [{i}] got {g}, want {w} (tolerance {t})"
            );
        }
    }
    n_dispatches
}

fn sweep(gpu: &Gpu, k: usize, ms: &[usize], norms: &[bool]) {
    let mut seed = 100;
    for format in FORMATS {
        for epi in EPILOGUES {
            for &norm in norms {
                for &m in ms {
                    // N not a multiple of any tile (mat-vec 4 columns, mat-mat 64 / 32).
                    let n = if epi == Epilogue::SiluGate {
                        2 * 75
                    } else {
                        103
                    };
                    let c = Case {
                        format,
                        n,
                        k,
                        norm,
                        epi,
                        // Bias with and without the norm binding before it; GELU always biased.
                        bias: epi == Epilogue::Gelu || (epi != Epilogue::SiluGate && norm),
                        m,
                        x_off: 3,
                    };
                    check(gpu, c, seed);
                    if m <= MATVEC_MAX_ROWS {
                        // The int8-activation mat-vec of the large matrices, on every case.
                        let tune = Tune {
                            xq: true,
                            ..Tune::for_shape(format, n, k, epi == Epilogue::SiluGate)
                        };
                        check_tuned(gpu, c, seed, Some(tune));
                    }
                    seed += 10;
                }
            }
        }
    }
}

/// The tensor-core passes (`matmul_f16.wgsl`) go WGSL → naga IR → validation → SPIR-V for every
/// format, fusion and workgroup shape on any machine: CI's adapters have no tensor cores, and without
/// this a broken variant would only show on a GPU that has them.
#[test]
fn coop_variants_validate_and_translate_to_spirv() {
    use naga::back::spv;
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    let base = Defines::new().u32("K", 2048);
    let mut variants = Vec::new();
    for norm in [false, true] {
        let d = base.clone().sym("PASS", "stage_x").flag("NORM", norm);
        variants.push(("stage_x", d.f32("EPS", 1e-5)));
    }
    for format in FORMATS {
        let d = base.clone().sym("PASS", "stage_w").u32("KC", 1024);
        variants.push(("stage_w", d.sym("WEIGHT", format.sym())));
    }
    for epi in EPILOGUES {
        for (wgm, wgn) in [(2, 2), (4, 2), (2, 4), (1, 1)] {
            let d = base
                .clone()
                .sym("PASS", "gemm")
                .sym("EPI", epi.sym())
                .u32("KC", 1024);
            let d = d.flag("BIAS", epi == Epilogue::Gelu).u32("WGM", wgm);
            variants.push(("gemm", d.u32("WGN", wgn)));
        }
    }
    for (entry, defs) in variants {
        let what = format!("{entry} {defs:?}");
        let src = crate::shaders::preprocess(
            "matmul_f16",
            crate::shaders::source("matmul_f16").unwrap(),
            &defs,
        )
        .unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
        if entry == "gemm" {
            // The launcher picks shapes by this size (over the device's limit, a pipeline may hang).
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let bytes: u64 = module
                .global_variables
                .iter()
                .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
                .map(|(_, v)| u64::from(layouter[v.ty].size))
                .sum();
            let shape = |name| match defs.get(name) {
                Some(crate::shaders::Value::U32(v)) => *v,
                _ => unreachable!(),
            };
            let tune = Tune {
                coop_wgm: shape("WGM"),
                coop_wgn: shape("WGN"),
                ..COOP_SHAPE
            };
            assert_eq!(bytes, coop::workgroup_bytes(tune), "{what}");
        }
        let pipeline = spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry.into(),
        };
        let words = spv::write_vec(&module, &info, &spv::Options::default(), Some(&pipeline))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(words.len() > 100, "{what}");
    }
}

/// Slabs small enough that the tensor-core path cuts the weight into several row slabs (gated,
/// biased, GELU) or K slabs (plain sums), with every format; elsewhere it exercises the same
/// launch through the portable path.
#[test]
fn tensor_core_slabs_split_rows_and_k() {
    let gpu = gpu();
    let tune = Tune {
        coop_slab: 4096,
        ..Tune::for_shape(WeightFormat::Q4S, 103, 576, false)
    };
    let mut seed = 900;
    for format in FORMATS {
        for (epi, norm, bias) in [
            (Epilogue::Store, true, false),
            (Epilogue::Accumulate, false, false),
            (Epilogue::SiluGate, true, false),
            (Epilogue::Gelu, false, true),
        ] {
            let c = Case {
                format,
                n: 300,
                k: 576,
                norm,
                epi,
                bias,
                m: 37,
                x_off: 2,
            };
            let d = check_tuned(&gpu, c, seed, Some(tune));
            if gpu.features().coop {
                assert!(d > 3, "{c:?}: expected several slabs, got {d} dispatches");
            }
            seed += 10;
        }
    }
}

#[test]
fn all_formats_fusions_and_paths_k576() {
    // m = 1: mat-vec, one token per workgroup; 37: mat-mat with a partial row tile.
    sweep(&gpu(), 576, &[1, 37], &[false, true]);
}

#[test]
fn all_formats_fusions_and_paths_small_k() {
    // m = 5: mat-vec over several tokens. K = 96: an odd number of groups (Q4S's last scale word
    // holds one scale).
    let gpu = gpu();
    sweep(&gpu, 64, &[1, 5, 37], &[true]);
    sweep(&gpu, 96, &[1, 37], &[true]);
}

#[test]
fn tree_reduction_without_subgroups() {
    let gpu = gpu_with(&GpuOptions {
        allow_subgroups: false,
        ..GpuOptions::default()
    });
    assert!(!gpu.features().subgroups);
    sweep(&gpu, 576, &[1, 5], &[false, true]);
}

#[test]
fn path_selection_follows_batch_size_and_features() {
    // The other tests only cover both reductions if the kernel really follows `features().subgroups`.
    for allow_subgroups in [true, false] {
        let gpu = gpu_with(&GpuOptions {
            allow_subgroups,
            ..GpuOptions::default()
        });
        let f = gpu.features();
        eprintln!(
            "subgroups: {} (sizes {}..={})",
            f.subgroups, f.subgroup_min_size, f.subgroup_max_size
        );
        let w = GpuMatrix::upload(&gpu, "w", &host(WeightFormat::Q4, 64, 64, 1)).unwrap();
        let x = Tensor::<f32>::zeros(&gpu, "x", &[9, 64]).unwrap();
        let out = Tensor::<f32>::zeros(&gpu, "out", &[9, 64]).unwrap();
        let spec = LinearSpec {
            weight: &w,
            norm: None,
            epilogue: Epilogue::Store,
            bias: None,
        };
        let mm = if f.coop { "stage_x" } else { "matmul" };
        for (m, entry) in [(1, "matvec"), (MATVEC_MAX_ROWS, "matvec"), (9, mm)] {
            let d = block(linear(&gpu, &spec, &x, 0, m, &out)).unwrap();
            let key = &d[0].kernel.key;
            assert_eq!(key.entry, entry, "m = {m}");
            if entry == "matvec" {
                let sg = key.defines.get("SUBGROUPS");
                assert_eq!(sg, Some(&crate::shaders::Value::Bool(f.subgroups)));
            }
        }
    }
}

#[test]
fn several_shards_with_gate_and_up_in_different_shards() {
    // 32 KiB bindings: Q4 and Q4S [300, 576] → shards of 64 rows, Q8 → 56, F32 → 14 (unaligned boundaries);
    // gate rows 0..150 and up rows 150..300 are cut at different places.
    let gpu = gpu_with(&GpuOptions {
        max_binding_override: Some(32 * 1024),
        ..GpuOptions::default()
    });
    let mut seed = 500;
    for format in FORMATS {
        for (epi, norm) in [
            (Epilogue::Store, false),
            (Epilogue::Accumulate, true),
            (Epilogue::SiluGate, true),
            (Epilogue::Gelu, false),
        ] {
            for m in [1, 10] {
                // Bias columns are global: a shard must index them past its first row.
                let c = Case {
                    format,
                    n: 300,
                    k: 576,
                    norm,
                    epi,
                    bias: epi == Epilogue::Gelu,
                    m,
                    x_off: 1,
                };
                let d = check(&gpu, c, seed);
                assert!(d > 2, "{c:?}: expected several segments, got {d}");
                seed += 10;
            }
        }
    }
}

/// Rows `r` of `m` as a matrix of their own.
fn rows_of(m: &HostMatrix, r: std::ops::Range<usize>) -> HostMatrix {
    let (qw, sw) = (m.format.qs_words(m.cols), m.format.scale_words(m.cols));
    HostMatrix {
        format: m.format,
        rows: r.len(),
        cols: m.cols,
        qs: m.qs[r.start * qw..r.end * qw].to_vec(),
        scales: m.scales[r.start * sw..r.end * sw].to_vec(),
    }
}

#[test]
fn stacked_parts_upload_like_their_concatenation() {
    // Parts of 70, 130 and 100 rows under 32 KiB bindings: shard boundaries (every 64 Q4 rows,
    // 56 Q8, 14 F32) fall inside parts and across the seams between them.
    let gpu = gpu_with(&GpuOptions {
        max_binding_override: Some(32 * 1024),
        ..GpuOptions::default()
    });
    let parts = |gpu: &Gpu, hm: &HostMatrix| {
        let ps = [
            rows_of(hm, 0..70),
            rows_of(hm, 70..200),
            rows_of(hm, 200..300),
        ];
        let refs: Vec<&HostMatrix> = ps.iter().collect();
        assert_eq!(HostMatrix::concat_rows(&refs).unwrap(), *hm);
        GpuMatrix::upload_rows(gpu, "w", &refs).unwrap()
    };
    let mut seed = 700;
    for format in FORMATS {
        for (epi, m) in [(Epilogue::Store, 1), (Epilogue::SiluGate, 10)] {
            let c = Case {
                format,
                n: 300,
                k: 576,
                norm: true,
                epi,
                bias: false,
                m,
                x_off: 0,
            };
            assert!(
                check_with(&gpu, c, seed, None, &parts) > 2,
                "{c:?}: several shards"
            );
            seed += 10;
        }
    }
    let q4 = host(WeightFormat::Q4, 64, 64, 1);
    let f32 = host(WeightFormat::F32, 64, 64, 1);
    assert!(GpuMatrix::upload_rows(&gpu, "w", &[&q4, &f32]).is_err());
    assert!(GpuMatrix::upload_rows(&gpu, "w", &[]).is_err());
}

#[test]
fn gated_segments_pair_each_gate_row_with_its_up_row() {
    let gpu = gpu_with(&GpuOptions {
        max_binding_override: Some(14 * 4 * 64),
        ..GpuOptions::default()
    });
    // F32 [150, 64]: 14 rows per shard; F = 75.
    let w = GpuMatrix::upload(&gpu, "w", &host(WeightFormat::F32, 150, 64, 1)).unwrap();
    let segs = segments(&w, true).unwrap();
    let mut next = 0;
    for s in &segs {
        let up = s.up.unwrap();
        assert_eq!(s.col0, next, "segments are contiguous");
        assert_eq!(s.main.row0 + s.row_w, s.col0);
        assert_eq!(up.row0 + s.row_u, 75 + s.col0);
        assert!(s.row_w + s.rows <= s.main.rows && s.row_u + s.rows <= up.rows);
        next += s.rows;
    }
    assert_eq!(next, 75);
}

#[test]
fn bad_shapes_are_errors() {
    let gpu = gpu();
    let w = GpuMatrix::upload(&gpu, "w", &host(WeightFormat::Q4, 10, 64, 1)).unwrap();
    let x = Tensor::<f32>::zeros(&gpu, "x", &[4, 64]).unwrap();
    let x_narrow = Tensor::<f32>::zeros(&gpu, "x", &[4, 32]).unwrap();
    let out = Tensor::<f32>::zeros(&gpu, "out", &[4, 10]).unwrap();
    let g_bad = Tensor::<f32>::zeros(&gpu, "g", &[63]).unwrap();
    let spec = |norm, epilogue| LinearSpec {
        weight: &w,
        norm,
        epilogue,
        bias: None,
    };
    let shape = |r: Result<Vec<Dispatch>>| matches!(r, Err(GpuError::Shape(_)));
    let store = spec(None, Epilogue::Store);
    assert!(shape(block(linear(&gpu, &store, &x_narrow, 0, 1, &out))));
    assert!(shape(block(linear(&gpu, &store, &x, 2, 3, &out))));
    assert!(shape(block(linear(&gpu, &store, &x, 0, 5, &out))));
    assert!(shape(block(linear(&gpu, &store, &x, 0, 1, &x))));
    let normed = spec(Some((&g_bad, 1e-5)), Epilogue::Store);
    assert!(shape(block(linear(&gpu, &normed, &x, 0, 1, &out))));
    let w_odd = GpuMatrix::upload(&gpu, "w", &host(WeightFormat::F32, 7, 64, 1)).unwrap();
    let gated = LinearSpec {
        weight: &w_odd,
        norm: None,
        epilogue: Epilogue::SiluGate,
        bias: None,
    };
    assert!(shape(block(linear(&gpu, &gated, &x, 0, 1, &out))));
    let w_k = GpuMatrix::upload(&gpu, "w", &host(WeightFormat::F32, 4, 8, 1)).unwrap();
    let x8 = Tensor::<f32>::zeros(&gpu, "x", &[4, 8]).unwrap();
    let k8 = LinearSpec {
        weight: &w_k,
        norm: None,
        epilogue: Epilogue::Store,
        bias: None,
    };
    assert!(shape(block(linear(&gpu, &k8, &x8, 0, 1, &out))));
    // The well-formed call works, and zero rows record nothing.
    assert_eq!(
        block(linear(&gpu, &store, &x, 0, 4, &out)).unwrap().len(),
        1
    );
    assert!(block(linear(&gpu, &store, &x, 0, 0, &out))
        .unwrap()
        .is_empty());
}

#[test]
fn bias_shape_and_gating_are_checked() {
    let gpu = gpu();
    let hm = host(WeightFormat::F32, 8, 32, 1);
    let w = GpuMatrix::upload(&gpu, "w", &hm).unwrap();
    let x = Tensor::<f32>::zeros(&gpu, "x", &[2, 32]).unwrap();
    let out = Tensor::<f32>::zeros(&gpu, "out", &[2, 8]).unwrap();
    let short = Tensor::<f32>::zeros(&gpu, "bias", &[7]).unwrap();
    let ok = Tensor::<f32>::zeros(&gpu, "bias", &[8]).unwrap();
    for (bias, epilogue) in [(&short, Epilogue::Store), (&ok, Epilogue::SiluGate)] {
        let spec = LinearSpec {
            weight: &w,
            norm: None,
            epilogue,
            bias: Some(bias),
        };
        let r = block(linear(&gpu, &spec, &x, 0, 2, &out));
        assert!(
            matches!(r, Err(GpuError::Shape(_))),
            "{epilogue:?}: {:?}",
            r.err()
        );
    }
}
