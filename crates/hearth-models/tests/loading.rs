//! Loading the committed tiny fixtures, the real SmolLM2 GGUF (when downloaded), and pack round trips.
#![allow(clippy::unwrap_used)] // tests may unwrap (conventions)

mod common;

use std::collections::BTreeMap;

use common::*;
use half::bf16;
use hearth_gpu::quant::{q4s_scale, unpack_f16x2};
use hearth_gpu::{HostMatrix, WeightFormat};
use hearth_models::gguf::{Gguf, MetaValue, Metadata};
use hearth_models::pack::{write_pack, Manifest, MANIFEST, STAMP};
use hearth_models::{
    default_model_path, load_gguf_bytes, load_pack_files, load_path, load_path_as, LlamaWeights,
    ModelError, ModelKind, RopeStyle, TokenizerFiles,
};

fn gguf_meta(t: &TokenizerFiles) -> &BTreeMap<String, MetaValue> {
    match t {
        TokenizerFiles::Gguf(m) => m,
        other => panic!("expected GGUF metadata, got {other:?}"),
    }
}

/// Every matrix of a GGUF llama model with its tensor name.
fn gguf_matrices(w: &LlamaWeights) -> Vec<(String, &HostMatrix)> {
    let mut v = vec![("token_embd.weight".to_string(), &w.embed)];
    let names = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    for (i, l) in w.layers.iter().enumerate() {
        for (n, m) in names.iter().zip(l.matrices()) {
            v.push((format!("blk.{i}.{n}.weight"), m));
        }
    }
    v
}

#[test]
fn tiny_gguf_loads_losslessly() {
    let path = tiny_gguf();
    let files = load_path(&path).unwrap();
    assert_eq!(files.kind, ModelKind::Gguf);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(load_gguf_bytes(&bytes).unwrap(), files);

    let w = &files.weights;
    let c = &w.config;
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers
        ),
        (49152, 64, 128, 2)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (4, 2, 16)
    );
    assert_eq!(
        (c.max_position_embeddings, c.rope_theta, c.rms_norm_eps),
        (4096, 100000.0, 1e-5)
    );
    assert_eq!(c.rope_style, RopeStyle::Adjacent);
    assert!(c.tie_word_embeddings && w.lm_head.is_none() && c.rope_scaling.is_none());
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.as_slice()),
        (Some(1), &[2][..])
    );
    assert_eq!(w.embed.format, WeightFormat::Q8);
    assert!(w
        .layers
        .iter()
        .all(|l| l.matrices().iter().all(|m| m.format == WeightFormat::Q4)));

    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    for (name, m) in gguf_matrices(w) {
        assert_lossless(&g, &bytes, &name, &m.dequantize());
    }
    assert_lossless(&g, &bytes, "output_norm.weight", &w.norm);
    assert_lossless(&g, &bytes, "blk.1.ffn_norm.weight", &w.layers[1].ffn_norm);

    let meta = gguf_meta(&files.tokenizer);
    assert_eq!(
        meta.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    assert_eq!(
        meta.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48900
    );
    assert_eq!(meta.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert!(meta
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("<|im_start|>"));
}

#[test]
fn tiny_gguf_has_smollm2_tokenizer_metadata() {
    let Some(real) = default_model_path(SMOLLM2) else {
        eprintln!("SKIPPED: {SMOLLM2} not found under $HEARTH_MODELS or ~/.cache/hearth/models");
        return;
    };
    let real = std::fs::read(real).unwrap();
    let real = Gguf::parse(&real).unwrap();
    let tiny = Gguf::parse(&std::fs::read(tiny_gguf()).unwrap()).unwrap();
    let tok = |g: &Gguf| -> BTreeMap<String, MetaValue> {
        g.metadata
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(tok(&tiny), tok(&real));
    assert!(tok(&real).len() >= 10);
}

/// The largest error round-to-nearest may make on `a` in group `g` of `m` (Q4 or Q4S), before f16
/// rounding of the scales: half a step, except that Q4S's codes reach only 7 steps on the side
/// opposite the group's largest magnitude, where values beyond clamp.
fn int4_bound(m: &HostMatrix, g: usize, a: f32) -> (f32, f32) {
    let groups = m.cols / 32;
    match m.format {
        WeightFormat::Q4 => {
            let (step, _) = unpack_f16x2(m.scales[g]);
            (0.5 * step, step)
        }
        WeightFormat::Q4S => {
            let sw = m.format.scale_words(m.cols);
            let step = q4s_scale(&m.scales[(g / groups) * sw..], g % groups).abs();
            ((0.5 * step).max(a.abs() - 7.0 * step), step)
        }
        f => panic!("not an INT4 format: {f:?}"),
    }
}

#[test]
fn tiny_hf_loads_and_quantises_every_matrix() {
    // The default (Q4S), and Q4 when asked for.
    let dir = tiny_hf();
    for format in [None, Some(WeightFormat::Q4)] {
        let files = load_path_as(&dir, format, &mut |_, _| {}).unwrap();
        check_tiny_hf(&files, format.unwrap_or(WeightFormat::Q4S));
    }
    // GGUF files and packs load as stored: asking them for a format is an error.
    assert!(matches!(
        load_path_as(&tiny_gguf(), Some(WeightFormat::Q4), &mut |_, _| {}),
        Err(ModelError::Unsupported(_))
    ));
}

fn check_tiny_hf(files: &hearth_models::ModelFiles, format: WeightFormat) {
    let dir = tiny_hf();
    assert_eq!(files.kind, ModelKind::HuggingFace);
    let w = &files.weights;
    let c = &w.config;
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.head_dim,
            c.num_key_value_heads
        ),
        (8192, 64, 16, 2)
    );
    assert_eq!(c.rope_style, RopeStyle::Half);
    let s = c.rope_scaling.expect("llama3 rope scaling");
    assert_eq!(
        (s.factor, s.low_freq_factor, s.high_freq_factor),
        (32.0, 1.0, 4.0)
    );
    assert_eq!(s.original_max_position_embeddings, 8192);
    assert!(c.tie_word_embeddings && w.lm_head.is_none());
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.as_slice()),
        (Some(8187), &[8188, 8191][..])
    );

    // The source values, read independently with the `safetensors` crate.
    let mut src = BTreeMap::new();
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let bytes = std::fs::read(dir.join(shard)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, t) in st.tensors() {
            assert_eq!(t.dtype(), safetensors::Dtype::BF16);
            let v: Vec<f32> = t
                .data()
                .chunks(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            src.insert(name, v);
        }
    }
    let mut matrices = vec![("model.embed_tokens.weight".to_string(), &w.embed)];
    for (i, l) in w.layers.iter().enumerate() {
        matrices.extend(
            hearth_models::safetensors::hf_layer_names(i)
                .into_iter()
                .zip(l.matrices()),
        );
        assert_eq!(
            l.attn_norm,
            src[&format!("model.layers.{i}.input_layernorm.weight")]
        );
        assert_eq!(
            l.ffn_norm,
            src[&format!("model.layers.{i}.post_attention_layernorm.weight")]
        );
    }
    assert_eq!(w.norm, src["model.norm.weight"]);
    for (name, m) in matrices {
        assert_eq!(m.format, format, "{name}");
        let (x, q) = (&src[&name], m.dequantize());
        assert_eq!(x.len(), q.len(), "{name}");
        for (g, (xs, qs)) in x.chunks(32).zip(q.chunks(32)).enumerate() {
            for (a, b) in xs.iter().zip(qs) {
                // RTN: within the bound, plus f16 rounding of scale and min.
                let (bound, step) = int4_bound(m, g, *a);
                assert!(
                    (a - b).abs() <= bound + 2e-3 * a.abs().max(step),
                    "{format:?} {name}: {a} vs {b}"
                );
            }
        }
    }

    let TokenizerFiles::Hf {
        tokenizer_json,
        tokenizer_config_json,
    } = &files.tokenizer
    else {
        panic!("HF tokenizer expected");
    };
    assert_eq!(
        tokenizer_json,
        &std::fs::read(dir.join("tokenizer.json")).unwrap()
    );
    let cfg = tokenizer_config_json.as_ref().unwrap();
    assert!(String::from_utf8_lossy(cfg).contains("start_header_id"));
}

#[test]
fn packs_round_trip_without_changes() {
    for (src, name) in [(tiny_hf(), "hf"), (tiny_gguf(), "gguf")] {
        let files = load_path(&src).unwrap();
        let out = temp_dir(&format!("pack-{name}")).join("pack");
        write_pack(&files, &out).unwrap();
        let back = load_path(&out).unwrap();
        assert_eq!(back.kind, ModelKind::Pack);
        assert_eq!(
            back.weights, files.weights,
            "{name}: weights differ after the round trip"
        );
        assert_eq!(back.tokenizer, files.tokenizer, "{name}: tokenizer differs");
        let via_fn = load_pack_files(&|f| Ok(std::fs::read(out.join(f)).unwrap())).unwrap();
        assert_eq!(via_fn, back);

        let m: Manifest =
            serde_json::from_slice(&std::fs::read(out.join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(m.architecture, "llama");
        assert_eq!(m.source, files.kind);
        assert_eq!(m.quantization, if name == "hf" { "q4s" } else { "q4+q8" });
        let listed: Vec<_> = m.files.iter().map(|f| f.name.as_str()).collect();
        let mut on_disk: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != MANIFEST && n != STAMP)
            .collect();
        on_disk.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(
            sorted, on_disk,
            "the manifest lists exactly the pack's files (besides the verification stamp)"
        );
        assert!(listed.contains(&"model.safetensors") && listed.contains(&"config.json"));

        // Rewriting over an existing pack replaces it; leftovers of the temp dir do not remain.
        write_pack(&back, &out).unwrap();
        assert_eq!(load_path(&out).unwrap().weights, files.weights);
        let siblings = std::fs::read_dir(out.parent().unwrap()).unwrap().count();
        assert_eq!(siblings, 1, "only the pack directory remains");
        std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
    }
}

#[test]
fn write_pack_refuses_to_replace_a_foreign_directory() {
    let files = load_path(&tiny_gguf()).unwrap();
    let out = temp_dir("foreign");
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    assert!(write_pack(&files, &out).is_err());
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn random_weights_round_trip_through_a_pack() {
    let mut config = load_path(&tiny_hf()).unwrap().weights.config;
    config.tie_word_embeddings = false;
    for format in WeightFormat::ALL {
        let weights = LlamaWeights::random(&config, format, 3).unwrap();
        let files = hearth_models::ModelFiles {
            weights,
            tokenizer: TokenizerFiles::Hf {
                tokenizer_json: b"{}".to_vec(),
                tokenizer_config_json: None,
            },
            kind: ModelKind::HuggingFace,
        };
        let out = temp_dir("random").join("p");
        write_pack(&files, &out).unwrap();
        let back = load_path(&out).unwrap();
        assert_eq!(back.weights, files.weights, "{format:?}");
        assert!(back.weights.lm_head.is_some());
        std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
    }
}

#[test]
fn real_smollm2_gguf() {
    let Some(path) = default_model_path(SMOLLM2) else {
        eprintln!("SKIPPED: {SMOLLM2} not found under $HEARTH_MODELS or ~/.cache/hearth/models");
        return;
    };
    let t = std::time::Instant::now();
    let files = load_path(&path).unwrap();
    eprintln!("loaded {} in {:?}", path.display(), t.elapsed());
    let w = &files.weights;
    let c = &w.config;
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers
        ),
        (49152, 576, 1536, 30)
    );
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (9, 3, 64)
    );
    assert_eq!((c.max_position_embeddings, c.rope_theta), (8192, 100000.0));
    assert!((c.rms_norm_eps - 1e-5).abs() < 1e-9);
    assert!(c.tie_word_embeddings && w.lm_head.is_none());
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.as_slice()),
        (Some(1), &[2][..])
    );
    assert_eq!(w.embed.format, WeightFormat::Q8);
    assert!(w
        .layers
        .iter()
        .all(|l| l.matrices().iter().all(|m| m.format == WeightFormat::Q4)));

    let bytes = std::fs::read(&path).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.tensors.len(), 272);
    let all = gguf_matrices(w);
    // Embedding, all of layer 0 and the last layer: bitwise equal to ggml's dequantisation.
    for (name, m) in all.iter().filter(|(n, _)| {
        !n.starts_with("blk.") || n.starts_with("blk.0.") || n.starts_with("blk.29.")
    }) {
        assert_lossless(&g, &bytes, name, &m.dequantize());
    }
    assert_lossless(&g, &bytes, "output_norm.weight", &w.norm);
}
