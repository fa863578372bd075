// Row normalisation: RMSNorm (Llama) or, with LAYER, LayerNorm (the BERT encoder); and the encoder's
// sentence pooling. One workgroup per row; fixed reduction trees, so results are deterministic.
// Defines: PASS (norm | pool), D (row length), EPS, WG (workgroup size, a power of two).
// norm: LAYER (bool), GATHER (LAYER only: the input row is the sum of the word, position and
// token-type-0 embedding rows of token (id, position) — BERT's embedding layer fused with its norm).
// pool: CLS (take each sequence's first row instead of the mean of its rows), L2 (scale to unit length).
// The row count is a uniform, so one pipeline serves every batch size.

struct Params { rows: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

var<workgroup> red: array<f32, WG>;

// Sum of `v` over the workgroup (every invocation gets the result).
fn wg_sum(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (t < s) {
            red[t] = red[t] + red[t + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    // Nobody may overwrite red[0] before everyone has read it.
    workgroupBarrier();
    return r;
}

#if PASS == norm
#if GATHER
// tok: [rows] vec2<u32> — (token id, position) of each row
@group(0) @binding(0) var<storage, read> tok: array<vec2<u32>>;
// word: [vocab, D] f32
@group(0) @binding(1) var<storage, read> word: array<f32>;
// pos_emb: [max positions, D] f32
@group(0) @binding(2) var<storage, read> pos_emb: array<f32>;
// type_emb: [≥ 1, D] f32 — row 0 is used (single-segment inputs)
@group(0) @binding(3) var<storage, read> type_emb: array<f32>;
// gamma: [D] f32
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
// beta: [D] f32
@group(0) @binding(5) var<storage, read> beta: array<f32>;
// out: [rows, D] f32
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// p: row count
@group(0) @binding(7) var<uniform> p: Params;
#else
// x: [rows, D] f32
@group(0) @binding(0) var<storage, read> x: array<f32>;
// gamma: [D] f32
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
#if LAYER
// beta: [D] f32
@group(0) @binding(2) var<storage, read> beta: array<f32>;
// out: [rows, D] f32 (a different buffer from x)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// p: row count
@group(0) @binding(4) var<uniform> p: Params;
#else
// out: [rows, D] f32 (a different buffer from x)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// p: row count
@group(0) @binding(3) var<uniform> p: Params;
#endif
#endif

// Element i of input row r.
fn x_at(r: u32, i: u32) -> f32 {
#if GATHER
    let t = tok[r];
    return word[t.x * D + i] + pos_emb[t.y * D + i] + type_emb[i];
#else
    return x[r * D + i];
#endif
}

@compute @workgroup_size(WG)
fn norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let row = r * D;
#if LAYER
    var s = 0.0;
    for (var i = t; i < D; i += WG) {
        s += x_at(r, i);
    }
    let mean = wg_sum(t, s) / f32(D);
    // Two passes (mean, then squared deviations) rather than E[x²] - E[x]²: no cancellation.
    var v = 0.0;
    for (var i = t; i < D; i += WG) {
        let d = x_at(r, i) - mean;
        v += d * d;
    }
    let inv = inverseSqrt(wg_sum(t, v) / f32(D) + EPS);
    for (var i = t; i < D; i += WG) {
        out[row + i] = (x_at(r, i) - mean) * inv * gamma[i] + beta[i];
    }
#else
    var ss = 0.0;
    for (var i = t; i < D; i += WG) {
        let xi = x_at(r, i);
        ss += xi * xi;
    }
    let inv = inverseSqrt(wg_sum(t, ss) / f32(D) + EPS);
    for (var i = t; i < D; i += WG) {
        out[row + i] = x_at(r, i) * inv * gamma[i];
    }
#endif
}
#endif

#if PASS == pool
// h: [tokens, D] f32 — the packed batch's hidden states
@group(0) @binding(0) var<storage, read> h: array<f32>;
// seqs: [rows] vec2<u32> — sequence b is tokens seqs[b].x .. seqs[b].y (non-empty)
@group(0) @binding(1) var<storage, read> seqs: array<vec2<u32>>;
// out: [rows, D] f32 — one embedding per sequence
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// p: sequence count
@group(0) @binding(3) var<uniform> p: Params;

// Invocation t owns columns t, t + WG, …: consecutive invocations read consecutive columns of a row.
const CPT: u32 = (D + WG - 1u) / WG;

@compute @workgroup_size(WG)
fn pool(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if (b >= p.rows) {
        return;
    }
    let s = seqs[b];
    var v: array<f32, CPT>;
    var ss = 0.0;
    for (var c = 0u; c < CPT; c++) {
        let i = t + c * WG;
        if (i < D) {
#if CLS
            v[c] = h[s.x * D + i];
#else
            var acc = 0.0;
            for (var r = s.x; r < s.y; r++) {
                acc += h[r * D + i];
            }
            v[c] = acc / f32(max(s.y - s.x, 1u));
#endif
            ss += v[c] * v[c];
        }
    }
#if L2
    // As torch.nn.functional.normalize: divide by max(‖v‖, 1e-12).
    let scale = 1.0 / max(sqrt(wg_sum(t, ss)), 1e-12);
#else
    let scale = 1.0;
#endif
    for (var c = 0u; c < CPT; c++) {
        let i = t + c * WG;
        if (i < D) {
            out[b * D + i] = v[c] * scale;
        }
    }
}
#endif
