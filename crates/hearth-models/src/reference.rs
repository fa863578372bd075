//! The CPU reference forward pass of the Llama decoder, written plainly (llama2.c style): one token at a
//! time, f32 everywhere, weights dequantised row by row with [`HostMatrix::dequantize_row_into`]. The GPU
//! model is tested against it; it is not meant to be fast.

use hearth_gpu::HostMatrix;

use crate::config::{LlamaConfig, RopeStyle};
use crate::weights::LlamaWeights;

/// `out[r] = W[r, :] · x`
fn matvec(w: &HostMatrix, x: &[f32], out: &mut [f32]) {
    let mut row = vec![0f32; w.cols];
    for (r, o) in out.iter_mut().enumerate().take(w.rows) {
        w.dequantize_row_into(r, &mut row);
        *o = row.iter().zip(x).map(|(a, b)| a * b).sum();
    }
}

fn rms_norm(x: &[f32], gamma: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let s = 1.0 / (ms + eps).sqrt();
    x.iter().zip(gamma).map(|(v, g)| v * s * g).collect()
}

/// Rotates each `head_dim`-sized head of `v` for position `pos`.
fn rope(v: &mut [f32], head_dim: usize, pos: usize, inv_freq: &[f32], style: RopeStyle) {
    for head in v.chunks_exact_mut(head_dim) {
        for (i, f) in inv_freq.iter().enumerate() {
            let (s, c) = (pos as f32 * f).sin_cos();
            let (a, b) = match style {
                RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                RopeStyle::Half => (i, i + head_dim / 2),
            };
            let (x, y) = (head[a], head[b]);
            head[a] = x * c - y * s;
            head[b] = x * s + y * c;
        }
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// A CPU Llama with its own KV cache.
pub struct CpuLlama<'w> {
    w: &'w LlamaWeights,
    inv_freq: Vec<f32>,
    /// Per layer: `[pos][kv_heads · head_dim]`, flattened.
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
    pos: usize,
}

impl<'w> CpuLlama<'w> {
    pub fn new(w: &'w LlamaWeights) -> Self {
        let n = w.layers.len();
        Self {
            w,
            inv_freq: w.config.rope_inv_freq(),
            k_cache: vec![vec![]; n],
            v_cache: vec![vec![]; n],
            pos: 0,
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Feeds one token at the next position and returns the logits `[vocab]` for the token after it.
    pub fn forward(&mut self, token: u32) -> Vec<f32> {
        let LlamaConfig {
            hidden_size: d,
            num_attention_heads: nh,
            num_key_value_heads: nkv,
            head_dim: hd,
            rms_norm_eps: eps,
            ..
        } = self.w.config;
        let pos = self.pos;
        let mut x = vec![0f32; d];
        self.w.embed.dequantize_row_into(token as usize, &mut x);

        for (l, layer) in self.w.layers.iter().enumerate() {
            // Attention block.
            let xb = rms_norm(&x, &layer.attn_norm, eps);
            let mut q = vec![0f32; nh * hd];
            let mut k = vec![0f32; nkv * hd];
            let mut v = vec![0f32; nkv * hd];
            matvec(&layer.wq, &xb, &mut q);
            matvec(&layer.wk, &xb, &mut k);
            matvec(&layer.wv, &xb, &mut v);
            rope(&mut q, hd, pos, &self.inv_freq, self.w.config.rope_style);
            rope(&mut k, hd, pos, &self.inv_freq, self.w.config.rope_style);
            self.k_cache[l].extend_from_slice(&k);
            self.v_cache[l].extend_from_slice(&v);

            let mut att_out = vec![0f32; nh * hd];
            let group = nh / nkv;
            for h in 0..nh {
                let kvh = h / group;
                let qh = &q[h * hd..(h + 1) * hd];
                let mut scores: Vec<f32> = (0..=pos)
                    .map(|t| {
                        let kt = &self.k_cache[l][(t * nkv + kvh) * hd..(t * nkv + kvh + 1) * hd];
                        qh.iter().zip(kt).map(|(a, b)| a * b).sum::<f32>() / (hd as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                let out = &mut att_out[h * hd..(h + 1) * hd];
                for (t, s) in scores.iter().enumerate() {
                    let vt = &self.v_cache[l][(t * nkv + kvh) * hd..(t * nkv + kvh + 1) * hd];
                    for (o, vv) in out.iter_mut().zip(vt) {
                        *o += s / sum * vv;
                    }
                }
            }
            let mut proj = vec![0f32; d];
            matvec(&layer.wo, &att_out, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            // Feed-forward block: down(silu(gate(x)) * up(x)).
            let xb = rms_norm(&x, &layer.ffn_norm, eps);
            let f = layer.w_gate.rows;
            let (mut g, mut u) = (vec![0f32; f], vec![0f32; f]);
            matvec(&layer.w_gate, &xb, &mut g);
            matvec(&layer.w_up, &xb, &mut u);
            let hb: Vec<f32> = g.iter().zip(&u).map(|(a, b)| silu(*a) * b).collect();
            matvec(&layer.w_down, &hb, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }

        let xf = rms_norm(&x, &self.w.norm, eps);
        let head = self.w.lm_head.as_ref().unwrap_or(&self.w.embed);
        let mut logits = vec![0f32; head.rows];
        matvec(head, &xf, &mut logits);
        self.pos += 1;
        logits
    }

    /// Teacher forcing: logits after each prefix `tokens[..=i]`.
    pub fn forward_all(&mut self, tokens: &[u32]) -> Vec<Vec<f32>> {
        tokens.iter().map(|&t| self.forward(t)).collect()
    }
}

/// Index of the largest value (lowest index on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
