// Causal grouped-query attention over the KV cache.
//   out[m, h] = softmax(q[m, h] · K[0..=pos+m]ᵀ / sqrt(HD)) · V[0..=pos+m],  K/V of kv head h / G.
// Two passes, chosen by the PASS define (each declares its own bindings 0, 1, 2…):
//   decode  — one row (m_rows == 1), flash-decoding in one dispatch (attention_decode.wgsl):
//             workgroup (block of GB q heads, chunk c) walks its slice of the positions in tiles of
//             one score per invocation; the last workgroup of a head block merges the chunks'
//             partials. With ROPE it also rotates q and the new key and stores the new key and value;
//   prefill — several rows: flash attention, one query row (m, h) per invocation, K/V tiles of BC
//             positions in workgroup memory shared by the G heads and WG/G tokens of the workgroup.
// The position (step.pos) is read at run time; workgroup counts never depend on it. Rows
// m >= step.n_tokens are skipped. Positions are clamped to MAXLEN, so nothing is read out of bounds.
// Defines: PASS, NH (q heads), KVH (kv heads), HD (head dim, even ≤ 256), MAXLEN (cache positions),
// SCALE (1/sqrt(HD)), F16 (cache element type), VEC4 (HD % 4 == 0: vector cache loads),
// WG (workgroup size); decode: GB (q heads per workgroup, ≤ 4), NC (chunks), CMIN, ROPE (rotate and
// store this row; STYLE as in rope.wgsl: adjacent pairs (2i, 2i+1), half pairs (i, i + HD/2));
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
#include attention_decode
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
