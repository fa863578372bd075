// The decode pass of attention.wgsl (#include attention_decode, under PASS == decode): one row
// (m_rows == 1), flash-decoding in one dispatch. Uses attention.wgsl's bindings 0–3, constants and
// loaders.
//
// Workgroup (head block of GB q heads sharing a kv head, chunk c) walks its chunk of the positions in
// tiles of up to WG positions, with two barriers per tile:
//   scores — invocation t takes position t of the tile and dots its whole key with the GB q heads
//            (q in workgroup memory), so no invocation waits for another's partial dot product;
//   values — invocation (j, g, d4) takes dims 4·d4.. of head g over positions j, j + SUB, … of the
//            tile: its own online softmax (a max over its scores, then Σ exp(s - max)·v with every
//            value load independent of the others).
// The SUB states of each (g, d4) are folded at the end; with one chunk in use (a short context) the
// result goes to out, otherwise into a partial (max, Σexp, Σexp·v), and the last workgroup of the
// head block to finish (an atomic counter) merges the partials the same way — split-K with a
// last-block fixup, so the merge costs no second dispatch (decode steps are bound by dispatch
// latency, not by work). An earlier version stepped 8 positions at a time with four barriers per
// step and folded the partials one dependent load after another: 24 µs per layer at 2,048 positions
// on an H200.
// With ROPE it also does rope.wgsl's work, for the same reason: q and the new key are rotated as they
// are read from qkv (left as is), and one workgroup per kv head stores the new key and value in the
// cache for later steps.
// Defines (beyond attention.wgsl's): GB (q heads per workgroup, ≤ 4), NC (chunks), CMIN (positions
// per chunk at least: a context this short is one chunk, with no merge), WG (≥ GB·HD4), ROPE, STYLE.

// Positions per tile: one score per invocation.
const TP: u32 = WG;
// Value tasks (g, d4) and the position subsets that share each.
const T: u32 = GB * HD4;
const SUB: u32 = WG / T;

// Positions per chunk for a context of `len` (≥ 1): chunks follow the length so that every one has
// work at long context.
fn chunk_size(len: u32) -> u32 {
    return max((len + NC - 1u) / NC, CMIN);
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

// q of the GB heads [GB, HD4], rotated and pre-scaled
var<workgroup> qs: array<vec4<f32>, T>;
// scores of the tile [GB, TP]
var<workgroup> sc: array<f32, GB * TP>;
// the value tasks' states for the fold: Σexp·v [WG], (max, Σexp) [WG]
var<workgroup> fold_acc: array<vec4<f32>, WG>;
var<workgroup> fold_ml: array<vec2<f32>, WG>;
// whether this workgroup is the last of its head block to finish
var<workgroup> is_last: bool;
#if ROPE
// this row's own key (rotated) and value [HD4], from qkv
var<workgroup> own_k: array<vec4<f32>, HD4>;
var<workgroup> own_v: array<vec4<f32>, HD4>;
#endif

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
// rope.wgsl rotates it, zero past HD. With vector access (HD % 4 == 0) every load is issued before
// any waits (a per-element loop, as in the general case, may wait on each in turn).
fn rope4(base: u32, d4: u32, pos: u32) -> vec4<f32> {
    let fp = f32(pos);
#if VEC4
    let x = load_qkv(base, d4);
#if STYLE == adjacent
    // Pairs (x.x, x.y) and (x.z, x.w), frequencies 2·d4 and 2·d4 + 1.
    let f = vec2<f32>(inv_freq[2u * d4], inv_freq[2u * d4 + 1u]);
    let a = vec4<f32>(reduce_angle(fp * f.x), reduce_angle(fp * f.x), reduce_angle(fp * f.y), reduce_angle(fp * f.y));
    // (x0, x1) → (x0·cos − x1·sin, x0·sin + x1·cos)
    return x * cos(a) + vec4<f32>(-x.y, x.x, -x.w, x.z) * sin(a);
#else
    // Dims e pair with e ± HD/2 (HD/2 may not be a multiple of 4: then per element).
    if ((HD / 2u) % 4u == 0u) {
        let first = d4 < HD4 / 2u;
        let xp = load_qkv(base, select(d4 - HD4 / 2u, d4 + HD4 / 2u, first));
        let i = (d4 % (HD4 / 2u)) * 4u;
        let f = vec4<f32>(inv_freq[i], inv_freq[i + 1u], inv_freq[i + 2u], inv_freq[i + 3u]);
        let a = vec4<f32>(reduce_angle(fp * f.x), reduce_angle(fp * f.y), reduce_angle(fp * f.z), reduce_angle(fp * f.w));
        return x * cos(a) + select(xp, -xp, first) * sin(a);
    }
#endif
#endif
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
            let a = reduce_angle(fp * inv_freq[i]);
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
#endif

// Dims d4 of this row's own key and value for kv head kvh (this dispatch stores them, so they come
// from qkv: the key rotated to step.pos).
#if ROPE
fn own_key(kvh: u32, d4: u32) -> vec4<f32> {
    return rope4((NH + kvh) * HD, d4, step.pos);
}
fn own_value(kvh: u32, d4: u32) -> vec4<f32> {
    return load_qkv((NH + KVH + kvh) * HD, d4);
}
#endif

// Online-softmax merge of state (max, Σexp) `ml`, Σexp·v `acc` with another (x, p).
fn fold(ml: ptr<function, vec2<f32>>, acc: ptr<function, vec4<f32>>, x: vec2<f32>, p: vec4<f32>) {
    let m = max((*ml).x, x.x);
    let a = exp((*ml).x - m);
    let b = exp(x.x - m);
    *acc = *acc * a + p * b;
    *ml = vec2<f32>(m, (*ml).y * a + x.y * b);
}

// Folds the SUB value tasks' states of each (g, d4) (invocations t, t + T, …): the result is valid
// in invocations t < T.
fn fold_subsets(t: u32, ml: vec2<f32>, acc: vec4<f32>) -> array<vec4<f32>, 2> {
    fold_ml[t] = ml;
    fold_acc[t] = acc;
    workgroupBarrier();
    var m = vec2<f32>(NEG, 0.0);
    var a = vec4<f32>(0.0);
    if (t < T) {
        for (var j = 0u; j < SUB; j++) {
            fold(&m, &a, fold_ml[j * T + t], fold_acc[j * T + t]);
        }
    }
    return array<vec4<f32>, 2>(a, vec4<f32>(m, 0.0, 0.0));
}

// Run by the last workgroup of head block h0 / GB: merges the `used` partials of its GB heads into
// out. Value task (j, g, d4) takes chunks j, j + SUB, …: first the max over their partials, then the
// rescaled sums, so that no load waits for another.
fn merge_partials(h0: u32, used: u32, t: u32) {
    let j = t / T;
    let g = t % T / HD4;
    let d4 = t % HD4;
    let base = (h0 + g) * NC;
    var mx = NEG;
    if (j < SUB) {
        for (var c = j; c < used; c += SUB) {
            mx = max(mx, part_ml[base + c].x);
        }
    }
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    if (j < SUB) {
        for (var c = j; c < used; c += SUB) {
            let w = exp(part_ml[base + c].x - mx);
            l += w * part_ml[base + c].y;
            acc += w * part_acc[(base + c) * HD4 + d4];
        }
    }
    let r = fold_subsets(t, vec2<f32>(mx, l), acc);
    if (t < T) {
        store_out((h0 + g) * HD, d4, r[0] / r[1].y);
    }
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
    let cs = chunk_size(len);
    let c0 = c * cs;
    let c1 = min(c0 + cs, len);
    if (c0 >= c1) {
        // Past the current length: not counted, not merged.
        return;
    }
    // Chunks in use this step (each non-empty); the same in every workgroup.
    let used = (len + cs - 1u) / cs;

    for (var i = t; i < T; i += WG) {
#if ROPE
        qs[i] = rope4((h0 + i / HD4) * HD, i % HD4, step.pos) * SCALE;
#else
        qs[i] = load_q(0u, h0 + i / HD4, i % HD4);
#endif
    }
#if ROPE
    // This row's key and value, staged once for the tile that holds step.pos; one workgroup per kv
    // head also stores them for later steps: the chunk holding step.pos, first head block of the
    // group (nothing past the cache).
    if (t < HD4) {
        let k = own_key(kvh, t);
        let v = own_value(kvh, t);
        own_k[t] = k;
        own_v[t] = v;
        if (c + 1u == used && h0 % G == 0u && step.pos < MAXLEN) {
            store_kv(step.pos * KVH + kvh, t, k, v);
        }
    }
#endif
    workgroupBarrier();

    // This invocation's value task (invocations past SUB·T only score).
    let j = t / T;
    let g = t % T / HD4;
    let d4 = t % HD4;
    var mx = NEG;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var p0 = c0; p0 < c1; p0 += TP) {
        let n = min(TP, c1 - p0);
        // Scores: position p0 + t against the GB heads (all HD4 key loads in flight together).
        // With ROPE, the row's own position reads a stale cache row, rescored from qkv after the
        // loop: a branch on the position inside it would hold each load until the one before.
        if (t < n) {
            let p = p0 + t;
            let base = (p * KVH + kvh) * HD;
            var s = vec4<f32>(0.0);
            for (var e = 0u; e < HD4; e++) {
                let k = load_k_at(base, e);
                for (var h = 0u; h < GB; h++) {
                    s[h] += dot(qs[h * HD4 + e], k);
                }
            }
#if ROPE
            if (p == step.pos) {
                s = vec4<f32>(0.0);
                for (var e = 0u; e < HD4; e++) {
                    let k = own_k[e];
                    for (var h = 0u; h < GB; h++) {
                        s[h] += dot(qs[h * HD4 + e], k);
                    }
                }
            }
#endif
            for (var h = 0u; h < GB; h++) {
                sc[h * TP + t] = s[h];
            }
        }
        workgroupBarrier();
        // Values: this task's positions of the tile, max first so every value load is independent
        // (the row's own value, with ROPE, is added after the loop for the same reason as above).
        if (j < SUB) {
            var m = mx;
            for (var r = j; r < n; r += SUB) {
                m = max(m, sc[g * TP + r]);
            }
            let a = exp(mx - m);
            acc *= a;
            l *= a;
            for (var r = j; r < n; r += SUB) {
                let p = p0 + r;
                let w = exp(sc[g * TP + r] - m);
                l += w;
                let wv = w * load_v_at((p * KVH + kvh) * HD, d4);
#if ROPE
                // (a select, not a product with 0: the stale row may hold anything)
                acc += select(wv, vec4<f32>(0.0), p == step.pos);
#else
                acc += wv;
#endif
            }
#if ROPE
            let own = step.pos - p0;
            if (step.pos >= p0 && own < n && own % SUB == j) {
                acc += exp(sc[g * TP + own] - m) * own_v[d4];
            }
#endif
            mx = m;
        }
        // The next tile rewrites the scores.
        workgroupBarrier();
    }

    let r = fold_subsets(t, vec2<f32>(mx, l), acc);
    if (t < T) {
        let slot = (h0 + g) * NC + c;
        if (used == 1u) {
            store_out((h0 + g) * HD, d4, r[0] / r[1].y);
        } else {
            part_acc[slot * HD4 + d4] = r[0];
            if (d4 == 0u) {
                part_ml[slot] = r[1].xy;
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
        // (workgroupUniformLoad's barrier also orders the reads of fold_* above before the merge
        // rewrites them.)
        merge_partials(h0, used, t);
    }
}
