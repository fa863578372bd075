// The tensor-core tile of matmul.wgsl's `matmul` entry (#include matmul_coop, under COOP): 64 tokens ×
// CBN weight rows staged in f16, each of the 8 subgroups multiplying four 16×16 tiles on the tensor
// cores with f32 accumulation. Uses matmul.wgsl's bindings, weight decoding and epilogue.

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
