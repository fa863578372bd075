// Row normalisation: RMSNorm (Llama) or, with LAYER, LayerNorm (the BERT encoder).
// Defines: D (row length), ROWS (rows to normalise), EPS, LAYER (bool), WG (workgroup size, a power of
// two). One workgroup per row; a fixed reduction tree, so results are deterministic.

// x: [ROWS, D] f32
@group(0) @binding(0) var<storage, read> x: array<f32>;
// gamma: [D] f32
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
#if LAYER
// beta: [D] f32
@group(0) @binding(2) var<storage, read> beta: array<f32>;
// out: [ROWS, D] f32 (a different buffer from x)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
#else
// out: [ROWS, D] f32 (a different buffer from x)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#endif

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

@compute @workgroup_size(WG)
fn norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= ROWS) {
        return;
    }
    let row = r * D;
#if LAYER
    var s = 0.0;
    for (var i = t; i < D; i += WG) {
        s += x[row + i];
    }
    let mean = wg_sum(t, s) / f32(D);
    // Two passes (mean, then squared deviations) rather than E[x²] - E[x]²: no cancellation.
    var v = 0.0;
    for (var i = t; i < D; i += WG) {
        let d = x[row + i] - mean;
        v += d * d;
    }
    let inv = inverseSqrt(wg_sum(t, v) / f32(D) + EPS);
    for (var i = t; i < D; i += WG) {
        out[row + i] = (x[row + i] - mean) * inv * gamma[i] + beta[i];
    }
#else
    var ss = 0.0;
    for (var i = t; i < D; i += WG) {
        let xi = x[row + i];
        ss += xi * xi;
    }
    let inv = inverseSqrt(wg_sum(t, ss) / f32(D) + EPS);
    for (var i = t; i < D; i += WG) {
        out[row + i] = x[row + i] * inv * gamma[i];
    }
#endif
}
