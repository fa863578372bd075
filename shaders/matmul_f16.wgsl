// Prefill linear layers on the tensor cores (cooperative matrices: f16 operands, f32 accumulation):
//   out[m, col0 + c] (= or +=) f(a[m, k0 .. k0 + KC] · b[c, :]),  m < m_rows, c < cols,
// where a = f16(x rows, RMS-normalised with NORM) and b = f16(a slab of dequantised weight rows,
// columns k0 .. k0 + KC), staged in scratch buffers by the first two passes. PASS:
//   stage_x — a[m, :] = f16(x[src0 + m, :] (· gamma / rms)); one workgroup per row.
//   stage_w — b[dst0 + r, :] = f16(W[src0 + r, k0 .. k0 + KC]) for r < rows, W a shard in any format;
//             a thread per 8 weights.
//   gemm    — the product over one slab. A workgroup is WGM × WGN subgroups of 32 and multiplies
//             32·WGM tokens by 64·WGN slab rows, each subgroup 2 × 4 tiles of 16×16. Every 32 k, the
//             workgroup copies its rows of a and b into workgroup memory (double-buffered: the next
//             copy is in flight while the tensor cores read the current one), because tile loads
//             straight from a storage buffer ran ~13× slower on an H200 (matmul tests' coop_peak).
//             With EPI == silu the slab holds the gate rows from 0 and their up rows from up_off,
//             and a subgroup's four column tiles are two gate tiles and the two matching up tiles.
//             Results leave through a 16×16 f32 tile per subgroup in workgroup memory, so partial
//             tiles are stored with bounds checks and the epilogue sees whole rows.
// The launcher allocates a and b padded to whole workgroup tiles, so every tile load is in bounds;
// padding rows hold stale values that reach only output rows or columns that are never stored.
// Defines: PASS, K (a's row width, a multiple of 32); stage_x: NORM, EPS; stage_w: WEIGHT, KC (the
// slab's width, a multiple of 32); gemm: KC, EPI, BIAS, WGM, WGN.

enable f16;
#if PASS == gemm
enable wgpu_cooperative_matrix;
#endif

struct Params {
    m_rows: u32,  // valid tokens
    cols: u32,    // gemm: valid output columns of the slab
    col0: u32,    // gemm: output column of slab column 0
    n_out: u32,   // gemm: row stride of out
    up_off: u32,  // gemm, silu: slab row of the first up row
    src0: u32,    // stage_x: first x row; stage_w: first shard row
    dst0: u32,    // stage_w: first slab row
    rows: u32,    // stage_w: rows to convert
    k0: u32,      // stage_w, gemm: first k of the slab (a multiple of 32)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// p: this dispatch's rows and columns
@group(0) @binding(0) var<uniform> p: Params;

#if PASS == stage_x
// x: [*, K / 4] vec4 f32; rows src0 .. src0 + m_rows are read
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// a: [≥ m_rows, K / 4] vec4<f16>
@group(0) @binding(2) var<storage, read_write> a: array<vec4<f16>>;
#if NORM
// gamma: [K / 4] vec4, RMSNorm weight
@group(0) @binding(3) var<storage, read> gamma: array<vec4<f32>>;
#endif

const K4: u32 = K / 4u;
// part: [256] partial Σx² of the row
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn stage_x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let xb = (p.src0 + wid.x) * K4;
    let ab = wid.x * K4;
    var inv = 1.0;
#if NORM
    var s = 0.0;
    for (var i = t; i < K4; i += 256u) {
        let v = x[xb + i];
        s += dot(v, v);
    }
    part[t] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (t < w) {
            part[t] += part[t + w];
        }
        workgroupBarrier();
    }
    inv = inverseSqrt(part[0] / f32(K) + EPS);
#endif
    for (var i = t; i < K4; i += 256u) {
        var v = x[xb + i] * inv;
#if NORM
        v *= gamma[i];
#endif
        a[ab + i] = vec4<f16>(v);
    }
}

#elif PASS == stage_w
// qs: [shard rows, K / UW] vec4<u32>, packed weights of one shard (layouts: quant.rs)
@group(0) @binding(1) var<storage, read> qs: array<vec4<u32>>;
// sc: [shard rows, KG] u32 scale words (f32 weights: a 1-word dummy)
@group(0) @binding(2) var<storage, read> sc: array<u32>;
// b: [slab rows, KC / 4] vec4<f16>
@group(0) @binding(3) var<storage, read_write> b: array<vec4<f16>>;

fn qword(up: bool, i: u32) -> vec4<u32> {
    return qs[i];
}
fn sword(up: bool, i: u32) -> u32 {
    return sc[i];
}
#include matmul_decode

@compute @workgroup_size(256)
fn stage_w(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
#if WEIGHT == f32
    _ = sc[0];
#endif
    let i = gid.x + gid.y * nw.x * 256u;
    let r = i / (KC / 8u);
    if (r >= p.rows) {
        return;
    }
    let k = (i % (KC / 8u)) * 8u;
    let w = load_w8(false, p.src0 + r, p.k0 + k);
    let o = (p.dst0 + r) * (KC / 4u) + k / 4u;
    b[o] = vec4<f16>(w[0]);
    b[o + 1u] = vec4<f16>(w[1]);
}

#else
// a: [tokens padded to TM, K / 4] vec4<f16> (stage_x)
@group(0) @binding(1) var<storage, read> a: array<vec4<f16>>;
// b: [slab rows padded to TN (silu: gate and up blocks, each padded), KC / 4] vec4<f16> (stage_w)
@group(0) @binding(2) var<storage, read> b: array<vec4<f16>>;
// out: [m_rows, n_out] f32
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
#if BIAS
// bias: [N] f32, indexed by output column
@group(0) @binding(4) var<storage, read> bias: array<f32>;
#endif
#include matmul_epilogue

alias A16 = coop_mat16x16<f16, A>;
alias B16 = coop_mat16x16<f16, B>;
alias C32 = coop_mat16x16<f32, C>;

// Tokens and slab columns (silu: output columns) per workgroup; threads; slab rows staged per step.
const TM: u32 = 32u * WGM;
#if EPI == silu
const TN: u32 = 32u * WGN;
#else
const TN: u32 = 64u * WGN;
#endif
const STG: u32 = 256u;
const NT: u32 = 32u * WGM * WGN;
const TB: u32 = 64u * WGN;
// K per step (32 halves = 8 vec4), and the staged rows' stride: 40 halves (10 vec4) keeps every row
// 16-byte aligned and puts the 8 rows of a tile read in distinct banks.
const BK4: u32 = 8u;
const LD4: u32 = 10u;
const K4: u32 = K / 4u;
const KC4: u32 = KC / 4u;
// sa: [2][TM][LD4] vec4<f16>, the x tile of this step and of the next (double buffer)
var<workgroup> sa: array<vec4<f16>, 2u * TM * LD4>;
// sb: [2][TB][LD4] vec4<f16>, the weight tile likewise (silu: TB / 2 gate rows, then their up rows)
var<workgroup> sb: array<vec4<f16>, 2u * TB * LD4>;
// stg: [WGM · WGN][STG] f32, each subgroup's 16×16 output tile on its way out
var<workgroup> stg: array<f32, WGM * WGN * STG>;

// Stores the 16×16 result tile c (silu: gate c, up u) at tokens r0.., slab columns c0..; lane l
// writes row l / 2, columns (l % 2) · 8 .. + 8. Gate and up pass through the same staging tile one
// after the other (workgroup memory is what bounds the workgroup's shape).
fn emit(c: C32, u: C32, s0: u32, lane: u32, r0: u32, c0: u32) {
    let r = lane / 2u;
    let cb = (lane % 2u) * 8u;
    coopStoreT(c, &stg[s0], 16u);
    workgroupBarrier();
    var y: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        y[j] = stg[s0 + r * 16u + cb + j];
    }
#if EPI == silu
    workgroupBarrier();
    coopStoreT(u, &stg[s0], 16u);
    workgroupBarrier();
    for (var j = 0u; j < 8u; j++) {
        y[j] = y[j] / (1.0 + exp(-y[j])) * stg[s0 + r * 16u + cb + j];
    }
#endif
    let m = r0 + r;
    for (var j = 0u; j < 8u; j++) {
        let col = c0 + cb + j;
        if (m < p.m_rows && col < p.cols) {
#if EPI == silu
            let v = y[j];
#else
            let v = finish(y[j], p.col0 + col);
#endif
            let o = m * p.n_out + p.col0 + col;
            put(o, v);
        }
    }
    workgroupBarrier();
}

// Copies step k4 (in vec4) of the workgroup's x rows and weight rows from memory, as registers.
struct Stage {
    x: array<vec4<f16>, TM * BK4 / NT>,
    w: array<vec4<f16>, TB * BK4 / NT>,
}

fn fetch(t: u32, xrow: u32, wrow0: u32, k4: u32) -> Stage {
    var st: Stage;
    for (var i = 0u; i < TM * BK4 / NT; i++) {
        let e = t + i * NT;
        st.x[i] = a[(xrow + e / BK4) * K4 + p.k0 / 4u + k4 + e % BK4];
    }
    for (var i = 0u; i < TB * BK4 / NT; i++) {
        let e = t + i * NT;
        let r = e / BK4;
#if EPI == silu
        // Rows TB / 2 .. of the tile are the up rows of rows 0 .. TB / 2.
        let row = wrow0 + r % (TB / 2u) + select(0u, p.up_off, r >= TB / 2u);
#else
        let row = wrow0 + r;
#endif
        st.w[i] = b[row * KC4 + k4 + e % BK4];
    }
    return st;
}

fn park(t: u32, st: Stage, buf: u32) {
    for (var i = 0u; i < TM * BK4 / NT; i++) {
        let e = t + i * NT;
        sa[(buf * TM + e / BK4) * LD4 + e % BK4] = st.x[i];
    }
    for (var i = 0u; i < TB * BK4 / NT; i++) {
        let e = t + i * NT;
        sb[(buf * TB + e / BK4) * LD4 + e % BK4] = st.w[i];
    }
}

// Output tile: tokens wid.y · TM .., slab columns wid.x · TN ... Each step's tiles are copied to
// workgroup memory and read from there by the tensor cores (loading them straight from a storage
// buffer ran ~13× slower on an H200: coop_peak); the next step's copy is in flight meanwhile.
@compute @workgroup_size(NT)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let sm = sg / WGN;
    let sn = sg % WGN;
    let xrow = wid.y * TM;
    let wrow0 = wid.x * TN;
    // The subgroup's A tiles start at tile row sm · 32; its four B tiles at these tile rows.
#if EPI == silu
    let bt = array<u32, 4>(sn * 32u, sn * 32u + 16u, TB / 2u + sn * 32u, TB / 2u + sn * 32u + 16u);
#else
    let bt = array<u32, 4>(sn * 64u, sn * 64u + 16u, sn * 64u + 32u, sn * 64u + 48u);
#endif
    var c00 = C32();
    var c01 = C32();
    var c02 = C32();
    var c03 = C32();
    var c10 = C32();
    var c11 = C32();
    var c12 = C32();
    var c13 = C32();
    park(t, fetch(t, xrow, wrow0, 0u), 0u);
    workgroupBarrier();
    for (var k4 = 0u; k4 < KC4; k4 += BK4) {
        let buf = (k4 / BK4) & 1u;
        // The last step fetches itself again into the idle buffer, which nobody reads.
        let next = fetch(t, xrow, wrow0, min(k4 + BK4, KC4 - BK4));
        for (var kk = 0u; kk < BK4; kk += 4u) {
            let ab = (buf * TM + sm * 32u) * LD4 + kk;
            let bb = buf * TB * LD4 + kk;
            let x0 = coopLoadT<A16>(&sa[ab], LD4);
            let x1 = coopLoadT<A16>(&sa[ab + 16u * LD4], LD4);
            let w0 = coopLoad<B16>(&sb[bb + bt[0] * LD4], LD4);
            let w1 = coopLoad<B16>(&sb[bb + bt[1] * LD4], LD4);
            let w2 = coopLoad<B16>(&sb[bb + bt[2] * LD4], LD4);
            let w3 = coopLoad<B16>(&sb[bb + bt[3] * LD4], LD4);
            c00 = coopMultiplyAdd(x0, w0, c00);
            c01 = coopMultiplyAdd(x0, w1, c01);
            c02 = coopMultiplyAdd(x0, w2, c02);
            c03 = coopMultiplyAdd(x0, w3, c03);
            c10 = coopMultiplyAdd(x1, w0, c10);
            c11 = coopMultiplyAdd(x1, w1, c11);
            c12 = coopMultiplyAdd(x1, w2, c12);
            c13 = coopMultiplyAdd(x1, w3, c13);
        }
        park(t, next, buf ^ 1u);
        workgroupBarrier();
    }
    let s0 = sg * STG;
    let m0 = xrow + sm * 32u;
#if EPI == silu
    let n0 = wrow0 + sn * 32u;
    emit(c00, c02, s0, lane, m0, n0);
    emit(c01, c03, s0, lane, m0, n0 + 16u);
    emit(c10, c12, s0, lane, m0 + 16u, n0);
    emit(c11, c13, s0, lane, m0 + 16u, n0 + 16u);
#else
    let n0 = wrow0 + sn * 64u;
    emit(c00, c00, s0, lane, m0, n0);
    emit(c01, c01, s0, lane, m0, n0 + 16u);
    emit(c02, c02, s0, lane, m0, n0 + 32u);
    emit(c03, c03, s0, lane, m0, n0 + 48u);
    emit(c10, c10, s0, lane, m0 + 16u, n0);
    emit(c11, c11, s0, lane, m0 + 16u, n0 + 16u);
    emit(c12, c12, s0, lane, m0 + 16u, n0 + 32u);
    emit(c13, c13, s0, lane, m0 + 16u, n0 + 48u);
#endif
}
#endif
