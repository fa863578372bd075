//! A plain CPU forward pass of the encoder in f64, one sequence at a time: the reference the GPU
//! encoder is tested against (no batching, no packing, no fused kernels).

use super::weights::BertWeights;
use super::Pooling;
use hearth_gpu::matmul::gelu_ref;

/// `y[r] = W[r] · x + b[r]` for a row-major `[n, k]` W.
fn affine(w: &[f32], b: &[f32], x: &[f64]) -> Vec<f64> {
    let k = x.len();
    b.iter()
        .enumerate()
        .map(|(r, &br)| {
            let row = &w[r * k..(r + 1) * k];
            row.iter().zip(x).map(|(&a, &v)| a as f64 * v).sum::<f64>() + br as f64
        })
        .collect()
}

fn layer_norm(x: &[f64], g: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    x.iter()
        .zip(g.iter().zip(b))
        .map(|(v, (&g, &b))| (v - mean) * inv * g as f64 + b as f64)
        .collect()
}

/// The sentence embedding of one sequence of input ids (special tokens included).
pub fn encode_ref(w: &BertWeights, ids: &[u32], pooling: Pooling, normalize: bool) -> Vec<f32> {
    let c = &w.config;
    let (d, nh) = (c.hidden_size, c.num_attention_heads);
    let hd = d / nh;
    let eps = c.layer_norm_eps;
    let mut h: Vec<Vec<f64>> = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            let x: Vec<f64> = (0..d)
                .map(|i| {
                    w.word_embeddings[id as usize * d + i] as f64
                        + w.position_embeddings[p * d + i] as f64
                        + w.token_type_embeddings[i] as f64
                })
                .collect();
            layer_norm(&x, &w.emb_norm_w, &w.emb_norm_b, eps)
        })
        .collect();
    for l in &w.layers {
        let qkv: Vec<Vec<f64>> = h.iter().map(|x| affine(&l.wqkv, &l.bqkv, x)).collect();
        let scale = 1.0 / (hd as f64).sqrt();
        let ctx: Vec<Vec<f64>> = (0..h.len())
            .map(|m| {
                let mut out = vec![0.0; d];
                for head in 0..nh {
                    let q = &qkv[m][head * hd..(head + 1) * hd];
                    let scores: Vec<f64> = qkv
                        .iter()
                        .map(|r| {
                            let k = &r[d + head * hd..d + (head + 1) * hd];
                            q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() * scale
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = e.iter().sum();
                    for (j, r) in qkv.iter().enumerate() {
                        let v = &r[2 * d + head * hd..2 * d + (head + 1) * hd];
                        for (o, vv) in out[head * hd..(head + 1) * hd].iter_mut().zip(v) {
                            *o += e[j] / total * vv;
                        }
                    }
                }
                out
            })
            .collect();
        for (x, c) in h.iter_mut().zip(&ctx) {
            let o = affine(&l.wo, &l.bo, c);
            let r: Vec<f64> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
            let a = layer_norm(&r, &l.attn_norm_w, &l.attn_norm_b, eps);
            let f: Vec<f64> = affine(&l.w1, &l.b1, &a).into_iter().map(gelu_ref).collect();
            let o2 = affine(&l.w2, &l.b2, &f);
            let r2: Vec<f64> = a.iter().zip(&o2).map(|(a, b)| a + b).collect();
            *x = layer_norm(&r2, &l.ffn_norm_w, &l.ffn_norm_b, eps);
        }
    }
    let v: Vec<f64> = match pooling {
        Pooling::Cls => h[0].clone(),
        Pooling::Mean => (0..d)
            .map(|i| h.iter().map(|r| r[i]).sum::<f64>() / h.len() as f64)
            .collect(),
    };
    let norm = if normalize {
        v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12)
    } else {
        1.0
    };
    v.iter().map(|x| (x / norm) as f32).collect()
}
