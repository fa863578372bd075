//! GPU-side sampling of the next token (`shaders/sample.wgsl`): the sampled id is written into the
//! on-GPU token history, so a decode step reads back one id and the next step's embedding gather finds
//! it there.
//!
//! Semantics (llama.cpp's order), exactly mirrored by [`sample_ref`]:
//! 1. Logits are sanitised (NaN → -1e30, ±inf and beyond → ±1e30, -0 → +0: WGSL promises no
//!    infinities), then the repetition penalty applies once to each distinct token among the last
//!    `penalty_last_n` history tokens: logit > 0 → × (1/penalty), else × penalty.
//! 2. `temperature <= 0`: argmax, ties → lowest id.
//! 3. `top_p < 1` ("sorted" mode): the top `k` tokens (`k = top_k` capped at [`KMAX`] = 256, or 256
//!    when `top_k = 0`), ties → lower id, are sorted on one workgroup; the smallest prefix whose
//!    temperature-1 softmax mass reaches `top_p` of the denominator is kept — the denominator is the mass
//!    of the `k` candidates, or of the whole vocabulary when `top_k = 0` (so plain top-p is exact unless
//!    its set would need more than 256 tokens). Then the temperature softmax of the kept tokens is drawn
//!    from, in sorted order.
//! 4. `top_p >= 1` ("index" mode): the top `top_k` tokens (all when 0), no cap and no sort; the draw
//!    walks the survivors in id order (same distribution as a sorted walk, different mapping of `u`).
//! 5. The draw: `u` = [`uniform01`]`(seed, position)` (a PCG hash, identical in WGSL and Rust), target
//!    `u · Z`, first token whose cumulative weight exceeds it.
//!
//! Top-k never sorts the vocabulary: a 3-pass radix select over order-preserving u32 keys (11 bits a
//! pass, multi-workgroup histograms with atomics) finds the k-th largest key, and a prefix count over
//! chunks keeps the tied keys of lowest id. Every reduction has a fixed order, so the GPU is
//! deterministic and the CPU mirror reproduces its arithmetic; the two can differ only where `u · Z`
//! falls within rounding (GPU `exp` vs Rust's) of a cumulative boundary.
//!
//! Dispatches, by the [`Plan`] the params call for (recorded programs follow the plan, so
//! [`Sampler::set_params`] says when they must be recorded again): greedy 1 (`first`, whose last
//! workgroup writes the argmax), temperature only 2 (`first`, `tally`), top-k / top-p 4 (`first`,
//! `histogram` × 2, `tally`); `tally`'s last workgroup draws. A decode step is bound by dispatch
//! latency, so the one-workgroup tails ride in the wide passes. No f16, no subgroups.

use std::collections::HashSet;

use crate::{tensor, Defines, Dispatch, Gpu, GpuError, KernelKey, Result, Step, Tensor};

const WG: usize = 256;
const ITEMS: usize = 4;
const CH: usize = WG * ITEMS;
/// Most candidates the sorted (top-p) mode considers.
pub const KMAX: usize = WG;
const BIG: f32 = 1e30;
/// The final pass holds one value per chunk in workgroup memory (`CH` floats), so at most `CH` chunks
/// (1,048,576 tokens; real vocabularies stay under 262,144).
pub const MAX_VOCAB: usize = CH * CH;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: u32,
    /// 1 = off.
    pub top_p: f32,
    /// 1 = off.
    pub repetition_penalty: f32,
    pub penalty_last_n: u32,
    pub seed: u64,
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            penalty_last_n: 0,
            seed: 0,
        }
    }

    /// The values both implementations use: invalid ones fall back to "off", reciprocals are taken
    /// once here so GPU and CPU multiply by the same bits.
    fn normalized(&self) -> Norm {
        let temperature = if self.temperature > 0.0 {
            self.temperature
        } else {
            0.0
        };
        let penalty = if self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite() {
            self.repetition_penalty
        } else {
            1.0
        };
        Norm {
            temperature,
            // Bounded so (w - max) · inv_temp stays finite for |w| <= 1e30.
            inv_temp: 1.0 / temperature.max(1e-7),
            top_k: self.top_k,
            top_p: if self.top_p.is_nan() { 1.0 } else { self.top_p },
            penalty,
            inv_penalty: 1.0 / penalty,
            last_n: self.penalty_last_n,
            seed: self.seed,
        }
    }

    /// The params uniform (layout of `Params` in sample.wgsl).
    fn words(&self) -> [u32; 12] {
        let n = self.normalized();
        [
            n.temperature.to_bits(),
            n.inv_temp.to_bits(),
            n.top_k,
            n.top_p.to_bits(),
            n.penalty.to_bits(),
            n.inv_penalty.to_bits(),
            n.last_n,
            n.seed as u32,
            (n.seed >> 32) as u32,
            0,
            0,
            0,
        ]
    }
}

#[derive(Clone, Copy, Debug)]
struct Norm {
    temperature: f32,
    inv_temp: f32,
    top_k: u32,
    top_p: f32,
    penalty: f32,
    inv_penalty: f32,
    last_n: u32,
    seed: u64,
}

/// Radix digits of the select and buckets per digit (sample.wgsl: DIGITS, NB).
const DIGITS: usize = 3;
const NB: usize = 2048;

/// The passes a set of params needs: what [`Sampler::sample`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Temperature 0: the argmax (with the repetition penalty).
    Greedy,
    /// Temperature, no top-k or top-p: every token may be drawn.
    Draw,
    /// Top-k and/or top-p: a radix select first.
    Select,
}

impl Plan {
    fn of(params: &SamplingParams, vocab: usize) -> Self {
        let n = params.normalized();
        match mode(&n) {
            Mode::Greedy => Plan::Greedy,
            _ if select_k(&n, vocab) == 0 => Plan::Draw,
            _ => Plan::Select,
        }
    }
    fn sym(self) -> &'static str {
        match self {
            Plan::Greedy => "greedy",
            Plan::Draw => "draw",
            Plan::Select => "select",
        }
    }
}

/// GPU sampler for one vocabulary size: the params uniform and scratch buffers, made once.
#[derive(Debug)]
pub struct Sampler {
    vocab: usize,
    plan: Plan,
    /// `Params` uniform (12 words).
    params: wgpu::Buffer,
    /// `[vocab]` sanitised, penalised logits.
    work: Tensor<f32>,
    /// `[3 * 2048 + 2]` radix histograms and two counters, all zero between samples.
    atom: Tensor<u32>,
    /// `[5 * chunks + 6 + 256]` partials, radix state, per-chunk sums, candidates.
    scratch: Tensor<u32>,
}

impl Sampler {
    pub fn new(gpu: &Gpu, vocab: usize, params: &SamplingParams) -> Result<Self> {
        if vocab == 0 || vocab > MAX_VOCAB {
            return Err(GpuError::Shape(format!(
                "sampler: vocabulary of {vocab} (1..={MAX_VOCAB})"
            )));
        }
        let chunks = vocab.div_ceil(CH);
        Ok(Self {
            vocab,
            plan: Plan::of(params, vocab),
            params: tensor::uniform(gpu, "sample.params", &params.words()),
            work: Tensor::zeros(gpu, "sample.work", &[vocab])?,
            atom: Tensor::zeros(gpu, "sample.atom", &[DIGITS * NB + 2])?,
            scratch: Tensor::zeros(gpu, "sample.scratch", &[5 * chunks + 2 * DIGITS + WG])?,
        })
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The passes [`Sampler::sample`] records for the current params.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Rewrites the params uniform (ordered with later submits); no recompilation. Returns `true`
    /// when the [`Plan`] changed: dispatches recorded before must be recorded again (they would
    /// still run the old plan's passes).
    pub fn set_params(&mut self, gpu: &Gpu, params: &SamplingParams) -> bool {
        gpu.queue()
            .write_buffer(&self.params, 0, bytemuck::cast_slice(&params.words()));
        let plan = Plan::of(params, self.vocab);
        std::mem::replace(&mut self.plan, plan) != plan
    }

    /// Reads `logits` `[vocab]` (the last position's) and the history `tokens[0 .. L)`,
    /// `L = step.pos + step.n_tokens`, and writes the sampled id to `tokens[L]` (nothing if `L` is
    /// past the end of `tokens`). The dispatches are those of the current [`Plan`].
    pub async fn sample(
        &self,
        gpu: &Gpu,
        logits: &Tensor<f32>,
        tokens: &Tensor<u32>,
        step: &Step,
    ) -> Result<Vec<Dispatch>> {
        if logits.len() != self.vocab || tokens.is_empty() {
            return Err(GpuError::Shape(format!(
                "sample: logits {:?} for a vocabulary of {}, tokens {:?}",
                logits.shape(),
                self.vocab,
                tokens.shape()
            )));
        }
        let v = self.vocab as u32;
        let chunks = self.vocab.div_ceil(CH) as u32;
        let bindings = [
            self.params.as_entire_buffer_binding(),
            step.binding(),
            logits.binding(),
            tokens.binding(),
            self.work.binding(),
            self.atom.binding(),
            self.scratch.binding(),
        ];
        let passes: &[(&'static str, u32)] = match self.plan {
            Plan::Greedy => &[("first", 0)],
            Plan::Draw => &[("first", 0), ("tally", 0)],
            Plan::Select => &[
                ("first", 0),
                ("histogram", 1),
                ("histogram", 2),
                ("tally", 0),
            ],
        };
        let mut ds = Vec::with_capacity(passes.len());
        for &(entry, digit) in passes {
            let defines = Defines::new()
                .u32("V", v)
                .sym("PLAN", self.plan.sym())
                .u32("DIGIT", digit);
            let k = gpu.kernel(KernelKey::new("sample", entry, defines)).await?;
            ds.push(gpu.dispatch(&k, &bindings, [chunks, 1, 1])?);
        }
        Ok(ds)
    }
}

/// PCG hash (as in sample.wgsl).
fn pcg(v: u32) -> u32 {
    let s = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277803737);
    (w >> 22) ^ w
}

/// The draw's uniform in `[0, 1)` (24 bits) for `seed` at `position`, as the GPU computes it.
pub fn uniform01(seed: u64, position: u32) -> f32 {
    let h = pcg(seed as u32 ^ pcg((seed >> 32) as u32 ^ pcg(position)));
    (h >> 8) as f32 * (1.0 / 16777216.0)
}

fn sanitize(x: f32) -> f32 {
    let b = x.to_bits();
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        -BIG
    } else if a == 0x7f80_0000 {
        if b != a {
            -BIG
        } else {
            BIG
        }
    } else if b == 0x8000_0000 {
        0.0
    } else {
        x.clamp(-BIG, BIG)
    }
}

fn key_of(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn weight(x: f32) -> f32 {
    if x < -80.0 {
        0.0
    } else {
        x.exp()
    }
}

#[derive(PartialEq)]
enum Mode {
    Greedy,
    Sorted,
    Index,
}

fn mode(p: &Norm) -> Mode {
    if p.temperature <= 0.0 {
        Mode::Greedy
    } else if p.top_p < 1.0 {
        Mode::Sorted
    } else {
        Mode::Index
    }
}

fn select_k(p: &Norm, v: usize) -> usize {
    match mode(p) {
        Mode::Sorted if p.top_k == 0 => KMAX.min(v),
        Mode::Sorted => (p.top_k as usize).min(KMAX).min(v),
        Mode::Index if p.top_k != 0 && (p.top_k as usize) < v => p.top_k as usize,
        _ => 0,
    }
}

/// CPU reference: the GPU's result for the same inputs, including the random draw (see the module
/// docs for where the two may differ). `history` is `tokens[0 .. position)`.
pub fn sample_ref(logits: &[f32], history: &[u32], params: &SamplingParams, position: u32) -> u32 {
    let p = params.normalized();
    sample_ref_u(logits, history, &p, uniform01(p.seed, position))
}

/// [`sample_ref`] with the uniform given (tests probe draws near a boundary with it).
fn sample_ref_u(logits: &[f32], history: &[u32], p: &Norm, u: f32) -> u32 {
    let v = logits.len();
    let mut w: Vec<f32> = logits.iter().map(|&x| sanitize(x)).collect();
    if p.penalty != 1.0 && p.last_n > 0 {
        let n = (p.last_n as usize).min(history.len());
        let mut seen = HashSet::new();
        for &id in &history[history.len() - n..] {
            if (id as usize) < v && seen.insert(id) {
                let l = sanitize(logits[id as usize]);
                w[id as usize] = sanitize(if l > 0.0 {
                    l * p.inv_penalty
                } else {
                    l * p.penalty
                });
            }
        }
    }
    let keys: Vec<u32> = w.iter().map(|&x| key_of(x)).collect();
    // First maximum = lowest id among ties.
    let best = (0..v).fold(0, |b, i| if keys[i] > keys[b] { i } else { b });
    let md = mode(p);
    if md == Mode::Greedy || v == 0 {
        return best as u32;
    }
    let mx = w[best];
    let k = select_k(p, v);
    let rank = |a: &usize, b: &usize| keys[*b].cmp(&keys[*a]).then(a.cmp(b));
    let top = |k: usize| {
        let mut ids: Vec<usize> = (0..v).collect();
        if k < v {
            ids.select_nth_unstable_by(k - 1, rank);
            ids.truncate(k);
        }
        ids.sort_by(rank);
        ids
    };
    if md == Mode::Sorted {
        let ids = top(k);
        let e1: Vec<f32> = ids.iter().map(|&i| weight(w[i] - mx)).collect();
        let e2: Vec<f32> = ids
            .iter()
            .map(|&i| weight((w[i] - mx) * p.inv_temp))
            .collect();
        let z1 = if p.top_k == 0 {
            // The GPU's order: per invocation, per chunk, then over chunks.
            chunk_sums(v, |i| weight(w[i] - mx))
                .iter()
                .fold(0.0f32, |a, c| a + c.iter().fold(0.0, |s, x| s + x))
        } else {
            e1.iter().fold(0.0f32, |a, x| a + x)
        };
        let pz = p.top_p * z1;
        let mut n = k;
        let mut cum = 0.0f32;
        for (j, e) in e1.iter().enumerate() {
            cum += e;
            if cum >= pz {
                n = j + 1;
                break;
            }
        }
        let z2 = e2[..n].iter().fold(0.0f32, |a, x| a + x);
        let target = u * z2;
        let (mut pick, mut c) = (0, 0.0f32);
        for (j, &e) in e2[..n].iter().enumerate() {
            if e > 0.0 {
                pick = j;
                c += e;
                if c > target {
                    break;
                }
            }
        }
        return ids[pick] as u32;
    }
    // Index mode.
    let mut keep = vec![k == 0; v];
    if k != 0 {
        top(k).into_iter().for_each(|i| keep[i] = true);
    }
    let e = |i: usize| {
        if keep[i] {
            weight((w[i] - mx) * p.inv_temp)
        } else {
            0.0
        }
    };
    let sums = chunk_sums(v, e);
    // A chunk's mass as the GPU forms it: its keys above the threshold (per invocation, then in
    // invocation order), then its kept ties one by one (they share one weight).
    let thr = if k == 0 { 0 } else { keys[top(k)[k - 1]] };
    let above = chunk_sums(v, |i| if keys[i] > thr { e(i) } else { 0.0 });
    let totals: Vec<f32> = above
        .iter()
        .enumerate()
        .map(|(c, inv)| {
            let ties = (c * CH..((c + 1) * CH).min(v)).filter(|&i| keep[i] && keys[i] == thr);
            ties.fold(inv.iter().fold(0.0f32, |s, x| s + x), |s, i| s + e(i))
        })
        .collect();
    let z = totals.iter().fold(0.0f32, |a, x| a + x);
    let target = u * z;
    let (chunk, rest) = walk(&totals, target);
    let (lane, r2) = walk(&sums[chunk], rest);
    let mut chosen = best;
    let mut c = 0.0f32;
    for j in 0..ITEMS {
        let i = chunk * CH + lane * ITEMS + j;
        let e = if i < v { e(i) } else { 0.0 };
        if e > 0.0 {
            chosen = i;
            c += e;
            if c > r2 {
                break;
            }
        }
    }
    chosen as u32
}

/// Per chunk, per invocation: the sum of `f` over its `ITEMS` consecutive ids (0 past the end).
fn chunk_sums(v: usize, f: impl Fn(usize) -> f32) -> Vec<Vec<f32>> {
    (0..v.div_ceil(CH))
        .map(|c| {
            (0..WG)
                .map(|t| {
                    (0..ITEMS).fold(0.0f32, |s, j| {
                        let i = c * CH + t * ITEMS + j;
                        s + if i < v { f(i) } else { 0.0 }
                    })
                })
                .collect()
        })
        .collect()
}

/// The first entry whose cumulative sum exceeds `target` and the target relative to it; past the
/// end (rounding), the last positive entry with an infinite remainder — as sample.wgsl walks.
fn walk(xs: &[f32], target: f32) -> (usize, f32) {
    let (mut cum, mut last) = (0.0f32, 0);
    for (i, &m) in xs.iter().enumerate() {
        if m > 0.0 {
            last = i;
            if cum + m > target {
                return (i, target - cum);
            }
        }
        cum += m;
    }
    (last, BIG)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (conventions)
mod tests;
