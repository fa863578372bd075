//! The tensor-core path of [`super::linear`] for prefill (`shaders/matmul_f16.wgsl`), taken where the
//! device has cooperative matrices ([`crate::GpuFeatures::coop`]):
//!
//! 1. `stage_x`: the input rows, RMS-normalised when the layer has a norm, as f16 into the scratch `a`;
//! 2. per slab of at most [`SLAB_HALVES`] weights (a range of rows and, for plain sums, of K):
//!    `stage_w` dequantises the slab to f16 into the scratch `b` (for SiLU gating, its gate rows and
//!    then its up rows), and `gemm` multiplies on the tensor cores with f32 accumulation and applies
//!    the epilogue (later K slabs of the same rows accumulate).
//!
//! Both scratch buffers are [`Gpu::scratch`] buffers shared by every linear layer of every program on
//! the device, so the f16 copies cost one slab and one activation block, not a copy of the weights.

use super::{shape_err, u32_of, Epilogue, LinearSpec, Segment, Tune};
use crate::{elementwise, tensor, Defines, Dispatch, Gpu, KernelKey, Result, Tensor};

/// Weights dequantised per slab (16 MB of f16): few enough dispatches at prefill sizes, small next to
/// the weights, and a slab stays in the L2 cache of the GPUs that have tensor cores.
pub(crate) const SLAB_HALVES: usize = 8 << 20;

/// The scratch buffers' names.
const A: &str = "matmul_f16.a";
const B: &str = "matmul_f16.b";

/// Tokens and slab rows of one `gemm` workgroup of `tune`'s shape.
fn tile(tune: Tune, gated: bool) -> (usize, usize) {
    let (wgm, wgn) = (tune.coop_wgm as usize, tune.coop_wgn as usize);
    (32 * wgm, if gated { 32 * wgn } else { 64 * wgn })
}

/// Workgroup memory of a `gemm` workgroup (matmul_f16.wgsl: double-buffered x and weight tiles of
/// 32 k in rows of 80 bytes, and a 16×16 f32 tile per subgroup).
pub(crate) fn workgroup_bytes(tune: Tune) -> u64 {
    let (wgm, wgn) = (tune.coop_wgm as u64, tune.coop_wgn as u64);
    2 * (32 * wgm + 64 * wgn) * 80 + wgm * wgn * 1024
}

/// `tune`, or the smaller 2 × 2 workgroup where the device's workgroup memory is too small for it
/// (a pipeline over the limit is not always refused, and then hangs the GPU).
fn shape_for(gpu: &Gpu, tune: Tune) -> Tune {
    let limit = u64::from(gpu.limits().max_compute_workgroup_storage_size);
    if workgroup_bytes(tune) <= limit {
        tune
    } else {
        Tune {
            coop_wgm: 2,
            coop_wgn: 2,
            ..tune
        }
    }
}

/// One slab's rows: `cols` output columns from column `offset` of segment `seg` (its gate rows and,
/// for SiLU gating, the matching up rows).
struct Slab<'a> {
    seg: &'a Segment<'a>,
    offset: usize,
    cols: usize,
}

/// Whether both scratch buffers of an `m_rows` × `k` product fit in one binding (they always do on
/// real GPUs; tests that shrink bindings to split weights take the portable path instead).
pub(super) fn fits(gpu: &Gpu, m_rows: usize, k: usize, gated: bool, tune: Tune) -> bool {
    let (tm, tn) = tile(shape_for(gpu, tune), gated);
    let a = m_rows.next_multiple_of(tm) * k * 2;
    let b = tn * if gated { 2 } else { 1 } * k * 2;
    a.max(b) as u64 <= gpu.max_binding()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn linear_coop(
    gpu: &Gpu,
    spec: &LinearSpec<'_>,
    segs: &[Segment<'_>],
    x: &Tensor<f32>,
    x_row_offset: usize,
    m_rows: usize,
    out: &Tensor<f32>,
    n_out: usize,
    tune: Tune,
) -> Result<Vec<Dispatch>> {
    let w = spec.weight;
    let k = w.cols;
    let gated = spec.epilogue == Epilogue::SiluGate;
    let tune = shape_for(gpu, tune);
    let (tm, tn) = tile(tune, gated);
    let max_groups = gpu.limits().max_compute_workgroups_per_dimension as usize;
    if m_rows > max_groups {
        return Err(shape_err(format!(
            "{m_rows} rows in one tensor-core pass (at most {max_groups})"
        )));
    }
    let m_pad = m_rows.next_multiple_of(tm);
    let a = gpu.scratch(A, (m_pad * k * 2) as u64)?;

    // K per slab: all of it where the epilogue is not a plain sum (SiLU gating, GELU, a bias);
    // otherwise the largest even split of K (multiple of 32) that keeps every row of the matrix in
    // one slab, so that each product's grid spans all output columns (Llama's down projection,
    // K = 8,192: two halves, not two narrow slabs of 1,024 rows).
    let halves = tune.coop_slab.min((gpu.max_binding() / 2) as usize);
    let plain =
        matches!(spec.epilogue, Epilogue::Store | Epilogue::Accumulate) && spec.bias.is_none();
    let n_pad = w.rows.next_multiple_of(tn);
    let kc = if plain {
        (1..=k / 32)
            .map(|chunks| k / chunks)
            .find(|&kc| k.is_multiple_of(kc) && kc.is_multiple_of(32) && n_pad * kc <= halves)
            .unwrap_or(32)
    } else {
        k
    };
    // Output columns per slab: whole workgroup tiles, at least one.
    let per_col = if gated { 2 * kc } else { kc };
    let cap = (halves / per_col / tn * tn).max(tn);
    let slabs: Vec<Slab<'_>> = segs
        .iter()
        .flat_map(|seg| {
            (0..seg.rows).step_by(cap).map(move |offset| Slab {
                seg,
                offset,
                cols: cap.min(seg.rows - offset),
            })
        })
        .collect();
    let slab_rows = |cols: usize| cols.next_multiple_of(tn) * if gated { 2 } else { 1 };
    let b_rows = slabs.iter().map(|s| slab_rows(s.cols)).max().unwrap_or(0);
    let b = gpu.scratch(B, (b_rows * kc * 2) as u64)?;

    let k32 = u32_of(k, "K")?;
    let stage_x = gpu
        .kernel(KernelKey::new(
            "matmul_f16",
            "stage_x",
            Defines::new()
                .sym("PASS", "stage_x")
                .u32("K", k32)
                .flag("NORM", spec.norm.is_some())
                .f32("EPS", spec.norm.map_or(0.0, |(_, e)| e)),
        ))
        .await?;
    let kc32 = u32_of(kc, "K")?;
    let stage_w = gpu
        .kernel(KernelKey::new(
            "matmul_f16",
            "stage_w",
            Defines::new()
                .sym("PASS", "stage_w")
                .u32("K", k32)
                .u32("KC", kc32)
                .sym("WEIGHT", w.format.sym()),
        ))
        .await?;
    let gemm_for = |epi: Epilogue| {
        gpu.kernel(KernelKey::new(
            "matmul_f16",
            "gemm",
            Defines::new()
                .sym("PASS", "gemm")
                .u32("K", k32)
                .u32("KC", kc32)
                .sym("EPI", epi.sym())
                .flag("BIAS", spec.bias.is_some())
                .u32("WGM", tune.coop_wgm)
                .u32("WGN", tune.coop_wgn),
        ))
    };
    // The first K slab applies the epilogue; later ones (plain sums only) add to it.
    let first = gemm_for(spec.epilogue).await?;
    let later = if kc < k {
        gemm_for(Epilogue::Accumulate).await?
    } else {
        first.clone()
    };

    // (cols, col0, up_off, src0, dst0, rows, k0): matmul_f16.wgsl's Params.
    let params = |v: [usize; 7]| {
        let mut words = [0u32; 12];
        words[0] = u32_of(m_rows, "m_rows")?;
        words[3] = u32_of(n_out, "N")?;
        for (i, x) in [1, 2, 4, 5, 6, 7, 8].into_iter().zip(v) {
            words[i] = u32_of(x, "index")?;
        }
        Ok::<_, crate::GpuError>(tensor::uniform(gpu, "linear_f16.params", &words))
    };
    let row_bytes = 4 * (w.format.qs_words(k) + w.format.scale_words(k)) as u64;

    let mut ds = Vec::with_capacity(1 + 3 * slabs.len());
    let px = params([0, 0, 0, x_row_offset, 0, 0, 0])?;
    let mut bx = vec![
        px.as_entire_buffer_binding(),
        x.binding(),
        a.as_entire_buffer_binding(),
    ];
    if let Some((g, _)) = spec.norm {
        bx.push(g.binding());
    }
    ds.push(gpu.dispatch(&stage_x, &bx, [u32_of(m_rows, "rows")?, 1, 1])?);

    for s in &slabs {
        let (seg, cols) = (s.seg, s.cols);
        let up_off = cols.next_multiple_of(tn);
        for (chunk, k0) in (0..k).step_by(kc).enumerate() {
            // Gate (or only) rows to slab row 0, up rows to slab row up_off.
            let mut parts = vec![(seg.main, seg.row_w + s.offset, 0)];
            if let Some(u) = seg.up {
                parts.push((u, seg.row_u + s.offset, up_off));
            }
            for (shard, src0, dst0) in parts {
                let pw = params([0, 0, 0, src0, dst0, cols, k0])?;
                let bw = [
                    pw.as_entire_buffer_binding(),
                    shard.qs.as_entire_buffer_binding(),
                    shard.scales.as_entire_buffer_binding(),
                    b.as_entire_buffer_binding(),
                ];
                let grid = elementwise::grid(gpu, cols * kc / 8, 256);
                let bytes = row_bytes * (cols * kc / k) as u64;
                ds.push(gpu.dispatch(&stage_w, &bw, grid)?.reading(bytes));
            }
            let pg = params([cols, seg.col0 + s.offset, up_off, 0, 0, 0, k0])?;
            let mut bg = vec![
                pg.as_entire_buffer_binding(),
                a.as_entire_buffer_binding(),
                b.as_entire_buffer_binding(),
                out.binding(),
            ];
            if let Some(bias) = spec.bias {
                bg.push(bias.binding());
            }
            let grid = [
                u32_of(up_off / tn, "column tiles")?,
                u32_of(m_pad / tm, "row tiles")?,
                1,
            ];
            let gemm = if chunk == 0 { &first } else { &later };
            ds.push(gpu.dispatch(gemm, &bg, grid)?);
        }
    }
    Ok(ds)
}
