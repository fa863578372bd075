// GPU-side sampling of the next token (semantics, modes and the exact CPU mirror: sample.rs).
// repetition penalty → greedy argmax, or radix-select top-k → (sorted) top-p → temperature softmax →
// a draw with a counter-based uniform of (seed, position). Integer keys order the logits, so every
// comparison and tie-break is exact and deterministic.
// Defines: V (vocabulary), DIGIT (`histogram` only: the key byte counted, 0 = most significant).
// Every entry binds the same buffers (touch()); entries of an inactive mode return at once.

const WG: u32 = 256u; // workgroup size = radix buckets = KMAX, the candidate cap of sorted mode
const ITEMS: u32 = 4u; // consecutive logits per invocation in the wide passes
const CH: u32 = WG * ITEMS; // logits per workgroup of a wide pass (a chunk)
const NWG: u32 = (V + CH - 1u) / CH; // chunks; V <= CH * CH, so per-chunk values fit in sf
const BIG: f32 = 1e30; // logits are clamped to ±BIG: WGSL promises neither infinities nor NaN
const GREEDY: u32 = 0u;
const SORTED: u32 = 1u; // top_p < 1: ≤ KMAX candidates sorted on one workgroup
const INDEX: u32 = 2u; // top_p = 1: survivors drawn in id order, no sort, no cap
const NONE: u32 = 0xffffffffu;
// atom layout: [4][WG] radix histograms, then the penalty's seen-bitmap [ceil(V / 32)].
const O_BITMAP: u32 = 4u * WG;
const BITMAP_WORDS: u32 = (V + 31u) / 32u;
// scr layout (u32 words; f32 stored as bits). sample.rs sizes it as 6 * NWG + 10 + WG.
const O_PART: u32 = 0u; // [NWG][2] per chunk: max key, its lowest id
const O_SEL: u32 = 2u * NWG; // [5][2] radix state before digit d: key prefix, keys still to take;
// slot 4 = the threshold key and how many keys equal to it are kept (lowest ids first)
const O_GT: u32 = O_SEL + 10u; // [NWG] keys above the threshold per chunk
const O_EQ: u32 = O_GT + NWG; // [NWG] keys equal to it per chunk
const O_MASS: u32 = O_EQ + NWG; // [NWG] f32 Σ exp(w - max) per chunk (top-p denominator, top_k = 0)
const O_WMASS: u32 = O_MASS + NWG; // [NWG] f32 Σ draw weights of the survivors per chunk (INDEX)
const O_CAND: u32 = O_WMASS + NWG; // [WG] candidate ids (SORTED)

struct Params {
    temperature: f32, // <= 0: greedy
    inv_temp: f32, // 1 / temperature (host-computed, so GPU and CPU multiply by the same bits)
    top_k: u32, // 0 = off
    top_p: f32, // >= 1 = off
    penalty: f32, // repetition penalty (1 = off): multiplies logits <= 0
    inv_penalty: f32, // 1 / penalty: multiplies logits > 0
    last_n: u32, // penalise the last last_n history tokens
    seed_lo: u32,
    seed_hi: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

// params: uniform — sampling parameters (Sampler::set_params rewrites it)
@group(0) @binding(0) var<uniform> params: Params;
// step: uniform — the history is tokens[0 .. step.pos + step.n_tokens)
@group(0) @binding(1) var<uniform> step: Step;
// logits: [V] f32 — the last position's logits
@group(0) @binding(2) var<storage, read> logits: array<f32>;
// tokens: [max_ctx] u32 — the token history; the sample is written to tokens[step.pos + step.n_tokens]
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;
// work: [V] f32 — sanitised, penalised logits
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
// atom: [4 * WG + ceil(V / 32)] u32 — histograms, bitmap (layout above)
@group(0) @binding(5) var<storage, read_write> atom: array<atomic<u32>>;
// scr: [6 * NWG + 10 + WG] u32 — partials, radix state, candidates (layout above)
@group(0) @binding(6) var<storage, read_write> scr: array<u32>;

var<workgroup> sc: array<u32, WG>; // scans
var<workgroup> sk: array<u32, WG>; // keys (argmax, sort)
var<workgroup> si: array<u32, WG>; // ids (argmax, sort)
var<workgroup> sf: array<f32, CH>; // weights of a chunk / of the candidates
var<workgroup> sg: array<f32, WG>; // per-invocation weight sums
var<workgroup> lh: array<atomic<u32>, WG>; // local histogram
var<workgroup> sel: vec2<u32>;
var<workgroup> chunk: u32; // the chunk of the draw
var<workgroup> rest: f32; // the draw's target, relative to the chunk; or the top-p denominator
var<workgroup> chosen: u32;

// Auto-derived layouts drop unused bindings; every entry binds all seven, so use all seven.
fn touch() {
    _ = &params;
    _ = &step;
    _ = &logits;
    _ = &tokens;
    _ = &work;
    _ = &atom;
    _ = &scr;
}

fn mode() -> u32 {
    if (!(params.temperature > 0.0)) {
        return GREEDY;
    }
    if (params.top_p < 1.0) {
        return SORTED;
    }
    return INDEX;
}

// How many of the largest keys the radix search selects (0: none, every token survives).
fn select_k() -> u32 {
    let m = mode();
    if (m == SORTED) {
        var k = WG;
        if (params.top_k != 0u) {
            k = min(params.top_k, WG);
        }
        return min(k, V);
    }
    if (m == INDEX && params.top_k != 0u && params.top_k < V) {
        return params.top_k;
    }
    return 0u;
}

// NaN → -BIG, ±inf → ±BIG, -0 → +0 (so key order is value order), clamp to ±BIG.
fn sanitize(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u || b == 0xff800000u) {
        return -BIG; // NaN, -inf
    }
    if (b == 0x7f800000u) {
        return BIG;
    }
    if (b == 0x80000000u) {
        return 0.0;
    }
    return clamp(x, -BIG, BIG);
}

// Order-preserving map of a float onto u32 (larger value, larger key; every sanitised key > 0).
fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

// exp, with exactly 0 far below the maximum (e^-80 is far below an f32 ulp of any sum).
fn weight(x: f32) -> f32 {
    if (x < -80.0) {
        return 0.0;
    }
    return exp(x);
}

// (k, i) ranks before (bk, bi): larger key, then lower id.
fn better(k: u32, i: u32, bk: u32, bi: u32) -> bool {
    return k > bk || (k == bk && i < bi);
}

// PCG hash; sample.rs implements the same.
fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// Uniform in [0, 1) from (seed, position), 24 bits.
fn uniform01(pos: u32) -> f32 {
    let h = pcg(params.seed_lo ^ pcg(params.seed_hi ^ pcg(pos)));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

// Inclusive prefix sum of v over invocations 0..=t (every invocation must call).
fn scan_incl(t: u32, v: u32) -> u32 {
    sc[t] = v;
    workgroupBarrier();
    for (var s = 1u; s < WG; s = s << 1u) {
        var x = sc[t];
        if (t >= s) {
            x += sc[t - s];
        }
        workgroupBarrier();
        sc[t] = x;
        workgroupBarrier();
    }
    let r = sc[t];
    workgroupBarrier();
    return r;
}

// Σ v over the workgroup, to every invocation.
fn sum_u32(t: u32, v: u32) -> u32 {
    _ = scan_incl(t, v);
    let total = sc[WG - 1u];
    workgroupBarrier();
    return total;
}

// Workgroup argmax of (key, id) pairs (every invocation must call).
fn argmax_wg(t: u32, k: u32, i: u32) -> vec2<u32> {
    sk[t] = k;
    si[t] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (t < s && better(sk[t + s], si[t + s], sk[t], si[t])) {
            sk[t] = sk[t + s];
            si[t] = si[t + s];
        }
        workgroupBarrier();
    }
    let r = vec2(sk[0], si[0]);
    workgroupBarrier();
    return r;
}

// Global (max key, its lowest id) from the chunk partials.
fn global_max(t: u32) -> vec2<u32> {
    var bk = 0u;
    var bi = NONE;
    for (var w = t; w < NWG; w += WG) {
        let k = scr[O_PART + 2u * w];
        let i = scr[O_PART + 2u * w + 1u];
        if (better(k, i, bk, bi)) {
            bk = k;
            bi = i;
        }
    }
    return argmax_wg(t, bk, bi);
}

fn in_prefix(key: u32, prefix: u32, d: u32) -> bool {
    if (d == 0u) {
        return true;
    }
    let s = 32u - 8u * d;
    return (key >> s) == (prefix >> s);
}

// Radix-select step: from the state before digit d (slot d) and digit d's histogram, the state
// after it. Every workgroup computes the same integers; workgroup 0 stores them in slot d + 1.
fn advance(d: u32, t: u32, w: u32) -> vec2<u32> {
    let prefix = scr[O_SEL + 2u * d];
    let want = scr[O_SEL + 2u * d + 1u];
    let b = WG - 1u - t; // invocation t looks at bucket b: the scan runs from the top bucket down
    let c = atomicLoad(&atom[d * WG + b]);
    let incl = scan_incl(t, c); // keys in buckets >= b
    if (incl - c < want && want <= incl) {
        sel = vec2(prefix | (b << (24u - 8u * d)), want - (incl - c));
    }
    let s = workgroupUniformLoad(&sel);
    if (w == 0u && t == 0u) {
        scr[O_SEL + 2u * d + 2u] = s.x;
        scr[O_SEL + 2u * d + 3u] = s.y;
    }
    return s;
}

// The threshold (key, ties kept) of the selection; (0, all) when nothing is selected.
fn threshold() -> vec2<u32> {
    if (select_k() == 0u) {
        return vec2(0u, NONE);
    }
    return vec2(scr[O_SEL + 8u], scr[O_SEL + 9u]);
}

// This invocation's keys above / equal to the threshold, packed gt | eq << 16 (a chunk holds ≤ CH).
fn count_items(base: u32, thr: u32) -> u32 {
    var n = 0u;
    for (var j = 0u; j < ITEMS; j++) {
        if (base + j < V) {
            let k = key_of(work[base + j]);
            n += u32(k > thr) | (u32(k == thr) << 16u);
        }
    }
    return n;
}

// Stores Σ v over the workgroup at scr[at] as f32 bits, summed in invocation order.
fn store_sum(t: u32, v: f32, at: u32) {
    sg[t] = v;
    workgroupBarrier();
    if (t == 0u) {
        var s = 0.0;
        for (var u = 0u; u < WG; u++) {
            s += sg[u];
        }
        scr[at] = bitcast<u32>(s);
    }
}

// Draw weights of invocation t's items of chunk w into sf (0 for tokens cut by top-k); returns
// their sum. Ties at the threshold survive in id order until the kept count is used up.
fn chunk_weights(w: u32, t: u32, thr: vec2<u32>, eq_before: u32, mx: f32) -> f32 {
    let base = w * CH + t * ITEMS;
    let eq = count_items(base, thr.x) >> 16u;
    var r = eq_before + scan_incl(t, eq) - eq;
    var sum = 0.0;
    for (var j = 0u; j < ITEMS; j++) {
        let i = base + j;
        var e = 0.0;
        if (i < V) {
            let v = work[i];
            let key = key_of(v);
            var keep = key > thr.x;
            if (key == thr.x) {
                keep = r < thr.y;
                r++;
            }
            if (keep) {
                e = weight((v - mx) * params.inv_temp);
            }
        }
        sf[t * ITEMS + j] = e;
        sum += e;
    }
    return sum;
}

// work = sanitise(logits); clear histograms and bitmap; radix state 0 = (no prefix, k to take).
@compute @workgroup_size(WG)
fn init(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch();
    let i = gid.x;
    if (i < V) {
        work[i] = sanitize(logits[i]);
    }
    if (i < O_BITMAP + BITMAP_WORDS) {
        atomicStore(&atom[i], 0u);
    }
    if (i == 0u) {
        scr[O_SEL] = 0u;
        scr[O_SEL + 1u] = select_k();
    }
}

// Repetition penalty over the last last_n history tokens, each distinct token once (the bitmap
// lets exactly one invocation claim a token). One workgroup.
@compute @workgroup_size(WG)
fn penalize(@builtin(local_invocation_index) t: u32) {
    touch();
    if (params.penalty == 1.0 || params.last_n == 0u) {
        return;
    }
    let len = min(step.pos + step.n_tokens, arrayLength(&tokens));
    let n = min(params.last_n, len);
    for (var j = t; j < n; j += WG) {
        let id = tokens[len - n + j];
        if (id < V) {
            let bit = 1u << (id & 31u);
            let old = atomicOr(&atom[O_BITMAP + id / 32u], bit);
            if ((old & bit) == 0u) {
                let l = sanitize(logits[id]);
                work[id] = sanitize(select(l * params.penalty, l * params.inv_penalty, l > 0.0));
            }
        }
    }
}

// Digit DIGIT of the radix select: count the keys matching the prefix found so far, by their next
// byte. DIGIT 0 also records each chunk's argmax (every mode needs the maximum).
@compute @workgroup_size(WG)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    let w = wid.x;
    let base = w * CH + t * ITEMS;
#if DIGIT == 0
    var bk = 0u;
    var bi = NONE;
    for (var j = 0u; j < ITEMS; j++) {
        let i = base + j;
        if (i < V) {
            let k = key_of(work[i]);
            if (better(k, i, bk, bi)) {
                bk = k;
                bi = i;
            }
        }
    }
    let r = argmax_wg(t, bk, bi);
    if (t == 0u) {
        scr[O_PART + 2u * w] = r.x;
        scr[O_PART + 2u * w + 1u] = r.y;
    }
#endif
    if (select_k() == 0u) {
        return;
    }
#if DIGIT == 0
    let prefix = 0u;
#else
    let prefix = advance(DIGIT - 1u, t, w).x;
#endif
    atomicStore(&lh[t], 0u);
    workgroupBarrier();
    for (var j = 0u; j < ITEMS; j++) {
        let i = base + j;
        if (i < V) {
            let k = key_of(work[i]);
            if (in_prefix(k, prefix, DIGIT)) {
                atomicAdd(&lh[(k >> (24u - 8u * DIGIT)) & 255u], 1u);
            }
        }
    }
    workgroupBarrier();
    let c = atomicLoad(&lh[t]);
    if (c != 0u) {
        atomicAdd(&atom[DIGIT * WG + t], c);
    }
}

// Finish the select (threshold in slot 4); per chunk, count keys above / at the threshold and, for
// top-p without top-k, the softmax mass Σ exp(w - max).
@compute @workgroup_size(WG)
fn tally(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    if (mode() == GREEDY) {
        return;
    }
    let w = wid.x;
    var thr = vec2(0u, NONE);
    if (select_k() != 0u) {
        thr = advance(3u, t, w);
    }
    let base = w * CH + t * ITEMS;
    let both = scan_incl(t, count_items(base, thr.x));
    if (t == WG - 1u) {
        scr[O_GT + w] = both & 0xffffu;
        scr[O_EQ + w] = both >> 16u;
    }
    if (mode() == SORTED && params.top_k == 0u) {
        let mx = work[global_max(t).y];
        var mass = 0.0;
        for (var j = 0u; j < ITEMS; j++) {
            if (base + j < V) {
                mass += weight(work[base + j] - mx);
            }
        }
        store_sum(t, mass, O_MASS + w);
    }
}

// SORTED: write the selected ids to the candidate list (above-threshold ones, then the kept ties,
// each in id order). INDEX: each chunk's total draw weight.
@compute @workgroup_size(WG)
fn compact(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    let md = mode();
    if (md == GREEDY) {
        return;
    }
    let w = wid.x;
    let thr = threshold();
    // Keys above / at the threshold in earlier chunks (loaded in parallel: a serial walk over
    // global memory costs tens of microseconds).
    var gb = 0u;
    var eb = 0u;
    for (var u = t; u < w; u += WG) {
        gb += scr[O_GT + u];
        eb += scr[O_EQ + u];
    }
    let before = vec2(sum_u32(t, gb), sum_u32(t, eb));
    let base = w * CH + t * ITEMS;
    if (md == SORTED) {
        let mine = count_items(base, thr.x);
        let excl = scan_incl(t, mine) - mine; // the pair of counts, exclusive
        var rg = before.x + (excl & 0xffffu);
        var re = before.y + (excl >> 16u);
        let n_gt = select_k() - thr.y;
        for (var j = 0u; j < ITEMS; j++) {
            let i = base + j;
            if (i < V) {
                let k = key_of(work[i]);
                if (k > thr.x) {
                    scr[O_CAND + min(rg, WG - 1u)] = i;
                    rg++;
                } else if (k == thr.x) {
                    if (re < thr.y) {
                        scr[O_CAND + min(n_gt + re, WG - 1u)] = i;
                    }
                    re++;
                }
            }
        }
    } else {
        let mx = work[global_max(t).y];
        store_sum(t, chunk_weights(w, t, thr, before.y, mx), O_WMASS + w);
    }
}

// SORTED: sort the ≤ KMAX candidates (key desc, id asc), cut at top-p mass, draw in that order.
fn draw_sorted(t: u32, mx: f32, pos: u32) {
    let k = select_k();
    var key = 0u;
    var id = NONE;
    if (t < k) {
        id = scr[O_CAND + t];
        key = key_of(work[id]);
    }
    sk[t] = key;
    si[t] = id;
    // Bitonic sort; the comparator is a total order (ids are unique), so the result is unique.
    for (var size = 2u; size <= WG; size = size << 1u) {
        for (var stride = size >> 1u; stride > 0u; stride = stride >> 1u) {
            workgroupBarrier();
            let p = t ^ stride;
            if (p > t) {
                let first = (t & size) == 0u; // this block ends up best-first
                if (better(sk[p], si[p], sk[t], si[t]) == first) {
                    let tk = sk[t];
                    let ti = si[t];
                    sk[t] = sk[p];
                    si[t] = si[p];
                    sk[p] = tk;
                    si[p] = ti;
                }
            }
        }
    }
    // Top-p over the whole vocabulary: its mass, summed over the chunks in order.
    if (params.top_k == 0u) {
        for (var w = t; w < NWG; w += WG) {
            sf[w] = bitcast<f32>(scr[O_MASS + w]);
        }
        workgroupBarrier();
        if (t == 0u) {
            var z = 0.0;
            for (var w = 0u; w < NWG; w++) {
                z += sf[w];
            }
            rest = z;
        }
    }
    workgroupBarrier();
    sf[t] = 0.0;
    sf[WG + t] = 0.0;
    if (t < k) {
        let v = work[si[t]];
        sf[t] = weight(v - mx); // softmax at temperature 1, for top-p
        sf[WG + t] = weight((v - mx) * params.inv_temp); // the draw's weights
    }
    workgroupBarrier();
    if (t == 0u) {
        var z1 = rest;
        if (params.top_k != 0u) {
            z1 = 0.0;
            for (var u = 0u; u < k; u++) {
                z1 += sf[u];
            }
        }
        let pz = params.top_p * z1;
        var n = k;
        var cum = 0.0;
        for (var u = 0u; u < k; u++) {
            cum += sf[u];
            if (cum >= pz) {
                n = u + 1u;
                break;
            }
        }
        var z2 = 0.0;
        for (var u = 0u; u < n; u++) {
            z2 += sf[WG + u];
        }
        let goal = uniform01(pos) * z2;
        var pick = 0u;
        var c = 0.0;
        for (var u = 0u; u < n; u++) {
            let e = sf[WG + u];
            if (e > 0.0) {
                pick = u;
                c += e;
                if (c > goal) {
                    break;
                }
            }
        }
        chosen = si[pick];
    }
}

// INDEX: pick the chunk, then the invocation, then the item whose cumulative weight passes the target.
fn draw_index(t: u32, mx: f32, pos: u32, fallback: u32) {
    let thr = threshold();
    for (var w = t; w < NWG; w += WG) {
        sf[w] = bitcast<f32>(scr[O_WMASS + w]);
    }
    workgroupBarrier();
    if (t == 0u) {
        var z = 0.0;
        for (var w = 0u; w < NWG; w++) {
            z += sf[w];
        }
        let goal = uniform01(pos) * z;
        var cum = 0.0;
        var cw = NONE;
        var last = 0u;
        for (var w = 0u; w < NWG; w++) {
            let m = sf[w];
            if (m > 0.0) {
                last = w;
                if (cum + m > goal) {
                    cw = w;
                    break;
                }
            }
            cum += m;
        }
        rest = goal - cum;
        if (cw == NONE) {
            cw = last;
            rest = BIG;
        }
        chunk = cw;
    }
    let cw = workgroupUniformLoad(&chunk);
    var eq = 0u; // ties at the threshold before the chosen chunk
    for (var w = t; w < cw; w += WG) {
        eq += scr[O_EQ + w];
    }
    let eq_before = sum_u32(t, eq);
    sg[t] = chunk_weights(cw, t, thr, eq_before, mx);
    workgroupBarrier();
    if (t == 0u) {
        var cum = 0.0;
        var tu = NONE;
        var last = NONE;
        for (var u = 0u; u < WG; u++) {
            let s = sg[u];
            if (s > 0.0) {
                last = u;
                if (cum + s > rest) {
                    tu = u;
                    break;
                }
            }
            cum += s;
        }
        var r2 = rest - cum;
        if (tu == NONE) {
            tu = last;
            r2 = BIG;
        }
        chosen = fallback;
        if (tu != NONE) {
            var e_cum = 0.0;
            for (var j = 0u; j < ITEMS; j++) {
                let e = sf[tu * ITEMS + j];
                if (e > 0.0) {
                    chosen = cw * CH + tu * ITEMS + j;
                    e_cum += e;
                    if (e_cum > r2) {
                        break;
                    }
                }
            }
        }
    }
}

// Final pass (one workgroup): greedy argmax or the draw; writes tokens[step.pos + step.n_tokens].
@compute @workgroup_size(WG)
fn choose(@builtin(local_invocation_index) t: u32) {
    touch();
    let m = global_max(t);
    let mx = work[m.y];
    let pos = step.pos + step.n_tokens;
    if (t == 0u) {
        chosen = m.y;
    }
    let md = mode();
    if (md == SORTED) {
        draw_sorted(t, mx, pos);
    } else if (md == INDEX) {
        draw_index(t, mx, pos, m.y);
    }
    let id = workgroupUniformLoad(&chosen);
    if (t == 0u && pos < arrayLength(&tokens)) {
        tokens[pos] = id;
    }
}
