// Rotary position embedding fused with the KV-cache store.
// Defines: NH (q heads), KVH (kv heads), HD (head dim, even), MAXLEN (cache
// positions), STYLE (sym: adjacent = pairs (2i, 2i+1) as in GGUF, half = pairs (i, i + HD/2) as in
// Hugging Face), F16 (cache element type), WG (workgroup size).
// One invocation per rotation pair of a qkv row: q pairs are rotated in place, k pairs are rotated
// into the cache, v pairs are copied into the cache. Rows m >= step.n_tokens are left alone.

#if F16
enable f16;
alias KV = f16;
#else
alias KV = f32;
#endif

struct Step { pos: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

const HALF: u32 = HD / 2u;
// qkv row: NH q heads, then KVH k heads, then KVH v heads
const ROW: u32 = (NH + 2u * KVH) * HD;
const PAIRS: u32 = (NH + 2u * KVH) * HALF;

// qkv: [m_rows, (NH + 2·KVH)·HD] f32 — q part rotated in place
@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
// inv_freq: [HD/2] f32 — rotation frequency of pair i (Llama-3 scaling already applied)
@group(0) @binding(1) var<storage, read> inv_freq: array<f32>;
// k_cache: [MAXLEN, KVH, HD] KV — rotated keys, written at positions step.pos + m
@group(0) @binding(2) var<storage, read_write> k_cache: array<KV>;
// v_cache: [MAXLEN, KVH, HD] KV — values, written at positions step.pos + m
@group(0) @binding(3) var<storage, read_write> v_cache: array<KV>;
// step: uniform — pos of row 0, n_tokens valid rows
@group(0) @binding(4) var<uniform> step: Step;

#include rope_angle

@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    let m = t / PAIRS;
    // The batch size is not a define (one pipeline for every prompt chunk): rows are bounded by the
    // buffer and by step.n_tokens.
    if (m >= min(arrayLength(&qkv) / ROW, step.n_tokens)) {
        return;
    }
    let pair = t % PAIRS;
    let head = pair / HALF;
    let i = pair % HALF;
#if STYLE == adjacent
    let d0 = 2u * i;
    let d1 = 2u * i + 1u;
#else
    let d0 = i;
    let d1 = i + HALF;
#endif
    let base = m * ROW + head * HD;
    let x0 = qkv[base + d0];
    let x1 = qkv[base + d1];
    let pos = step.pos + m;
    // The cache write is skipped past the end (a caller error checked by the model); never write out
    // of bounds.
    let in_cache = pos < MAXLEN;
    if (head >= NH + KVH) {
        if (in_cache) {
            let c = (pos * KVH + head - NH - KVH) * HD;
            v_cache[c + d0] = KV(x0);
            v_cache[c + d1] = KV(x1);
        }
        return;
    }
    let a = reduce_angle(f32(pos) * inv_freq[i]);
    let cs = cos(a);
    let sn = sin(a);
    let y0 = x0 * cs - x1 * sn;
    let y1 = x0 * sn + x1 * cs;
    if (head < NH) {
        qkv[base + d0] = y0;
        qkv[base + d1] = y1;
    } else if (in_cache) {
        let c = (pos * KVH + head - NH) * HD;
        k_cache[c + d0] = KV(y0);
        k_cache[c + d1] = KV(y1);
    }
}
