//! Rotary position embedding fused with the KV-cache store (`shaders/rope.wgsl`).
//!
//! After the fused QKV projection, one dispatch rotates the q heads in place and writes the rotated k
//! heads and the plain v heads into the cache at positions `step.pos + m`. The position comes from
//! the [`Step`] uniform, so the recorded dispatch is replayed unchanged for every decode step.

use crate::kv_cache::KvCache;
use crate::{elementwise, Defines, Dispatch, Gpu, GpuError, KernelKey, Result, Step, Tensor};

const WG: u32 = 256;

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// Pairs `(2i, 2i+1)`: GGUF files (llama.cpp permutes Q/K for this).
    Adjacent,
    /// Pairs `(i, i + head_dim/2)`: Hugging Face checkpoints.
    Half,
}

impl RopeStyle {
    pub(crate) fn sym(self) -> &'static str {
        match self {
            RopeStyle::Adjacent => "adjacent",
            RopeStyle::Half => "half",
        }
    }
    /// The two dimensions rotated by frequency `i`.
    fn pair(self, i: usize, head_dim: usize) -> (usize, usize) {
        match self {
            RopeStyle::Adjacent => (2 * i, 2 * i + 1),
            RopeStyle::Half => (i, i + head_dim / 2),
        }
    }
}

/// Rows and heads of a qkv batch, shared by RoPE and attention.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub m_rows: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl Heads {
    /// Checks the heads against each other, `qkv` and layer `layer` of `cache`.
    pub(crate) fn check(
        self,
        what: &str,
        qkv: &Tensor<f32>,
        cache: &KvCache,
        layer: usize,
    ) -> Result<()> {
        let Heads {
            m_rows,
            n_heads,
            n_kv_heads,
            head_dim,
        } = self;
        let bad = |m: String| Err(GpuError::Shape(format!("{what}: {m}")));
        if n_kv_heads == 0 || n_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
            return bad(format!(
                "{n_heads} q heads are not a multiple of {n_kv_heads} kv heads"
            ));
        }
        if !(2..=256).contains(&head_dim) || !head_dim.is_multiple_of(2) {
            return bad(format!("head_dim {head_dim} (must be even, 2..=256)"));
        }
        if cache.n_kv_heads() != n_kv_heads || cache.head_dim() != head_dim {
            return bad(format!(
                "cache holds {} kv heads × {}, model says {n_kv_heads} × {head_dim}",
                cache.n_kv_heads(),
                cache.head_dim()
            ));
        }
        if layer >= cache.layers() {
            return bad(format!("layer {layer} of {}", cache.layers()));
        }
        if m_rows == 0 || m_rows > cache.max_len() {
            return bad(format!(
                "{m_rows} rows (cache holds {} positions)",
                cache.max_len()
            ));
        }
        let row = (n_heads + 2 * n_kv_heads) * head_dim;
        if qkv.len() < m_rows * row {
            return bad(format!(
                "qkv {:?} is smaller than [{m_rows}, {row}]",
                qkv.shape()
            ));
        }
        Ok(())
    }
}

/// Rotates q (in place) and k of rows `0..m_rows` of `qkv` (`[m_rows, (n_heads + 2·n_kv_heads)·head_dim]`,
/// q heads then k heads then v heads) at positions `step.pos + m`, and stores the rotated k and plain v
/// in `cache` layer `layer`. Rows `m >= step.n_tokens` are skipped; positions past the cache are not
/// stored (the model must not step past `max_len`). `inv_freq`: `[head_dim/2]`.
#[allow(clippy::too_many_arguments)]
pub async fn rope_and_store(
    gpu: &Gpu,
    qkv: &Tensor<f32>,
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    style: RopeStyle,
    inv_freq: &Tensor<f32>,
    cache: &KvCache,
    layer: usize,
    step: &Step,
) -> Result<Vec<Dispatch>> {
    let heads = Heads {
        m_rows,
        n_heads,
        n_kv_heads,
        head_dim,
    };
    heads.check("rope", qkv, cache, layer)?;
    if inv_freq.len() != head_dim / 2 {
        return Err(GpuError::Shape(format!(
            "rope: inv_freq {:?}, want [{}]",
            inv_freq.shape(),
            head_dim / 2
        )));
    }
    let defines = Defines::new()
        .u32("NH", n_heads as u32)
        .u32("KVH", n_kv_heads as u32)
        .u32("HD", head_dim as u32)
        .u32("MAXLEN", cache.max_len() as u32)
        .sym("STYLE", style.sym())
        .flag("F16", cache.is_f16())
        .u32("WG", WG);
    let k = gpu.kernel(KernelKey::new("rope", "rope", defines)).await?;
    let threads = m_rows * (n_heads + 2 * n_kv_heads) * head_dim / 2;
    let d = gpu.dispatch(
        &k,
        &[
            qkv.binding(),
            inv_freq.binding(),
            cache.k_binding(layer)?,
            cache.v_binding(layer)?,
            step.binding(),
        ],
        elementwise::grid(gpu, threads, WG),
    )?;
    Ok(vec![d])
}

/// CPU reference of [`rope_and_store`] for rows at positions `pos + m`: rotates the q heads of `qkv`
/// in place and returns the rotated k heads and the v heads, each `[m_rows, n_kv_heads, head_dim]`.
/// The angle is the f32 product `pos · inv_freq[i]` (as Hugging Face computes it), its cos/sin in f64.
#[allow(clippy::too_many_arguments)]
pub fn rope_ref(
    qkv: &mut [f32],
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    style: RopeStyle,
    inv_freq: &[f32],
    pos: usize,
) -> (Vec<f32>, Vec<f32>) {
    let row = (n_heads + 2 * n_kv_heads) * head_dim;
    let kv = n_kv_heads * head_dim;
    let mut k = vec![0f32; m_rows * kv];
    let mut v = vec![0f32; m_rows * kv];
    for m in 0..m_rows {
        let r = &mut qkv[m * row..(m + 1) * row];
        for h in 0..n_heads + n_kv_heads {
            let x = &mut r[h * head_dim..(h + 1) * head_dim];
            for (i, &f) in inv_freq.iter().enumerate() {
                let a = ((pos + m) as f32 * f) as f64;
                let (d0, d1) = style.pair(i, head_dim);
                let (x0, x1) = (x[d0] as f64, x[d1] as f64);
                x[d0] = (x0 * a.cos() - x1 * a.sin()) as f32;
                x[d1] = (x0 * a.sin() + x1 * a.cos()) as f32;
            }
        }
        k[m * kv..(m + 1) * kv]
            .copy_from_slice(&r[n_heads * head_dim..(n_heads + n_kv_heads) * head_dim]);
        v[m * kv..(m + 1) * kv].copy_from_slice(&r[(n_heads + n_kv_heads) * head_dim..]);
    }
    (k, v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (conventions)
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::{GpuOptions, Program};

    /// Llama-3-like frequencies (theta 500000) with a few scaled, so every pair turns at its own rate.
    fn inv_freq(head_dim: usize) -> Vec<f32> {
        (0..head_dim / 2)
            .map(|i| {
                let f = 1.0 / 500_000f64.powf(2.0 * i as f64 / head_dim as f64);
                (if i % 3 == 2 { f / 8.0 } else { f }) as f32
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        gpu: &Gpu,
        f16: bool,
        style: RopeStyle,
        m: usize,
        nh: usize,
        kvh: usize,
        hd: usize,
        pos: usize,
    ) {
        let (max_len, layer) = (pos + m + 3, 1);
        let row = (nh + 2 * kvh) * hd;
        let x = random(7 + pos as u64, m * row, 2.0);
        let f = inv_freq(hd);
        let qkv = Tensor::from_slice(gpu, "qkv", &[m, row], &x).unwrap();
        let freq = Tensor::from_slice(gpu, "inv_freq", &[hd / 2], &f).unwrap();
        let cache = KvCache::new_with(gpu, 2, kvh, hd, max_len, f16).unwrap();
        let step = Step::new(gpu);
        step.set(gpu, pos as u32, m as u32);
        let mut p = Program::new();
        p.extend(
            block(rope_and_store(
                gpu, &qkv, m, nh, kvh, hd, style, &freq, &cache, layer, &step,
            ))
            .unwrap(),
        );
        gpu.submit(&p);

        let mut want = x.clone();
        let (wk, wv) = rope_ref(&mut want, m, nh, kvh, hd, style, &f, pos);
        let what = format!("rope {style:?} f16={f16} m={m} hd={hd} pos={pos}");
        let got = block(qkv.read(gpu)).unwrap();
        // q rotated, k and v parts of qkv untouched.
        let q_only: Vec<f32> = (0..m * row)
            .map(|i| if i % row < nh * hd { want[i] } else { x[i] })
            .collect();
        assert_close(&format!("{what} q"), &got, &q_only, 1e-5, 1e-5);
        let (gk, gv) = block(cache.read_layer(gpu, layer)).unwrap();
        let kv = kvh * hd;
        // Rounding to f16 costs ~2^-11 relative.
        let tol = if f16 { 2e-3 } else { 1e-5 };
        assert_close(
            &format!("{what} k"),
            &gk[pos * kv..(pos + m) * kv],
            &wk,
            tol,
            tol,
        );
        assert_close(
            &format!("{what} v"),
            &gv[pos * kv..(pos + m) * kv],
            &wv,
            tol,
            tol,
        );
        // Nothing written outside the batch's positions, nor into other layers.
        assert!(gk[..pos * kv]
            .iter()
            .chain(&gk[(pos + m) * kv..])
            .all(|&v| v == 0.0));
        let (ok, _) = block(cache.read_layer(gpu, 0)).unwrap();
        assert!(ok.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn rope_matches_reference_both_styles() {
        let gpu = gpu();
        for style in [RopeStyle::Adjacent, RopeStyle::Half] {
            check(&gpu, false, style, 5, 6, 2, 64, 0);
            check(&gpu, false, style, 3, 4, 4, 80, 1000);
            check(&gpu, gpu.features().f16, style, 2, 6, 2, 32, 4093);
        }
    }

    #[test]
    fn rope_f16_and_f32_caches() {
        let gpu = gpu();
        assert!(
            gpu.features().f16,
            "lavapipe has shader-f16; this test covers the f16 cache"
        );
        check(&gpu, true, RopeStyle::Half, 4, 6, 2, 64, 17);
        let no_f16 = gpu_with(&GpuOptions {
            allow_f16: false,
            allow_subgroups: false,
            ..GpuOptions::default()
        });
        check(&no_f16, false, RopeStyle::Adjacent, 4, 6, 2, 64, 17);
    }

    #[test]
    fn rope_skips_rows_past_n_tokens_and_past_the_cache() {
        let gpu = gpu();
        let (nh, kvh, hd, m) = (2, 1, 8, 4);
        let row = (nh + 2 * kvh) * hd;
        let x = random(3, m * row, 1.0);
        let qkv = Tensor::from_slice(&gpu, "qkv", &[m, row], &x).unwrap();
        let f = inv_freq(hd);
        let freq = Tensor::from_slice(&gpu, "inv_freq", &[hd / 2], &f).unwrap();
        let cache = KvCache::new_with(&gpu, 1, kvh, hd, 6, false).unwrap();
        let step = Step::new(&gpu);
        // Rows 0..3 valid; rows at positions 6 and beyond (rows 2, 3 at pos 4) fall off the cache.
        step.set(&gpu, 4, 3);
        let mut p = Program::new();
        p.extend(
            block(rope_and_store(
                &gpu,
                &qkv,
                m,
                nh,
                kvh,
                hd,
                RopeStyle::Half,
                &freq,
                &cache,
                0,
                &step,
            ))
            .unwrap(),
        );
        gpu.submit(&p);
        let got = block(qkv.read(&gpu)).unwrap();
        let mut want = x.clone();
        let (wk, _) = rope_ref(&mut want[..3 * row], 3, nh, kvh, hd, RopeStyle::Half, &f, 4);
        // Only the q heads of qkv change.
        let q_only: Vec<f32> = (0..3 * row)
            .map(|i| if i % row < nh * hd { want[i] } else { x[i] })
            .collect();
        assert_close("rope rows", &got[..3 * row], &q_only, 1e-5, 1e-5);
        assert_eq!(
            &got[3 * row..],
            &x[3 * row..],
            "row past n_tokens untouched"
        );
        let (gk, _) = block(cache.read_layer(&gpu, 0)).unwrap();
        assert_close("rope k in cache", &gk[4 * hd..], &wk[..2 * hd], 1e-5, 1e-5);

        let bad = Tensor::from_slice(&gpu, "f", &[3], &[1.0, 2.0, 3.0]).unwrap();
        let err = block(rope_and_store(
            &gpu,
            &qkv,
            m,
            nh,
            kvh,
            hd,
            RopeStyle::Half,
            &bad,
            &cache,
            0,
            &step,
        ));
        assert!(matches!(err, Err(GpuError::Shape(_))));
        let err = block(rope_and_store(
            &gpu,
            &qkv,
            m + 1,
            nh,
            kvh,
            hd,
            RopeStyle::Half,
            &freq,
            &cache,
            0,
            &step,
        ));
        assert!(matches!(err, Err(GpuError::Shape(_))));
    }
}
