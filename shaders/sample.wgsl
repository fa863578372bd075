// GPU-side sampling of the next token (semantics, modes and the exact CPU mirror: sample.rs).
// repetition penalty → greedy argmax, or radix-select top-k → (sorted) top-p → temperature softmax →
// a draw with a counter-based uniform of (seed, position). Integer keys order the logits, so every
// comparison and tie-break is exact and deterministic.
// Defines: V (vocabulary), PLAN (greedy | draw | select: the passes sample.rs records for the
// params' mode), DIGIT (`histogram` only: the radix digit counted, 1 or 2).
// Passes: `first` (every plan), `histogram` 1 and 2 (select), `tally` (draw, select). A plan's last
// pass ends with a last-block fixup: the workgroup that finishes last (an atomic counter) does the
// one-workgroup tail — the argmax or the draw — in the same dispatch, since a decode step is bound by
// dispatch latency, not by this work. Every entry binds the same buffers (touch()).

const WG: u32 = 256u; // workgroup size = KMAX, the candidate cap of sorted mode
const ITEMS: u32 = 4u; // consecutive logits per invocation in the wide passes
const CH: u32 = WG * ITEMS; // logits per workgroup of a wide pass (a chunk)
const NWG: u32 = (V + CH - 1u) / CH; // chunks; V <= CH * CH, so per-chunk values fit in sf
const BIG: f32 = 1e30; // logits are clamped to ±BIG: WGSL promises neither infinities nor NaN
const GREEDY: u32 = 0u;
const SORTED: u32 = 1u; // top_p < 1: ≤ KMAX candidates sorted on one workgroup
const INDEX: u32 = 2u; // top_p = 1: survivors drawn in id order, no sort, no cap
const NONE: u32 = 0xffffffffu;
// Radix select over the 32-bit keys in three digits of 11 bits (the last overlaps the second by
// one bit, which the prefix already fixes): one pass per digit, three instead of four bytes.
const RB: u32 = 11u;
const NB: u32 = 2048u; // buckets per digit
const BPI: u32 = NB / WG; // buckets per invocation when scanning a histogram
const DIGITS: u32 = 3u;
// atom layout: [DIGITS][NB] histograms (zero between samples: the fixup of `tally` clears them),
// the fixups' completion counter, the candidate counter (both left at 0 by their last user).
const O_DONE: u32 = DIGITS * NB;
const O_NCAND: u32 = O_DONE + 1u;
// scr layout (u32 words; f32 stored as bits). sample.rs sizes it as 5 * NWG + 2 * DIGITS + WG.
const O_PART: u32 = 0u; // [NWG][2] per chunk: max key, its lowest id
const O_SEL: u32 = 2u * NWG; // [DIGITS][2] radix state before digit d: key prefix, keys to take
const O_EQ: u32 = O_SEL + 2u * DIGITS; // [NWG] keys equal to the threshold per chunk
const O_MASS: u32 = O_EQ + NWG; // [NWG] f32 Σ exp(w - max) per chunk (top-p denominator, top_k = 0)
const O_WMASS: u32 = O_MASS + NWG; // [NWG] f32 Σ draw weights of the keys above the threshold
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
// work: [V] f32 — sanitised, penalised logits (not written by the greedy plan)
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
// atom: [DIGITS * NB + 2] u32 — histograms, counters (layout above)
@group(0) @binding(5) var<storage, read_write> atom: array<atomic<u32>>;
// scr: [5 * NWG + 2 * DIGITS + WG] u32 — partials, radix state, candidates (layout above)
@group(0) @binding(6) var<storage, read_write> scr: array<u32>;

var<workgroup> sc: array<u32, WG>; // scans
var<workgroup> ski: array<vec2<u32>, WG>; // (key, id) pairs (argmax, sort); chunks with kept ties
var<workgroup> sf: array<f32, CH + WG>; // weights: per chunk, of the candidates, of a chunk
var<workgroup> su: array<u32, CH>; // per chunk: the threshold ties in earlier chunks
var<workgroup> lh: array<atomic<u32>, NB>; // local histogram
var<workgroup> pbits: array<atomic<u32>, CH / 32u>; // the chunk's ids to penalise
var<workgroup> sel: vec2<u32>;
var<workgroup> chunk: u32; // the chunk of the draw
var<workgroup> rest: f32; // the draw's target, relative to the chunk; or the top-p denominator
var<workgroup> chosen: u32;
var<workgroup> is_last: bool;
var<workgroup> n_chunks: atomic<u32>; // chunks holding kept ties
var<workgroup> n_list: u32;

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
        return min(select(WG, min(params.top_k, WG), params.top_k != 0u), V);
    }
    return select(0u, params.top_k, m == INDEX && params.top_k < V); // top_k = 0: none
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

// (key, id) a ranks before b: larger key, then lower id.
fn better(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x > b.x || (a.x == b.x && a.y < b.y);
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

// Workgroup argmax of (key, id) pairs (every invocation must call).
fn argmax_wg(t: u32, b: vec2<u32>) -> vec2<u32> {
    ski[t] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (t < s && better(ski[t + s], ski[t])) {
            ski[t] = ski[t + s];
        }
        workgroupBarrier();
    }
    let r = ski[0];
    workgroupBarrier();
    return r;
}

// Global (max key, its lowest id) from the chunk partials.
fn global_max(t: u32) -> vec2<u32> {
    var b = vec2(0u, NONE);
    for (var w = t; w < NWG; w += WG) {
        let p = vec2(scr[O_PART + 2u * w], scr[O_PART + 2u * w + 1u]);
        if (better(p, b)) {
            b = p;
        }
    }
    return argmax_wg(t, b);
}

// The value whose key is k (inverse of key_of).
fn value_of(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k >> 31u) == 1u));
}

// Lowest bit of digit d: 21, 10, 0 (the digit is the NB - 1 mask above it).
fn shift(d: u32) -> u32 {
    return select(32u - RB * (d + 1u), 0u, d + 1u == DIGITS);
}

// Radix-select step: from the state before digit d and digit d's histogram, the state after it
// (prefix with digit d, keys still to take). Every workgroup computes the same integers;
// workgroup 0 stores them for the next pass.
fn advance(d: u32, t: u32, w: u32) -> vec2<u32> {
    var prefix = 0u;
    var want = select_k();
    if (d > 0u) {
        prefix = scr[O_SEL + 2u * d];
        want = scr[O_SEL + 2u * d + 1u];
    }
    // Invocation t holds the BPI buckets below NB - BPI·t: the scan runs from the top bucket down.
    var c: array<u32, BPI>;
    var n = 0u;
    for (var j = 0u; j < BPI; j++) {
        c[j] = atomicLoad(&atom[d * NB + NB - 1u - (t * BPI + j)]);
        n += c[j];
    }
    var run = scan_incl(t, n) - n; // keys in higher buckets
    for (var j = 0u; j < BPI; j++) {
        if (run < want && want <= run + c[j]) {
            sel = vec2(prefix | ((NB - 1u - (t * BPI + j)) << shift(d)), want - run);
        }
        run += c[j];
    }
    let s = workgroupUniformLoad(&sel);
    if (w == 0u && t == 0u && d + 1u < DIGITS) {
        scr[O_SEL + 2u * d + 2u] = s.x;
        scr[O_SEL + 2u * d + 3u] = s.y;
    }
    return s;
}

// Adds this workgroup's keys (matching the prefix) to digit d's histogram.
fn count_digit(t: u32, base: u32, keys: array<u32, ITEMS>, d: u32, prefix: u32) {
    for (var b = t; b < NB; b += WG) {
        atomicStore(&lh[b], 0u);
    }
    workgroupBarrier();
    for (var j = 0u; j < ITEMS; j++) {
        // Keys sharing the digits above d (none above digit 0).
        if (base + j < V && (d == 0u || (keys[j] >> shift(d - 1u)) == (prefix >> shift(d - 1u)))) {
            atomicAdd(&lh[(keys[j] >> shift(d)) & (NB - 1u)], 1u);
        }
    }
    workgroupBarrier();
    for (var b = t; b < NB; b += WG) {
        let c = atomicLoad(&lh[b]);
        if (c != 0u) {
            atomicAdd(&atom[d * NB + b], c);
        }
    }
}

// This invocation's keys equal to the threshold.
fn count_ties(base: u32, thr: u32) -> u32 {
    var n = 0u;
    for (var j = 0u; j < ITEMS; j++) {
        n += u32(base + j < V && key_of(work[min(base + j, V - 1u)]) == thr);
    }
    return n;
}

// Stores Σ v over the workgroup at scr[at] as f32 bits, summed in invocation order.
fn store_sum(t: u32, v: f32, at: u32) {
    sf[CH + t] = v;
    workgroupBarrier();
    if (t == 0u) {
        scr[at] = bitcast<u32>(sum_sf(CH, WG));
    }
}

// Bit j: item j of invocation t in chunk c survives the top-k cut (above the threshold, or one of
// the thr.y lowest-id ties; su[c] of them lie in earlier chunks). Every invocation must call.
fn survivors(c: u32, t: u32, thr: vec2<u32>) -> u32 {
    let base = c * CH + t * ITEMS;
    let eq = count_ties(base, thr.x);
    var r = su[c] + scan_incl(t, eq) - eq;
    var keep = 0u;
    for (var j = 0u; j < ITEMS; j++) {
        let key = key_of(work[min(base + j, V - 1u)]);
        var k = key > thr.x;
        if (key == thr.x) {
            k = r < thr.y;
            r++;
        }
        keep |= u32(k && base + j < V) << j;
    }
    return keep;
}

// Draw weights of invocation t's items of chunk c into sf (0 for tokens cut by top-k); returns
// their sum.
fn chunk_weights(c: u32, t: u32, thr: vec2<u32>, mx: f32) -> f32 {
    let keep = survivors(c, t, thr);
    var sum = 0.0;
    for (var j = 0u; j < ITEMS; j++) {
        let v = work[min(c * CH + t * ITEMS + j, V - 1u)];
        let e = select(0.0, weight((v - mx) * params.inv_temp), ((keep >> j) & 1u) != 0u);
        sf[t * ITEMS + j] = e;
        sum += e;
    }
    return sum;
}

#include sample_draw

// The last-block handshake (every invocation must call): true, in every invocation, in the last of
// the NWG workgroups to get here. storageBarrier() is, in naga's SPIR-V, a device-scope
// acquire-release barrier on storage: the first orders this workgroup's writes before its count, the
// second the last workgroup's reads after everyone's writes. Nothing waits on another workgroup, so
// no forward-progress guarantee is needed. The counter is left at 0 for the next pass.
fn last_block(t: u32) -> bool {
    storageBarrier();
    if (t == 0u) {
        is_last = atomicAdd(&atom[O_DONE], 1u) == NWG - 1u;
        if (is_last) {
            atomicStore(&atom[O_DONE], 0u);
        }
    }
    let last = workgroupUniformLoad(&is_last);
    storageBarrier();
    return last;
}

// Writes the sample to tokens[step.pos + step.n_tokens] (nothing past the end of the history).
fn emit(t: u32, id: u32) {
    let pos = step.pos + step.n_tokens;
    if (t == 0u && pos < arrayLength(&tokens)) {
        tokens[pos] = id;
    }
}

// Sanitise (and penalise) the chunk's logits into work, record its argmax, count radix digit 0;
// the greedy plan's last workgroup writes the argmax.
@compute @workgroup_size(WG)
fn first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    let w = wid.x;
    let c0 = w * CH;
    let base = c0 + t * ITEMS;
    // The repetition penalty as a bitmap of the chunk's ids among the last last_n history tokens,
    // so each distinct token is penalised once.
    if (t < CH / 32u) {
        atomicStore(&pbits[t], 0u);
    }
    workgroupBarrier();
    let pen = params.penalty != 1.0 && params.last_n != 0u;
    if (pen) {
        let len = min(step.pos + step.n_tokens, arrayLength(&tokens));
        let n = min(params.last_n, len);
        for (var j = t; j < n; j += WG) {
            let id = tokens[len - n + j];
            if (id >= c0 && id < min(c0 + CH, V)) {
                atomicOr(&pbits[(id - c0) / 32u], 1u << (id % 32u));
            }
        }
    }
    workgroupBarrier();
    var keys: array<u32, ITEMS>;
    var b = vec2(0u, NONE);
    for (var j = 0u; j < ITEMS; j++) {
        let i = base + j;
        if (i < V) {
            var x = sanitize(logits[i]);
            if (pen && (atomicLoad(&pbits[(i - c0) / 32u]) & (1u << (i % 32u))) != 0u) {
                x = sanitize(select(x * params.penalty, x * params.inv_penalty, x > 0.0));
            }
#if PLAN != greedy
            work[i] = x;
#endif
            keys[j] = key_of(x);
            if (better(vec2(keys[j], i), b)) {
                b = vec2(keys[j], i);
            }
        }
    }
    let r = argmax_wg(t, b);
    if (t == 0u) {
        scr[O_PART + 2u * w] = r.x;
        scr[O_PART + 2u * w + 1u] = r.y;
    }
#if PLAN == select
    count_digit(t, base, keys, 0u, 0u);
#endif
#if PLAN == greedy
    if (last_block(t)) {
        emit(t, global_max(t).y);
    }
#endif
}

// Digit DIGIT of the radix select: count the keys matching the prefix found so far.
@compute @workgroup_size(WG)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    let base = wid.x * CH + t * ITEMS;
    let prefix = advance(DIGIT - 1u, t, wid.x).x;
    var keys: array<u32, ITEMS>;
    for (var j = 0u; j < ITEMS; j++) {
        keys[j] = key_of(work[min(base + j, V - 1u)]);
    }
    count_digit(t, base, keys, DIGIT, prefix);
}

// Finish the select (the threshold key and how many keys equal to it are kept, lowest ids first);
// per chunk, count the ties and sum the weights the draw needs. SORTED: the ids above the threshold
// go to the candidate list. The last workgroup to finish draws.
@compute @workgroup_size(WG)
fn tally(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    touch();
    let w = wid.x;
#if PLAN == select
    let thr = advance(DIGITS - 1u, t, w);
#else
    let thr = vec2(0u, NONE); // every key is above 0
#endif
    let best = global_max(t).y;
    let mx = work[best];
    let base = w * CH + t * ITEMS;
    let ties = scan_incl(t, count_ties(base, thr.x));
    if (t == WG - 1u) {
        scr[O_EQ + w] = ties;
    }
    // SORTED: Σ exp(w - max), the top-p denominator when top_k = 0. INDEX: Σ of the draw weights
    // of the keys above the threshold; the ties are added by the draw (their ranks need every
    // chunk's count).
    let sorted = mode() == SORTED;
    var sum = 0.0;
    for (var j = 0u; j < ITEMS; j++) {
        let i = base + j;
        if (i < V) {
            let v = work[i];
            let above = key_of(v) > thr.x;
            if (sorted) {
                sum += weight(v - mx);
                if (above) {
                    // At most KMAX - 1 keys lie above the threshold; their order is the sort's.
                    scr[O_CAND + min(atomicAdd(&atom[O_NCAND], 1u), WG - 1u)] = i;
                }
            } else if (above) {
                sum += weight((v - mx) * params.inv_temp);
            }
        }
    }
    store_sum(t, sum, select(O_WMASS, O_MASS, sorted) + w);
    if (!last_block(t)) {
        return;
    }
#if PLAN == select
    // Leave the histograms at zero for the next sample (the candidate counter: below).
    for (var b = t; b < DIGITS * NB; b += WG) {
        atomicStore(&atom[b], 0u);
    }
#endif
    tie_ranks(t);
    if (t == 0u) {
        chosen = best;
    }
    let pos = step.pos + step.n_tokens;
    if (mode() == SORTED) {
        collect_ties(t, thr);
        draw_sorted(t, mx, pos);
    } else {
        draw_index(t, thr, mx, pos);
    }
    emit(t, workgroupUniformLoad(&chosen));
    if (t == 0u) {
        atomicStore(&atom[O_NCAND], 0u);
    }
}
