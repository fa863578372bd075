// Causal grouped-query attention over the KV cache.
//   out[m, h] = softmax(q[m, h] · K[0..=pos+m]ᵀ / sqrt(HD)) · V[0..=pos+m],  K/V of kv head h / G.
// Two passes, chosen by the PASS define (each declares its own bindings 0, 1, 2…):
//   decode  — one row (m_rows == 1), flash-decoding in one dispatch: workgroup (block of GB q heads,
//             chunk c) walks its slice of the positions in rounds of one coalesced K and V load per
//             invocation. With one chunk in use it writes out directly; otherwise it writes a partial
//             (max, Σexp, Σexp·v) and the last workgroup of the head block to finish (an atomic
//             counter) merges the partials into out — split-K with a last-block fixup, so the merge
//             costs no second dispatch (decode steps are bound by dispatch latency, not by work).
//             With ROPE it also does rope.wgsl's work, for the same reason: q and the new k are
//             rotated as they are read from qkv (left as is), and one workgroup per kv head stores
//             the new k and v in the cache for later steps;
//   prefill — several rows: flash attention, one query row (m, h) per invocation, K/V tiles of BC
//             positions in workgroup memory shared by the G heads and WG/G tokens of the workgroup.
// The position (step.pos) is read at run time; workgroup counts never depend on it. Rows
// m >= step.n_tokens are skipped. Positions are clamped to MAXLEN, so nothing is read out of bounds.
// Defines: PASS, NH (q heads), KVH (kv heads), HD (head dim, even ≤ 256), MAXLEN (cache positions),
// SCALE (1/sqrt(HD)), F16 (cache element type), VEC4 (HD % 4 == 0: vector cache loads),
// WG (workgroup size); decode: GB (q heads per workgroup, ≤ 4), NC (chunks), ROPE (rotate and store
// this row; STYLE as in rope.wgsl: adjacent pairs (2i, 2i+1), half pairs (i, i + HD/2));
// prefill: BC (positions per K/V tile), MASK (causal: the KV cache, positions ≤ step.pos + m;
// seqs: the encoder's packed batch — no cache, K/V are read from the qkv rows themselves (bound
// again as k_cache / v_cache) and token m attends, in both directions, to the tokens of its own
// sequence, ranges[m] = [start, end): several sequences share a dispatch with no padding).

#if F16
enable f16;
alias KV = f16;
#else
alias KV = f32;
#endif

struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

const G: u32 = NH / KVH;
// qkv row: NH q heads, then KVH k heads, then KVH v heads
const ROW: u32 = (NH + 2u * KVH) * HD;
// head_dim in vec4s (the last one zero-padded when HD % 4 == 2)
const HD4: u32 = (HD + 3u) / 4u;
// "minus infinity" that stays finite through subtraction
const NEG: f32 = -3.0e38;

#if VEC4
alias F4 = vec4<f32>;
alias KV4 = vec4<KV>;
#else
alias F4 = f32; // scalar access
alias KV4 = KV;
#endif
// qkv: [m_rows, ROW] f32 (as F4) — q of row m, head h at element m·ROW + h·HD
@group(0) @binding(0) var<storage, read> qkv: array<F4>;
// k_cache, v_cache: [MAXLEN, KVH, HD] KV (as KV4); with ROPE, this row's rotated key and its
// value are also stored at position step.pos
#if ROPE
@group(0) @binding(1) var<storage, read_write> k_cache: array<KV4>;
@group(0) @binding(2) var<storage, read_write> v_cache: array<KV4>;
#else
@group(0) @binding(1) var<storage, read> k_cache: array<KV4>;
@group(0) @binding(2) var<storage, read> v_cache: array<KV4>;
#endif
// step: uniform — pos of row 0, n_tokens valid rows
@group(0) @binding(3) var<uniform> step: Step;

// Dims 4·d4 .. 4·d4+3 of the head vector starting at element `base` (a multiple of 4 with VEC4) of
// the cache (cache row `row` = position · KVH + kv head starts at row · HD), zero past HD.
fn load_k_at(base: u32, d4: u32) -> vec4<f32> {
#if VEC4
    return vec4<f32>(k_cache[base / 4u + d4]);
#else
    // HD is even: dims 4·d4 and 4·d4+1 always exist, 4·d4+2 and +3 exist together. All four are
    // loaded (clamped to the buffer) so that the loads issue together.
    let b = base + d4 * 4u;
    let e = arrayLength(&k_cache) - 1u;
    let x = vec4<f32>(f32(k_cache[b]), f32(k_cache[b + 1u]), f32(k_cache[min(b + 2u, e)]), f32(k_cache[min(b + 3u, e)]));
    return select(vec4<f32>(x.xy, 0.0, 0.0), x, d4 * 4u + 2u < HD);
#endif
}

fn load_v_at(base: u32, d4: u32) -> vec4<f32> {
#if VEC4
    return vec4<f32>(v_cache[base / 4u + d4]);
#else
    let b = base + d4 * 4u;
    let e = arrayLength(&v_cache) - 1u;
    let x = vec4<f32>(f32(v_cache[b]), f32(v_cache[b + 1u]), f32(v_cache[min(b + 2u, e)]), f32(v_cache[min(b + 3u, e)]));
    return select(vec4<f32>(x.xy, 0.0, 0.0), x, d4 * 4u + 2u < HD);
#endif
}

// Dims 4·d4 .. 4·d4+3 of the head vector at qkv element `base` (a multiple of HD), zero past HD.
fn load_qkv(base: u32, d4: u32) -> vec4<f32> {
#if VEC4
    return qkv[base / 4u + d4];
#else
    let b = base + d4 * 4u;
    let e = arrayLength(&qkv) - 1u;
    let x = vec4<f32>(qkv[b], qkv[b + 1u], qkv[min(b + 2u, e)], qkv[min(b + 3u, e)]);
    return select(vec4<f32>(x.xy, 0.0, 0.0), x, d4 * 4u + 2u < HD);
#endif
}

// Dims 4·d4 .. 4·d4+3 of q head h of row m, scaled by 1/sqrt(HD), zero past HD.
fn load_q(m: u32, h: u32, d4: u32) -> vec4<f32> {
    return load_qkv(m * ROW + h * HD, d4) * SCALE;
}

// Rows the qkv buffer holds.
fn qkv_rows() -> u32 {
#if VEC4
    return arrayLength(&qkv) * 4u / ROW;
#else
    return arrayLength(&qkv) / ROW;
#endif
}

// Dims 4·d4 .. 4·d4+3 of the output head vector starting at element o (the last two only when
// HD has them). Both passes bind an `out`.
fn store_out(o: u32, d4: u32, a: vec4<f32>) {
    let i = o + d4 * 4u;
    out[i] = a.x;
    out[i + 1u] = a.y;
    if (d4 * 4u + 2u < HD) {
        out[i + 2u] = a.z;
        out[i + 3u] = a.w;
    }
}

#if PASS == decode
// Decode invocation (r, d4) = (t / HD4, t % HD4) holds dims 4·d4..4·d4+3 of position lane r; a round
// covers PR positions with one K and one V load per invocation (all in flight at once).
const PR: u32 = WG / HD4;

// Positions per chunk for a context of `len` (≥ 1): chunks follow the length so that every one has
// work at long context; at least one full round, so short contexts use few workgroups.
fn chunk_size(len: u32) -> u32 {
    return max((len + NC - 1u) / NC, PR);
}

// part_acc: [NH, NC, HD4] vec4<f32> — Σ exp(s - max)·v over each chunk
@group(0) @binding(4) var<storage, read_write> part_acc: array<vec4<f32>>;
// part_ml: [NH, NC] vec2<f32> — (max score, Σ exp(s - max)) of each chunk
@group(0) @binding(5) var<storage, read_write> part_ml: array<vec2<f32>>;
// out: [1, NH·HD] f32
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// done: [NH / GB] u32 — per head block, the workgroups that have written their partial this step;
// the last one resets it to 0 for the next layer and step (it starts at 0: the buffer is zeroed)
@group(0) @binding(7) var<storage, read_write> done: array<atomic<u32>>;

// q of the GB heads [GB, HD4], pre-scaled
var<workgroup> qs: array<vec4<f32>, GB * HD4>;
// partial dot products of the round [GB, WG]
var<workgroup> part: array<f32, GB * WG>;
// scores of the round [GB, PR]; at the end, Σexp per lane
var<workgroup> sc: array<f32, GB * PR>;
// max score of the round per head
var<workgroup> round_max: array<f32, GB>;
// the lanes' Σexp·v of one head [PR, HD4], summed at the end
var<workgroup> lanes: array<vec4<f32>, PR * HD4>;
// whether this workgroup is the last of its head block to finish
var<workgroup> is_last: bool;

// The merge of the partials: invocation task (g, cg, d4) folds chunks cg, cg + FCG, … of head g
// (dims d4), then one task per (g, d4) folds the FCG results. FCG spreads the chunks over the
// invocations that GB·HD4 leaves idle.
const FCG: u32 = max(WG / (GB * HD4), 1u);
const FT: u32 = GB * FCG * HD4;
var<workgroup> fold_acc: array<vec4<f32>, FT>;
var<workgroup> fold_ml: array<vec2<f32>, FT>;

// Online-softmax merge of (max, Σexp) `ml` and Σexp·v `acc` with a partial (x, p).
fn fold(ml: ptr<function, vec2<f32>>, acc: ptr<function, vec4<f32>>, x: vec2<f32>, p: vec4<f32>) {
    let m = max((*ml).x, x.x);
    let a = exp((*ml).x - m);
    let b = exp(x.x - m);
    *acc = *acc * a + p * b;
    *ml = vec2<f32>(m, (*ml).y * a + x.y * b);
}

// Run by the last workgroup of head block h0 / GB: merges the `used` partials of its GB heads into out.
fn merge_partials(h0: u32, used: u32, t: u32) {
    for (var i = t; i < FT; i += WG) {
        let g = i / (FCG * HD4);
        let cg = i / HD4 % FCG;
        let d4 = i % HD4;
        let base = (h0 + g) * NC;
        var ml = vec2<f32>(NEG, 0.0);
        var acc = vec4<f32>(0.0);
        // Four chunks' loads in flight before any is folded (the partials sit in L2; a fold per
        // load would wait on each). A missing chunk folds as (NEG, 0): no change.
        for (var c = cg; c < used; c += 4u * FCG) {
            var x: array<vec2<f32>, 4>;
            var p: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                let cj = c + j * FCG;
                let slot = base + min(cj, used - 1u);
                x[j] = select(vec2<f32>(NEG, 0.0), part_ml[slot], cj < used);
                p[j] = select(vec4<f32>(0.0), part_acc[slot * HD4 + d4], cj < used);
            }
            for (var j = 0u; j < 4u; j++) {
                fold(&ml, &acc, x[j], p[j]);
            }
        }
        fold_ml[i] = ml;
        fold_acc[i] = acc;
    }
    workgroupBarrier();
    for (var i = t; i < GB * HD4; i += WG) {
        let g = i / HD4;
        let d4 = i % HD4;
        var ml = vec2<f32>(NEG, 0.0);
        var acc = vec4<f32>(0.0);
        for (var cg = 0u; cg < FCG; cg++) {
            let j = (g * FCG + cg) * HD4 + d4;
            fold(&ml, &acc, fold_ml[j], fold_acc[j]);
        }
        store_out((h0 + g) * HD, d4, acc / ml.y);
    }
}

#if ROPE
// inv_freq: [HD/2] f32 — rotation frequency of pair i (as rope.wgsl)
@group(0) @binding(8) var<storage, read> inv_freq: array<f32>;

#include rope_angle

fn qkv_at(e: u32) -> f32 {
#if VEC4
    return qkv[e / 4u][e % 4u];
#else
    return qkv[e];
#endif
}

// Dims 4·d4 .. 4·d4+3 of the head vector at qkv element `base`, rotated to position pos as
// rope.wgsl rotates it, zero past HD.
fn rope4(base: u32, d4: u32, pos: u32) -> vec4<f32> {
    var y = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let e = d4 * 4u + j;
        if (e < HD) {
#if STYLE == adjacent
            let i = e / 2u;
            let first = (e & 1u) == 0u; // of its pair
            let partner = e ^ 1u;
#else
            let i = e % (HD / 2u);
            let first = e < HD / 2u;
            let partner = select(e - HD / 2u, e + HD / 2u, first);
#endif
            let a = reduce_angle(f32(pos) * inv_freq[i]);
            let x = qkv_at(base + e);
            let xp = qkv_at(base + partner);
            // (x0, x1) → (x0·cos − x1·sin, x0·sin + x1·cos)
            y[j] = select(xp * sin(a) + x * cos(a), x * cos(a) - xp * sin(a), first);
        }
    }
    return y;
}

// Stores dims 4·d4 .. of a key and a value at cache row `row` (= position · KVH + kv head).
fn store_kv(row: u32, d4: u32, k: vec4<f32>, v: vec4<f32>) {
#if VEC4
    k_cache[row * HD4 + d4] = KV4(k);
    v_cache[row * HD4 + d4] = KV4(v);
#else
    for (var j = 0u; j < 4u; j++) {
        if (d4 * 4u + j < HD) {
            k_cache[row * HD + d4 * 4u + j] = KV(k[j]);
            v_cache[row * HD + d4 * 4u + j] = KV(v[j]);
        }
    }
#endif
}

// Dims d4 of this row's rotated key and its value for kv head kvh (from qkv).
fn new_kv(kvh: u32, d4: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(rope4((NH + kvh) * HD, d4, step.pos), load_qkv((NH + KVH + kvh) * HD, d4));
}
#endif

// Dims d4 of position p's key and value for kv head kvh, or zeros when not `ok`.
fn load_kv(ok: bool, p: u32, kvh: u32, d4: u32) -> array<vec4<f32>, 2> {
    if (!ok) {
        return array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    }
#if ROPE
    if (p == step.pos) {
        // This row's own key and value: this dispatch stores them, so they come from qkv.
        return new_kv(kvh, d4);
    }
#endif
    let b = (p * KVH + kvh) * HD;
    return array<vec4<f32>, 2>(load_k_at(b, d4), load_v_at(b, d4));
}

@compute @workgroup_size(WG)
fn decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    if (step.n_tokens == 0u) {
        return;
    }
    let h0 = wid.x * GB;
    let kvh = h0 / G;
    let c = wid.y;
    let len = min(step.pos + 1u, MAXLEN);
    let c0 = c * chunk_size(len);
    let c1 = min(c0 + chunk_size(len), len);
    if (c0 >= c1) {
        // Past the current length: not counted, not merged.
        return;
    }
    // Chunks in use this step (each non-empty); the same in every workgroup.
    let used = (len + chunk_size(len) - 1u) / chunk_size(len);
    let r = t / HD4;
    let d4 = t % HD4;
    let lane = r < PR;

#if ROPE
    // One workgroup per kv head stores this row's key and value for later steps: the chunk holding
    // step.pos, first head block of the group (nothing past the cache).
    if (c + 1u == used && h0 % G == 0u && step.pos < MAXLEN && t < HD4) {
        let kv = new_kv(kvh, t);
        store_kv(step.pos * KVH + kvh, t, kv[0], kv[1]);
    }
#endif
    // One load per invocation for q (GB·HD4 ≤ WG), and the first round's K/V, all in flight together.
    for (var i = t; i < GB * HD4; i += WG) {
#if ROPE
        qs[i] = rope4((h0 + i / HD4) * HD, i % HD4, step.pos) * SCALE;
#else
        qs[i] = load_q(0u, h0 + i / HD4, i % HD4);
#endif
    }
    var kv = load_kv(lane && c0 + r < c1, c0 + r, kvh, d4);
    workgroupBarrier();
    var q: array<vec4<f32>, GB>;
    for (var g = 0u; g < GB; g++) {
        q[g] = qs[g * HD4 + d4];
    }

    // Online softmax across rounds; the running max is the same in every invocation.
    var mx: array<f32, GB>;
    var l: array<f32, GB>;
    var acc: array<vec4<f32>, GB>;
    for (var g = 0u; g < GB; g++) {
        mx[g] = NEG;
    }
    for (var r0 = c0; r0 < c1; r0 += PR) {
        let p = r0 + r;
        let ok = lane && p < c1;
        // The next round's loads go out now and land while this round reduces.
        let next = load_kv(lane && p + PR < c1, p + PR, kvh, d4);
        for (var g = 0u; g < GB; g++) {
            part[g * WG + t] = dot(q[g], kv[0]);
        }
        workgroupBarrier();
        // Score (g, rr) = Σ over the HD4 invocations of lane rr.
        for (var i = t; i < GB * PR; i += WG) {
            let g = i / PR;
            let rr = i % PR;
            var s = 0.0;
            for (var j = 0u; j < HD4; j++) {
                s += part[g * WG + rr * HD4 + j];
            }
            sc[i] = select(NEG, s, r0 + rr < c1);
        }
        workgroupBarrier();
        if (t < GB) {
            var m = NEG;
            for (var rr = 0u; rr < PR; rr++) {
                m = max(m, sc[t * PR + rr]);
            }
            round_max[t] = m;
        }
        workgroupBarrier();
        // (The next round's first barrier orders these reads before sc and round_max are rewritten.)
        if (lane) {
            for (var g = 0u; g < GB; g++) {
                let m_new = max(mx[g], round_max[g]);
                let alpha = exp(mx[g] - m_new);
                let w = select(0.0, exp(sc[g * PR + r] - m_new), ok);
                acc[g] = acc[g] * alpha + w * kv[1];
                l[g] = l[g] * alpha + w;
                mx[g] = m_new;
            }
        }
        kv = next;
    }

    // Sum the lanes, one head at a time: the head's output when this is the only chunk in use,
    // else this chunk's partial.
    for (var g = 0u; g < GB; g++) {
        workgroupBarrier();
        if (lane) {
            lanes[t] = acc[g];
            if (d4 == 0u) {
                sc[r] = l[g];
            }
        }
        workgroupBarrier();
        let slot = (h0 + g) * NC + c;
        if (t < HD4) {
            var a = vec4<f32>(0.0);
            var total = 0.0;
            for (var rr = 0u; rr < PR; rr++) {
                a += lanes[rr * HD4 + t];
                total += sc[rr];
            }
            if (used == 1u) {
                store_out((h0 + g) * HD, t, a / total);
            } else {
                part_acc[slot * HD4 + t] = a;
                if (t == 0u) {
                    part_ml[slot] = vec2<f32>(mx[g], total);
                }
            }
        }
    }
    if (used == 1u) {
        return;
    }
    // The device-scope barrier (naga: OpControlBarrier with Device memory scope and
    // acquire-release semantics on storage) orders this workgroup's partials before its count;
    // the last workgroup's barrier after reading the count orders its loads after everyone's
    // partials. Nothing spins on another workgroup, so no forward-progress guarantee is needed.
    storageBarrier();
    if (t == 0u) {
        is_last = atomicAdd(&done[wid.x], 1u) == used - 1u;
        if (is_last) {
            atomicStore(&done[wid.x], 0u);
        }
    }
    if (workgroupUniformLoad(&is_last)) {
        storageBarrier();
        merge_partials(h0, used, t);
    }
}
#endif

#if PASS == prefill
// out: [m_rows, NH·HD] f32
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#if MASK == seqs
// ranges: [m_rows] vec2<u32> — token m sees tokens ranges[m].x .. ranges[m].y (its sequence)
@group(0) @binding(5) var<storage, read> ranges: array<vec2<u32>>;
#endif

// One tile of BC positions (BC % 4 == 0) of keys and values, as f32 [BC, HD4].
var<workgroup> ks: array<vec4<f32>, BC * HD4>;
var<workgroup> vs: array<vec4<f32>, BC * HD4>;

// Element i of the tile starting at j0 for kv head kvh: [key, value], zero past kv_end.
fn tile_kv(i: u32, j0: u32, kv_end: u32, kvh: u32) -> array<vec4<f32>, 2> {
    let j = j0 + i / HD4;
    if (i >= BC * HD4 || j >= kv_end) {
        return array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    }
#if MASK == seqs
    // Token j's k head kvh follows the NH q heads of its qkv row; its v head follows the KVH k heads.
    let kb = j * ROW + (NH + kvh) * HD;
    return array<vec4<f32>, 2>(load_k_at(kb, i % HD4), load_v_at(kb + KVH * HD, i % HD4));
#else
    let row = j * KVH + kvh;
    return array<vec4<f32>, 2>(load_k_at(row * HD, i % HD4), load_v_at(row * HD, i % HD4));
#endif
}

fn tile_store(i: u32, kv: array<vec4<f32>, 2>) {
    if (i < BC * HD4) {
        ks[i] = kv[0];
        vs[i] = kv[1];
    }
}

// Workgroup (x, kv head): query rows r = x·WG + t of that kv head, row r = token r / G, q head
// kv·G + r % G; so the G heads of a token and WG/G consecutive tokens share each K/V tile.
@compute @workgroup_size(WG)
fn prefill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    // The batch size is not a define (one pipeline for every prompt chunk): rows are bounded by the
    // buffers and by step.n_tokens.
    let rows = min(min(qkv_rows(), arrayLength(&out) / (NH * HD)), step.n_tokens);
    let first_m = wid.x * WG / G;
    if (first_m >= rows) {
        return;
    }
    let kvh = wid.y;
    let r = wid.x * WG + t;
    let m = r / G;
    let h = kvh * G + r % G;
    let live = m < rows;
    // Positions this workgroup reads: up to its last valid token's (causal), within the cache.
    let last_m = min((wid.x * WG + WG - 1u) / G, rows - 1u);
#if MASK == seqs
    // The workgroup's tokens may span a few sequences: walk from the first one's start to the last
    // one's end (within the buffer), masking per row.
    let kv_begin = ranges[first_m].x;
    let kv_end = min(ranges[last_m].y, rows);
    // This row attends to positions lo .. lim.
    var lo = 0u;
    var lim = 0u;
    if (live) {
        lo = ranges[m].x;
        lim = min(ranges[m].y, kv_end);
    }
#else
    let kv_begin = 0u;
    let kv_end = min(step.pos + last_m + 1u, MAXLEN);
    // This row attends to positions lo .. lim.
    let lo = 0u;
    let lim = min(step.pos + m + 1u, kv_end);
#endif

    var q: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    if (live) {
        // Four loads in flight at a time.
        for (var d4 = 0u; d4 < HD4; d4 += 4u) {
            let a = load_q(m, h, d4);
            let b = load_q(m, h, min(d4 + 1u, HD4 - 1u));
            let c = load_q(m, h, min(d4 + 2u, HD4 - 1u));
            let d = load_q(m, h, min(d4 + 3u, HD4 - 1u));
            q[d4] = a;
            if (d4 + 1u < HD4) {
                q[d4 + 1u] = b;
            }
            if (d4 + 2u < HD4) {
                q[d4 + 2u] = c;
            }
            if (d4 + 3u < HD4) {
                q[d4 + 3u] = d;
            }
        }
    }
    var mx = NEG;
    var l = 0.0;

    for (var j0 = kv_begin; j0 < kv_end; j0 += BC) {
        // Four independent loads per invocation before any store, so they are in flight together.
        for (var i = t; i < BC * HD4; i += 4u * WG) {
            let a = tile_kv(i, j0, kv_end, kvh);
            let b = tile_kv(i + WG, j0, kv_end, kvh);
            let c = tile_kv(i + 2u * WG, j0, kv_end, kvh);
            let d = tile_kv(i + 3u * WG, j0, kv_end, kvh);
            tile_store(i, a);
            tile_store(i + WG, b);
            tile_store(i + 2u * WG, c);
            tile_store(i + 3u * WG, d);
        }
        workgroupBarrier();
        if (live && j0 < lim && j0 + BC > lo) {
            // Online softmax: scores of the tile four positions at a time (independent sums), one
            // rescale of acc per tile.
            var s: array<vec4<f32>, BC / 4u>;
            var tile_max = NEG;
            for (var j = 0u; j < BC; j += 4u) {
                var x = vec4<f32>(0.0);
                for (var d4 = 0u; d4 < HD4; d4++) {
                    let qd = q[d4];
                    let b = j * HD4 + d4;
                    x += vec4<f32>(
                        dot(qd, ks[b]),
                        dot(qd, ks[b + HD4]),
                        dot(qd, ks[b + 2u * HD4]),
                        dot(qd, ks[b + 3u * HD4]),
                    );
                }
                let jv = vec4<u32>(j0 + j) + vec4<u32>(0u, 1u, 2u, 3u);
                let seen = (jv >= vec4<u32>(lo)) & (jv < vec4<u32>(lim));
                x = select(vec4<f32>(NEG), x, seen);
                s[j / 4u] = x;
                tile_max = max(tile_max, max(max(x.x, x.y), max(x.z, x.w)));
            }
            let new_max = max(mx, tile_max);
            let alpha = exp(mx - new_max);
            l *= alpha;
            for (var d4 = 0u; d4 < HD4; d4++) {
                acc[d4] *= alpha;
            }
            for (var j = 0u; j < BC; j += 4u) {
                let jv = vec4<u32>(j0 + j) + vec4<u32>(0u, 1u, 2u, 3u);
                let seen = (jv >= vec4<u32>(lo)) & (jv < vec4<u32>(lim));
                let p = select(vec4<f32>(0.0), exp(s[j / 4u] - new_max), seen);
                l += p.x + p.y + p.z + p.w;
                for (var d4 = 0u; d4 < HD4; d4++) {
                    let b = j * HD4 + d4;
                    acc[d4] += p.x * vs[b] + p.y * vs[b + HD4] + p.z * vs[b + 2u * HD4]
                        + p.w * vs[b + 3u * HD4];
                }
            }
            mx = new_max;
        }
        workgroupBarrier();
    }

    if (live) {
        for (var d4 = 0u; d4 < HD4; d4++) {
            store_out(m * NH * HD + h * HD, d4, acc[d4] / l);
        }
    }
}
#endif
