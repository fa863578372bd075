//! Causal grouped-query attention over the KV cache (`shaders/attention.wgsl`).
//!
//! - Decode (`m_rows == 1`): flash-decoding in one dispatch. The positions `0..=step.pos` are split
//!   over a fixed number of chunks whose size follows the current length (read from the [`Step`]
//!   uniform, at least one round of positions), so one recorded dispatch serves every step and long
//!   contexts spread over all chunks; each workgroup walks one chunk for a block of q heads sharing a
//!   kv head. With one chunk in use (a short context) it writes the output; otherwise it writes a
//!   partial (max, Σexp, Σexp·v) into [`AttentionScratch`], and the last workgroup of the head block
//!   to finish (an atomic counter) merges them. A decode step is bound by dispatch latency, so the
//!   merge rides in the same dispatch instead of a second one per layer.
//! - Prefill (`m_rows > 1`): flash attention with online softmax, one query row per invocation, K/V
//!   tiles in workgroup memory shared by the q heads of a kv group; supports `step.pos > 0` (a later
//!   prompt chunk attending to the cache).
//!
//! - Packed (the BERT encoder, [`attention_packed`]): the prefill kernel with `MASK = seqs`: no cache,
//!   keys and values come from the qkv rows, and each token attends bidirectionally to its own
//!   sequence of a batch packed back to back (no padding rows, so no compute spent on them).
//!
//! For the causal passes, RoPE must already have stored this batch's keys and values (see
//! [`crate::rope::rope_and_store`]), or [`rope_attention`] does both: for one row (a decode step) in
//! one dispatch, the decode kernel rotating q and the new key as it reads them and storing the new
//! key and value itself.

use crate::kv_cache::KvCache;
use crate::rope::{rope_and_store, Heads, RopeStyle};
use crate::{Defines, Dispatch, Gpu, GpuError, KernelKey, Result, Step, Tensor};

/// Workgroup sizes: decode, prefill (query rows). Measured on an H200 (bench_attention, for the
/// decode kernel before attention_decode.wgsl's tiles, with its merge still a second pass; not
/// swept again since): decode 128 with 64 chunks was the best of 64/128/256 × 16..256 chunks at
/// 2k–4k context; prefill 32/64/128 rows were within 10%.
const DECODE_WG: u32 = 128;
/// Positions per decode chunk at least: a context this short is one chunk, written with no merge.
pub(crate) const DECODE_MIN_CHUNK: usize = 64;
const PREFILL_WG: u32 = 64;
/// Workgroups the decode pass aims for at long context: enough to keep a discrete GPU's memory busy;
/// on a CPU adapter (lavapipe, SwiftShader) every workgroup costs, so a few per core. Re-measured (for
/// the decode kernel before the tiles) on an H200 with the merge in the same dispatch (2026-11-21, 1B
/// decode at depth 0 / 2,048 / 4,000):
/// 128 → 1,106 / 832 / 692 tok/s, 256 → 1,104 / 916 / 813, 512 → 1,088 / 910 / 847, 1,024 → 1,060 /
/// 806 / 767.
const DECODE_WORKGROUPS_GPU: usize = 512;
const DECODE_WORKGROUPS_CPU: usize = 16;

/// How the decode pass splits its work, decided once by the scratch and used by the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DecodePlan {
    /// q heads per workgroup (a divisor of the group size, ≤ 4 for workgroup memory).
    gb: usize,
    /// Workgroup sizes of the decode pass and of the prefill pass.
    decode_wg: u32,
    prefill_wg: u32,
    /// Chunks (≤ 1024).
    chunks: usize,
}

/// Scratch of the split-KV decode: per head and chunk a partial `acc` and `(max, sum)`, and per head
/// block the count of chunks done. Create once per model and pass to every layer's [`attention`]
/// (layers run one after another; each decode dispatch leaves the counts at 0).
#[derive(Debug)]
pub struct AttentionScratch {
    /// `[n_heads, chunks, ceil(head_dim/4)·4]`
    acc: Tensor<f32>,
    /// `[n_heads, chunks, 2]`
    ml: Tensor<f32>,
    /// `[n_heads / gb]`
    done: Tensor<u32>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    max_len: usize,
    plan: DecodePlan,
}

impl AttentionScratch {
    /// Scratch with the chunk count suited to this adapter.
    pub fn new(
        gpu: &Gpu,
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
        max_len: usize,
    ) -> Result<Self> {
        let target = if gpu.info().device_type == wgpu::DeviceType::Cpu {
            DECODE_WORKGROUPS_CPU
        } else {
            DECODE_WORKGROUPS_GPU
        };
        let gb = Self::heads_per_workgroup(n_heads, n_kv_heads);
        let chunks = target.div_ceil((n_heads / gb.max(1)).max(1));
        Self::with_chunks(gpu, n_heads, n_kv_heads, head_dim, max_len, chunks)
    }

    /// Scratch for a given number of decode chunks (clamped to `1..=min(1024, max_len)`).
    pub fn with_chunks(
        gpu: &Gpu,
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
        max_len: usize,
        chunks: usize,
    ) -> Result<Self> {
        if n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) || head_dim == 0 || max_len == 0 {
            return Err(GpuError::Shape(format!(
                "attention scratch: {n_heads} q heads / {n_kv_heads} kv heads × {head_dim}, {max_len} positions"
            )));
        }
        let plan = DecodePlan {
            gb: Self::heads_per_workgroup(n_heads, n_kv_heads),
            decode_wg: DECODE_WG,
            prefill_wg: PREFILL_WG,
            chunks: chunks.min(max_len).clamp(1, 1024),
        };
        let hd4 = head_dim.div_ceil(4) * 4;
        Ok(Self {
            acc: Tensor::zeros(gpu, "attn_part_acc", &[n_heads, plan.chunks, hd4])?,
            ml: Tensor::zeros(gpu, "attn_part_ml", &[n_heads, plan.chunks, 2])?,
            done: Tensor::zeros(gpu, "attn_done", &[n_heads / plan.gb])?,
            n_heads,
            n_kv_heads,
            head_dim,
            max_len,
            plan,
        })
    }

    fn heads_per_workgroup(n_heads: usize, n_kv_heads: usize) -> usize {
        let group = n_heads / n_kv_heads.max(1);
        (1..=group.min(4))
            .rev()
            .find(|&b| group.is_multiple_of(b))
            .unwrap_or(1)
    }

    /// Overrides the workgroup sizes (benchmarks): decode in 64..=256, prefill ≤ 256.
    #[cfg(test)]
    pub(crate) fn with_workgroups(mut self, decode_wg: u32, prefill_wg: u32) -> Self {
        self.plan.decode_wg = decode_wg;
        self.plan.prefill_wg = prefill_wg;
        self
    }

    /// Chunks the decode pass splits the context into.
    pub fn chunks(&self) -> usize {
        self.plan.chunks
    }
}

/// `out[m, h·hd..] = softmax(q[m,h] · K[0..=step.pos+m]ᵀ / sqrt(hd)) · V[0..=step.pos+m]` for
/// `m < min(m_rows, step.n_tokens)`, with K/V of kv head `h / (n_heads / n_kv_heads)` from `cache`
/// layer `layer`. `qkv`: `[m_rows, (n_heads + 2·n_kv_heads)·head_dim]` (the q part is read);
/// `out`: `[m_rows, n_heads·head_dim]`. Rows past `step.n_tokens` are left untouched; positions past
/// the cache are clamped (the model must not step past `max_len`).
#[allow(clippy::too_many_arguments)]
pub async fn attention(
    gpu: &Gpu,
    qkv: &Tensor<f32>,
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    cache: &KvCache,
    layer: usize,
    step: &Step,
    scratch: &AttentionScratch,
    out: &Tensor<f32>,
) -> Result<Vec<Dispatch>> {
    let shape = Heads {
        m_rows,
        n_heads,
        n_kv_heads,
        head_dim,
    };
    attention_with(
        gpu, qkv, shape, cache, layer, step, scratch, out, false, None,
    )
    .await
}

/// The rotary embedding [`rope_attention`] applies (as [`rope_and_store`]).
#[derive(Clone, Copy, Debug)]
pub struct Rope<'a> {
    pub style: RopeStyle,
    /// `[head_dim / 2]`
    pub inv_freq: &'a Tensor<f32>,
}

/// [`rope_and_store`] then [`attention`] on the same arguments, in as few dispatches as the batch
/// allows: one row (a decode step, bound by dispatch latency) is a single dispatch that rotates q and
/// the row's key as it reads them from `qkv` (whose q part it leaves unrotated) and stores the key
/// and value in the cache; several rows are the two passes.
#[allow(clippy::too_many_arguments)]
pub async fn rope_attention(
    gpu: &Gpu,
    qkv: &Tensor<f32>,
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    rope: Rope<'_>,
    cache: &KvCache,
    layer: usize,
    step: &Step,
    scratch: &AttentionScratch,
    out: &Tensor<f32>,
) -> Result<Vec<Dispatch>> {
    let shape = Heads {
        m_rows,
        n_heads,
        n_kv_heads,
        head_dim,
    };
    if m_rows == 1 {
        if rope.inv_freq.len() != head_dim / 2 {
            return Err(GpuError::Shape(format!(
                "attention: inv_freq {:?}, want [{}]",
                rope.inv_freq.shape(),
                head_dim / 2
            )));
        }
        let r = Some(rope);
        return attention_with(gpu, qkv, shape, cache, layer, step, scratch, out, false, r).await;
    }
    let (style, freq) = (rope.style, rope.inv_freq);
    let mut ds = rope_and_store(
        gpu, qkv, m_rows, n_heads, n_kv_heads, head_dim, style, freq, cache, layer, step,
    )
    .await?;
    ds.extend(
        attention(
            gpu, qkv, m_rows, n_heads, n_kv_heads, head_dim, cache, layer, step, scratch, out,
        )
        .await?,
    );
    Ok(ds)
}

/// [`attention`], optionally forcing the prefill kernel for a single row (tests compare both paths),
/// or with the decode kernel's RoPE.
#[allow(clippy::too_many_arguments)]
async fn attention_with(
    gpu: &Gpu,
    qkv: &Tensor<f32>,
    s: Heads,
    cache: &KvCache,
    layer: usize,
    step: &Step,
    scratch: &AttentionScratch,
    out: &Tensor<f32>,
    force_prefill: bool,
    rope: Option<Rope<'_>>,
) -> Result<Vec<Dispatch>> {
    let Heads {
        m_rows,
        n_heads,
        n_kv_heads,
        head_dim,
    } = s;
    s.check("attention", qkv, cache, layer)?;
    if out.len() < m_rows * n_heads * head_dim {
        return Err(GpuError::Shape(format!(
            "attention: out {:?} is smaller than [{m_rows}, {}]",
            out.shape(),
            n_heads * head_dim
        )));
    }
    let base = Defines::new()
        .u32("NH", n_heads as u32)
        .u32("KVH", n_kv_heads as u32)
        .u32("HD", head_dim as u32)
        .u32("MAXLEN", cache.max_len() as u32)
        .f32("SCALE", 1.0 / (head_dim as f32).sqrt())
        .flag("F16", cache.is_f16())
        .flag("VEC4", head_dim.is_multiple_of(4))
        .flag("ROPE", false);
    let (k, v) = (cache.k_binding(layer)?, cache.v_binding(layer)?);

    if m_rows > 1 || force_prefill {
        let bc = prefill_tile(head_dim);
        let kernel = gpu
            .kernel(KernelKey::new(
                "attention",
                "prefill",
                base.sym("PASS", "prefill")
                    .sym("MASK", "causal")
                    .u32("BC", bc)
                    .u32("WG", scratch.plan.prefill_wg),
            ))
            .await?;
        let rows = m_rows * (n_heads / n_kv_heads);
        let d = gpu.dispatch(
            &kernel,
            &[qkv.binding(), k, v, step.binding(), out.binding()],
            [
                rows.div_ceil(scratch.plan.prefill_wg as usize) as u32,
                n_kv_heads as u32,
                1,
            ],
        )?;
        return Ok(vec![d]);
    }

    if (
        scratch.n_heads,
        scratch.n_kv_heads,
        scratch.head_dim,
        scratch.max_len,
    ) != (n_heads, n_kv_heads, head_dim, cache.max_len())
    {
        return Err(GpuError::Shape(format!(
            "attention: scratch made for {} / {} heads × {}, {} positions; called with {n_heads} / \
             {n_kv_heads} × {head_dim}, {} positions",
            scratch.n_heads,
            scratch.n_kv_heads,
            scratch.head_dim,
            scratch.max_len,
            cache.max_len()
        )));
    }
    let plan = scratch.plan;
    let mut defines = base
        .u32("GB", plan.gb as u32)
        .u32("NC", plan.chunks as u32)
        // Every (head, dims) value task needs an invocation.
        .u32(
            "WG",
            plan.decode_wg
                .max((plan.gb * head_dim.div_ceil(4)).next_power_of_two() as u32),
        )
        .u32("CMIN", DECODE_MIN_CHUNK as u32)
        .sym("PASS", "decode");
    let mut bindings = vec![
        qkv.binding(),
        k,
        v,
        step.binding(),
        scratch.acc.binding(),
        scratch.ml.binding(),
        out.binding(),
        scratch.done.binding(),
    ];
    if let Some(r) = rope {
        defines = defines.flag("ROPE", true).sym("STYLE", r.style.sym());
        bindings.push(r.inv_freq.binding());
    }
    let decode = gpu
        .kernel(KernelKey::new("attention", "decode", defines))
        .await?;
    Ok(vec![gpu.dispatch(
        &decode,
        &bindings,
        [(n_heads / plan.gb) as u32, plan.chunks as u32, 1],
    )?])
}

/// K/V tile positions of the prefill kernel: `2 · BC · ceil(hd/4)` vec4 within 16 KiB of workgroup
/// memory, `BC % 4 == 0`.
fn prefill_tile(head_dim: usize) -> u32 {
    ((512 / head_dim.div_ceil(4)).min(32) / 4 * 4) as u32
}

/// Bidirectional attention over a packed batch of sequences (the encoder): for token
/// `m < min(m_rows, step.n_tokens)`, `out[m, h·hd..] = softmax(q[m,h] · K[s..e]ᵀ / sqrt(hd)) ·
/// V[s..e]` with `[s, e) = ranges[m]` (its sequence: `s ≤ m < e`, ranges non-decreasing in `m`) and
/// K/V of kv head `h / (n_heads / n_kv_heads)` taken from the qkv rows
/// `[m_rows, (n_heads + 2·n_kv_heads)·head_dim]`. `ranges`: `[m_rows, 2]` u32.
#[allow(clippy::too_many_arguments)]
pub async fn attention_packed(
    gpu: &Gpu,
    qkv: &Tensor<f32>,
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    ranges: &Tensor<u32>,
    step: &Step,
    out: &Tensor<f32>,
) -> Result<Dispatch> {
    let row = (n_heads + 2 * n_kv_heads) * head_dim;
    if n_kv_heads == 0
        || !n_heads.is_multiple_of(n_kv_heads)
        || head_dim == 0
        || !head_dim.is_multiple_of(2)
        || head_dim > 256
        || qkv.len() < m_rows * row
        || out.len() < m_rows * n_heads * head_dim
        || ranges.len() < 2 * m_rows
    {
        return Err(GpuError::Shape(format!(
            "attention_packed: {m_rows} tokens of {n_heads} / {n_kv_heads} heads × {head_dim}; qkv              {:?}, out {:?}, ranges {:?}",
            qkv.shape(),
            out.shape(),
            ranges.shape()
        )));
    }
    let defines = Defines::new()
        .u32("NH", n_heads as u32)
        .u32("KVH", n_kv_heads as u32)
        .u32("HD", head_dim as u32)
        .u32("MAXLEN", 1)
        .f32("SCALE", 1.0 / (head_dim as f32).sqrt())
        .flag("F16", false)
        .flag("VEC4", head_dim.is_multiple_of(4))
        .flag("ROPE", false)
        .sym("PASS", "prefill")
        .sym("MASK", "seqs")
        .u32("BC", prefill_tile(head_dim))
        .u32("WG", PREFILL_WG);
    let kernel = gpu
        .kernel(KernelKey::new("attention", "prefill", defines))
        .await?;
    let rows = m_rows * (n_heads / n_kv_heads);
    gpu.dispatch(
        &kernel,
        &[
            qkv.binding(),
            qkv.binding(),
            qkv.binding(),
            step.binding(),
            out.binding(),
            ranges.binding(),
        ],
        [
            rows.div_ceil(PREFILL_WG as usize) as u32,
            n_kv_heads as u32,
            1,
        ],
    )
}

/// CPU reference of [`attention_packed`] (f64): `ranges[m] = (start, end)` of token m's sequence.
pub fn attention_packed_ref(
    qkv: &[f32],
    ranges: &[(usize, usize)],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
) -> Vec<f32> {
    let row = (n_heads + 2 * n_kv_heads) * head_dim;
    let group = n_heads / n_kv_heads;
    let mut out = vec![0f32; ranges.len() * n_heads * head_dim];
    for (m, &(s, e)) in ranges.iter().enumerate() {
        for h in 0..n_heads {
            let q = &qkv[m * row + h * head_dim..][..head_dim];
            let k_at = |j: usize| j * row + (n_heads + h / group) * head_dim;
            let keys = (s..e).map(|j| &qkv[k_at(j)..][..head_dim]);
            let values = (s..e).map(|j| &qkv[k_at(j) + n_kv_heads * head_dim..][..head_dim]);
            let o = (m * n_heads + h) * head_dim;
            attend_ref(q, keys, values, &mut out[o..o + head_dim]);
        }
    }
    out
}

/// `softmax(q · Kᵀ / sqrt(hd)) · V` in f64 over `keys` / `values` (one head vector each, in the
/// same order): the core of both CPU references.
fn attend_ref<'a>(
    q: &[f32],
    keys: impl Iterator<Item = &'a [f32]>,
    values: impl Iterator<Item = &'a [f32]>,
    out: &mut [f32],
) {
    let scale = 1.0 / (q.len() as f64).sqrt();
    let dot = |k: &[f32]| {
        q.iter()
            .zip(k)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum::<f64>()
            * scale
    };
    let scores: Vec<f64> = keys.map(dot).collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let mut acc = vec![0f64; out.len()];
    for (wp, v) in w.iter().zip(values) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += wp * x as f64;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (a / total) as f32;
    }
}

/// CPU reference of [`attention`]: plain loops in f64. `qkv`: `[m_rows, (n_heads + 2·n_kv_heads)·
/// head_dim]`; `k`, `v`: the cache contents `[≥ pos + m_rows, n_kv_heads, head_dim]`; returns
/// `[m_rows, n_heads·head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    qkv: &[f32],
    m_rows: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    k: &[f32],
    v: &[f32],
    pos: usize,
) -> Vec<f32> {
    let row = (n_heads + 2 * n_kv_heads) * head_dim;
    let group = n_heads / n_kv_heads;
    let mut out = vec![0f32; m_rows * n_heads * head_dim];
    for m in 0..m_rows {
        for h in 0..n_heads {
            let q = &qkv[m * row + h * head_dim..][..head_dim];
            let kv_at = |p: usize| (p * n_kv_heads + h / group) * head_dim;
            let keys = (0..=pos + m).map(|p| &k[kv_at(p)..][..head_dim]);
            let values = (0..=pos + m).map(|p| &v[kv_at(p)..][..head_dim]);
            let o = (m * n_heads + h) * head_dim;
            attend_ref(q, keys, values, &mut out[o..o + head_dim]);
        }
    }
    out
}

#[cfg(test)]
mod tests;
