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
            put(o, y);
        }
        // The next token reuses the reduction memory.
        workgroupBarrier();
    }
}

