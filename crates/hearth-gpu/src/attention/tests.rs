//! Both attention passes against [`attention_ref`]: prefill with GQA at pos 0 and pos > 0, single rows
//! through both kernels, decode replayed from one recorded program across chunk-size changes up to
//! 4096 positions (one chunk written directly, several merged by the last workgroup, twice per
//! program so the counters must reset), f16 and f32 caches, head dims 32/34/64/80/256, and RoPE +
//! attention chained over two prompt chunks and decode steps.
//!
//! Tolerance: both sides see the same (f16-rounded) cache; the GPU sums ≤ 1024 terms in f32, the
//! reference in f64, so errors are ~1e-7 on outputs of magnitude ≲ 1; a wrong position, head or
//! mask moves outputs by ~1e-2 or more.

// Tests may unwrap (conventions).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::rope::{rope_and_store, rope_ref, RopeStyle};
use crate::testing::*;
use crate::{GpuOptions, Program};

const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

/// A cache whose layer 1 holds random keys and values at every position (layer 0 stays zero, so
/// reading the wrong layer shows), with what it really stores (f16-rounded) for the reference.
fn random_cache(
    gpu: &Gpu,
    kvh: usize,
    hd: usize,
    max_len: usize,
    f16: bool,
) -> (KvCache, Vec<f32>, Vec<f32>) {
    let cache = KvCache::new_with(gpu, 2, kvh, hd, max_len, f16).unwrap();
    let n = max_len * kvh * hd;
    let (k, v) = (random(11, n, 1.0), random(12, n, 1.0));
    cache.write_positions(gpu, 1, 0, &k, &v).unwrap();
    let (k, v) = block(cache.read_layer(gpu, 1)).unwrap();
    (cache, k, v)
}

/// Runs one batch of `m` rows at `pos` against a random cache and checks it against the reference.
#[allow(clippy::too_many_arguments)]
fn check(
    gpu: &Gpu,
    nh: usize,
    kvh: usize,
    hd: usize,
    m: usize,
    pos: usize,
    f16: bool,
    force_prefill: bool,
) {
    let max_len = pos + m + 5;
    let (cache, k, v) = random_cache(gpu, kvh, hd, max_len, f16);
    let row = (nh + 2 * kvh) * hd;
    // Large q makes the softmax peaked, so the running max matters.
    let x = random(13 + m as u64, m * row, 3.0);
    let qkv = Tensor::from_slice(gpu, "qkv", &[m, row], &x).unwrap();
    let out = Tensor::zeros(gpu, "out", &[m, nh * hd]).unwrap();
    let scratch = AttentionScratch::new(gpu, nh, kvh, hd, max_len).unwrap();
    let step = Step::new(gpu);
    step.set(gpu, pos as u32, m as u32);
    let shape = Heads {
        m_rows: m,
        n_heads: nh,
        n_kv_heads: kvh,
        head_dim: hd,
    };
    let mut p = Program::new();
    p.extend(
        block(attention_with(
            gpu,
            &qkv,
            shape,
            &cache,
            1,
            &step,
            &scratch,
            &out,
            force_prefill,
            None,
        ))
        .unwrap(),
    );
    gpu.submit(&p);
    let got = block(out.read(gpu)).unwrap();
    let want = attention_ref(&x, m, nh, kvh, hd, &k, &v, pos);
    let what = format!(
        "attention {nh}/{kvh}×{hd} m={m} pos={pos} f16={f16} prefill={}",
        force_prefill || m > 1
    );
    assert_close(&what, &got, &want, ATOL, RTOL);
}

#[test]
fn attention_prefill_gqa_matches_reference() {
    let gpu = gpu();
    for pos in [0, 33] {
        for m in [1, 5, 70] {
            check(&gpu, 6, 2, 64, m, pos, false, false);
            check(&gpu, 6, 2, 64, m, pos, true, false);
        }
        // A single row through the prefill kernel too (the decode pass is the default).
        check(&gpu, 6, 2, 64, 1, pos, false, true);
        check(&gpu, 6, 2, 64, 1, pos, true, true);
    }
}

#[test]
fn attention_other_head_dims() {
    let gpu = gpu();
    // 34: not a multiple of 4 (scalar cache loads); 80: idle invocations in a decode round;
    // 256: 4 positions per decode round, 8 per prefill tile.
    for hd in [32, 34, 80, 256] {
        check(&gpu, 4, 2, hd, 5, 3, true, false);
        check(&gpu, 4, 2, hd, 1, 40, true, false);
    }
    // No grouping (multi-head attention) and a wide group.
    check(&gpu, 3, 3, 64, 7, 9, false, false);
    check(&gpu, 16, 1, 64, 1, 70, false, false);
    // The merge with more (head, dims) tasks than invocations: 4 heads × 64 vec4 > 128.
    check(&gpu, 8, 2, 256, 1, 40, true, false);
    check(&gpu, 8, 2, 256, 1, 40, false, false);
    // Tiny heads: more decode scores per round than invocations.
    check(&gpu, 16, 2, 4, 1, 50, false, false);
    check(&gpu, 16, 2, 4, 9, 50, false, false);
}

/// One recorded decode program replayed at many positions, as the model does: positions around
/// the points where the number of chunks in use and the chunk size change (one chunk → two: the
/// direct write → the merge), up to a long context. The program runs the decode twice into two
/// outputs sharing one scratch, as consecutive layers do: the second is right only if the first
/// left the completion counters at zero.
fn decode_replay(gpu: &Gpu, f16: bool, chunks: Option<usize>, max_len: usize) {
    let (nh, kvh, hd) = (6, 2, 64);
    let (cache, k, v) = random_cache(gpu, kvh, hd, max_len, f16);
    let row = (nh + 2 * kvh) * hd;
    let x = random(21, row, 3.0);
    let qkv = Tensor::from_slice(gpu, "qkv", &[1, row], &x).unwrap();
    let outs = [0, 1].map(|_| Tensor::zeros(gpu, "out", &[1, nh * hd]).unwrap());
    let scratch = match chunks {
        Some(c) => AttentionScratch::with_chunks(gpu, nh, kvh, hd, max_len, c).unwrap(),
        None => AttentionScratch::new(gpu, nh, kvh, hd, max_len).unwrap(),
    };
    let step = Step::new(gpu);
    let mut p = Program::new();
    for out in &outs {
        let d = block(attention(
            gpu, &qkv, 1, nh, kvh, hd, &cache, 1, &step, &scratch, out,
        ))
        .unwrap();
        assert_eq!(d.len(), 1, "decode is one dispatch");
        p.extend(d);
    }
    // A chunk holds max(ceil(len / nc), cm) positions, walked in tiles of the workgroup size.
    let (nc, cm) = (scratch.chunks(), DECODE_MIN_CHUNK);
    let mut positions = vec![
        0,
        1,
        cm - 2,
        cm - 1,
        cm,
        cm + 1,
        3 * cm + 2,
        500,
        max_len - 1,
    ];
    for len in [nc * cm, 2 * nc * cm] {
        positions.extend([len - 2, len - 1, len]);
    }
    positions.retain(|&p| p < max_len);
    for pos in positions {
        step.set(gpu, pos as u32, 1);
        for out in &outs {
            out.write(gpu, &vec![7.0; nh * hd]).unwrap();
        }
        gpu.submit(&p);
        let want = attention_ref(&x, 1, nh, kvh, hd, &k, &v, pos);
        for out in &outs {
            let got = block(out.read(gpu)).unwrap();
            assert_close(
                &format!("decode pos={pos} chunks={nc} f16={f16}"),
                &got,
                &want,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn attention_decode_replayed_over_positions() {
    let gpu = gpu();
    assert!(
        gpu.features().f16 && gpu.features().subgroups,
        "lavapipe has both; this test covers them"
    );
    // The adapter's own chunking; more chunks in use at 4k than the merge has invocations.
    decode_replay(&gpu, true, None, 1024);
    decode_replay(&gpu, false, Some(300), 4096);
    let plain = gpu_with(&GpuOptions {
        allow_f16: false,
        allow_subgroups: false,
        ..GpuOptions::default()
    });
    decode_replay(&plain, false, Some(300), 4096);
    decode_replay(&plain, false, Some(37), 1024);
    // Chunks of up to 512 positions: several tiles per workgroup.
    decode_replay(&gpu, true, Some(8), 4096);
}

/// RoPE + attention as the model chains them: two prompt chunks, then decode steps replayed from
/// one recorded program (across the one-chunk → merged boundary of the decode pass), against the CPU
/// references of both; `fused`: through [`rope_attention`] (one dispatch per decode step, which
/// stores the step's key and value itself), else rope_and_store + attention. The cache must end up
/// holding every rotated key and value either way.
fn rope_then_attention(gpu: &Gpu, heads: (usize, usize, usize), style: RopeStyle, fused: bool) {
    let (nh, kvh, hd) = heads;
    let max_len = 96;
    let row = (nh + 2 * kvh) * hd;
    let inv_freq: Vec<f32> = (0..hd / 2)
        .map(|i| 10000f32.powf(-2.0 * i as f32 / hd as f32))
        .collect();
    let freq = Tensor::from_slice(gpu, "inv_freq", &[hd / 2], &inv_freq).unwrap();
    let cache = KvCache::new(gpu, 1, kvh, hd, max_len).unwrap();
    let scratch = AttentionScratch::new(gpu, nh, kvh, hd, max_len).unwrap();
    let step = Step::new(gpu);
    let (mut ref_k, mut ref_v) = (Vec::new(), Vec::new());
    let rope = Rope {
        style,
        inv_freq: &freq,
    };
    let record = |m: usize, qkv: &Tensor<f32>, out: &Tensor<f32>| {
        let mut p = Program::new();
        if fused {
            let d = rope_attention(
                gpu, qkv, m, nh, kvh, hd, rope, &cache, 0, &step, &scratch, out,
            );
            p.extend(block(d).unwrap());
            assert_eq!(p.len(), if m == 1 { 1 } else { 2 });
            return p;
        }
        let r = rope_and_store(gpu, qkv, m, nh, kvh, hd, style, &freq, &cache, 0, &step);
        p.extend(block(r).unwrap());
        let a = attention(gpu, qkv, m, nh, kvh, hd, &cache, 0, &step, &scratch, out);
        p.extend(block(a).unwrap());
        p
    };
    let decode_qkv = Tensor::zeros(gpu, "qkv1", &[1, row]).unwrap();
    let decode_out = Tensor::zeros(gpu, "out1", &[1, nh * hd]).unwrap();
    let decode = record(1, &decode_qkv, &decode_out);
    // The reference sees the cache as stored (f16 on lavapipe).
    let round = |a: &[f32]| -> Vec<f32> {
        if cache.is_f16() {
            a.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
        } else {
            a.to_vec()
        }
    };
    let mut pos = 0;
    // Decode steps at positions 60..80: across DECODE_MIN_CHUNK, where one chunk becomes two.
    assert!((60..80).contains(&DECODE_MIN_CHUNK));
    let chunks = [6usize, 4, 50]
        .into_iter()
        .chain(std::iter::repeat_n(1, 20));
    for (i, m) in chunks.enumerate() {
        let x = random(30 + i as u64, m * row, 1.0);
        let (qkv, out) = if m == 1 {
            (decode_qkv.clone(), decode_out.clone())
        } else {
            (
                Tensor::zeros(gpu, "qkv", &[m, row]).unwrap(),
                Tensor::zeros(gpu, "out", &[m, nh * hd]).unwrap(),
            )
        };
        qkv.write(gpu, &x).unwrap();
        step.set(gpu, pos as u32, m as u32);
        if m == 1 {
            gpu.submit(&decode);
        } else {
            gpu.submit(&record(m, &qkv, &out));
        }
        let mut xr = x.clone();
        let (k, v) = rope_ref(&mut xr, m, nh, kvh, hd, style, &inv_freq, pos);
        let (mut see_k, mut see_v) = (ref_k.clone(), ref_v.clone());
        if fused && m == 1 {
            // The fused step attends to its own key and value before they are stored: unrounded.
            see_k.extend(&k);
            see_v.extend(&v);
        } else {
            see_k.extend(round(&k));
            see_v.extend(round(&v));
        }
        ref_k.extend(round(&k));
        ref_v.extend(round(&v));
        let want = attention_ref(&xr, m, nh, kvh, hd, &see_k, &see_v, pos);
        let got = block(out.read(gpu)).unwrap();
        let what = format!("rope+attention {heads:?} {style:?} fused={fused} m={m} pos={pos}");
        assert_close(&what, &got, &want, 5e-4, 1e-3);
        pos += m;
    }
    let (k, v) = block(cache.read_layer(gpu, 0)).unwrap();
    let n = pos * kvh * hd;
    assert_close("cached keys", &k[..n], &ref_k, 1e-5, 2e-3);
    assert_close("cached values", &v[..n], &ref_v, 1e-5, 2e-3);
}

#[test]
fn rope_then_attention_over_chunks_and_decode() {
    let gpu = gpu();
    // GQA 2:1 and 3:1 (three q heads a workgroup), vector and scalar (head dim 34) cache access.
    for heads in [(4, 2, 32), (6, 2, 34), (6, 2, 64)] {
        for style in [RopeStyle::Half, RopeStyle::Adjacent] {
            rope_then_attention(&gpu, heads, style, false);
            rope_then_attention(&gpu, heads, style, true);
        }
    }
    // f32 cache.
    let plain = gpu_with(&GpuOptions {
        allow_f16: false,
        ..GpuOptions::from_env()
    });
    rope_then_attention(&plain, (4, 2, 32), RopeStyle::Half, true);
}

#[test]
fn attention_skips_rows_past_n_tokens_and_rejects_bad_shapes() {
    let gpu = gpu();
    let (nh, kvh, hd, m, max_len) = (2, 1, 8, 4, 16);
    let (cache, k, v) = random_cache(&gpu, kvh, hd, max_len, false);
    let row = (nh + 2 * kvh) * hd;
    let x = random(5, m * row, 1.0);
    let qkv = Tensor::from_slice(&gpu, "qkv", &[m, row], &x).unwrap();
    let sentinel = vec![7.0f32; m * nh * hd];
    let out = Tensor::from_slice(&gpu, "out", &[m, nh * hd], &sentinel).unwrap();
    let scratch = AttentionScratch::new(&gpu, nh, kvh, hd, max_len).unwrap();
    let step = Step::new(&gpu);
    step.set(&gpu, 2, 3);
    let mut p = Program::new();
    p.extend(
        block(attention(
            &gpu, &qkv, m, nh, kvh, hd, &cache, 1, &step, &scratch, &out,
        ))
        .unwrap(),
    );
    gpu.submit(&p);
    let got = block(out.read(&gpu)).unwrap();
    let want = attention_ref(&x, 3, nh, kvh, hd, &k, &v, 2);
    let n = 3 * nh * hd;
    assert_close("attention valid rows", &got[..n], &want, ATOL, RTOL);
    assert_eq!(&got[n..], &sentinel[n..], "row past n_tokens untouched");

    let run =
        |m: usize, nh: usize, kvh: usize, hd: usize, out: &Tensor<f32>, s: &AttentionScratch| {
            block(attention(
                &gpu, &qkv, m, nh, kvh, hd, &cache, 1, &step, s, out,
            ))
        };
    let shape_err =
        |r: Result<Vec<Dispatch>>| assert!(matches!(r, Err(GpuError::Shape(_))), "{r:?}");
    shape_err(run(m + 1, nh, kvh, hd, &out, &scratch)); // qkv too small
    shape_err(run(m, 3, kvh, hd, &out, &scratch)); // cache/qkv mismatch
    shape_err(run(m, nh, kvh, 6, &out, &scratch)); // head_dim differs from the cache
    let small = Tensor::zeros(&gpu, "small", &[1, nh * hd]).unwrap();
    shape_err(run(m, nh, kvh, hd, &small, &scratch));
    let other = AttentionScratch::new(&gpu, nh, kvh, hd, max_len + 1).unwrap();
    shape_err(run(1, nh, kvh, hd, &out, &other));
    shape_err(block(attention(
        &gpu, &qkv, 1, nh, kvh, hd, &cache, 2, &step, &scratch, &out,
    )));
    assert!(AttentionScratch::new(&gpu, 3, 2, hd, max_len).is_err());
}

/// GPU time of `p` in µs divided by `per`: from timestamps around the pass where the adapter has them
/// (encoding and submit excluded), else wall time of submit + wait.
fn gpu_time_us(gpu: &Gpu, p: &Program, per: usize) -> f64 {
    gpu.submit(p);
    gpu.poll_wait();
    if !gpu.features().timestamps {
        let t = std::time::Instant::now();
        gpu.submit(p);
        gpu.poll_wait();
        return t.elapsed().as_secs_f64() * 1e6 / per as f64;
    }
    let set = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("bench"),
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let resolved = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench"),
        size: 16,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        p.encode_into(&mut pass);
    }
    enc.resolve_query_set(&set, 0..2, &resolved, 0);
    gpu.queue().submit([enc.finish()]);
    let bytes = block(crate::tensor::read_buffer(gpu, &resolved, 0, 16)).unwrap();
    let ticks: &[u64] = bytemuck::cast_slice(&bytes);
    let ns = ticks[1].saturating_sub(ticks[0]) as f64 * gpu.queue().get_timestamp_period() as f64;
    ns / 1e3 / per as f64
}

/// Timing of one layer's attention at Llama-3.2-1B shapes (32 q / 8 kv heads × 64, f16 cache when
/// available): decode at several context lengths and prefill chunks. Not a correctness test; run
/// with `cargo test -p hearth-gpu bench_attention -- --ignored --nocapture` on a real GPU.
#[test]
#[ignore]
fn bench_attention() {
    let gpu = gpu();
    eprintln!(
        "{} timestamps={}",
        gpu.describe(),
        gpu.features().timestamps
    );
    let (nh, kvh, hd, max_len) = (32, 8, 64, 4096);
    let reps = 50;
    let cache = KvCache::new(&gpu, 1, kvh, hd, max_len).unwrap();
    let n = max_len * kvh * hd;
    cache
        .write_positions(&gpu, 0, 0, &random(1, n, 1.0), &random(2, n, 1.0))
        .unwrap();
    let step = Step::new(&gpu);
    let row = (nh + 2 * kvh) * hd;
    let qkv = Tensor::from_slice(&gpu, "qkv", &[512, row], &random(3, 512 * row, 1.0)).unwrap();
    let out = Tensor::zeros(&gpu, "out", &[512, nh * hd]).unwrap();
    // `reps` copies of one layer's dispatches (only the first `keep` of each, to time passes apart).
    let record = |m: usize, keep: usize, scratch: &AttentionScratch| {
        let mut p = Program::new();
        for _ in 0..reps {
            let mut d = block(attention(
                &gpu, &qkv, m, nh, kvh, hd, &cache, 0, &step, scratch, &out,
            ))
            .unwrap();
            d.truncate(keep);
            p.extend(d);
        }
        p
    };
    let default = AttentionScratch::new(&gpu, nh, kvh, hd, max_len).unwrap();
    eprintln!("default: {} chunks", default.chunks());
    let sweep = std::env::var("HEARTH_BENCH_SWEEP").is_ok();
    let wgs: &[(u32, u32)] = if sweep {
        &[(64, 32), (128, 64), (256, 128)]
    } else {
        &[(DECODE_WG, PREFILL_WG)]
    };
    let chunks: &[usize] = if sweep {
        &[16, 32, 64, 128, 256]
    } else {
        &[default.chunks()]
    };
    for &(dwg, pwg) in wgs {
        for &nc in chunks {
            let scratch = AttentionScratch::with_chunks(&gpu, nh, kvh, hd, max_len, nc)
                .unwrap()
                .with_workgroups(dwg, pwg);
            let decode = record(1, 1, &scratch);
            for pos in [7usize, 127, 2047, 4095] {
                step.set(&gpu, pos as u32, 1);
                let us = gpu_time_us(&gpu, &decode, reps);
                let bytes = (pos + 1) * kvh * hd * 2 * if cache.is_f16() { 2 } else { 4 };
                eprintln!(
                    "decode wg={dwg} chunks={nc:3} ctx {:5}: {us:7.1} µs/layer ({:.0} GB/s of K+V; f16={})",
                    pos + 1,
                    bytes as f64 / us / 1e3,
                    cache.is_f16()
                );
            }
        }
        for (m, pos) in [(512usize, 0usize), (128, 1920), (64, 0)] {
            let scratch = AttentionScratch::new(&gpu, nh, kvh, hd, max_len)
                .unwrap()
                .with_workgroups(dwg, pwg);
            let p = record(m, 1, &scratch);
            step.set(&gpu, pos as u32, m as u32);
            let us = gpu_time_us(&gpu, &p, reps);
            // Causal QKᵀ and PV: 4·hd flops per (row, head, visible position).
            let visible: usize = (0..m).map(|i| pos + i + 1).sum();
            let gflops = (4 * hd * nh * visible) as f64 / us / 1e3;
            eprintln!(
                "prefill wg={pwg} m={m:3} pos={pos:4}: {us:7.1} µs/layer ({gflops:.0} GFLOP/s)"
            );
        }
    }
}

/// Packed encoder batches: sequences of 1..130 tokens back to back, so workgroups of 64 rows span
/// several sequences and sequences span several workgroups; GQA and MHA; vector and scalar loads.
#[test]
fn packed_sequences_attend_only_within_their_own() {
    let gpu = gpu();
    for (nh, kvh, hd) in [(4, 4, 32), (4, 2, 34), (12, 12, 32)] {
        let lens = [5usize, 70, 1, 130, 2, 64];
        let mut ranges = Vec::new();
        let mut start = 0;
        for &l in &lens {
            ranges.extend(std::iter::repeat_n((start, start + l), l));
            start += l;
        }
        let m = ranges.len();
        let row = (nh + 2 * kvh) * hd;
        let x = random(40 + hd as u64, m * row, 3.0);
        let qkv = Tensor::from_slice(&gpu, "qkv", &[m, row], &x).unwrap();
        // Two extra rows beyond the batch: they must stay untouched (n_tokens = m).
        let out = Tensor::from_slice(
            &gpu,
            "out",
            &[m + 2, nh * hd],
            &vec![7.0; (m + 2) * nh * hd],
        )
        .unwrap();
        let flat: Vec<u32> = ranges
            .iter()
            .flat_map(|&(s, e)| [s as u32, e as u32])
            .collect();
        let rt = Tensor::from_slice(&gpu, "ranges", &[m, 2], &flat).unwrap();
        let step = Step::new(&gpu);
        step.set(&gpu, 0, m as u32);
        let d = block(attention_packed(
            &gpu, &qkv, m, nh, kvh, hd, &rt, &step, &out,
        ))
        .unwrap();
        let mut p = Program::new();
        p.push(d);
        gpu.submit(&p);
        let got = block(out.read(&gpu)).unwrap();
        let want = attention_packed_ref(&x, &ranges, nh, kvh, hd);
        assert_close(
            &format!("packed nh {nh} kvh {kvh} hd {hd}"),
            &got[..m * nh * hd],
            &want,
            ATOL,
            RTOL,
        );
        assert!(got[m * nh * hd..].iter().all(|&v| v == 7.0));
        // The mask matters: attending across sequence boundaries would give other values.
        let whole = attention_packed_ref(&x, &vec![(0, m); m], nh, kvh, hd);
        assert!(whole.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-2));
    }
}
