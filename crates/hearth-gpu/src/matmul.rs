//! Linear layers (`shaders/matmul.wgsl`): `out[m, :] (= or +=) f(x[x_row_offset + m, :]) · Wᵀ` over weights in
//! any [`WeightFormat`], with a fused RMSNorm prologue, an optional bias and a store / accumulate /
//! SiLU-gate / GELU epilogue.
//!
//! - Decode (`m_rows ≤` [`MATVEC_MAX_ROWS`]): a memory-bound mat-vec streaming 16-byte weight units,
//!   reduced with subgroups when the device has them.
//! - Prefill: a tiled mat-mat (64 tokens × 64 weight rows per workgroup, 4×4 per thread, f32 FMA), or
//!   where the device has cooperative matrices ([`crate::GpuFeatures::coop`]) a product on the tensor
//!   cores over f16 copies of x and of the weights (`coop`). `HEARTH_NO_COOP=1` forces the portable
//!   path.
//!
//! One dispatch per *segment*. Without SiLU gating a segment is a shard of the weight. With it, the
//! weight's rows are `[gate; up]` (`GpuMatrix::upload_rows(&[gate, up])`: stacked as
//! `HostMatrix::concat_rows` would, no special layout); gate row `f` and up row `F + f` may sit in
//! different shards, so the gate range is cut wherever either side changes shard and each piece
//! binds the shard holding its gate rows and the one holding its up rows (possibly the same buffer
//! twice).
//!
//! `K` must be a multiple of 32 for every format. Reductions run in a fixed order, so results are
//! deterministic run to run. Measured on an H200 (Vulkan, `matvec_sweep` / `matmul_sweep`): F32 mat-vec
//! streams ~4 TB/s; Q4 mat-vec 1.4–2.0 TB/s on large matrices. A loads-only variant of the Q4 kernel
//! reached 2.7–3.1 TB/s, so both the f32 dequantise-and-FMA work and the short per-workgroup life of
//! Q4 rows limit it (int8 activations with `dot4I8Packed` would cut the former). The mat-mat runs at
//! ~15–17 TFLOP/s (f32 FMA).

use crate::quant::MatrixShard;
use crate::{
    elementwise, tensor, Defines, Dispatch, Gpu, GpuError, GpuMatrix, HostMatrix, KernelKey,
    Result, Tensor, WeightFormat,
};

/// What is done with the product `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `out = y`
    Store,
    /// `out += y` (fused residual add)
    Accumulate,
    /// The weight has `2F` rows `[gate; up]`; `out[m, f] = silu(gate_f) · up_f`, out width `F`.
    SiluGate,
    /// `out = gelu(y)`, the exact (erf) GELU of BERT.
    Gelu,
}

impl Epilogue {
    fn sym(self) -> &'static str {
        match self {
            Epilogue::Store => "store",
            Epilogue::Accumulate => "acc",
            Epilogue::SiluGate => "silu",
            Epilogue::Gelu => "gelu",
        }
    }
}

/// A linear layer: weight `[N, K]`, optional fused RMSNorm of the input rows, epilogue.
pub struct LinearSpec<'a> {
    /// `[N, K]`, any format, possibly several shards.
    pub weight: &'a GpuMatrix,
    /// Fused RMSNorm prologue: gamma `[K]`, eps. Rows of x are normalised first.
    pub norm: Option<(&'a Tensor<f32>, f32)>,
    pub epilogue: Epilogue,
    /// `[N]`, added to `y` before the epilogue (not with [`Epilogue::SiluGate`]).
    pub bias: Option<&'a Tensor<f32>>,
}

/// Batches up to this many rows take the mat-vec path; larger ones the tiled mat-mat.
pub const MATVEC_MAX_ROWS: usize = 8;
/// Mat-vec launch shape (a parameter so the timing test can sweep it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tune {
    /// Groups of 4 weight rows per workgroup, 1 or 2 (SiLU gating always uses 2: gate and up).
    pub groups: u32,
    /// Target steps over K per thread: the workgroup has (16-byte units per row) / iters threads,
    /// rounded up to a power of two and clamped to 32..=128.
    pub iters: u32,
    /// Blocks of output columns per mat-vec workgroup (x is read once per workgroup and token).
    pub bpw: u32,
    /// Round the mat-vec's activations to int8 (where [`crate::GpuFeatures::int8_dot`] allows).
    pub xq: bool,
    /// Tensor-core mat-mul workgroup: subgroups along the tokens and along the weight rows.
    pub coop_wgm: u32,
    pub coop_wgn: u32,
    /// Weights dequantised per tensor-core slab (a parameter so tests can force several slabs).
    pub coop_slab: usize,
}

impl Tune {
    /// Defaults from the H200 sweep (`matvec_sweep`): Q4 does best with 8 rows and 2 steps per thread
    /// (its workgroups are otherwise short-lived); Q8 and F32 with 4 rows and 64 threads at K = 4096.
    /// Q4S streams the same 16-byte units as Q4 (and fewer scale bytes) and takes Q4's shape.
    /// [`Tune::default_for`], except that small 4-bit matrices (N ≤ 4,096, K ≤ 2,048) take 4 rows per
    /// workgroup: twice the workgroups keep more loads in flight (H200 `matvec_sweep`, 2026-11-21:
    /// [2048, 2048] 6.5 µs with 4 rows against 7.6 µs with 8). Gated matrices always use 2 groups.
    pub(crate) fn for_shape(format: WeightFormat, n: usize, k: usize, gated: bool) -> Self {
        let mut t = Self::default_for(format);
        if matches!(format, WeightFormat::Q4 | WeightFormat::Q4S) && n <= 4096 && k <= 2048 {
            t.groups = 1;
        }
        // Matrices of thousands of blocks (the LM head) stream at bandwidth only when x is read once
        // per workgroup of several blocks, and then the int8 products pay off; per-layer matrices
        // are latency-bound, and there both only lengthen a workgroup's chain. H200, 2026-11-21:
        // `matvec_probe`, LM head [128256, 2048] Q4S with its norm 92 → 54 µs with 8 blocks and int8
        // (16 blocks: 70 µs); the 1B's decode 1,087 → 1,059 tok/s with int8 in every mat-vec.
        // Only over 4-bit weights: their own rounding (16 levels) dwarfs int8's (255), whereas over
        // SmolLM2's Q8 head int8 moved the logits past a 0.08 margin of the float64 reference.
        let blocks = if gated {
            n / 2 / 4
        } else {
            n / (4 * t.groups as usize)
        };
        let four_bit = matches!(format, WeightFormat::Q4 | WeightFormat::Q4S);
        if blocks >= 4096 && four_bit {
            t.bpw = 8;
            t.xq = true;
        }
        t
    }

    pub(crate) fn default_for(format: WeightFormat) -> Self {
        match format {
            WeightFormat::Q4 | WeightFormat::Q4S => Tune {
                groups: 2,
                iters: 2,
                ..COOP_SHAPE
            },
            WeightFormat::Q8 => Tune {
                groups: 1,
                iters: 4,
                ..COOP_SHAPE
            },
            WeightFormat::F32 => Tune {
                groups: 1,
                iters: 16,
                ..COOP_SHAPE
            },
        }
    }
}

/// The tensor-core mat-mul's workgroup shape (only its `coop_*` fields are used): 4 × 2 subgroups,
/// 128 tokens × 128 weight rows (H200 `matmul_sweep`, 2026-11-21: qkv at 2,048 tokens 105 TFLOP/s
/// against 70 with 2 × 2).
const COOP_SHAPE: Tune = Tune {
    groups: 1,
    iters: 1,
    bpw: 1,
    xq: false,
    coop_wgm: 4,
    coop_wgn: 2,
    coop_slab: coop::SLAB_HALVES,
};

/// Tokens per mat-mat tile.
const MM_BM: u32 = 64;

/// One dispatch's share of the weight: `rows` rows from `row_w` of `main` (gate rows for SiLU gating,
/// with the up rows from `row_u` of `up`), producing output columns `col0 .. col0 + rows`.
struct Segment<'a> {
    main: &'a MatrixShard,
    up: Option<&'a MatrixShard>,
    row_w: usize,
    row_u: usize,
    rows: usize,
    col0: usize,
}

fn shape_err(msg: String) -> GpuError {
    GpuError::Shape(format!("linear: {msg}"))
}

fn segments(w: &GpuMatrix, gated: bool) -> Result<Vec<Segment<'_>>> {
    let covered: usize = w.shards.iter().map(|s| s.rows).sum();
    if covered != w.rows || w.shards.iter().any(|s| s.row0 + s.rows > w.rows) {
        return Err(shape_err(format!(
            "the shards of a [{}, {}] matrix do not partition its rows",
            w.rows, w.cols
        )));
    }
    if !gated {
        return Ok(w
            .shards
            .iter()
            .filter(|s| s.rows > 0)
            .map(|s| Segment {
                main: s,
                up: None,
                row_w: 0,
                row_u: 0,
                rows: s.rows,
                col0: s.row0,
            })
            .collect());
    }
    let f = w.rows / 2;
    let mut out = Vec::new();
    for g in &w.shards {
        // Gate rows [a, b) of this shard ...
        let (a, b) = (g.row0, (g.row0 + g.rows).min(f));
        for u in &w.shards {
            // ... against up rows [F + lo, F + hi) of that one.
            let lo = a.max(u.row0.saturating_sub(f));
            let hi = b.min((u.row0 + u.rows).saturating_sub(f));
            if lo < hi && u.row0 <= f + lo {
                out.push(Segment {
                    main: g,
                    up: Some(u),
                    row_w: lo - g.row0,
                    row_u: f + lo - u.row0,
                    rows: hi - lo,
                    col0: lo,
                });
            }
        }
    }
    Ok(out)
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(format!("{what} = {v} does not fit in u32")))
}

/// `out[m, :] (= or +=) f(x[x_row_offset + m, :]) · Wᵀ` for `m in 0..m_rows`.
/// x: `[*, K]` f32; out: `[m_rows, N]` (or `[m_rows, N/2]` for [`Epilogue::SiluGate`]) f32, row stride `N`
/// (or `N/2`); a larger `out` is fine. `K` must be a multiple of 32. Returns one dispatch per segment
/// (see the module doc); nothing for `m_rows == 0`.
pub async fn linear(
    gpu: &Gpu,
    spec: &LinearSpec<'_>,
    x: &Tensor<f32>,
    x_row_offset: usize,
    m_rows: usize,
    out: &Tensor<f32>,
) -> Result<Vec<Dispatch>> {
    let gated = spec.epilogue == Epilogue::SiluGate;
    let tune = Tune::for_shape(
        spec.weight.format,
        spec.weight.rows,
        spec.weight.cols,
        gated,
    );
    linear_tuned(gpu, spec, x, x_row_offset, m_rows, out, tune).await
}

pub(crate) async fn linear_tuned(
    gpu: &Gpu,
    spec: &LinearSpec<'_>,
    x: &Tensor<f32>,
    x_row_offset: usize,
    m_rows: usize,
    out: &Tensor<f32>,
    tune: Tune,
) -> Result<Vec<Dispatch>> {
    let w = spec.weight;
    let (n, k) = (w.rows, w.cols);
    let gated = spec.epilogue == Epilogue::SiluGate;
    if k == 0 || !k.is_multiple_of(32) {
        return Err(shape_err(format!(
            "K = {k} (must be a positive multiple of 32)"
        )));
    }
    if gated && !n.is_multiple_of(2) {
        return Err(shape_err(format!(
            "SiLU gate over {n} rows (must be [gate; up], even)"
        )));
    }
    let n_out = if gated { n / 2 } else { n };
    let x_width_ok = match x.shape() {
        [.., w] if x.shape().len() >= 2 => *w == k,
        _ => x.len().is_multiple_of(k),
    };
    if !x_width_ok || (x_row_offset + m_rows) * k > x.len() {
        return Err(shape_err(format!(
            "x {:?} does not hold rows {x_row_offset}..{} of width {k}",
            x.shape(),
            x_row_offset + m_rows
        )));
    }
    if m_rows * n_out > out.len() {
        return Err(shape_err(format!(
            "out {:?} is smaller than [{m_rows}, {n_out}]",
            out.shape()
        )));
    }
    if x.buffer() == out.buffer() {
        return Err(shape_err("x and out are the same tensor".into()));
    }
    if let Some((g, _)) = spec.norm {
        if g.len() != k {
            return Err(shape_err(format!(
                "norm weight {:?}, want [{k}]",
                g.shape()
            )));
        }
    }
    if let Some(b) = spec.bias {
        if gated || b.len() != n {
            return Err(shape_err(format!(
                "bias {:?} for a [{n}, {k}] weight{}",
                b.shape(),
                if gated { " with SiLU gating" } else { "" }
            )));
        }
    }
    if m_rows == 0 {
        return Ok(vec![]);
    }
    let segs = segments(w, gated)?;
    let matvec = m_rows <= MATVEC_MAX_ROWS;
    if !matvec && gpu.features().coop && coop::fits(gpu, m_rows, k, gated, tune) {
        return coop::linear_coop(gpu, spec, &segs, x, x_row_offset, m_rows, out, n_out, tune)
            .await;
    }

    let mut defs = Defines::new()
        .sym("WEIGHT", w.format.sym())
        .u32("K", u32_of(k, "K")?)
        .flag("NORM", spec.norm.is_some())
        .flag("BIAS", spec.bias.is_some())
        .sym("EPI", spec.epilogue.sym());
    if let Some((_, eps)) = spec.norm {
        defs = defs.f32("EPS", eps);
    }
    // Output columns per mat-vec workgroup.
    let mv_cols = if gated { 4 } else { 4 * tune.groups };
    let xq = int8_activations(gpu, w.format, m_rows, tune.xq);
    let kernel = if matvec {
        let f = gpu.features();
        let units = k / unit_weights(w.format);
        // A power of two for the tree reduction.
        let wg = (units
            .div_ceil(tune.iters.max(1) as usize)
            .next_power_of_two() as u32)
            .clamp(32, 128);
        // Units per invocation: one (or two rounded to int8) stay in registers across the
        // workgroup's blocks; two f32 units would spill.
        let per_thread = units.div_ceil(wg as usize);
        let x_cache = per_thread == 1 || (per_thread == 2 && xq);
        defs = defs
            .flag("MATVEC", true)
            .u32("WG", wg)
            .u32("BPW", tune.bpw.max(1))
            .flag("XCACHE", x_cache)
            .flag("X2", x_cache && per_thread == 2)
            .u32("RG", if gated { 2 } else { tune.groups })
            .flag("XQ", xq)
            .flag("SUBGROUPS", f.subgroups)
            .u32("SG_MIN", f.subgroup_min_size.max(4))
            .flag("WEB_SUBGROUPS", cfg!(target_arch = "wasm32") && f.subgroups);
        gpu.kernel(KernelKey::new("matmul", "matvec", defs)).await?
    } else {
        defs = defs.flag("MATVEC", false);
        gpu.kernel(KernelKey::new("matmul", "matmul", defs)).await?
    };

    let mut dispatches = Vec::with_capacity(segs.len());
    for s in &segs {
        let params = tensor::uniform(
            gpu,
            "linear.params",
            &[
                u32_of(s.row_w, "row")?,
                u32_of(s.row_u, "row")?,
                u32_of(s.rows, "rows")?,
                u32_of(s.col0, "column")?,
                u32_of(m_rows, "m_rows")?,
                u32_of(x_row_offset, "x_row_offset")?,
                u32_of(n_out, "N")?,
                0,
            ],
        );
        let mut b = vec![
            params.as_entire_buffer_binding(),
            x.binding(),
            out.binding(),
            s.main.qs.as_entire_buffer_binding(),
            s.main.scales.as_entire_buffer_binding(),
        ];
        if let Some(u) = s.up {
            b.push(u.qs.as_entire_buffer_binding());
            b.push(u.scales.as_entire_buffer_binding());
        }
        if let Some((g, _)) = spec.norm {
            b.push(g.binding());
        }
        if let Some(bias) = spec.bias {
            b.push(bias.binding());
        }
        let grid = if matvec {
            elementwise::grid(gpu, s.rows, mv_cols * tune.bpw.max(1))
        } else {
            // Output columns per tile (see matmul.wgsl).
            let bno = if gated { 32 } else { 64 };
            [
                u32_of(s.rows.div_ceil(bno), "column tiles")?,
                u32_of(m_rows.div_ceil(MM_BM as usize), "row tiles")?,
                1,
            ]
        };
        let row_bytes = 4 * (w.format.qs_words(k) + w.format.scale_words(k)) as u64;
        let weight_rows = (s.rows * if gated { 2 } else { 1 }) as u64;
        dispatches.push(
            gpu.dispatch(&kernel, &b, grid)?
                .reading(row_bytes * weight_rows),
        );
    }
    Ok(dispatches)
}

/// Whether [`linear`] rounds the activations to int8 (see [`int8_round_ref`]): the mat-vec over
/// quantised weights, where the launch shape asks for it and the device allows it.
pub(crate) fn int8_activations(gpu: &Gpu, format: WeightFormat, m_rows: usize, xq: bool) -> bool {
    xq && gpu.features().int8_dot && format != WeightFormat::F32 && m_rows <= MATVEC_MAX_ROWS
}

/// Activations as the int8 mat-vec rounds them: per unit of `unit` values (one 16-byte weight unit:
/// 32 for 4-bit formats, 16 for Q8), `d = max|v| / 127` and `v ↦ round(v · (127 / max|v|)) · d`, in
/// the shader's f32 steps, ties to even. Also, per value, how far the shader may round it otherwise:
/// `d` for a value within 1e-4 of a rounding tie (WGSL's division may be a few ulp off, so its code
/// can differ by one), else 0.
pub fn int8_round_ref(v: &[f32], unit: usize) -> (Vec<f64>, Vec<f64>) {
    let mut out = Vec::with_capacity(v.len());
    let mut doubt = Vec::with_capacity(v.len());
    for u in v.chunks(unit) {
        let amax = u.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        let d = (amax / 127.0) as f64;
        for &x in u {
            let t = x * inv;
            out.push(t.round_ties_even() as f64 * d);
            let tie = ((t - t.trunc()).abs() - 0.5).abs() < 1e-4;
            doubt.push(if tie { d } else { 0.0 });
        }
    }
    (out, doubt)
}

/// Weights per 16-byte unit of a row (the mat-vec's load granularity, and its int8 rounding unit).
pub(crate) fn unit_weights(f: WeightFormat) -> usize {
    match f {
        WeightFormat::Q4 | WeightFormat::Q4S => 32,
        WeightFormat::Q8 => 16,
        WeightFormat::F32 => 4,
    }
}

/// CPU reference of [`linear`] (plain loops, f64 accumulation, weights through
/// [`HostMatrix::dequantize_row`]); with `int8_x`, the normalised activations (before the 1/rms
/// factor, as the shader applies it) go through [`int8_round_ref`]. Returns, per output, how far the
/// shader may also be off through values next to a rounding tie (0 without `int8_x`): Σ |w|·d of
/// those values. A test helper: panics when the slices are too short.
#[allow(clippy::too_many_arguments)]
pub fn linear_ref(
    w: &HostMatrix,
    norm: Option<(&[f32], f32)>,
    epilogue: Epilogue,
    bias: Option<&[f32]>,
    x: &[f32],
    x_row_offset: usize,
    m_rows: usize,
    out: &mut [f32],
    int8_x: bool,
) -> Vec<f64> {
    let k = w.cols;
    let n_out = if epilogue == Epilogue::SiluGate {
        w.rows / 2
    } else {
        w.rows
    };
    let mut slack = vec![0.0; m_rows * n_out];
    let rows: Vec<Vec<f32>> = (0..w.rows).map(|r| w.dequantize_row(r)).collect();
    for m in 0..m_rows {
        let xr = &x[(x_row_offset + m) * k..(x_row_offset + m + 1) * k];
        let (inv, gamma) = match norm {
            Some((gamma, eps)) => {
                let ms = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / k as f64;
                (1.0 / (ms + eps as f64).sqrt(), Some(gamma))
            }
            None => (1.0, None),
        };
        // With int8_x, each value's doubt (see int8_round_ref), scaled like the value.
        let (xn, step): (Vec<f64>, Vec<f64>) = if int8_x {
            // The shader rounds x·gamma (f32 products) and applies 1/rms to the sums.
            let xg: Vec<f32> = match gamma {
                Some(g) => xr.iter().zip(g).map(|(&v, &g)| v * g).collect(),
                None => xr.to_vec(),
            };
            let (r, doubt) = int8_round_ref(&xg, unit_weights(w.format));
            (
                r.iter().map(|v| v * inv).collect(),
                doubt.iter().map(|d| d * inv).collect(),
            )
        } else {
            let xn = match gamma {
                Some(g) => xr
                    .iter()
                    .zip(g)
                    .map(|(&v, &g)| v as f64 * inv * g as f64)
                    .collect(),
                None => xr.iter().map(|&v| v as f64).collect(),
            };
            (xn, vec![0.0; k])
        };
        let dot = |r: usize| -> (f64, f64) {
            let y: f64 = rows[r].iter().zip(&xn).map(|(&a, b)| a as f64 * b).sum();
            let e: f64 = rows[r]
                .iter()
                .zip(&step)
                .map(|(&a, s)| (a as f64 * s).abs())
                .sum();
            (y + bias.map_or(0.0, |b| b[r] as f64), e)
        };
        for c in 0..n_out {
            let o = &mut out[m * n_out + c];
            // For SiLU gating, (y, e) is the gate's.
            let (y, e) = dot(c);
            slack[m * n_out + c] = match epilogue {
                Epilogue::Store => {
                    *o = y as f32;
                    e
                }
                Epilogue::Accumulate => {
                    *o += y as f32;
                    e
                }
                Epilogue::Gelu => {
                    *o = gelu_ref(y) as f32;
                    // GELU's slope is below 1.13.
                    1.13 * e
                }
                Epilogue::SiluGate => {
                    let (u, eu) = dot(n_out + c);
                    let silu = |g: f64| g / (1.0 + (-g).exp());
                    *o = (silu(y) * u) as f32;
                    // SiLU's slope is below 1.1.
                    1.1 * e * (u.abs() + eu) + silu(y).abs() * eu
                }
            };
        }
    }
    slack
}

mod coop;
#[cfg(test)]
mod tests;

/// Exact GELU, `x · Φ(x)`, in f64 (the reference for [`Epilogue::Gelu`]).
pub fn gelu_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}
