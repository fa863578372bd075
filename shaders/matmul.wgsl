// Linear layers over (quantised) weights: out[m, :] (= or +=) f(x[x_row0 + m, :]) · Wᵀ, m < m_rows.
//
// Two entry points share the bindings and the weight decoding (layouts: crates/hearth-gpu/src/quant.rs):
// - `matvec` (decode, up to 8 tokens): memory-bound. All WG threads of a workgroup stride over K, each
//   step reading one 16-byte unit (vec4<u32>) of each of the workgroup's 4 or 8 weight rows (consecutive
//   threads: consecutive units, so loads coalesce), dequantising in registers and dotting it with the
//   matching x values, which are read once per unit and shared by all rows. Per-thread partial sums are
//   reduced with subgroupAdd (SUBGROUPS) or a workgroup-memory tree. Tokens are processed one after the
//   other by the same workgroup, so later tokens find the workgroup's rows in cache.
// - `matmul` (prefill): 64 tokens × 64 weight rows per workgroup, K staged 32 at a time in workgroup
//   memory (weights dequantised while being staged), each of the 256 threads accumulating a 4×4 block.
//   COOP (native, where wgpu offers cooperative matrices with f16 16×16×16 tiles and subgroups of 32):
//   64 tokens × 128 weight rows staged in f16, each of the 8 subgroups multiplying four 16×16 tiles on
//   the tensor cores with f32 accumulation (see `coop_tile`).
//
// Fusions, chosen by defines so one file serves every variant:
// - NORM: RMSNorm prologue. x is multiplied by gamma as it is read and Σx² is accumulated in the same
//   pass; 1/rms = inverseSqrt(mean(x²) + EPS) factors out of the dot product and scales the result, so the
//   norm costs no extra pass or dispatch.
// - EPI == store: out = y; acc: out += y (fused residual add); silu: the segment pairs gate rows (qs, sc)
//   with up rows (qs_up, sc_up) and out[m, f] = silu(gate_f) · up_f; gelu: out = gelu(y) (exact, erf).
// - BIAS: y += bias[column] before the epilogue (BERT's linear layers; not with silu).
//
// Defines: MATVEC (which entry point this variant builds), WEIGHT (q4 | q4s | q8 | f32), K (input width,
// a multiple of 32), NORM, EPS, EPI (store | acc | silu | gelu), BIAS.
// matvec only: WG (threads, a power of two), RG (groups of 4 weight rows per workgroup: 1 or 2; silu
// always 2), SUBGROUPS, SG_MIN (smallest subgroup size, ≥ 4), WEB_SUBGROUPS (emit `enable subgroups;`:
// browsers require it, naga rejects it).

#if WEB_SUBGROUPS
enable subgroups;
#endif
#if COOP
enable f16;
enable wgpu_cooperative_matrix;
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
// sc: [shard rows, KG] u32 scale words (q4: f16 scale | f16 min << 16; q4s: f16 d of group 2j | f16 d of
// group 2j + 1 << 16; q8: f32 bits); f32 weights: 1-word dummy
@group(0) @binding(4) var<storage, read> sc: array<u32>;
#if EPI == silu
// qs_up: [shard rows, K / UW] vec4<u32>, the shard holding the up rows (may be the same buffer as qs)
@group(0) @binding(5) var<storage, read> qs_up: array<vec4<u32>>;
// sc_up: [shard rows, KG] u32, scales of that shard
@group(0) @binding(6) var<storage, read> sc_up: array<u32>;
#if NORM
// gamma: [K / 4] vec4, RMSNorm weight
@group(0) @binding(7) var<storage, read> gamma: array<vec4<f32>>;
#endif
#elif NORM
// gamma: [K / 4] vec4, RMSNorm weight
@group(0) @binding(5) var<storage, read> gamma: array<vec4<f32>>;
#if BIAS
// bias: [N] f32, indexed by output column
@group(0) @binding(6) var<storage, read> bias: array<f32>;
#endif
#elif BIAS
// bias: [N] f32, indexed by output column
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

// erf to ~1.5e-7 absolute (Abramowitz & Stegun 7.1.26): WGSL has no erf, and BERT's GELU is the exact one.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - poly * exp(-x * x));
}

// Bias and activation of output column `col` (global, not segment-local); not used by silu.
fn finish(y: f32, col: u32) -> f32 {
    var v = y;
#if BIAS
    v += bias[col];
#endif
#if EPI == gelu
    v = 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
#endif
    return v;
}

// Weights per 16-byte unit of a row.
#if WEIGHT == q4 || WEIGHT == q4s
const UW: u32 = 32u;
#elif WEIGHT == q8
const UW: u32 = 16u;
#else
const UW: u32 = 4u;
#endif
const KU: u32 = K / UW;   // units per weight row
const K4: u32 = K / 4u;   // vec4 per x row
#if WEIGHT == q4s
const KG: u32 = (K + 63u) / 64u;  // scale words per weight row (two groups a word)
#else
const KG: u32 = K / 32u;  // scale words per weight row
#endif
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

// q4 codes 0..3 and 4..7 of a word (weight 8j + i sits in bits 4i .. 4i + 4 of word j). (Decoding through
// float bit patterns instead of int → float conversions measured no faster on an H200 and rounds worse.)
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

// Scale word of group g (32 weights) of a row whose scale words start at `base`; for q4s the word holding
// the group, shifted so that the group's f16 is its low half.
fn group_word(up: bool, base: u32, g: u32) -> u32 {
#if WEIGHT == q4s
    return sword(up, base + g / 2u) >> (16u * (g & 1u));
#else
    return sword(up, base + g);
#endif
}

#if WEIGHT == q4 || WEIGHT == q4s
// A 4-bit group's weights as an affine map of its codes, w = code · a.x + a.y, from its group_word:
// q4 (scale, min); q4s (d, -8d), so that d·q - 8d = d·(q - 8) exactly (both terms are exact in f32).
fn affine(s: u32) -> vec2<f32> {
#if WEIGHT == q4
    return unpack2x16float(s);
#else
    let d = unpack2x16float(s).x;
    return vec2<f32>(d, -8.0 * d);
#endif
}
#endif

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
// Rows are handled in groups of four, one vec4 lane per row, so no private array is ever indexed
// dynamically (drivers may put such arrays in local memory: an earlier version with per-row arrays ran the
// Q4 mat-vec half as fast on an H200). Group a holds rows c0 .. c0 + 4, group b (RG == 2)
// rows c0 + 4 .. c0 + 8, or for silu the up rows matching group a's gate rows.
#if EPI == silu
const R: u32 = 4u;  // output columns per workgroup (the launcher sets RG = 2)
const B_UP: bool = true;
#else
const R: u32 = 4u * RG;
const B_UP: bool = false;
#endif
const ITERS: u32 = (KU + WG - 1u) / WG;

// Per-token partial sums: group a, group b, Σx² (x lane).
#if SUBGROUPS
// Subgroup leaders publish their sums here, at their rank among leaders (a fixed order, so results are
// deterministic) — correct for any subgroup size and any mapping of invocations to subgroups.
const NSLOT: u32 = WG / SG_MIN;
var<workgroup> sg_count: atomic<u32>;
var<workgroup> sg_owner: array<u32, NSLOT>;
var<workgroup> part: array<vec4<f32>, NSLOT * 3u>;
#else
// Tree reduction over the workgroup.
var<workgroup> red: array<vec4<f32>, WG * 3u>;
#endif

// One unit of x (times gamma), for the UW weights of a unit; sum = Σ of those values (the 4-bit offset term).
struct XUnit {
    v0: vec4<f32>,
#if WEIGHT != f32
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
#endif
#if WEIGHT == q4 || WEIGHT == q4s
    v4: vec4<f32>,
    v5: vec4<f32>,
    v6: vec4<f32>,
    v7: vec4<f32>,
#endif
    sum: f32,
}

// x vec4 i times gamma vec4 gi; adds the raw Σx² to *ss.
fn xget(i: u32, gi: u32, ss: ptr<function, f32>) -> vec4<f32> {
    let v = x[i];
#if NORM
    *ss += dot(v, v);
    return v * gamma[gi];
#else
    return v;
#endif
}

fn load_x(xrow: u32, u: u32, ss: ptr<function, f32>) -> XUnit {
    let i = xrow + u * XV;
    let g = u * XV;
    var r: XUnit;
    r.v0 = xget(i, g, ss);
    var s = r.v0;
#if WEIGHT != f32
    r.v1 = xget(i + 1u, g + 1u, ss);
    r.v2 = xget(i + 2u, g + 2u, ss);
    r.v3 = xget(i + 3u, g + 3u, ss);
    s += r.v1 + r.v2 + r.v3;
#endif
#if WEIGHT == q4 || WEIGHT == q4s
    r.v4 = xget(i + 4u, g + 4u, ss);
    r.v5 = xget(i + 5u, g + 5u, ss);
    r.v6 = xget(i + 6u, g + 6u, ss);
    r.v7 = xget(i + 7u, g + 7u, ss);
    s += r.v4 + r.v5 + r.v6 + r.v7;
#endif
    r.sum = dot(s, vec4<f32>(1.0));
    return r;
}

#if WEIGHT == q4 || WEIGHT == q4s
// Word j of four rows (lane = row) against the 8 x values it covers: Σ q·x per row.
fn q4_words(w: vec4<u32>, lo: vec4<f32>, hi: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        dot(nib_lo(w.x), lo) + dot(nib_hi(w.x), hi),
        dot(nib_lo(w.y), lo) + dot(nib_hi(w.y), hi),
        dot(nib_lo(w.z), lo) + dot(nib_hi(w.z), hi),
        dot(nib_lo(w.w), lo) + dot(nib_hi(w.w), hi),
    );
}
#elif WEIGHT == q8
fn q8_words(w: vec4<u32>, v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(sbytes(w.x), v), dot(sbytes(w.y), v), dot(sbytes(w.z), v), dot(sbytes(w.w), v));
}
#endif

// Σ w·x over one unit for four rows: q0..q3 their packed units, s their group words (lane = row).
fn dot4(q0: vec4<u32>, q1: vec4<u32>, q2: vec4<u32>, q3: vec4<u32>, s: vec4<u32>, xu: XUnit) -> vec4<f32> {
#if WEIGHT == q4 || WEIGHT == q4s
    let d = q4_words(vec4<u32>(q0.x, q1.x, q2.x, q3.x), xu.v0, xu.v1)
          + q4_words(vec4<u32>(q0.y, q1.y, q2.y, q3.y), xu.v2, xu.v3)
          + q4_words(vec4<u32>(q0.z, q1.z, q2.z, q3.z), xu.v4, xu.v5)
          + q4_words(vec4<u32>(q0.w, q1.w, q2.w, q3.w), xu.v6, xu.v7);
    let m0 = affine(s.x);
    let m1 = affine(s.y);
    let m2 = affine(s.z);
    let m3 = affine(s.w);
    // w = a·q + b, so Σ w·x = a·Σ q·x + b·Σ x.
    return vec4<f32>(m0.x, m1.x, m2.x, m3.x) * d + vec4<f32>(m0.y, m1.y, m2.y, m3.y) * xu.sum;
#elif WEIGHT == q8
    let d = q8_words(vec4<u32>(q0.x, q1.x, q2.x, q3.x), xu.v0)
          + q8_words(vec4<u32>(q0.y, q1.y, q2.y, q3.y), xu.v1)
          + q8_words(vec4<u32>(q0.z, q1.z, q2.z, q3.z), xu.v2)
          + q8_words(vec4<u32>(q0.w, q1.w, q2.w, q3.w), xu.v3);
    return bitcast<vec4<f32>>(s) * d;
#else
    return vec4<f32>(
        dot(bitcast<vec4<f32>>(q0), xu.v0),
        dot(bitcast<vec4<f32>>(q1), xu.v0),
        dot(bitcast<vec4<f32>>(q2), xu.v0),
        dot(bitcast<vec4<f32>>(q3), xu.v0),
    );
#endif
}

// The group of unit u: a unit is one 4-bit group, or half a q8 group.
fn unit_group(u: u32) -> u32 {
#if WEIGHT == q8
    return u / 2u;
#else
    return u;
#endif
}

// The four rows' group words for unit u (f32 weights have none).
fn scales4(up: bool, base: vec4<u32>, u: u32) -> vec4<u32> {
#if WEIGHT == f32
    return vec4<u32>(0u);
#else
    let g = unit_group(u);
    return vec4<u32>(
        group_word(up, base.x, g),
        group_word(up, base.y, g),
        group_word(up, base.z, g),
        group_word(up, base.w, g),
    );
#endif
}

// Output columns c0 .. c0 + R of the segment for every token of the batch (m_rows ≤ 8): the weights are
// read from memory once and from cache for later tokens.
// Grid: (x, y) flattened = column block (2-D only past 65535 blocks).
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
    // Tail workgroups clamp rows to valid ones and do not store those results.
    let last = p.rows - 1u;
    let ra = p.row_w + min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let qa = ra * KU;
    let sa = ra * KG;
#if RG == 2
#if EPI == silu
    let rb = p.row_u + min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
#else
    let rb = p.row_w + min(vec4<u32>(c0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last));
#endif
    let qb = rb * KU;
    let sb = rb * KG;
#endif

#if SUBGROUPS
    if (lane == 0u) {
        sg_owner[atomicAdd(&sg_count, 1u)] = lid;
    }
    workgroupBarrier();
    let nsg = atomicLoad(&sg_count);
    var rank = 0u;
    for (var j = 0u; j < nsg; j++) {
        rank += select(0u, 1u, sg_owner[j] < lid);
    }
#endif

    for (var m = 0u; m < p.m_rows; m++) {
        let xrow = (p.x_row0 + m) * K4;
        var acc_a = vec4<f32>(0.0);
        var acc_b = vec4<f32>(0.0);
        var ss = 0.0;
        // A uniform trip count keeps the barriers below in uniform control flow.
        for (var i = 0u; i < ITERS; i++) {
            let u = lid + i * WG;
            if (KU % WG == 0u || u < KU) {
                // Every row's 16-byte load is issued before any arithmetic.
                let a0 = qword(false, qa.x + u);
                let a1 = qword(false, qa.y + u);
                let a2 = qword(false, qa.z + u);
                let a3 = qword(false, qa.w + u);
                let as4 = scales4(false, sa, u);
#if RG == 2
                let b0 = qword(B_UP, qb.x + u);
                let b1 = qword(B_UP, qb.y + u);
                let b2 = qword(B_UP, qb.z + u);
                let b3 = qword(B_UP, qb.w + u);
                let bs4 = scales4(B_UP, sb, u);
#endif
                let xu = load_x(xrow, u, &ss);
                acc_a += dot4(a0, a1, a2, a3, as4, xu);
#if RG == 2
                acc_b += dot4(b0, b1, b2, b3, bs4, xu);
#endif
            }
        }

        // Workgroup sums of acc_a, acc_b, ss → ta, tb, tss (valid in threads lid < R).
#if SUBGROUPS
        acc_a = subgroupAdd(acc_a);
#if RG == 2
        acc_b = subgroupAdd(acc_b);
#endif
#if NORM
        ss = subgroupAdd(ss);
#endif
        if (lane == 0u) {
            part[rank * 3u] = acc_a;
            part[rank * 3u + 1u] = acc_b;
            part[rank * 3u + 2u] = vec4<f32>(ss, 0.0, 0.0, 0.0);
        }
        workgroupBarrier();
        var ta = vec4<f32>(0.0);
        var tb = vec4<f32>(0.0);
        var tss = 0.0;
        if (lid < R) {
            for (var s = 0u; s < nsg; s++) {
                ta += part[s * 3u];
                tb += part[s * 3u + 1u];
                tss += part[s * 3u + 2u].x;
            }
        }
#else
        red[lid] = acc_a;
        red[WG + lid] = acc_b;
        red[2u * WG + lid] = vec4<f32>(ss, 0.0, 0.0, 0.0);
        workgroupBarrier();
        for (var h = WG / 2u; h > 0u; h >>= 1u) {
            if (lid < h) {
                red[lid] += red[lid + h];
                red[WG + lid] += red[WG + lid + h];
                red[2u * WG + lid] += red[2u * WG + lid + h];
            }
            workgroupBarrier();
        }
        let ta = red[0];
        let tb = red[WG];
        let tss = red[2u * WG].x;
#endif

        // Epilogue: thread lid stores column c0 + lid.
        let c = c0 + lid;
        if (lid < R && c < p.rows) {
#if EPI == silu
            var y = ta[lid];
            var gu = tb[lid];
#else
            var y = select(ta[lid % 4u], tb[lid % 4u], lid >= 4u);
#endif
#if NORM
            let inv = inverseSqrt(tss / f32(K) + EPS);
            y *= inv;
#if EPI == silu
            gu *= inv;
#endif
#endif
#if EPI == silu
            y = y / (1.0 + exp(-y)) * gu;
#else
            y = finish(y, p.col0 + c);
#endif
            let o = m * p.n_out + p.col0 + c;
#if EPI == acc
            out[o] += y;
#else
            out[o] = y;
#endif
        }
        // The next token reuses the reduction memory.
        workgroupBarrier();
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

#if COOP
// Weight rows per tile (the x tile is shared by twice as many rows as in the f32 path, halving the
// re-reads of x, which bound that path), output columns per tile, and the f16 tiles' row stride: BK + 8
// halves spreads the staging stores over the banks and keeps every 16×16 load 16-byte aligned.
const CBN: u32 = 128u;
#if EPI == silu
const CBNO: u32 = 64u;
#else
const CBNO: u32 = 128u;
#endif
const LD: u32 = BK + 8u;
// ha: [BM][LD] f16, x tile token-major (the A operand, row-major)
var<workgroup> ha: array<f16, 2560>;
// hb: [CBN][LD] f16, weight tile row-major, i.e. Wᵀ column-major (the B operand)
var<workgroup> hb: array<f16, 5120>;
// cs: [BM][CBN] f32, the product tile on its way to the epilogue (and the NORM prepass's partial sums)
var<workgroup> cs: array<f32, 8192>;
#if NORM
// rs: [BM] 1/rms of each tile token
var<workgroup> rs: array<f32, 64>;
#endif
#else
// sa: [BK][BM / 4] vec4, x tile k-major so a thread reads its 4 tokens at one k as one vec4
var<workgroup> sa: array<vec4<f32>, 512>;
// sb: [BK][BN / 4] vec4, dequantised weight tile k-major so a thread reads its 4 columns as one vec4
var<workgroup> sb: array<vec4<f32>, 512>;
#endif

// Eight dequantised weights of shard row `row`, columns k .. k + 8 (k a multiple of 8).
fn load_w8(up: bool, row: u32, k: u32) -> array<vec4<f32>, 2> {
#if WEIGHT == q4 || WEIGHT == q4s
    let i = row * (K / 8u) + k / 8u;
    let w = qword(up, i / 4u)[i % 4u];
    let a = affine(group_word(up, row * KG, k / 32u));
    return array<vec4<f32>, 2>(nib_lo(w) * a.x + a.y, nib_hi(w) * a.x + a.y);
#elif WEIGHT == q8
    let i = row * (K / 4u) + k / 4u;
    let q = qword(up, i / 4u);
    let w = select(q.xy, q.zw, (i & 2u) != 0u);
    let d = bitcast<f32>(group_word(up, row * KG, k / 32u));
    return array<vec4<f32>, 2>(sbytes(w.x) * d, sbytes(w.y) * d);
#else
    let i = row * K4 + k / 4u;
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(qword(up, i)), bitcast<vec4<f32>>(qword(up, i + 1u)));
#endif
}

#if COOP
// Output tile: tokens wid.y * 64 .. + 64, segment columns wid.x * CBNO .. + CBNO.
fn coop_tile(lid: u32, wid: vec3<u32>, sg: u32) {
    let cb = wid.x * CBNO;
    let mb = wid.y * BM;
#if NORM
    // 1/rms of every tile token first, so x is staged already normalised (f16 keeps its precision).
    var s = 0.0;
    let xn = (p.x_row0 + min(mb + lid % 64u, p.m_rows - 1u)) * K4;
    for (var k4 = lid / 64u; k4 < K4; k4 += 4u) {
        let v = x[xn + k4];
        s += dot(v, v);
    }
    cs[lid] = s;
    workgroupBarrier();
    if (lid < 64u) {
        rs[lid] = inverseSqrt((cs[lid] + cs[lid + 64u] + cs[lid + 128u] + cs[lid + 192u]) / f32(K) + EPS);
    }
    workgroupBarrier();
#endif
    // Staging per step: thread lid takes 8 k of x row lid / 4 and 16 k of weight row lid / 2, so
    // neighbouring threads read neighbouring bytes. Rows past the end are clamped (never stored).
    let xr = lid / 4u;
    let xk = (lid % 4u) * 8u;
    let xb = (p.x_row0 + min(mb + xr, p.m_rows - 1u)) * K4;
#if NORM
    let inv = rs[xr];
#endif
    let wl = lid / 2u;
    let wk = (lid % 2u) * 16u;
#if EPI == silu
    let up = wl >= 64u;
    let wr = select(p.row_w, p.row_u, up) + min(cb + wl % 64u, p.rows - 1u);
#else
    let up = false;
    let wr = p.row_w + min(cb + wl, p.rows - 1u);
#endif
    // Subgroup sg (of 8) computes token tile sg / 2 against column tiles tn .. tn + 4.
    let tm = sg / 2u;
    let tn = (sg % 2u) * 4u;
    var c0 = coop_mat16x16<f32, C>();
    var c1 = coop_mat16x16<f32, C>();
    var c2 = coop_mat16x16<f32, C>();
    var c3 = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < K; k0 += BK) {
        var a0 = x[xb + (k0 + xk) / 4u];
        var a1 = x[xb + (k0 + xk) / 4u + 1u];
#if NORM
        a0 *= gamma[(k0 + xk) / 4u] * inv;
        a1 *= gamma[(k0 + xk) / 4u + 1u] * inv;
#endif
        let b0 = load_w8(up, wr, k0 + wk);
        let b1 = load_w8(up, wr, k0 + wk + 8u);
        let oa = xr * LD + xk;
        let ob = wl * LD + wk;
        for (var i = 0u; i < 4u; i++) {
            ha[oa + i] = f16(a0[i]);
            ha[oa + 4u + i] = f16(a1[i]);
            hb[ob + i] = f16(b0[0][i]);
            hb[ob + 4u + i] = f16(b0[1][i]);
            hb[ob + 8u + i] = f16(b1[0][i]);
            hb[ob + 12u + i] = f16(b1[1][i]);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk += 16u) {
            let a = coopLoadT<coop_mat16x16<f16, A>>(&ha[tm * 16u * LD + kk], LD);
            c0 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&hb[tn * 16u * LD + kk], LD), c0);
            c1 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&hb[(tn + 1u) * 16u * LD + kk], LD), c1);
            c2 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&hb[(tn + 2u) * 16u * LD + kk], LD), c2);
            c3 = coopMultiplyAdd(a, coopLoad<coop_mat16x16<f16, B>>(&hb[(tn + 3u) * 16u * LD + kk], LD), c3);
        }
        workgroupBarrier();
    }
    let o = tm * 16u * CBN + tn * 16u;
    coopStoreT(c0, &cs[o], CBN);
    coopStoreT(c1, &cs[o + 16u], CBN);
    coopStoreT(c2, &cs[o + 32u], CBN);
    coopStoreT(c3, &cs[o + 48u], CBN);
    workgroupBarrier();
    // Epilogue: consecutive threads store consecutive columns.
    for (var e = lid; e < BM * CBNO; e += 256u) {
        let r = e / CBNO;
        let c = e % CBNO;
        let m = mb + r;
        if (m < p.m_rows && cb + c < p.rows) {
            var y = cs[r * CBN + c];
#if EPI == silu
            // Columns 64 .. 128 of the tile are the up rows of columns 0 .. 64.
            y = y / (1.0 + exp(-y)) * cs[r * CBN + 64u + c];
#else
            y = finish(y, p.col0 + cb + c);
#endif
            let oi = m * p.n_out + p.col0 + cb + c;
#if EPI == acc
            out[oi] += y;
#else
            out[oi] = y;
#endif
        }
    }
}
#endif

// Output tile: tokens wid.y * 64 .. + 64, segment columns wid.x * BNO .. + BNO.
@compute @workgroup_size(256)
fn matmul(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
#if COOP
    @builtin(subgroup_id) sg: u32,
#endif
) {
    touch_scales();
#if COOP
    coop_tile(lid, wid, sg);
#else
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
#if EPI == silu
                    let y = acc[i][j];
#else
                    let y = finish(acc[i][j], p.col0 + c);
#endif
#if EPI == acc
                    out[o] += y;
#else
                    out[o] = y;
#endif
                }
            }
        }
    }
#endif
}
#endif
