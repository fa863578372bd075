// Weight decoding shared by matmul.wgsl and matmul_f16.wgsl (#include matmul_decode; layouts:
// crates/hearth-gpu/src/quant.rs). The includer defines WEIGHT and K, and the functions qword(up, i) /
// sword(up, i): 16-byte unit i / scale word i of the gate (or, with `up`, the up) rows.

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

// ---- weight decoding ----

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
