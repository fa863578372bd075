//! Standalone row normalisation (`shaders/norm.wgsl`): RMSNorm (where it is not fused into a
//! projection, e.g. tests and the final norm of a model without fused head) and LayerNorm for the
//! BERT-style encoder. One kernel family; `LAYER` selects the variant.

use crate::elementwise::grid;
use crate::{Defines, Dispatch, Gpu, GpuError, KernelKey, Result, Tensor};

const WG: u32 = 256;

fn check(
    what: &str,
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    rows: usize,
    out: &Tensor<f32>,
) -> Result<usize> {
    let d = gamma.len();
    if d == 0 || x.len() < rows * d || out.len() < rows * d {
        return Err(GpuError::Shape(format!(
            "{what}: x {:?} / out {:?} cannot hold {rows} rows of gamma's {d}",
            x.shape(),
            out.shape()
        )));
    }
    if x.buffer() == out.buffer() {
        return Err(GpuError::Shape(format!("{what}: out must not alias x")));
    }
    Ok(d)
}

async fn launch(
    gpu: &Gpu,
    layer: bool,
    d: usize,
    rows: usize,
    eps: f32,
    bindings: &[wgpu::BufferBinding<'_>],
) -> Result<Dispatch> {
    let defines = Defines::new()
        .u32("D", d as u32)
        .u32("ROWS", rows as u32)
        .f32("EPS", eps)
        .flag("LAYER", layer)
        .u32("WG", WG);
    let k = gpu.kernel(KernelKey::new("norm", "norm", defines)).await?;
    // One workgroup per row, split over two grid dimensions past 65535 rows.
    gpu.dispatch(&k, bindings, grid(gpu, rows, 1))
}

/// `out[r] = x[r] * rsqrt(mean(x[r]²) + eps) * gamma` for `r in 0..rows`; rows have `gamma.len()` values.
pub async fn rms_norm(
    gpu: &Gpu,
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    eps: f32,
    rows: usize,
    out: &Tensor<f32>,
) -> Result<Dispatch> {
    let d = check("rms_norm", x, gamma, rows, out)?;
    launch(
        gpu,
        false,
        d,
        rows,
        eps,
        &[x.binding(), gamma.binding(), out.binding()],
    )
    .await
}

/// `out[r] = (x[r] - mean) * rsqrt(var + eps) * gamma + beta` (biased variance, as PyTorch's LayerNorm).
pub async fn layer_norm(
    gpu: &Gpu,
    x: &Tensor<f32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    eps: f32,
    rows: usize,
    out: &Tensor<f32>,
) -> Result<Dispatch> {
    let d = check("layer_norm", x, gamma, rows, out)?;
    if beta.len() != d {
        return Err(GpuError::Shape(format!(
            "layer_norm: beta {:?}, gamma [{d}]",
            beta.shape()
        )));
    }
    let bindings = [x.binding(), gamma.binding(), beta.binding(), out.binding()];
    launch(gpu, true, d, rows, eps, &bindings).await
}

/// CPU reference of [`rms_norm`] over the first `rows` rows of `x` (f64 accumulation).
pub fn rms_norm_ref(x: &[f32], gamma: &[f32], eps: f32, rows: usize) -> Vec<f32> {
    let d = gamma.len();
    let mut out = Vec::with_capacity(rows * d);
    for row in x.chunks_exact(d).take(rows) {
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        out.extend(
            row.iter()
                .zip(gamma)
                .map(|(&v, &g)| (v as f64 * inv) as f32 * g),
        );
    }
    out
}

/// CPU reference of [`layer_norm`] (f64 accumulation).
pub fn layer_norm_ref(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, rows: usize) -> Vec<f32> {
    let d = gamma.len();
    let mut out = Vec::with_capacity(rows * d);
    for row in x.chunks_exact(d).take(rows) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        out.extend(
            row.iter()
                .zip(gamma.iter().zip(beta))
                .map(|(&v, (&g, &b))| ((v as f64 - mean) * inv) as f32 * g + b),
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (conventions)
mod tests {
    use super::*;
    use crate::{testing::*, Program};

    /// Shapes: a Llama width (not a multiple of the workgroup), a tiny row, and a BERT width.
    const SHAPES: [(usize, usize); 3] = [(5, 2048), (3, 100), (4, 768)];

    #[test]
    fn rms_norm_matches_reference() {
        let gpu = gpu();
        for (i, &(rows, d)) in SHAPES.iter().enumerate() {
            let seed = 10 * i as u64;
            // Offset rows so the mean of squares is far from 1 and a wrong divisor would show.
            let xv: Vec<f32> = random(seed, (rows + 1) * d, 3.0)
                .iter()
                .map(|v| v + 0.5)
                .collect();
            let gv = random(seed + 1, d, 2.0);
            let x = Tensor::from_slice(&gpu, "x", &[rows + 1, d], &xv).unwrap();
            let g = Tensor::from_slice(&gpu, "g", &[d], &gv).unwrap();
            let out = Tensor::zeros(&gpu, "out", &[rows, d]).unwrap();
            let mut p = Program::new();
            p.push(block(rms_norm(&gpu, &x, &g, 1e-5, rows, &out)).unwrap());
            gpu.submit(&p);
            let got = block(out.read(&gpu)).unwrap();
            let want = rms_norm_ref(&xv, &gv, 1e-5, rows);
            assert_close(&format!("rms_norm [{rows}, {d}]"), &got, &want, 1e-5, 1e-5);
        }
    }

    #[test]
    fn layer_norm_matches_reference() {
        let gpu = gpu();
        for (i, &(rows, d)) in SHAPES.iter().enumerate() {
            let seed = 100 + 10 * i as u64;
            let xv: Vec<f32> = random(seed, rows * d, 2.0)
                .iter()
                .map(|v| v * 3.0 + 4.0)
                .collect();
            let (gv, bv) = (random(seed + 1, d, 2.0), random(seed + 2, d, 1.0));
            let x = Tensor::from_slice(&gpu, "x", &[rows, d], &xv).unwrap();
            let g = Tensor::from_slice(&gpu, "g", &[d], &gv).unwrap();
            let b = Tensor::from_slice(&gpu, "b", &[d], &bv).unwrap();
            let out = Tensor::zeros(&gpu, "out", &[rows, d]).unwrap();
            let mut p = Program::new();
            p.push(block(layer_norm(&gpu, &x, &g, &b, 1e-12, rows, &out)).unwrap());
            gpu.submit(&p);
            let got = block(out.read(&gpu)).unwrap();
            let want = layer_norm_ref(&xv, &gv, &bv, 1e-12, rows);
            assert_close(
                &format!("layer_norm [{rows}, {d}]"),
                &got,
                &want,
                1e-5,
                1e-5,
            );
        }
    }

    #[test]
    fn norm_rejects_bad_shapes() {
        let gpu = gpu();
        let x = Tensor::<f32>::zeros(&gpu, "x", &[2, 8]).unwrap();
        let g = Tensor::<f32>::zeros(&gpu, "g", &[8]).unwrap();
        assert!(block(rms_norm(&gpu, &x, &g, 1e-5, 3, &x)).is_err());
        let out = Tensor::<f32>::zeros(&gpu, "out", &[2, 8]).unwrap();
        assert!(block(rms_norm(&gpu, &x, &g, 1e-5, 2, &x)).is_err());
        assert!(block(layer_norm(&gpu, &x, &g, &x, 1e-5, 2, &out)).is_err());
    }
}
