//! Standalone row normalisation (`shaders/norm.wgsl`): RMSNorm (where it is not fused into a
//! projection, e.g. tests and the final norm of a model without fused head), LayerNorm for the
//! BERT-style encoder (also fused with its embedding sum), and the encoder's sentence pooling (mean
//! or first token, then L2). One kernel family; defines select the variant; row counts travel in a
//! uniform, so batch sizes do not multiply pipelines.

use crate::elementwise::grid;
use crate::{tensor, Defines, Dispatch, Gpu, GpuError, KernelKey, Result, Tensor};

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

/// One workgroup per row (split over two grid dimensions past 65535 rows); `bindings` without the
/// trailing row-count uniform, which is appended here.
async fn launch(
    gpu: &Gpu,
    entry: &'static str,
    defines: Defines,
    d: usize,
    rows: usize,
    bindings: &[wgpu::BufferBinding<'_>],
) -> Result<Dispatch> {
    let rows32 = u32::try_from(rows)
        .map_err(|_| GpuError::Shape(format!("norm: {rows} rows do not fit in u32")))?;
    let defines = defines.sym("PASS", entry).u32("D", d as u32).u32("WG", WG);
    let k = gpu.kernel(KernelKey::new("norm", entry, defines)).await?;
    let params = tensor::uniform(gpu, "norm.rows", &[rows32, 0, 0, 0]);
    let mut b = bindings.to_vec();
    b.push(params.as_entire_buffer_binding());
    gpu.dispatch(&k, &b, grid(gpu, rows, 1))
}

fn norm_defines(layer: bool, gather: bool, eps: f32) -> Defines {
    Defines::new()
        .f32("EPS", eps)
        .flag("LAYER", layer)
        .flag("GATHER", gather)
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
    let defines = norm_defines(false, false, eps);
    let bindings = [x.binding(), gamma.binding(), out.binding()];
    launch(gpu, "norm", defines, d, rows, &bindings).await
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
    launch(
        gpu,
        "norm",
        norm_defines(true, false, eps),
        d,
        rows,
        &bindings,
    )
    .await
}

/// The embedding tables of a BERT-style encoder, `[*, D]` f32 each.
pub struct EmbeddingTables<'a> {
    /// `[vocab, D]`
    pub word: &'a Tensor<f32>,
    /// `[max positions, D]`
    pub position: &'a Tensor<f32>,
    /// `[types, D]`; row 0 is added (single-segment inputs).
    pub token_type: &'a Tensor<f32>,
}

/// BERT's embedding layer: `out[r] = LayerNorm(word[id_r] + position[pos_r] + token_type[0])` for
/// `r in 0..rows`, with `tok[r] = (id_r, pos_r)` (`[rows, 2]` u32). Ids and positions must be in
/// range of their tables (the caller's tokenizer and truncation guarantee it).
#[allow(clippy::too_many_arguments)]
pub async fn embed_layer_norm(
    gpu: &Gpu,
    tables: &EmbeddingTables<'_>,
    tok: &Tensor<u32>,
    gamma: &Tensor<f32>,
    beta: &Tensor<f32>,
    eps: f32,
    rows: usize,
    out: &Tensor<f32>,
) -> Result<Dispatch> {
    let d = gamma.len();
    let t = tables;
    if d == 0
        || beta.len() != d
        || tok.len() < 2 * rows
        || out.len() < rows * d
        || !t.word.len().is_multiple_of(d)
        || !t.position.len().is_multiple_of(d)
        || t.token_type.len() < d
    {
        return Err(GpuError::Shape(format!(
            "embed_layer_norm: {rows} rows of {d}; tok {:?}, word {:?}, position {:?}, type {:?}, \
             beta {:?}, out {:?}",
            tok.shape(),
            t.word.shape(),
            t.position.shape(),
            t.token_type.shape(),
            beta.shape(),
            out.shape()
        )));
    }
    let bindings = [
        tok.binding(),
        t.word.binding(),
        t.position.binding(),
        t.token_type.binding(),
        gamma.binding(),
        beta.binding(),
        out.binding(),
    ];
    let defines = norm_defines(true, true, eps);
    launch(gpu, "norm", defines, d, rows, &bindings).await
}

/// How [`pool`] turns a sequence's hidden states into one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the sequence's tokens (sentence-transformers' `pooling_mode_mean_tokens`).
    Mean,
    /// The first token (`[CLS]`; `pooling_mode_cls_token`, e.g. bge).
    Cls,
}

/// Sentence embeddings of a packed batch: `out[b] = pooled(h[s_b .. e_b])`, then scaled to unit
/// length when `l2`, for `b in 0..seqs`; `ranges`: `[seqs, 2]` u32 `(s_b, e_b)`, non-empty.
/// `h`: `[tokens, D]`, `out`: `[seqs, D]`.
#[allow(clippy::too_many_arguments)]
pub async fn pool(
    gpu: &Gpu,
    h: &Tensor<f32>,
    d: usize,
    ranges: &Tensor<u32>,
    seqs: usize,
    pooling: Pooling,
    l2: bool,
    out: &Tensor<f32>,
) -> Result<Dispatch> {
    if d == 0 || ranges.len() < 2 * seqs || out.len() < seqs * d || !h.len().is_multiple_of(d) {
        return Err(GpuError::Shape(format!(
            "pool: {seqs} sequences of width {d}; h {:?}, ranges {:?}, out {:?}",
            h.shape(),
            ranges.shape(),
            out.shape()
        )));
    }
    let defines = Defines::new()
        .flag("CLS", pooling == Pooling::Cls)
        .flag("L2", l2);
    let bindings = [h.binding(), ranges.binding(), out.binding()];
    launch(gpu, "pool", defines, d, seqs, &bindings).await
}

/// CPU reference of [`embed_layer_norm`]: tables `[*, d]`, `tok` pairs (id, position).
#[allow(clippy::too_many_arguments)]
pub fn embed_layer_norm_ref(
    word: &[f32],
    position: &[f32],
    token_type: &[f32],
    tok: &[(u32, u32)],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f32> {
    let d = gamma.len();
    let x: Vec<f32> = tok
        .iter()
        .flat_map(|&(id, p)| {
            let (w, q) = (id as usize * d, p as usize * d);
            (0..d).map(move |i| word[w + i] + position[q + i] + token_type[i])
        })
        .collect();
    layer_norm_ref(&x, gamma, beta, eps, tok.len())
}

/// CPU reference of [`pool`] (f64 sums): `h` `[tokens, d]`, `ranges` per sequence.
pub fn pool_ref(
    h: &[f32],
    d: usize,
    ranges: &[(usize, usize)],
    pooling: Pooling,
    l2: bool,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(ranges.len() * d);
    for &(s, e) in ranges {
        let v: Vec<f64> = match pooling {
            Pooling::Cls => h[s * d..(s + 1) * d].iter().map(|&x| x as f64).collect(),
            Pooling::Mean => (0..d)
                .map(|i| (s..e).map(|r| h[r * d + i] as f64).sum::<f64>() / (e - s).max(1) as f64)
                .collect(),
        };
        let norm = if l2 {
            v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12)
        } else {
            1.0
        };
        out.extend(v.iter().map(|x| (x / norm) as f32));
    }
    out
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
    fn embedding_sum_with_layer_norm_matches_reference() {
        let gpu = gpu();
        let (v, p, d) = (50, 20, 96);
        let (wv, pv, tv) = (
            random(1, v * d, 1.0),
            random(2, p * d, 1.0),
            random(3, 2 * d, 1.0),
        );
        let (gv, bv) = (random(4, d, 1.0), random(5, d, 1.0));
        // Ids and positions as a packed batch of two sequences would have them.
        let tok: Vec<(u32, u32)> = [(7, 0), (49, 1), (0, 2), (3, 0), (7, 1), (19, 19)].to_vec();
        let flat: Vec<u32> = tok.iter().flat_map(|&(a, b)| [a, b]).collect();
        let t = |name, shape: &[usize], data: &[f32]| {
            Tensor::from_slice(&gpu, name, shape, data).unwrap()
        };
        let (w, pe, te) = (
            t("w", &[v, d], &wv),
            t("p", &[p, d], &pv),
            t("t", &[2, d], &tv),
        );
        let (g, b) = (t("g", &[d], &gv), t("b", &[d], &bv));
        let tk = Tensor::from_slice(&gpu, "tok", &[tok.len(), 2], &flat).unwrap();
        let out = Tensor::zeros(&gpu, "out", &[tok.len(), d]).unwrap();
        let tables = EmbeddingTables {
            word: &w,
            position: &pe,
            token_type: &te,
        };
        let mut prog = Program::new();
        prog.push(
            block(embed_layer_norm(
                &gpu,
                &tables,
                &tk,
                &g,
                &b,
                1e-12,
                tok.len(),
                &out,
            ))
            .unwrap(),
        );
        gpu.submit(&prog);
        let got = block(out.read(&gpu)).unwrap();
        let want = embed_layer_norm_ref(&wv, &pv, &tv, &tok, &gv, &bv, 1e-12);
        assert_close("embed_layer_norm", &got, &want, 1e-5, 1e-5);
    }

    #[test]
    fn pooling_matches_reference() {
        let gpu = gpu();
        // d 384 (MiniLM) and 700 (more columns than invocations, not a multiple of them).
        for d in [384, 700] {
            let ranges = [(0usize, 3usize), (3, 4), (4, 260), (260, 262)];
            let tokens = 262;
            let hv = random(d as u64, tokens * d, 1.0);
            let h = Tensor::from_slice(&gpu, "h", &[tokens, d], &hv).unwrap();
            let flat: Vec<u32> = ranges
                .iter()
                .flat_map(|&(s, e)| [s as u32, e as u32])
                .collect();
            let r = Tensor::from_slice(&gpu, "ranges", &[ranges.len(), 2], &flat).unwrap();
            for (pooling, l2) in [
                (Pooling::Mean, true),
                (Pooling::Mean, false),
                (Pooling::Cls, true),
            ] {
                let out = Tensor::zeros(&gpu, "out", &[ranges.len(), d]).unwrap();
                let mut prog = Program::new();
                prog.push(block(pool(&gpu, &h, d, &r, ranges.len(), pooling, l2, &out)).unwrap());
                gpu.submit(&prog);
                let got = block(out.read(&gpu)).unwrap();
                let want = pool_ref(&hv, d, &ranges, pooling, l2);
                assert_close(
                    &format!("pool d {d} {pooling:?} l2 {l2}"),
                    &got,
                    &want,
                    1e-6,
                    1e-5,
                );
            }
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
