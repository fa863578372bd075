//! Sampling tests: the GPU against the CPU mirror ([`sample_ref`]) and, for frequencies, against an
//! independent f64 statement of the semantics.

use rand::{Rng, SeedableRng};

use super::*;
use crate::{testing::*, GpuOptions, Program};

fn params(temperature: f32, top_k: u32, top_p: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k,
        top_p,
        seed: 0x5eed_0000_0000_0042,
        ..SamplingParams::greedy()
    }
}

/// Runs one draw per history length in `lens` (one Step each, all in one submit) over `history`
/// (the initial token tensor); returns the token tensor afterwards.
fn run(gpu: &Gpu, sampler: &Sampler, logits: &[f32], history: &[u32], lens: &[u32]) -> Vec<u32> {
    let l = Tensor::from_slice(gpu, "logits", &[logits.len()], logits).unwrap();
    let tokens = Tensor::from_slice(gpu, "tokens", &[history.len()], history).unwrap();
    let steps: Vec<Step> = lens
        .iter()
        .map(|&n| {
            let s = Step::new(gpu);
            s.set(gpu, n - 1, 1);
            s
        })
        .collect();
    let mut p = Program::new();
    for s in &steps {
        p.extend(block(sampler.sample(gpu, &l, &tokens, s)).unwrap());
    }
    gpu.submit(&p);
    block(tokens.read(gpu)).unwrap()
}

/// A generation chain: draws at lengths start..start + n, each seeing the earlier draws in its
/// history. Checks every GPU draw against the CPU mirror; a disagreement is accepted only when a
/// uniform within 1e-4 of the drawn one makes the mirror agree (a rounding boundary) — and then the
/// mirror follows the GPU. Returns the draws and the number of boundary cases.
fn chain(gpu: &Gpu, logits: &[f32], p: &SamplingParams, start: u32, n: u32) -> (Vec<u32>, usize) {
    let sampler = Sampler::new(gpu, logits.len(), p).unwrap();
    let mut hist: Vec<u32> = (0..start + n + 1)
        .map(|i| (i * 7919) % logits.len() as u32)
        .collect();
    let lens: Vec<u32> = (start..start + n).collect();
    let got = run(gpu, &sampler, logits, &hist, &lens);
    let norm = p.normalized();
    let mut boundary = 0;
    for &l in &lens {
        let g = got[l as usize];
        let want = sample_ref(logits, &hist[..l as usize], p, l);
        if g != want {
            let u = uniform01(p.seed, l);
            let near = [1e-6f32, 1e-5, 1e-4].iter().any(|d| {
                [u - d, u + d]
                    .iter()
                    .any(|&u2| sample_ref_u(logits, &hist[..l as usize], &norm, u2) == g)
            });
            assert!(
                near,
                "position {l}: GPU drew {g}, CPU {want}, not at a rounding boundary ({p:?})"
            );
            boundary += 1;
        }
        hist[l as usize] = g;
    }
    (lens.iter().map(|&l| got[l as usize]).collect(), boundary)
}

/// `v` logits in [-30, -20] except `hot` random ids at 2 + 0.75·j: the draw has a few well-separated
/// outcomes and a negligible tail.
fn separated(seed: u64, v: usize, hot: usize) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut l: Vec<f32> = (0..v).map(|_| rng.gen_range(-30.0..-20.0)).collect();
    for j in 0..hot {
        let i = rng.gen_range(0..v);
        l[i] = 2.0 + 0.75 * j as f32;
    }
    l
}

fn argmax(l: &[f32]) -> u32 {
    let mut b = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[b] {
            b = i;
        }
    }
    b as u32
}

#[test]
fn uniform01_is_uniform() {
    let n = 20000;
    let us: Vec<f32> = (0..n).map(|i| uniform01(12345, i)).collect();
    assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
    let mean = us.iter().map(|&u| u as f64).sum::<f64>() / n as f64;
    let mut bins = [0usize; 10];
    us.iter().for_each(|&u| bins[(u * 10.0) as usize] += 1);
    assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    assert!(
        bins.iter().all(|&b| (b as f64 - 2000.0).abs() < 5.0 * 42.5),
        "{bins:?}"
    );
    assert_ne!(uniform01(1, 7), uniform01(2, 7));
}

fn check_greedy(gpu: &Gpu, v: usize, seed: u64) {
    let sampler = Sampler::new(gpu, v, &SamplingParams::greedy()).unwrap();
    let mut l = random(seed, v, 8.0);
    // Non-finite values must not win (and must not break the pass).
    l[5] = f32::NAN;
    l[7] = f32::NEG_INFINITY;
    let hist = vec![1u32; 8];
    let got = run(gpu, &sampler, &l, &hist, &[4])[4];
    assert_eq!(
        got,
        argmax(
            &l.iter()
                .map(|x| if x.is_nan() { -1e30 } else { *x })
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(
        got,
        sample_ref(&l, &hist[..4], &SamplingParams::greedy(), 4)
    );
    // A planted tie at the top: the lower id wins, wherever the two sit.
    l[v - 1] = 100.0;
    l[1000] = 100.0;
    assert_eq!(run(gpu, &sampler, &l, &hist, &[4])[4], 1000);
}

#[test]
fn greedy_is_argmax_llama3_and_smollm_vocabs() {
    let gpu = gpu();
    for (v, seed) in [(128256, 1), (128256, 2), (49152, 3), (49152, 4)] {
        check_greedy(&gpu, v, seed);
    }
}

#[test]
fn repetition_penalty_changes_the_argmax_when_it_should() {
    let gpu = gpu();
    let v = 49152;
    let (a, b) = (40000u32, 123u32);
    let pen = SamplingParams {
        repetition_penalty: 1.2,
        penalty_last_n: 4,
        ..SamplingParams::greedy()
    };
    let sampler = Sampler::new(&gpu, v, &pen).unwrap();
    // (logit of a, logit of b, the rest's range, history; expected winner)
    let cases: [(f32, f32, f32, Vec<u32>, u32); 4] = [
        // Positive: 5 / 1.2 = 4.17 < 4.5.
        (5.0, 4.5, 1.0, vec![9, 9, a, 9], b),
        // Negative: -1.0 · 1.2 = -1.2 < -1.1.
        (-1.0, -1.1, -5.0, vec![a, 9, 9, 9], b),
        // Three occurrences penalise once: 5 / 1.2 = 4.17 > 4.0 (three times would give 2.9).
        (5.0, 4.0, 1.0, vec![a, a, 9, a], a),
        // Outside the last 4 tokens: no penalty.
        (5.0, 4.5, 1.0, vec![a, 9, 9, 9, 9], a),
    ];
    for (i, (la, lb, range, hist, want)) in cases.into_iter().enumerate() {
        let mut l: Vec<f32> = random(50 + i as u64, v, 1.0)
            .iter()
            .map(|x| x.abs() * range - 2.0 * range.abs())
            .collect();
        l[a as usize] = la;
        l[b as usize] = lb;
        let n = hist.len() as u32;
        let mut tokens = hist.clone();
        tokens.push(0);
        let got = run(&gpu, &sampler, &l, &tokens, &[n])[n as usize];
        assert_eq!(got, want, "case {i}");
        assert_eq!(sample_ref(&l, &hist, &pen, n), want, "case {i} (reference)");
        assert_eq!(argmax(&l), a, "case {i}: unpenalised, a wins");
    }
}

#[test]
fn top_k_one_is_greedy() {
    let gpu = gpu();
    let l = random(7, 49152, 4.0);
    let hist = vec![0u32; 40];
    for p in [params(0.9, 1, 1.0), params(1.5, 1, 0.5)] {
        let sampler = Sampler::new(&gpu, l.len(), &p).unwrap();
        let lens: Vec<u32> = (8..24).collect();
        let got = run(&gpu, &sampler, &l, &hist, &lens);
        for &n in &lens {
            assert_eq!(got[n as usize], argmax(&l), "{p:?} at {n}");
        }
    }
}

/// The four paths: sorted with top-k, sorted over the whole vocabulary, index without and with a
/// (large, uncapped) top-k; plus a chain with the repetition penalty.
fn draw_param_sets() -> Vec<SamplingParams> {
    vec![
        params(0.8, 40, 0.9),
        params(1.0, 0, 0.95),
        params(1.3, 0, 1.0),
        params(0.7, 300, 1.0),
        SamplingParams {
            repetition_penalty: 1.3,
            penalty_last_n: 16,
            ..params(0.9, 20, 0.97)
        },
    ]
}

fn check_draws(gpu: &Gpu, n: u32) {
    let l = separated(11, 49152, 16);
    for p in draw_param_sets() {
        let (got, boundary) = chain(gpu, &l, &p, 30, n);
        let distinct: HashSet<u32> = got.iter().copied().collect();
        eprintln!(
            "{p:?}: {} draws, {} distinct, {boundary} at a rounding boundary",
            got.len(),
            distinct.len()
        );
        assert!(distinct.len() >= 3, "the draw should vary: {distinct:?}");
        assert!(boundary <= got.len() / 50);
    }
}

#[test]
fn draws_equal_the_reference_with_a_fixed_seed() {
    check_draws(&gpu(), 150);
}

#[test]
fn ties_at_the_top_k_threshold_keep_the_lowest_ids() {
    let gpu = gpu();
    let v = 5000;
    let mut l: Vec<f32> = random(21, v, 0.5).iter().map(|x| x - 5.0).collect();
    l[4000] = 5.0;
    l[17] = 4.0;
    l[2500] = 3.0;
    // Ties across chunk boundaries (1024 logits a chunk): 3 and 1023 are kept, the rest are cut.
    for i in [4999, 1024, 3, 2048, 1023, 3071] {
        l[i] = 2.0;
    }
    let kept: HashSet<u32> = [4000, 17, 2500, 3, 1023].into_iter().collect();
    for p in [params(2.0, 5, 1.0), params(2.0, 5, 0.999)] {
        let (got, _) = chain(&gpu, &l, &p, 10, 300);
        let seen: HashSet<u32> = got.iter().copied().collect();
        assert!(seen.is_subset(&kept), "{p:?}: drew {seen:?}");
        assert!(
            seen.contains(&3) && seen.contains(&1023),
            "{p:?}: drew {seen:?}"
        );
    }
    // Kept ties in three chunks (0, 1 and 2), cut ones in chunks 2 and 4.
    for i in [4999, 1024, 3, 2048, 1023, 3071] {
        l[i] = -5.0;
    }
    for i in [4500, 2900, 1500, 3, 2600] {
        l[i] = 2.0;
    }
    let kept: HashSet<u32> = [4000, 17, 2500, 3, 1500, 2600].into_iter().collect();
    for p in [params(2.0, 6, 1.0), params(2.0, 6, 0.999)] {
        let (got, _) = chain(&gpu, &l, &p, 10, 300);
        let seen: HashSet<u32> = got.iter().copied().collect();
        assert!(seen.is_subset(&kept), "{p:?}: drew {seen:?}");
        assert!(
            [3, 1500, 2600].iter().all(|i| seen.contains(i)),
            "{p:?}: drew {seen:?}"
        );
    }
}

#[test]
fn dispatches_follow_the_plan() {
    let gpu = gpu();
    let l = Tensor::<f32>::zeros(&gpu, "l", &[5000]).unwrap();
    let t = Tensor::<u32>::zeros(&gpu, "t", &[4]).unwrap();
    let step = Step::new(&gpu);
    let mut s = Sampler::new(&gpu, 5000, &SamplingParams::greedy()).unwrap();
    let count = |s: &Sampler| block(s.sample(&gpu, &l, &t, &step)).unwrap().len();
    assert_eq!((s.plan(), count(&s)), (Plan::Greedy, 1));
    for (p, plan, n) in [
        (params(0.8, 0, 1.0), Plan::Draw, 2),
        (params(0.8, 40, 0.95), Plan::Select, 4),
        (params(0.8, 0, 0.9), Plan::Select, 4),
        (params(0.8, 40, 1.0), Plan::Select, 4),
        (params(0.8, 5000, 1.0), Plan::Draw, 2),
        (SamplingParams::greedy(), Plan::Greedy, 1),
    ] {
        let before = s.plan();
        assert_eq!(
            s.set_params(&gpu, &p),
            plan != before,
            "{p:?} after {before:?}"
        );
        assert!(!s.set_params(&gpu, &p), "{p:?}: the same plan");
        assert_eq!((s.plan(), count(&s)), (plan, n), "{p:?}");
    }
}

/// The penalty over a history longer than a workgroup, in every plan.
#[test]
fn penalty_over_a_long_history() {
    let gpu = gpu();
    let l = separated(13, 3000, 12);
    for p in [
        SamplingParams::greedy(),
        params(1.3, 0, 1.0),
        params(0.9, 20, 0.97),
        params(1.1, 100, 1.0),
    ] {
        let p = SamplingParams {
            repetition_penalty: 1.5,
            penalty_last_n: 600,
            ..p
        };
        let (got, boundary) = chain(&gpu, &l, &p, 700, 40);
        assert!(boundary <= 1, "{p:?}");
        if p.temperature > 0.0 {
            assert!(got.iter().collect::<HashSet<_>>().len() >= 3, "{p:?}");
        }
    }
}

/// Independent f64 statement of the semantics: the probability of each id.
fn expected(l: &[f32], p: &SamplingParams) -> Vec<f64> {
    let v = l.len();
    let mut ids: Vec<usize> = (0..v).collect();
    ids.sort_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
    let mut k = if p.top_k == 0 {
        v
    } else {
        (p.top_k as usize).min(v)
    };
    let mx = l[ids[0]] as f64;
    let e1 = |i: usize| (l[i] as f64 - mx).exp();
    let mut n = k;
    if p.top_p < 1.0 {
        let z: f64 = if p.top_k == 0 {
            (0..v).map(e1).sum()
        } else {
            ids[..k].iter().map(|&i| e1(i)).sum()
        };
        k = k.min(KMAX);
        n = k;
        let mut cum = 0.0;
        for (j, &i) in ids[..k].iter().enumerate() {
            cum += e1(i);
            if cum >= p.top_p as f64 * z {
                n = j + 1;
                break;
            }
        }
    }
    let e2 = |i: usize| ((l[i] as f64 - mx) / p.temperature as f64).exp();
    let z2: f64 = ids[..n].iter().map(|&i| e2(i)).sum();
    let mut probs = vec![0.0; v];
    ids[..n].iter().for_each(|&i| probs[i] = e2(i) / z2);
    probs
}

/// Pearson's χ² of `counts` against `probs`, ids with expectation < 5 pooled; returns (χ², df).
fn chi_square(counts: &[usize], probs: &[f64], n: usize) -> (f64, usize) {
    let (mut chi, mut df, mut pool_c, mut pool_e) = (0.0, 0usize, 0.0, 0.0);
    for (&c, &q) in counts.iter().zip(probs) {
        let e = n as f64 * q;
        if e >= 5.0 {
            chi += (c as f64 - e).powi(2) / e;
            df += 1;
        } else {
            pool_c += c as f64;
            pool_e += e;
        }
    }
    if pool_e > 0.0 {
        chi += (pool_c - pool_e).powi(2) / pool_e.max(1.0);
        df += 1;
    }
    (chi, df.saturating_sub(1).max(1))
}

#[test]
fn frequencies_match_the_softmax() {
    let gpu = gpu();
    let n = 2000;
    let flat = random(31, 3000, 3.0);
    // 31 ids 8 above the rest: about 97% of the temperature-1 mass.
    let sharp: Vec<f32> = flat
        .iter()
        .enumerate()
        .map(|(i, &x)| if i % 97 == 0 { x + 8.0 } else { x })
        .collect();
    let cases = [
        // Top-p over the whole vocabulary: its set would exceed 256 here, so the cap applies.
        (&flat, params(0.7, 0, 0.8)),
        // Top-p over the whole vocabulary, a set well under the cap.
        (&sharp, params(0.8, 0, 0.9)),
        (&flat, params(1.2, 50, 1.0)),
        (&sharp, params(1.0, 0, 1.0)),
        (&flat, params(1.5, 30, 0.9)),
    ];
    for (l, p) in cases {
        let sampler = Sampler::new(&gpu, l.len(), &p).unwrap();
        let lens: Vec<u32> = (1..=n).collect();
        let got = run(&gpu, &sampler, l, &vec![0; n as usize + 1], &lens);
        let mut counts = vec![0usize; l.len()];
        lens.iter()
            .for_each(|&i| counts[got[i as usize] as usize] += 1);
        let probs = expected(l, &p);
        for (i, (&c, &q)) in counts.iter().zip(&probs).enumerate() {
            let mean = n as f64 * q;
            let sd = (n as f64 * q * (1.0 - q)).sqrt();
            assert!(
                q > 0.0 || c == 0,
                "{p:?}: id {i} has probability 0 but was drawn {c} times"
            );
            assert!(
                (c as f64 - mean).abs() <= 5.0 * sd + 2.0,
                "{p:?}: id {i} drawn {c} times, expected {mean:.1} ± {sd:.1}"
            );
        }
        let (chi, df) = chi_square(&counts, &probs, n as usize);
        let support = probs.iter().filter(|&&q| q > 0.0).count();
        eprintln!("{p:?}: support {support}, chi² {chi:.1} on {df} df");
        // Far beyond any plausible fluctuation (the χ² sd is sqrt(2 df)), well below a wrong law.
        assert!(
            chi < df as f64 + 6.0 * (2.0 * df as f64).sqrt(),
            "{p:?}: chi² {chi:.1} on {df} df"
        );
    }
}

#[test]
fn works_without_f16_and_subgroups() {
    let gpu = gpu_with(&GpuOptions {
        allow_f16: false,
        allow_subgroups: false,
        ..GpuOptions::from_env()
    });
    assert!(!gpu.features().f16 && !gpu.features().subgroups);
    check_greedy(&gpu, 49152, 9);
    check_draws(&gpu, 40);
}

#[test]
fn set_params_switches_modes_without_a_new_sampler() {
    let gpu = gpu();
    let l = separated(5, 2000, 8);
    let hist = vec![0u32; 64];
    let mut sampler = Sampler::new(&gpu, l.len(), &SamplingParams::greedy()).unwrap();
    let lens: Vec<u32> = (1..60).collect();
    assert!(run(&gpu, &sampler, &l, &hist, &lens)
        .iter()
        .skip(1)
        .take(59)
        .all(|&t| t == argmax(&l)));
    let p = params(3.0, 0, 1.0);
    assert!(sampler.set_params(&gpu, &p), "greedy → draw is a new plan");
    let got = run(&gpu, &sampler, &l, &hist, &lens);
    for &n in &lens {
        assert_eq!(got[n as usize], sample_ref(&l, &got[..n as usize], &p, n));
    }
    assert!(lens.iter().any(|&n| got[n as usize] != argmax(&l)));
}

#[test]
fn rejects_bad_shapes() {
    let gpu = gpu();
    assert!(Sampler::new(&gpu, 0, &SamplingParams::greedy()).is_err());
    assert!(Sampler::new(&gpu, MAX_VOCAB + 1, &SamplingParams::greedy()).is_err());
    let s = Sampler::new(&gpu, 100, &SamplingParams::greedy()).unwrap();
    let l = Tensor::<f32>::zeros(&gpu, "l", &[99]).unwrap();
    let t = Tensor::<u32>::zeros(&gpu, "t", &[4]).unwrap();
    assert!(block(s.sample(&gpu, &l, &t, &Step::new(&gpu))).is_err());
}

/// GPU time per draw at the Llama-3 vocabulary: 200 draws recorded once, submitted and waited on.
/// Meaningless on lavapipe; run with `--ignored` on a real GPU.
#[test]
#[ignore]
fn timing_llama3_vocab() {
    let gpu = gpu();
    eprintln!("{}", gpu.describe());
    let v = 128256;
    let l = Tensor::from_slice(&gpu, "logits", &[v], &random(3, v, 8.0)).unwrap();
    let tokens = Tensor::<u32>::zeros(&gpu, "tokens", &[256]).unwrap();
    let steps: Vec<Step> = (0..200)
        .map(|i| {
            let s = Step::new(&gpu);
            s.set(&gpu, i, 1);
            s
        })
        .collect();
    for p in [
        params(0.0, 0, 1.0),
        params(0.8, 40, 0.95),
        params(0.8, 0, 0.95),
        params(1.0, 0, 1.0),
    ] {
        let sampler = Sampler::new(&gpu, v, &p).unwrap();
        let mut prog = Program::new();
        for s in &steps {
            prog.extend(block(sampler.sample(&gpu, &l, &tokens, s)).unwrap());
        }
        let mut best = f64::MAX;
        for _ in 0..4 {
            let t = std::time::Instant::now();
            gpu.submit(&prog);
            gpu.poll_wait();
            best = best.min(t.elapsed().as_secs_f64());
        }
        eprintln!("{p:?}: {:.1} us per draw", best * 1e6 / steps.len() as f64);
    }
}
