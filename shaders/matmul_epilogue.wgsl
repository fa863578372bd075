// The linear layers' epilogue shared by matmul.wgsl and matmul_f16.wgsl (#include matmul_epilogue):
// bias, activation and the store. The includer defines EPI and BIAS, the `out` binding and, with
// BIAS, the `bias` binding.

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


// Writes output element o: out = y, or out += y (EPI == acc: the fused residual add).
fn put(o: u32, y: f32) {
#if EPI == acc
    out[o] += y;
#else
    out[o] = y;
#endif
}
