// Embedding gather: out[m, :] = dequantised row tokens[step.pos + m] of the table, one shard at a time.
// Defines: WEIGHT (f32 | q8 | q4 | q4s, layouts in quant.rs), D (columns), V (rows of the whole table),
// ROW0 / ROWS (the rows this shard holds), LAST (this shard also zero-fills out-of-range ids),
// M (rows of out to write), WG (workgroup size). One invocation per output element.

struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

// step: uniform — token m of the batch is at position step.pos + m
@group(0) @binding(0) var<uniform> step: Step;
// tokens: [max_ctx] u32 — the on-GPU token history
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
// out: [M, D] f32 (may be longer; only the first M rows are written)
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
// qs: [ROWS, D] f32 bits | [ROWS, D/4] u32 (4 × i8) | [ROWS, D/8] u32 (8 × u4) — this shard's rows
@group(0) @binding(3) var<storage, read> qs: array<u32>;
#if WEIGHT != f32
// scales: [ROWS, D/32] u32 — f32 bits (q8) or f16 scale | f16 min << 16 (q4);
// [ROWS, ceil(D/64)] u32 — f16 d of group 2j | f16 d of group 2j + 1 << 16 (q4s)
@group(0) @binding(4) var<storage, read> scales: array<u32>;
#endif

// Column c of shard-local row r, exactly as HostMatrix::dequantize_row computes it.
fn weight(r: u32, c: u32) -> f32 {
#if WEIGHT == f32
    return bitcast<f32>(qs[r * D + c]);
#elif WEIGHT == q8
    let code = extractBits(bitcast<i32>(qs[r * (D / 4u) + c / 4u]), 8u * (c % 4u), 8u);
    return bitcast<f32>(scales[r * (D / 32u) + c / 32u]) * f32(code);
#elif WEIGHT == q4s
    let s = scales[r * ((D + 63u) / 64u) + c / 64u] >> (16u * ((c / 32u) & 1u));
    let code = extractBits(qs[r * (D / 8u) + c / 8u], 4u * (c % 8u), 4u);
    return unpack2x16float(s).x * (f32(code) - 8.0);
#else
    let sm = unpack2x16float(scales[r * (D / 32u) + c / 32u]);
    let code = extractBits(qs[r * (D / 8u) + c / 8u], 4u * (c % 8u), 4u);
    return sm.x * f32(code) + sm.y;
#endif
}

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * WG;
    if (e >= M * D) {
        return;
    }
    let m = e / D;
    let c = e % D;
    let p = step.pos + m;
    // A position past the history reads as an out-of-range id: zeros, never an out-of-bounds read.
    var id = 0xffffffffu;
    if (p < arrayLength(&tokens)) {
        id = tokens[p];
    }
    if (id >= ROW0 && id < ROW0 + ROWS) {
        out[e] = weight(id - ROW0, c);
    } else if (LAST && id >= V) {
        out[e] = 0.0;
    }
}
