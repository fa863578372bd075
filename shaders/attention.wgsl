// Causal grouped-query attention over the KV cache.
//   out[m, h] = softmax(q[m, h] · K[0..=pos+m]ᵀ / sqrt(HD)) · V[0..=pos+m],  K/V of kv head h / G.
// Three passes, chosen by the PASS define (each declares its own bindings 0, 1, 2…):
//   decode  — one row (m_rows == 1), flash-decoding: workgroup (block of GB q heads, chunk c) scores
//             its slice of the positions and writes a partial (max, Σexp, Σexp·v);
//   combine — merges the NC partials of each head into out;
//   prefill — several rows: flash attention, one query row (m, h) per invocation, K/V tiles of BC
//             positions in workgroup memory shared by the G heads and WG/G tokens of the workgroup.
// The position (step.pos) is read at run time; workgroup counts never depend on it. Rows
// m >= step.n_tokens are skipped. Positions are clamped to MAXLEN, so nothing is read out of bounds.
// Defines: PASS, NH (q heads), KVH (kv heads), HD (head dim, even ≤ 256), MAXLEN (cache positions),
// SCALE (1/sqrt(HD)), F16 (cache element type), VEC4 (HD % 4 == 0: vector cache loads),
// WG (workgroup size); decode/combine: GB (q heads per workgroup), NC (chunks), CMAX (largest chunk),
// SUBGROUPS, WEB (emit `enable subgroups;`: browsers need it, naga rejects it); prefill: BC.

#if F16
enable f16;
alias KV = f16;
#else
alias KV = f32;
#endif
#if SUBGROUPS
#if WEB
enable subgroups;
#endif
#endif

struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

const G: u32 = NH / KVH;
// qkv row: NH q heads, then KVH k heads, then KVH v heads
const ROW: u32 = (NH + 2u * KVH) * HD;
// head_dim in vec4s (the last one zero-padded when HD % 4 == 2)
const HD4: u32 = (HD + 3u) / 4u;
// "minus infinity" that stays finite through subtraction
const NEG: f32 = -3.0e38;

#if PASS != combine
// qkv: [m_rows, ROW] f32 — q of row m, head h at m·ROW + h·HD
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
#if VEC4
// k_cache: [MAXLEN, KVH, HD/4] vec4<KV>
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<KV>>;
// v_cache: [MAXLEN, KVH, HD/4] vec4<KV>
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<KV>>;
#else
// k_cache: [MAXLEN, KVH, HD] KV
@group(0) @binding(1) var<storage, read> k_cache: array<KV>;
// v_cache: [MAXLEN, KVH, HD] KV
@group(0) @binding(2) var<storage, read> v_cache: array<KV>;
#endif
// step: uniform — pos of row 0, n_tokens valid rows
@group(0) @binding(3) var<uniform> step: Step;

// Dims 4·d4 .. 4·d4+3 of cache row `row` (= position · KVH + kv head), zero past HD.
fn load_k(row: u32, d4: u32) -> vec4<f32> {
#if VEC4
    return vec4<f32>(k_cache[row * HD4 + d4]);
#else
    let b = row * HD + d4 * 4u;
    // HD is even: dims 4·d4 and 4·d4+1 always exist, 4·d4+2 and +3 exist together.
    if (d4 * 4u + 2u < HD) {
        return vec4<f32>(f32(k_cache[b]), f32(k_cache[b + 1u]), f32(k_cache[b + 2u]), f32(k_cache[b + 3u]));
    }
    return vec4<f32>(f32(k_cache[b]), f32(k_cache[b + 1u]), 0.0, 0.0);
#endif
}

fn load_v(row: u32, d4: u32) -> vec4<f32> {
#if VEC4
    return vec4<f32>(v_cache[row * HD4 + d4]);
#else
    let b = row * HD + d4 * 4u;
    if (d4 * 4u + 2u < HD) {
        return vec4<f32>(f32(v_cache[b]), f32(v_cache[b + 1u]), f32(v_cache[b + 2u]), f32(v_cache[b + 3u]));
    }
    return vec4<f32>(f32(v_cache[b]), f32(v_cache[b + 1u]), 0.0, 0.0);
#endif
}

// Dims 4·d4 .. 4·d4+3 of q head h of row m, scaled by 1/sqrt(HD), zero past HD.
fn load_q(m: u32, h: u32, d4: u32) -> vec4<f32> {
    let b = m * ROW + h * HD + d4 * 4u;
    var x = vec4<f32>(qkv[b], qkv[b + 1u], 0.0, 0.0);
    if (d4 * 4u + 2u < HD) {
        x = vec4<f32>(x.xy, qkv[b + 2u], qkv[b + 3u]);
    }
    return x * SCALE;
}
#endif

#if PASS != prefill
// Positions per chunk for a context of `len` (≥ 1): chunks adapt to the length so that every one
// has work at long context.
fn chunk_size(len: u32) -> u32 {
    return min((len + NC - 1u) / NC, CMAX);
}
#endif

#if PASS == decode
// P·V runs LANES positions at once, HD4 invocations per position.
const LANES: u32 = WG / HD4;

// part_acc: [NH, NC, HD4] vec4<f32> — Σ exp(s - max)·v over each chunk
@group(0) @binding(4) var<storage, read_write> part_acc: array<vec4<f32>>;
// part_ml: [NH, NC] vec2<f32> — (max score, Σ exp(s - max)) of each chunk
@group(0) @binding(5) var<storage, read_write> part_ml: array<vec2<f32>>;

// q of the GB heads, pre-scaled
var<workgroup> qs: array<vec4<f32>, GB * HD4>;
// scores, then exp(s - max), of the chunk: [GB, CMAX]
var<workgroup> sc: array<f32, GB * CMAX>;
// per-lane P·V partials [LANES, GB, HD4] and Σexp [LANES, GB]
var<workgroup> red_acc: array<vec4<f32>, LANES * GB * HD4>;
var<workgroup> red_sum: array<f32, LANES * GB>;
#if SUBGROUPS
// chunk max per head as an order-preserving u32 (atomicMax needs integers)
var<workgroup> wmax: array<atomic<u32>, GB>;
#else
// per-invocation maxima [GB, WG], tree-reduced
var<workgroup> red: array<f32, GB * WG>;
#endif

#if SUBGROUPS
fn order_f32(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(~b, b | 0x80000000u, (b & 0x80000000u) == 0u);
}
fn unorder_f32(u: u32) -> f32 {
    return bitcast<f32>(select(~u, u & 0x7fffffffu, (u & 0x80000000u) != 0u));
}
#endif

@compute @workgroup_size(WG)
fn decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
#if SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
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
        // Past the current length: combine skips this chunk.
        return;
    }

    for (var i = t; i < GB * HD4; i += WG) {
        qs[i] = load_q(0u, h0 + i / HD4, i % HD4);
    }
#if SUBGROUPS
    if (t < GB) {
        atomicStore(&wmax[t], 0u);
    }
#endif
    workgroupBarrier();

    // Scores: one position per invocation, all GB heads from one read of the key row.
    var mx: array<f32, GB>;
    for (var g = 0u; g < GB; g++) {
        mx[g] = NEG;
    }
    for (var p = c0 + t; p < c1; p += WG) {
        let row = p * KVH + kvh;
        var s: array<f32, GB>;
        for (var d4 = 0u; d4 < HD4; d4++) {
            let k = load_k(row, d4);
            for (var g = 0u; g < GB; g++) {
                s[g] += dot(qs[g * HD4 + d4], k);
            }
        }
        for (var g = 0u; g < GB; g++) {
            sc[g * CMAX + p - c0] = s[g];
            mx[g] = max(mx[g], s[g]);
        }
    }

    // Chunk max per head.
    var cmax: array<f32, GB>;
#if SUBGROUPS
    for (var g = 0u; g < GB; g++) {
        let v = subgroupMax(mx[g]);
        if (sg_lane == 0u) {
            atomicMax(&wmax[g], order_f32(v));
        }
    }
    workgroupBarrier();
    for (var g = 0u; g < GB; g++) {
        cmax[g] = unorder_f32(atomicLoad(&wmax[g]));
    }
#else
    for (var g = 0u; g < GB; g++) {
        red[g * WG + t] = mx[g];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (var g = 0u; g < GB; g++) {
                red[g * WG + t] = max(red[g * WG + t], red[g * WG + t + s]);
            }
        }
        workgroupBarrier();
    }
    for (var g = 0u; g < GB; g++) {
        cmax[g] = red[g * WG];
    }
#endif

    // Probabilities (unnormalised), by the invocation that wrote each score.
    for (var p = c0 + t; p < c1; p += WG) {
        for (var g = 0u; g < GB; g++) {
            let i = g * CMAX + p - c0;
            sc[i] = exp(sc[i] - cmax[g]);
        }
    }
    workgroupBarrier();

    // P·V: invocation (lane, d4) walks positions c0 + lane, c0 + lane + LANES, … (coalesced rows).
    let lane = t / HD4;
    let d4 = t % HD4;
    if (lane < LANES) {
        var acc: array<vec4<f32>, GB>;
        var sum: array<f32, GB>;
        for (var p = c0 + lane; p < c1; p += LANES) {
            let v = load_v(p * KVH + kvh, d4);
            for (var g = 0u; g < GB; g++) {
                let w = sc[g * CMAX + p - c0];
                acc[g] += w * v;
                sum[g] += w;
            }
        }
        for (var g = 0u; g < GB; g++) {
            red_acc[(lane * GB + g) * HD4 + d4] = acc[g];
        }
        if (d4 == 0u) {
            for (var g = 0u; g < GB; g++) {
                red_sum[lane * GB + g] = sum[g];
            }
        }
    }
    workgroupBarrier();

    // Sum the lanes: invocation i < GB·HD4 owns (head g, d4) = (i / HD4, i % HD4).
    if (t < GB * HD4) {
        var a = vec4<f32>(0.0);
        for (var l = 0u; l < LANES; l++) {
            a += red_acc[l * GB * HD4 + t];
        }
        let g = t / HD4;
        let slot = (h0 + g) * NC + c;
        part_acc[slot * HD4 + t % HD4] = a;
        if (t % HD4 == 0u) {
            var l_sum = 0.0;
            for (var l = 0u; l < LANES; l++) {
                l_sum += red_sum[l * GB + g];
            }
            part_ml[slot] = vec2<f32>(cmax[g], l_sum);
        }
    }
}
#endif

#if PASS == combine
// part_acc: [NH, NC, HD4] vec4<f32> — from decode
@group(0) @binding(0) var<storage, read> part_acc: array<vec4<f32>>;
// part_ml: [NH, NC] vec2<f32> — from decode
@group(0) @binding(1) var<storage, read> part_ml: array<vec2<f32>>;
// out: [1, NH·HD] f32
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// step: uniform — pos of the row, n_tokens
@group(0) @binding(3) var<uniform> step: Step;

// One workgroup per head; invocation d4 owns four dims.
@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    if (step.n_tokens == 0u) {
        return;
    }
    let h = wid.x;
    let len = min(step.pos + 1u, MAXLEN);
    let cs = chunk_size(len);
    let used = (len + cs - 1u) / cs;
    var mx = NEG;
    for (var c = 0u; c < used; c++) {
        mx = max(mx, part_ml[h * NC + c].x);
    }
    var total = 0.0;
    for (var c = 0u; c < used; c++) {
        let ml = part_ml[h * NC + c];
        total += ml.y * exp(ml.x - mx);
    }
    for (var d4 = t; d4 < HD4; d4 += WG) {
        var a = vec4<f32>(0.0);
        for (var c = 0u; c < used; c++) {
            a += part_acc[(h * NC + c) * HD4 + d4] * exp(part_ml[h * NC + c].x - mx);
        }
        a /= total;
        let o = h * HD + d4 * 4u;
        out[o] = a.x;
        out[o + 1u] = a.y;
        if (d4 * 4u + 2u < HD) {
            out[o + 2u] = a.z;
            out[o + 3u] = a.w;
        }
    }
}
#endif

#if PASS == prefill
// out: [m_rows, NH·HD] f32
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// One tile of BC positions of keys and values, as f32.
var<workgroup> ks: array<vec4<f32>, BC * HD4>;
var<workgroup> vs: array<vec4<f32>, BC * HD4>;

// Workgroup (x, kv head): query rows r = x·WG + t of that kv head, row r = token r / G, q head
// kv·G + r % G; so the G heads of a token and WG/G consecutive tokens share each K/V tile.
@compute @workgroup_size(WG)
fn prefill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    // The batch size is not a define (one pipeline for every prompt chunk): rows are bounded by the
    // buffers and by step.n_tokens.
    let rows = min(min(arrayLength(&qkv) / ROW, arrayLength(&out) / (NH * HD)), step.n_tokens);
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
    let kv_end = min(step.pos + last_m + 1u, MAXLEN);
    // Last position this row attends to.
    let lim = min(step.pos + m + 1u, kv_end);

    var q: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    if (live) {
        for (var d4 = 0u; d4 < HD4; d4++) {
            q[d4] = load_q(m, h, d4);
        }
    }
    var mx = NEG;
    var l = 0.0;

    for (var j0 = 0u; j0 < kv_end; j0 += BC) {
        for (var i = t; i < BC * HD4; i += WG) {
            let j = j0 + i / HD4;
            if (j < kv_end) {
                let row = j * KVH + kvh;
                ks[i] = load_k(row, i % HD4);
                vs[i] = load_v(row, i % HD4);
            } else {
                ks[i] = vec4<f32>(0.0);
                vs[i] = vec4<f32>(0.0);
            }
        }
        workgroupBarrier();
        if (live) {
            // Online softmax: scores of the tile, one rescale of acc per tile.
            var s: array<f32, BC>;
            var tile_max = NEG;
            for (var j = 0u; j < BC; j++) {
                var x = 0.0;
                for (var d4 = 0u; d4 < HD4; d4++) {
                    x += dot(q[d4], ks[j * HD4 + d4]);
                }
                x = select(NEG, x, j0 + j < lim);
                s[j] = x;
                tile_max = max(tile_max, x);
            }
            let new_max = max(mx, tile_max);
            let alpha = exp(mx - new_max);
            l *= alpha;
            for (var d4 = 0u; d4 < HD4; d4++) {
                acc[d4] *= alpha;
            }
            for (var j = 0u; j < BC; j++) {
                let p = select(0.0, exp(s[j] - new_max), j0 + j < lim);
                l += p;
                for (var d4 = 0u; d4 < HD4; d4++) {
                    acc[d4] += p * vs[j * HD4 + d4];
                }
            }
            mx = new_max;
        }
        workgroupBarrier();
    }

    if (live) {
        let o = m * NH * HD + h * HD;
        for (var d4 = 0u; d4 < HD4; d4++) {
            let a = acc[d4] / l;
            out[o + d4 * 4u] = a.x;
            out[o + d4 * 4u + 1u] = a.y;
            if (d4 * 4u + 2u < HD) {
                out[o + d4 * 4u + 2u] = a.z;
                out[o + d4 * 4u + 3u] = a.w;
            }
        }
    }
}
#endif
