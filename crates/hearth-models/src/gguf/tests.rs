//! GGUF parser and conversion tests on files built here, byte by byte.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::config::{LlamaConfig, RopeStyle};
use hearth_gpu::WeightFormat;

/// Builds GGUF files for tests (little-endian, as the spec).
pub(crate) struct Builder {
    pub version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    data: Vec<u8>,
    alignment: usize,
}

fn gstr(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

impl Builder {
    pub fn new() -> Self {
        Self {
            version: 3,
            kv: vec![],
            n_kv: 0,
            infos: vec![],
            n_tensors: 0,
            data: vec![],
            alignment: 32,
        }
    }

    /// A key with value type `ty` and its already-encoded payload.
    pub fn kv(&mut self, key: &str, ty: u32, payload: &[u8]) -> &mut Self {
        self.kv.extend(gstr(key));
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend_from_slice(payload);
        self.n_kv += 1;
        self
    }

    pub fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.kv(key, 4, &v.to_le_bytes())
    }

    pub fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.kv(key, 6, &v.to_le_bytes())
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.kv(key, 8, &gstr(v))
    }

    pub fn alignment(&mut self, a: u32) -> &mut Self {
        self.alignment = a as usize;
        self.u32("general.alignment", a)
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) -> &mut Self {
        let pad = self.data.len().next_multiple_of(self.alignment);
        self.data.resize(pad, 0);
        self.infos.extend(gstr(name));
        self.infos.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| self.infos.extend(d.to_le_bytes()));
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        self.data.extend_from_slice(bytes);
        self.n_tensors += 1;
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(self.version.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.infos);
        b.resize(b.len().next_multiple_of(self.alignment), 0);
        b.extend(&self.data);
        b
    }
}

/// Random blocks of ggml type `ty` for a `[rows, cols]` tensor, with finite f16 scales.
fn random_blocks(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    let half = |rng: &mut ChaCha8Rng| {
        let v: f32 = rng.gen_range(-0.05..0.05);
        f16::from_f32(v).to_le_bytes()
    };
    let mut out = vec![];
    match ty {
        GgmlType::F32 => (0..n).for_each(|_| out.extend(rng.gen_range(-1f32..1.0).to_le_bytes())),
        GgmlType::F16 => (0..n).for_each(|_| out.extend(half(rng))),
        _ => {
            for _ in 0..n / 32 {
                out.extend(half(rng));
                if ty == GgmlType::Q4_1 {
                    out.extend(half(rng));
                }
                let q = if ty == GgmlType::Q8_0 { 32 } else { 16 };
                (0..q).for_each(|_| out.push(rng.gen()));
            }
        }
    }
    out
}

/// ggml's `dequantize_row_*` (ggml-quants.c), written from the format description and independent
/// of the repacking code: the reference that proves the conversion lossless.
fn ggml_dequantize(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut y = vec![];
    match ty {
        GgmlType::F32 => y.extend(
            data.chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
        ),
        GgmlType::F16 => y.extend(data.chunks(2).map(h)),
        GgmlType::Q8_0 => {
            for b in data.chunks(34) {
                y.extend(b[2..].iter().map(|&q| q as i8 as f32 * h(&b[0..2])));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let q4_1 = ty == GgmlType::Q4_1;
            for b in data.chunks(if q4_1 { 20 } else { 18 }) {
                let d = h(&b[0..2]);
                let qs = &b[if q4_1 { 4 } else { 2 }..];
                let mut block = [0f32; 32];
                for j in 0..16 {
                    let (x0, x1) = ((qs[j] & 0x0F) as i32, (qs[j] >> 4) as i32);
                    if q4_1 {
                        let m = h(&b[2..4]);
                        block[j] = x0 as f32 * d + m;
                        block[j + 16] = x1 as f32 * d + m;
                    } else {
                        block[j] = (x0 - 8) as f32 * d;
                        block[j + 16] = (x1 - 8) as f32 * d;
                    }
                }
                y.extend(block);
            }
        }
        t => panic!("no reference for {}", t.name()),
    }
    y
}

/// Bitwise equality, signed zeros included (Q4S computes ggml's `d·(q − 8)`, so Q4_0's code 8
/// under a negative `d` is −0 on both sides).
fn assert_bitwise(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn every_supported_type_converts_losslessly() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (rows, cols) = (5, 96);
    for (ty, want_format) in [
        (GgmlType::Q4_0, WeightFormat::Q4S),
        (GgmlType::Q4_1, WeightFormat::Q4),
        (GgmlType::Q8_0, WeightFormat::Q8),
        (GgmlType::F16, WeightFormat::F32),
        (GgmlType::F32, WeightFormat::F32),
    ] {
        let data = random_blocks(&mut rng, ty, rows, cols);
        let bytes = Builder::new()
            .tensor("w", &[cols as u64, rows as u64], ty.0, &data)
            .build();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(g.tensor_data(&bytes, "w").unwrap(), &data[..]);
        let m = g.matrix(&bytes, "w", [rows, cols]).unwrap();
        assert_eq!(m.format, want_format, "{}", ty.name());
        assert_bitwise(&ty.name(), &m.dequantize(), &ggml_dequantize(ty, &data));
    }
}

#[test]
fn q4_0_extreme_scales_are_exact() {
    // Subnormal, negative and huge scales all repack exactly into Q4S. Only stacking one with a Q4
    // matrix (which turns it into Q4, min = −8d) needs −8d to fit in f16.
    for (d, fits_q4) in [
        (6e-8f32, true),
        (-0.75, true),
        (8000.0, true),
        (9000.0, false),
        (-65504.0, false),
    ] {
        let mut block = f16::from_f32(d).to_le_bytes().to_vec();
        block.extend((0..16u8).map(|i| i * 17));
        let bytes = Builder::new().tensor("w", &[32, 1], 2, &block).build();
        let g = Gguf::parse(&bytes).unwrap();
        let m = g.matrix(&bytes, "w", [1, 32]).unwrap();
        assert_eq!(m.format, WeightFormat::Q4S);
        let want = ggml_dequantize(GgmlType::Q4_0, &block);
        assert_bitwise("q4_0", &m.dequantize(), &want);
        match m.q4s_as_q4() {
            Ok(q4) => {
                assert!(fits_q4, "d = {d}: −8d should overflow f16");
                // Equal values; `d·q + (−8d)` gives +0 where ggml gives −0 (q = 8, d < 0).
                assert_eq!(q4.dequantize(), want, "d = {d}");
            }
            Err(e) => assert!(!fits_q4, "d = {d}: {e}"),
        }
    }
}

#[test]
fn unsupported_types_are_named() {
    let bytes = Builder::new()
        .tensor("w", &[256, 1], 12, &[0u8; 144])
        .tensor("v", &[256], 30, &[0u8; 512])
        .build();
    let g = Gguf::parse(&bytes).unwrap();
    let e = g.matrix(&bytes, "w", [1, 256]).unwrap_err();
    assert!(
        matches!(&e, ModelError::Unsupported(m) if m.contains("Q4_K")),
        "{e}"
    );
    let e = g.vector(&bytes, "v", 256).unwrap_err();
    assert!(
        matches!(&e, ModelError::Unsupported(m) if m.contains("BF16")),
        "{e}"
    );
    let e = g.matrix(&bytes, "w", [2, 256]).unwrap_err();
    assert!(matches!(e, ModelError::TensorShape { .. }), "{e}");
    // An unknown type id parses (metadata stays readable) but its data cannot be read.
    let bytes = Builder::new().tensor("x", &[4], 99, &[0u8; 4]).build();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(
        matches!(g.tensor_data(&bytes, "x"), Err(ModelError::Unsupported(m)) if m.contains("type 99"))
    );
}

#[test]
fn all_metadata_types_and_nested_arrays() {
    let mut nested = vec![];
    nested.extend(9u32.to_le_bytes()); // array of arrays
    nested.extend(2u64.to_le_bytes());
    nested.extend(4u32.to_le_bytes()); // [u32; 2]
    nested.extend(2u64.to_le_bytes());
    nested.extend(7u32.to_le_bytes());
    nested.extend(8u32.to_le_bytes());
    nested.extend(8u32.to_le_bytes()); // [string; 1]
    nested.extend(1u64.to_le_bytes());
    nested.extend(gstr("héllo"));
    let mut strs = vec![];
    strs.extend(8u32.to_le_bytes());
    strs.extend(2u64.to_le_bytes());
    strs.extend(gstr("a b"));
    strs.extend(gstr("Ġt"));
    for version in [2, 3] {
        let mut b = Builder::new();
        b.version = version;
        b.kv("u8", 0, &[200])
            .kv("i8", 1, &[0xFF])
            .kv("u16", 2, &500u16.to_le_bytes())
            .kv("i16", 3, &(-500i16).to_le_bytes())
            .u32("u32", 70000)
            .kv("i32", 5, &(-7i32).to_le_bytes())
            .f32("f32", 1.5)
            .kv("bool", 7, &[1])
            .str("str", "llama")
            .kv("u64", 10, &(1u64 << 40).to_le_bytes())
            .kv("i64", 11, &(-1i64).to_le_bytes())
            .kv("f64", 12, &0.25f64.to_le_bytes())
            .kv("nested", 9, &nested)
            .kv("strs", 9, &strs);
        let g = Gguf::parse(&b.build()).unwrap();
        assert_eq!(g.version, version);
        assert_eq!(g.metadata.len(), 14);
        assert_eq!(g.get_u32("u8").unwrap(), 200);
        assert_eq!(g.get_i64("i8").unwrap(), -1);
        assert_eq!(g.get_u32("u16").unwrap(), 500);
        assert_eq!(g.get_i64("i16").unwrap(), -500);
        assert_eq!(g.get_u32("u32").unwrap(), 70000);
        assert_eq!(g.get_i64("i32").unwrap(), -7);
        assert_eq!(g.get_f32("f32").unwrap(), 1.5);
        assert!(g.get_bool("bool").unwrap());
        assert_eq!(g.get_str("str").unwrap(), "llama");
        assert_eq!(g.get_u64("u64").unwrap(), 1 << 40);
        assert_eq!(g.get_f32("f64").unwrap(), 0.25);
        assert_eq!(g.get_str_array("strs").unwrap(), ["a b", "Ġt"]);
        assert_eq!(
            g.get_array("nested").unwrap(),
            &MetaArray::Array(vec![
                MetaArray::U32(vec![7, 8]),
                MetaArray::String(vec!["héllo".into()])
            ])
        );
        // Wrong types and ranges are errors, missing keys too; `opt_*` only forgives absence.
        assert!(g.get_u32("u64").is_err() && g.get_u32("i8").is_err());
        assert!(g.get_str("u32").is_err() && g.get_str_array("nested").is_err());
        assert!(matches!(g.get_u32("nope"), Err(ModelError::Gguf(m)) if m.contains("nope")));
        assert_eq!(g.opt_u32("nope").unwrap(), None);
        assert!(g.opt_u32("str").is_err());
        // The same getters work on the bare map (what `TokenizerFiles::Gguf` carries).
        assert_eq!(g.metadata.get_str_array("strs").unwrap().len(), 2);
    }
}

#[test]
fn alignment_is_honoured() {
    let data: Vec<u8> = (0..64u8).collect();
    let bytes = Builder::new()
        .alignment(64)
        .tensor("a", &[3], 0, &data[..12])
        .tensor("b", &[16], 0, &data)
        .build();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.tensor("b").unwrap().offset, 64);
    assert_eq!(g.tensor_data(&bytes, "b").unwrap(), &data[..]);
    assert_eq!(g.tensor_data(&bytes, "a").unwrap(), &data[..12]);
}

/// `Err(ModelError::Gguf)` whose message contains `needle`.
fn gguf_err(bytes: &[u8], needle: &str) {
    match Gguf::parse(bytes) {
        Err(ModelError::Gguf(m)) => assert!(m.contains(needle), "`{m}` lacks `{needle}`"),
        other => panic!("expected a GGUF error with `{needle}`, got {other:?}"),
    }
}

#[test]
fn malformed_headers_are_errors() {
    let base = Builder::new()
        .str("k", "v")
        .tensor("t", &[8], 0, &[0; 32])
        .build();
    Gguf::parse(&base).unwrap();
    let patch = |at: usize, bytes: &[u8]| {
        let mut b = base.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    gguf_err(&patch(0, b"GGUG"), "magic");
    assert!(matches!(
        Gguf::parse(&patch(4, &1u32.to_le_bytes())),
        Err(ModelError::Unsupported(_))
    ));
    assert!(matches!(
        Gguf::parse(&patch(4, &3u32.to_be_bytes())),
        Err(ModelError::Unsupported(_))
    ));
    gguf_err(&patch(4, &9u32.to_le_bytes()), "version");
    gguf_err(&patch(8, &(1u64 << 60).to_le_bytes()), "tensor count");
    gguf_err(&patch(16, &u64::MAX.to_le_bytes()), "metadata count");
    // Key length (offset 24), value type (24 + 8 + 1), string length (after the type).
    gguf_err(&patch(24, &(1u64 << 60).to_le_bytes()), "metadata key");
    gguf_err(&patch(33, &13u32.to_le_bytes()), "unknown value type");
    gguf_err(&patch(37, &(1u64 << 62).to_le_bytes()), "k");
    // Tensor info: name at 46, n_dims at 46 + 9, dim at 59, type at 67, offset at 71.
    gguf_err(&patch(55, &5u32.to_le_bytes()), "dims");
    gguf_err(&patch(59, &(1u64 << 40).to_le_bytes()), "past the end");
    gguf_err(&patch(67, &2u32.to_le_bytes()), "block size");
    gguf_err(&patch(71, &4u64.to_le_bytes()), "alignment");
    gguf_err(
        &patch(71, &u64::MAX.wrapping_sub(31).to_le_bytes()),
        "past the end",
    );

    let dup = Builder::new().str("k", "a").str("k", "b").build();
    gguf_err(&dup, "duplicate metadata key");
    let dup = Builder::new()
        .tensor("t", &[1], 0, &[0; 4])
        .tensor("t", &[1], 0, &[0; 4])
        .build();
    gguf_err(&dup, "duplicate tensor");
    gguf_err(&Builder::new().kv("b", 7, &[2]).build(), "bool");
    gguf_err(
        &Builder::new()
            .kv("s", 8, &[1, 0, 0, 0, 0, 0, 0, 0, 0xFF])
            .build(),
        "UTF-8",
    );
    let overflow = Builder::new()
        .tensor("t", &[1 << 32, 1 << 32, 1 << 1], 0, &[])
        .build();
    gguf_err(&overflow, "overflow");
    gguf_err(
        &Builder::new().u32("general.alignment", 48).build(),
        "alignment",
    );
    // Arrays nested deeper than the limit: each level is `[array; 1]`.
    let mut deep = vec![];
    for _ in 0..20 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    deep.extend(4u32.to_le_bytes());
    deep.extend(0u64.to_le_bytes());
    gguf_err(
        &Builder::new().kv("deep", 9, &deep[4 + 8..]).build(),
        "nested",
    );
}

#[test]
fn truncation_anywhere_is_an_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data = random_blocks(&mut rng, GgmlType::Q4_1, 2, 64);
    let bytes = Builder::new()
        .str("general.architecture", "llama")
        .kv(
            "arr",
            9,
            &[4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0],
        )
        .tensor("w", &[64, 2], 3, &data)
        .build();
    Gguf::parse(&bytes).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            matches!(Gguf::parse(&bytes[..cut]), Err(ModelError::Gguf(_))),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
}

/// Llama-3 RoPE divisors as llama.cpp's converter computes them (`rope_freqs.weight`).
fn llama3_divisors(
    theta: f64,
    head_dim: usize,
    factor: f64,
    low: f64,
    high: f64,
    orig: f64,
) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < orig / high {
                1.0
            } else if wavelen > orig / low {
                factor as f32
            } else {
                let smooth = (orig / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

fn llama_builder(rope_freqs: Option<&[f32]>) -> Builder {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (d, f, v) = (64u64, 96u64, 40u64);
    let mut b = Builder::new();
    b.str("general.architecture", "llama")
        .u32("llama.embedding_length", d as u32)
        .u32("llama.block_count", 1)
        .kv("llama.context_length", 10, &512u64.to_le_bytes()) // u64 on purpose
        .u32("llama.feed_forward_length", f as u32)
        .u32("llama.attention.head_count", 4)
        .u32("llama.attention.head_count_kv", 2)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-6)
        .f32("llama.rope.freq_base", 500000.0)
        .u32("tokenizer.ggml.eos_token_id", 3);
    let mut mat = |b: &mut Builder, name: &str, rows: u64, cols: u64, ty: GgmlType| {
        let data = random_blocks(&mut rng, ty, rows as usize, cols as usize);
        b.tensor(name, &[cols, rows], ty.0, &data);
    };
    mat(&mut b, "token_embd.weight", v, d, GgmlType::Q8_0);
    mat(&mut b, "output.weight", v, d, GgmlType::F16);
    mat(&mut b, "blk.0.attn_q.weight", 64, d, GgmlType::Q4_0);
    mat(&mut b, "blk.0.attn_k.weight", 32, d, GgmlType::Q4_1);
    mat(&mut b, "blk.0.attn_v.weight", 32, d, GgmlType::Q8_0);
    mat(&mut b, "blk.0.attn_output.weight", d, 64, GgmlType::F32);
    mat(&mut b, "blk.0.ffn_gate.weight", f, d, GgmlType::Q4_1);
    mat(&mut b, "blk.0.ffn_up.weight", f, d, GgmlType::Q4_1);
    mat(&mut b, "blk.0.ffn_down.weight", d, f, GgmlType::Q4_1);
    for n in ["blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"] {
        mat(&mut b, &format!("{n}.weight"), 1, d, GgmlType::F32);
    }
    if let Some(r) = rope_freqs {
        let bytes: Vec<u8> = r.iter().flat_map(|x| x.to_le_bytes()).collect();
        b.tensor("rope_freqs.weight", &[r.len() as u64], 0, &bytes);
    }
    b
}

#[test]
fn llama_metadata_maps_to_config_and_weights() {
    let bytes = llama_builder(None).build();
    let g = Gguf::parse(&bytes).unwrap();
    let w = g.llama_weights(&bytes).unwrap();
    let c = &w.config;
    let want = LlamaConfig {
        vocab_size: 40,
        hidden_size: 64,
        intermediate_size: 96,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 16,
        rms_norm_eps: 1e-6,
        rope_theta: 500000.0,
        rope_scaling: None,
        rope_style: RopeStyle::Adjacent,
        max_position_embeddings: 512,
        tie_word_embeddings: false,
        bos_token_id: None,
        eos_token_ids: vec![3],
    };
    assert_eq!(c, &want);
    // Mixed formats pass through per matrix; every value equals ggml's own dequantisation.
    let l = &w.layers[0];
    assert_eq!(
        [l.wq.format, l.wk.format, l.wv.format, l.wo.format],
        [
            WeightFormat::Q4S,
            WeightFormat::Q4,
            WeightFormat::Q8,
            WeightFormat::F32
        ]
    );
    for (name, m) in [
        ("output.weight", w.lm_head.as_ref().unwrap()),
        ("blk.0.attn_q.weight", &l.wq),
    ] {
        let t = g.tensor(name).unwrap();
        let want = ggml_dequantize(t.dtype, g.tensor_data(&bytes, name).unwrap());
        assert_bitwise(name, &m.dequantize(), &want);
    }
    assert_eq!(
        w.norm,
        ggml_dequantize(
            GgmlType::F32,
            g.tensor_data(&bytes, "output_norm.weight").unwrap()
        )
    );
}

#[test]
fn llama_metadata_errors() {
    let mut b = Builder::new();
    b.str("general.architecture", "gpt2");
    let bytes = b.build();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(
        matches!(g.llama_config(&bytes), Err(ModelError::Unsupported(m)) if m.contains("gpt2"))
    );
    let mut b = Builder::new();
    b.str("general.architecture", "llama")
        .u32("llama.embedding_length", 64);
    let bytes = b.build();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(matches!(g.llama_config(&bytes), Err(ModelError::Gguf(m)) if m.contains("head_count")));
}

#[test]
fn llama3_rope_freqs_are_recognised() {
    for (factor, orig) in [(8.0, 8192.0), (32.0, 8192.0)] {
        let div = llama3_divisors(500000.0, 16, factor, 1.0, 4.0, orig);
        let bytes = llama_builder(Some(&div)).build();
        let g = Gguf::parse(&bytes).unwrap();
        let c = g.llama_config(&bytes).unwrap();
        let s = c.rope_scaling.expect("scaling recovered");
        assert_eq!(
            (s.factor, s.low_freq_factor, s.high_freq_factor),
            (factor as f32, 1.0, 4.0)
        );
        assert_eq!(s.original_max_position_embeddings, orig as u32);
    }
    // Divisors no Llama-3 parameters explain are refused rather than guessed.
    let odd: Vec<f32> = (0..8).map(|i| 1.0 + i as f32 * 0.37).collect();
    let bytes = llama_builder(Some(&odd)).build();
    let g = Gguf::parse(&bytes).unwrap();
    assert!(matches!(
        g.llama_config(&bytes),
        Err(ModelError::Unsupported(_))
    ));
}
