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
//   Where the device has cooperative matrices, prefill runs on the tensor cores instead:
//   matmul_f16.wgsl.
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

// f32 weights have no scales: touching the dummy scale bindings keeps every format's layout the same.
fn touch_scales() {
#if WEIGHT == f32
    _ = sc[0];
#if EPI == silu
    _ = sc_up[0];
#endif
#endif
}

#include matmul_decode
#include matmul_epilogue

// ---- matvec ----
#if MATVEC
#include matmul_matvec
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

// Output tile: tokens wid.y * 64 .. + 64, segment columns wid.x * BNO .. + BNO.
@compute @workgroup_size(256)
fn matmul(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
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
#if EPI == silu
                    let y = acc[i][j];
#else
                    let y = finish(acc[i][j], p.col0 + c);
#endif
                    put(o, y);
                }
            }
        }
    }
}
#endif
