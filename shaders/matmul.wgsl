// Linear layers over (quantised) weights: out[m, :] (= or +=) f(x[x_row0 + m, :]) · Wᵀ, m < m_rows.
//
// Two entry points share the bindings and the weight decoding (layouts: crates/hearth-gpu/src/quant.rs):
// - `matvec` (decode, a few tokens): memory-bound. All WG threads of a workgroup stride over K, each step
//   reading one 16-byte unit (vec4<u32>) of each of the workgroup's RW weight rows (consecutive threads:
//   consecutive units, so loads coalesce), dequantising in registers and dotting it with the matching x
//   values, which are read once per unit and shared by all RW rows. Per-thread partial sums are reduced
//   with subgroupAdd (SUBGROUPS) or a workgroup-memory tree.
// - `matmul` (prefill): 64 tokens × 64 weight rows per workgroup, K staged 32 at a time in workgroup
//   memory (weights dequantised while being staged), each of the 256 threads accumulating a 4×4 block.
//
// Fusions, chosen by defines so one file serves every variant:
// - NORM: RMSNorm prologue. x is multiplied by gamma as it is read and Σx² is accumulated in the same
//   pass; 1/rms = inverseSqrt(mean(x²) + EPS) factors out of the dot product and scales the result, so the
//   norm costs no extra pass or dispatch.
// - EPI == store: out = y; acc: out += y (fused residual add); silu: the segment pairs gate rows (qs, sc)
//   with up rows (qs_up, sc_up) and out[m, f] = silu(gate_f) · up_f.
//
// Defines: MATVEC (which entry point this variant builds), WEIGHT (q4 | q8 | f32), K (input width, a
// multiple of 32), NORM, EPS, EPI (store | acc | silu).
// matvec only: WG (threads, a power of two), R (output columns per workgroup), MT (tokens per workgroup),
// SUBGROUPS, SG_MIN (smallest subgroup size, ≥ 4), WEB_SUBGROUPS (emit `enable subgroups;`: browsers
// require it, naga rejects it).

#if WEB_SUBGROUPS
enable subgroups;
#endif

// One dispatch covers one segment: rows row_w .. row_w + rows of the bound (gate) shard, which produce
// output columns col0 .. col0 + rows; for silu the matching up rows start at row_u of the up shard.
struct Params {
    row_w: u32,
    row_u: u32,
    rows: u32,
    col0: u32,
    m_rows: u32,
    x_row0: u32,
    n_out: u32,  // row stride of out: N, or N / 2 for silu
    _pad: u32,
}

// p: the segment and batch of this dispatch
@group(0) @binding(0) var<uniform> p: Params;
// x: [*, K] f32 viewed as [*, K/4] vec4; rows x_row0 .. x_row0 + m_rows are read
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// out: [m_rows, n_out] f32
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// qs: [shard rows, K / UW] vec4<u32>, packed weights of one shard (silu: the shard holding the gate rows)
@group(0) @binding(3) var<storage, read> qs: array<vec4<u32>>;
// sc: [shard rows, K / 32] u32 (q4: f16 scale | f16 min << 16; q8: f32 bits); f32 weights: 1-word dummy
@group(0) @binding(4) var<storage, read> sc: array<u32>;
#if EPI == silu
// qs_up: [shard rows, K / UW] vec4<u32>, the shard holding the up rows (may be the same buffer as qs)
@group(0) @binding(5) var<storage, read> qs_up: array<vec4<u32>>;
// sc_up: [shard rows, K / 32] u32, scales of that shard
@group(0) @binding(6) var<storage, read> sc_up: array<u32>;
#if NORM
// gamma: [K / 4] vec4, RMSNorm weight
@group(0) @binding(7) var<storage, read> gamma: array<vec4<f32>>;
#endif
#elif NORM
// gamma: [K / 4] vec4, RMSNorm weight
@group(0) @binding(5) var<storage, read> gamma: array<vec4<f32>>;
#endif

// Weights per 16-byte unit of a row.
#if WEIGHT == q4
const UW: u32 = 32u;
#elif WEIGHT == q8
const UW: u32 = 16u;
#else
const UW: u32 = 4u;
#endif
const KU: u32 = K / UW;   // units per weight row
const K4: u32 = K / 4u;   // vec4 per x row
const KG: u32 = K / 32u;  // scale words per weight row
const XV: u32 = UW / 4u;  // x vec4 per unit

// ---- weight decoding (shared by both entry points) ----

fn qword(up: bool, i: u32) -> vec4<u32> {
#if EPI == silu
    if (up) {
        return qs_up[i];
    }
#endif
    return qs[i];
}

fn sword(up: bool, i: u32) -> u32 {
#if EPI == silu
    if (up) {
        return sc_up[i];
    }
#endif
    return sc[i];
}

// q4 codes 0..3 and 4..7 of a word (weight 8j + i sits in bits 4i .. 4i + 4 of word j).
fn nib_lo(w: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(w) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u));
}
fn nib_hi(w: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(w) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u));
}
// q8: the four signed bytes of a word, sign-extended by shifting each to the top and back.
fn sbytes(w: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(w)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// f32 weights have no scales: touching the dummy scale bindings keeps every format's layout the same.
fn touch_scales() {
#if WEIGHT == f32
    _ = sc[0];
#if EPI == silu
    _ = sc_up[0];
#endif
#endif
}

// ---- matvec ----
#if MATVEC

#if EPI == silu
const RW: u32 = 2u * R;  // weight rows per workgroup: R gate rows, then R up rows
#else
const RW: u32 = R;
#endif
const NACC: u32 = RW * MT;  // dot products per thread: [RW][MT]
#if NORM
const NV: u32 = NACC + MT;  // ... then Σx² per token
#else
const NV: u32 = NACC;
#endif
const ITERS: u32 = (KU + WG - 1u) / WG;

#if SUBGROUPS
// Subgroup leaders publish their sums here, ranked by leader index so the final sum has a fixed order.
const NSLOT: u32 = WG / SG_MIN;
var<workgroup> sg_count: atomic<u32>;
var<workgroup> sg_owner: array<u32, NSLOT>;
var<workgroup> part: array<f32, NSLOT * NV>;
#else
// Tree reduction of CH values at a time (keeps workgroup memory at ≤ 8 KiB whatever NV is).
const CH: u32 = min(NV, min(WG, 2048u / WG));
var<workgroup> red: array<f32, CH * WG>;
var<workgroup> res: array<f32, NV>;
#endif

// Σ w·x over one unit of a weight row: w the packed unit, s its scale word, xv the unit's x values
// (times gamma), xs = Σ xv (for q4's min term, shared by every row).
fn unit_dot(w: vec4<u32>, s: u32, xv: array<vec4<f32>, XV>, xs: f32) -> f32 {
#if WEIGHT == q4
    let sm = unpack2x16float(s);
#if MAGIC
    let d = dot(mag_lo(w.x), xv[0]) + dot(mag_hi(w.x), xv[1])
          + dot(mag_lo(w.y), xv[2]) + dot(mag_hi(w.y), xv[3])
          + dot(mag_lo(w.z), xv[4]) + dot(mag_hi(w.z), xv[5])
          + dot(mag_lo(w.w), xv[6]) + dot(mag_hi(w.w), xv[7]);
    // d = Σ (1 + q/16)·x
    return sm.x * 16.0 * (d - xs) + sm.y * xs;
#else
    let d = dot(nib_lo(w.x), xv[0]) + dot(nib_hi(w.x), xv[1])
          + dot(nib_lo(w.y), xv[2]) + dot(nib_hi(w.y), xv[3])
          + dot(nib_lo(w.z), xv[4]) + dot(nib_hi(w.z), xv[5])
          + dot(nib_lo(w.w), xv[6]) + dot(nib_hi(w.w), xv[7]);
    return sm.x * d + sm.y * xs;
#endif
#elif WEIGHT == q8
#if MAGIC
    let d = dot(mag8(w.x), xv[0]) + dot(mag8(w.y), xv[1])
          + dot(mag8(w.z), xv[2]) + dot(mag8(w.w), xv[3]);
    // d = Σ (1 + (q + 128)/256)·x
    return bitcast<f32>(s) * (256.0 * (d - xs) - 128.0 * xs);
#else
    let d = dot(sbytes(w.x), xv[0]) + dot(sbytes(w.y), xv[1])
          + dot(sbytes(w.z), xv[2]) + dot(sbytes(w.w), xv[3]);
    return bitcast<f32>(s) * d;
#endif
#else
    return dot(bitcast<vec4<f32>>(w), xv[0]);
#endif
}

#if MAGIC
// Codes as floats without int → float conversions: the code goes into the top mantissa bits under
// exponent 0, giving 1 + q/16 (q4, codes 0..3 / 4..7 of a word) or 1 + (q + 128)/256 (q8).
fn mag_lo(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(((vec4<u32>(w) << vec4<u32>(19u, 15u, 11u, 7u)) & vec4<u32>(0x00780000u)) | vec4<u32>(0x3F800000u));
}
fn mag_hi(w: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(((vec4<u32>(w >> 9u) << vec4<u32>(12u, 8u, 4u, 0u)) & vec4<u32>(0x00780000u)) | vec4<u32>(0x3F800000u));
}
fn mag8(w: u32) -> vec4<f32> {
    let u = vec4<u32>(w ^ 0x80808080u);
    return bitcast<vec4<f32>>((((u << vec4<u32>(15u, 7u, 0u, 0u)) >> vec4<u32>(0u, 0u, 1u, 9u)) & vec4<u32>(0x007F8000u)) | vec4<u32>(0x3F800000u));
}
#endif

#if SUBGROUPS
fn total(v: u32, n: u32) -> f32 {
    var t = 0.0;
    for (var s = 0u; s < n; s++) {
        t += part[s * NV + v];
    }
    return t;
}
#endif

// Output columns c0 .. c0 + R of the segment for tokens m0 .. m0 + MT.
// Grid: (x, y) flattened = column block (2-D only past 65535 blocks), z = token block.
@compute @workgroup_size(WG)
fn matvec(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
#if SUBGROUPS
    @builtin(subgroup_invocation_id) lane: u32,
#endif
) {
    touch_scales();
    let c0 = (wid.x + wid.y * nwg.x) * R;
    let m0 = wid.z * MT;
    // Tail workgroups clamp rows and tokens to valid ones and do not store those results.
    var wrow: array<u32, RW>;
    for (var r = 0u; r < R; r++) {
        let c = min(c0 + r, p.rows - 1u);
        wrow[r] = p.row_w + c;
#if EPI == silu
        wrow[R + r] = p.row_u + c;
#endif
    }
    var xrow: array<u32, MT>;
    for (var t = 0u; t < MT; t++) {
        xrow[t] = (p.x_row0 + min(m0 + t, p.m_rows - 1u)) * K4;
    }

    var acc: array<f32, NV>;
    // A uniform trip count keeps the barriers below in uniform control flow.
    for (var i = 0u; i < ITERS; i++) {
        let u = lid + i * WG;
        if (KU % WG == 0u || u < KU) {
            // Issue every row's load before any arithmetic: RW × 16 bytes in flight per thread.
            var w: array<vec4<u32>, RW>;
            var s: array<u32, RW>;
            for (var r = 0u; r < RW; r++) {
                let up = r >= R;
                w[r] = qword(up, wrow[r] * KU + u);
#if WEIGHT == q4
                s[r] = sword(up, wrow[r] * KG + u);
#elif WEIGHT == q8
                s[r] = sword(up, wrow[r] * KG + u / 2u);
#endif
            }
#if NORM
            var g: array<vec4<f32>, XV>;
            for (var j = 0u; j < XV; j++) {
                g[j] = gamma[u * XV + j];
            }
#endif
            for (var t = 0u; t < MT; t++) {
                var xv: array<vec4<f32>, XV>;
                var xs = 0.0;
                for (var j = 0u; j < XV; j++) {
                    var v = x[xrow[t] + u * XV + j];
#if NORM
                    acc[NACC + t] += dot(v, v);
                    v *= g[j];
#endif
                    xv[j] = v;
                    xs += dot(v, vec4<f32>(1.0));
                }
                for (var r = 0u; r < RW; r++) {
                    acc[r * MT + t] += unit_dot(w[r], s[r], xv, xs);
                }
            }
        }
    }

#if SUBGROUPS
    // Correct for any subgroup size and any mapping of invocations to subgroups: each subgroup's leader
    // claims a slot, then stores at its rank among the leaders (by invocation index).
    for (var v = 0u; v < NV; v++) {
        acc[v] = subgroupAdd(acc[v]);
    }
    if (lane == 0u) {
        let slot = atomicAdd(&sg_count, 1u);
        sg_owner[slot] = lid;
    }
    workgroupBarrier();
    let nsg = atomicLoad(&sg_count);
    if (lane == 0u) {
        var rank = 0u;
        for (var j = 0u; j < nsg; j++) {
            rank += select(0u, 1u, sg_owner[j] < lid);
        }
        for (var v = 0u; v < NV; v++) {
            part[rank * NV + v] = acc[v];
        }
    }
    workgroupBarrier();
#else
    for (var b = 0u; b < NV; b += CH) {
        for (var c = 0u; c < CH; c++) {
            if (b + c < NV) {
                red[c * WG + lid] = acc[b + c];
            }
        }
        workgroupBarrier();
        for (var h = WG / 2u; h > 0u; h >>= 1u) {
            if (lid < h) {
                for (var c = 0u; c < CH; c++) {
                    red[c * WG + lid] += red[c * WG + lid + h];
                }
            }
            workgroupBarrier();
        }
        if (lid < CH && b + lid < NV) {
            res[b + lid] = red[lid * WG];
        }
        workgroupBarrier();
    }
#endif

    // Epilogue: one thread per (column, token).
    if (lid < R * MT) {
        let r = lid / MT;
        let t = lid % MT;
        let c = c0 + r;
        let m = m0 + t;
        if (c < p.rows && m < p.m_rows) {
#if SUBGROUPS
            var y = total(r * MT + t, nsg);
#else
            var y = res[r * MT + t];
#endif
#if NORM
#if SUBGROUPS
            let inv = inverseSqrt(total(NACC + t, nsg) / f32(K) + EPS);
#else
            let inv = inverseSqrt(res[NACC + t] / f32(K) + EPS);
#endif
            y *= inv;
#endif
#if EPI == silu
#if SUBGROUPS
            var gu = total((R + r) * MT + t, nsg);
#else
            var gu = res[(R + r) * MT + t];
#endif
#if NORM
            gu *= inv;
#endif
            y = y / (1.0 + exp(-y)) * gu;
#endif
            let o = m * p.n_out + p.col0 + c;
#if EPI == acc
            out[o] += y;
#else
            out[o] = y;
#endif
        }
    }
}

#else
// ---- matmul ----

const BM: u32 = 64u;  // tokens per tile
const BN: u32 = 64u;  // weight rows per tile
const BK: u32 = 32u;  // k per staging step (one quantisation group)
#if EPI == silu
const BNO: u32 = 32u;  // output columns per tile: 32 gate rows and their 32 up rows fill the 64 rows
#else
const BNO: u32 = 64u;
#endif

// sa: [BK][BM / 4] vec4, x tile k-major so a thread reads its 4 tokens at one k as one vec4
var<workgroup> sa: array<vec4<f32>, 512>;
// sb: [BK][BN / 4] vec4, dequantised weight tile k-major so a thread reads its 4 columns as one vec4
var<workgroup> sb: array<vec4<f32>, 512>;

// Eight dequantised weights of shard row `row`, columns k .. k + 8 (k a multiple of 8).
fn load_w8(up: bool, row: u32, k: u32) -> array<vec4<f32>, 2> {
#if WEIGHT == q4
    let i = row * (K / 8u) + k / 8u;
    let w = qword(up, i / 4u)[i % 4u];
    let sm = unpack2x16float(sword(up, row * KG + k / 32u));
    return array<vec4<f32>, 2>(nib_lo(w) * sm.x + sm.y, nib_hi(w) * sm.x + sm.y);
#elif WEIGHT == q8
    let i = row * (K / 4u) + k / 4u;
    let q = qword(up, i / 4u);
    let w = select(q.xy, q.zw, (i & 2u) != 0u);
    let d = bitcast<f32>(sword(up, row * KG + k / 32u));
    return array<vec4<f32>, 2>(sbytes(w.x) * d, sbytes(w.y) * d);
#else
    let i = row * K4 + k / 4u;
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(qword(up, i)), bitcast<vec4<f32>>(qword(up, i + 1u)));
#endif
}

// Output tile: tokens wid.y * 64 .. + 64, segment columns wid.x * BNO .. + BNO.
@compute @workgroup_size(256)
fn matmul(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    touch_scales();
    let tx = lid % 16u;  // tile columns tx * 4 .. + 4
    let ty = lid / 16u;  // tile tokens ty * 4 .. + 4
    let cb = wid.x * BNO;
    let mb = wid.y * BM;
    // Staging: thread lid loads k .. k + 8 (k = lk within the step) of tile row lr, both of x and of the
    // weights; consecutive threads take consecutive rows, so the k-major stores hit distinct banks.
    // Rows past the end are clamped to valid ones; their results are never stored.
    let lr = lid % 64u;
    let lk = (lid / 64u) * 8u;
    let xb = (p.x_row0 + min(mb + lr, p.m_rows - 1u)) * K4;
#if EPI == silu
    let up = lr >= 32u;
    let wr = select(p.row_w, p.row_u, up) + min(cb + lr % 32u, p.rows - 1u);
#else
    let up = false;
    let wr = p.row_w + min(cb + lr, p.rows - 1u);
#endif
    var ss = 0.0;  // Σx² of x row lr over this thread's k (NORM)
    var acc: array<vec4<f32>, 4>;  // [token ty*4 + i] → columns tx*4 .. + 4
    for (var k0 = 0u; k0 < K; k0 += BK) {
        let k = k0 + lk;
        var a0 = x[xb + k / 4u];
        var a1 = x[xb + k / 4u + 1u];
#if NORM
        ss += dot(a0, a0) + dot(a1, a1);
        a0 *= gamma[k / 4u];
        a1 *= gamma[k / 4u + 1u];
#endif
        let b = load_w8(up, wr, k);
        for (var i = 0u; i < 4u; i++) {
            // float (kk, r) of a tile lives at kk * 64 + r, i.e. vec4 kk * 16 + r / 4, lane r % 4
            sa[(lk + i) * 16u + lr / 4u][lr % 4u] = a0[i];
            sa[(lk + 4u + i) * 16u + lr / 4u][lr % 4u] = a1[i];
            sb[(lk + i) * 16u + lr / 4u][lr % 4u] = b[0][i];
            sb[(lk + 4u + i) * 16u + lr / 4u][lr % 4u] = b[1][i];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a = sa[kk * 16u + ty];
            let w = sb[kk * 16u + tx];
            acc[0] += a.x * w;
            acc[1] += a.y * w;
            acc[2] += a.z * w;
            acc[3] += a.w * w;
        }
        workgroupBarrier();
    }

#if NORM
    // Each x row's Σx² is split over the four threads that staged it (lid = row + 64j).
    sa[lid] = vec4<f32>(ss, 0.0, 0.0, 0.0);
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
        let r = ty * 4u + i;
        let sum = sa[r].x + sa[r + 64u].x + sa[r + 128u].x + sa[r + 192u].x;
        acc[i] *= inverseSqrt(sum / f32(K) + EPS);
    }
#endif
#if EPI == silu
    // Thread tx + 8 holds the up rows of thread tx's gate rows: hand them over through sb.
    if (tx >= 8u) {
        for (var i = 0u; i < 4u; i++) {
            sb[(ty * 4u + i) * 8u + tx - 8u] = acc[i];
        }
    }
    workgroupBarrier();
    if (tx < 8u) {
        for (var i = 0u; i < 4u; i++) {
            let gu = sb[(ty * 4u + i) * 8u + tx];
            acc[i] = acc[i] / (1.0 + exp(-acc[i])) * gu;
        }
    }
#endif
    if (tx < BNO / 4u) {
        for (var i = 0u; i < 4u; i++) {
            let m = mb + ty * 4u + i;
            for (var j = 0u; j < 4u; j++) {
                let c = cb + tx * 4u + j;
                if (m < p.m_rows && c < p.rows) {
                    let o = m * p.n_out + p.col0 + c;
#if EPI == acc
                    out[o] += acc[i][j];
#else
                    out[o] = acc[i][j];
#endif
                }
            }
        }
    }
}
#endif
