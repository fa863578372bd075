// The `matvec` entry of matmul.wgsl (#include matmul_matvec, under MATVEC): decode's memory-bound
// mat-vec. Uses matmul.wgsl's bindings, constants and weight decoding.

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

#if XQ
// One unit of x (times gamma) rounded to int8, as llama.cpp's q8_1 activations: v ↦ round(v / d) with
// d = max|v| / 127 over the unit. Σ w·x then needs one dot4I8Packed per four weights instead of a
// nibble extraction, an int → float conversion and an FMA per weight. For 4-bit weights, lo[j] packs
// x 8j, 8j+2, 8j+4, 8j+6 and hi[j] x 8j+1, 8j+3, 8j+5, 8j+7 (the low and high nibbles of word j's
// bytes); for q8, lo[j] packs x 4j .. 4j+3. s = Σ of the unit's codes (the 4-bit offset term).
struct XQUnit {
    lo: vec4<u32>,
#if WEIGHT == q4 || WEIGHT == q4s
    hi: vec4<u32>,
#endif
    d: f32,
    s: f32,
}

fn quant_x(xu: XUnit) -> XQUnit {
    var m = max(max(abs(xu.v0), abs(xu.v1)), max(abs(xu.v2), abs(xu.v3)));
#if WEIGHT == q4 || WEIGHT == q4s
    m = max(m, max(max(abs(xu.v4), abs(xu.v5)), max(abs(xu.v6), abs(xu.v7))));
#endif
    let amax = max(max(m.x, m.y), max(m.z, m.w));
    let inv = select(0.0, 127.0 / amax, amax > 0.0);
    let q0 = vec4<i32>(round(xu.v0 * inv));
    let q1 = vec4<i32>(round(xu.v1 * inv));
    let q2 = vec4<i32>(round(xu.v2 * inv));
    let q3 = vec4<i32>(round(xu.v3 * inv));
    var s = q0 + q1 + q2 + q3;
    var r: XQUnit;
#if WEIGHT == q4 || WEIGHT == q4s
    let q4 = vec4<i32>(round(xu.v4 * inv));
    let q5 = vec4<i32>(round(xu.v5 * inv));
    let q6 = vec4<i32>(round(xu.v6 * inv));
    let q7 = vec4<i32>(round(xu.v7 * inv));
    s += q4 + q5 + q6 + q7;
    r.lo = vec4<u32>(
        pack4xI8(vec4<i32>(q0.xz, q1.xz)),
        pack4xI8(vec4<i32>(q2.xz, q3.xz)),
        pack4xI8(vec4<i32>(q4.xz, q5.xz)),
        pack4xI8(vec4<i32>(q6.xz, q7.xz)),
    );
    r.hi = vec4<u32>(
        pack4xI8(vec4<i32>(q0.yw, q1.yw)),
        pack4xI8(vec4<i32>(q2.yw, q3.yw)),
        pack4xI8(vec4<i32>(q4.yw, q5.yw)),
        pack4xI8(vec4<i32>(q6.yw, q7.yw)),
    );
#else
    r.lo = vec4<u32>(pack4xI8(q0), pack4xI8(q1), pack4xI8(q2), pack4xI8(q3));
#endif
    r.d = amax / 127.0;
    r.s = f32(s.x + s.y + s.z + s.w);
    return r;
}

#if WEIGHT == q4 || WEIGHT == q4s
// Σ q·x̂ codes over 4-bit word w (8 weights) and its x words.
fn qdot(w: u32, lo: u32, hi: u32) -> i32 {
    return dot4I8Packed(w & 0x0F0F0F0Fu, lo) + dot4I8Packed((w >> 4u) & 0x0F0F0F0Fu, hi);
}
fn qdot_unit(q: vec4<u32>, x: XQUnit) -> i32 {
    return qdot(q.x, x.lo.x, x.hi.x) + qdot(q.y, x.lo.y, x.hi.y) + qdot(q.z, x.lo.z, x.hi.z)
         + qdot(q.w, x.lo.w, x.hi.w);
}
#else
fn qdot_unit(q: vec4<u32>, x: XQUnit) -> i32 {
    return dot4I8Packed(q.x, x.lo.x) + dot4I8Packed(q.y, x.lo.y) + dot4I8Packed(q.z, x.lo.z)
         + dot4I8Packed(q.w, x.lo.w);
}
#endif

// Σ w·x̂ over one unit for four rows: q0..q3 their packed units, s their group words (lane = row).
fn dot4(q0: vec4<u32>, q1: vec4<u32>, q2: vec4<u32>, q3: vec4<u32>, s: vec4<u32>, xq: XQUnit) -> vec4<f32> {
    let i = vec4<f32>(vec4<i32>(qdot_unit(q0, xq), qdot_unit(q1, xq), qdot_unit(q2, xq), qdot_unit(q3, xq)));
#if WEIGHT == q4 || WEIGHT == q4s
    let m0 = affine(s.x);
    let m1 = affine(s.y);
    let m2 = affine(s.z);
    let m3 = affine(s.w);
    // w = a·q + b and x̂ = d·c, so Σ w·x̂ = d·(a·Σ q·c + b·Σ c).
    return xq.d * (vec4<f32>(m0.x, m1.x, m2.x, m3.x) * i + vec4<f32>(m0.y, m1.y, m2.y, m3.y) * xq.s);
#else
    return xq.d * bitcast<vec4<f32>>(s) * i;
#endif
}
#else
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
#endif

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

#if XQ
alias XU = XQUnit;
fn xunit(xrow: u32, u: u32, ss: ptr<function, f32>) -> XU {
    return quant_x(load_x(xrow, u, ss));
}
#else
alias XU = XUnit;
fn xunit(xrow: u32, u: u32, ss: ptr<function, f32>) -> XU {
    return load_x(xrow, u, ss);
}
#endif

// Rows of one block of R output columns from c0: group a, and group b (RG == 2: the next four rows, or
// for silu the up rows of group a's gate rows). Tail blocks clamp rows to valid ones and do not store
// those results.
struct Block {
    qa: vec4<u32>,  // unit 0 of each row
    sa: vec4<u32>,  // scale word 0 of each row
    qb: vec4<u32>,
    sb: vec4<u32>,
}

fn block_rows(c0: u32) -> Block {
    let last = p.rows - 1u;
    var b: Block;
    let ra = p.row_w + min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    b.qa = ra * KU;
    b.sa = ra * KG;
#if RG == 2
#if EPI == silu
    let rb = p.row_u + min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
#else
    let rb = p.row_w + min(vec4<u32>(c0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last));
#endif
    b.qb = rb * KU;
    b.sb = rb * KG;
#endif
    return b;
}

// Unit u of the block's rows and their group words (group a, then group b).
struct UnitW {
    a0: vec4<u32>,
    a1: vec4<u32>,
    a2: vec4<u32>,
    a3: vec4<u32>,
    as4: vec4<u32>,
#if RG == 2
    b0: vec4<u32>,
    b1: vec4<u32>,
    b2: vec4<u32>,
    b3: vec4<u32>,
    bs4: vec4<u32>,
#endif
}

// Every row's 16-byte load of unit u, issued before x is read or any arithmetic waits on them.
fn unit_loads(blk: Block, u: u32) -> UnitW {
    var w: UnitW;
    w.a0 = qword(false, blk.qa.x + u);
    w.a1 = qword(false, blk.qa.y + u);
    w.a2 = qword(false, blk.qa.z + u);
    w.a3 = qword(false, blk.qa.w + u);
    w.as4 = scales4(false, blk.sa, u);
#if RG == 2
    w.b0 = qword(B_UP, blk.qb.x + u);
    w.b1 = qword(B_UP, blk.qb.y + u);
    w.b2 = qword(B_UP, blk.qb.z + u);
    w.b3 = qword(B_UP, blk.qb.w + u);
    w.bs4 = scales4(B_UP, blk.sb, u);
#endif
    return w;
}

// Σ w·x over one unit of the block's rows: group a's four sums, then group b's.
fn unit_dots(w: UnitW, xu: XU) -> array<vec4<f32>, 2> {
#if RG == 2
    return array<vec4<f32>, 2>(dot4(w.a0, w.a1, w.a2, w.a3, w.as4, xu), dot4(w.b0, w.b1, w.b2, w.b3, w.bs4, xu));
#else
    return array<vec4<f32>, 2>(dot4(w.a0, w.a1, w.a2, w.a3, w.as4, xu), vec4<f32>(0.0));
#endif
}

// Output columns of BPW consecutive blocks of R from (workgroup index) · BPW · R, for every token of
// the batch (m_rows ≤ 8). Each invocation reads, normalises (and with XQ rounds) its x units once per
// token and keeps them in registers for all the workgroup's blocks (ITERS ≤ 2; XCACHE): x is then
// read once per workgroup instead of once per block of rows — with the norm's gamma, x costs as many
// bytes per block as 8 rows of 4-bit weights, which held the 4-bit mat-vec to ~1.6 TB/s on an H200.
// Later tokens of a batch find the weights in cache.
// Grid: (x, y) flattened = workgroup index (2-D only past 65535 workgroups).
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
    let first = (wid.x + wid.y * nwg.x) * BPW;

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
#if XCACHE
        // This invocation's units lid and lid + WG.
        var ss = 0.0;
        let ok0 = KU % WG == 0u || lid < KU;
        var x0: XU;
        if (ok0) {
            x0 = xunit(xrow, lid, &ss);
        }
#if X2
        let ok1 = KU % WG == 0u || lid + WG < KU;
        var x1: XU;
        if (ok1) {
            x1 = xunit(xrow, lid + WG, &ss);
        }
#endif
#endif
        // A uniform trip count and exit keep the barriers below in uniform control flow.
        for (var bi = 0u; bi < BPW; bi++) {
            let c0 = (first + bi) * R;
            if (c0 >= p.rows) {
                break;
            }
            let blk = block_rows(c0);
            var acc_a = vec4<f32>(0.0);
            var acc_b = vec4<f32>(0.0);
#if XCACHE
            if (ok0) {
                let d = unit_dots(unit_loads(blk, lid), x0);
                acc_a += d[0];
                acc_b += d[1];
            }
#if X2
            if (ok1) {
                let d = unit_dots(unit_loads(blk, lid + WG), x1);
                acc_a += d[0];
                acc_b += d[1];
            }
#endif
#else
            var ss = 0.0;
            for (var i = 0u; i < ITERS; i++) {
                let u = lid + i * WG;
                if (KU % WG == 0u || u < KU) {
                    let w = unit_loads(blk, u);
                    let d = unit_dots(w, xunit(xrow, u, &ss));
                    acc_a += d[0];
                    acc_b += d[1];
                }
            }
#endif
            // Workgroup sums of acc_a, acc_b, ss → ta, tb, tss (valid in threads lid < R).
#if SUBGROUPS
            acc_a = subgroupAdd(acc_a);
#if RG == 2
            acc_b = subgroupAdd(acc_b);
#endif
#if NORM
            let ss_sg = subgroupAdd(ss);
#else
            let ss_sg = 0.0;
#endif
            if (lane == 0u) {
                part[rank * 3u] = acc_a;
                part[rank * 3u + 1u] = acc_b;
                part[rank * 3u + 2u] = vec4<f32>(ss_sg, 0.0, 0.0, 0.0);
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
                put(o, y);
            }
            // The next block or token reuses the reduction memory.
            workgroupBarrier();
        }
    }
}

