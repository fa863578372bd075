//! The GPU encoder against the f64 CPU reference on small random BERTs written as real
//! safetensors (f16 and f32, with and without a `bert.` prefix), loaded through the same path as
//! the real model; mean and CLS pooling; truncation; batches split across several submits.
//! (The real all-MiniLM-L6-v2 against sentence-transformers: tests/minilm_fidelity.rs.)
//!
//! Tolerance: the GPU computes in f32 with ~1e-6 relative error per op over 2 layers; a wrong
//! mask, position, bias or pooling range moves embeddings by > 1e-2.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::reference::encode_ref;
use super::*;
use hearth_gpu::testing::{block, gpu, random};

const WORDS: &[&str] = &[
    "the", "cat", "sat", "on", "mat", "rust", "gpu", "fast", "and", "of", "memory", "borrow",
];

/// A WordPiece `tokenizer.json` like MiniLM's over a small vocabulary: specials, words, letters and
/// their `##` continuations, punctuation.
pub(crate) fn tiny_tokenizer_json() -> (String, usize) {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    vocab.extend(WORDS.iter().map(|s| s.to_string()));
    for c in 'a'..='z' {
        vocab.push(c.to_string());
        vocab.push(format!("##{c}"));
    }
    vocab.extend([".", ",", "!", "?"].iter().map(|s| s.to_string()));
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    let added: Vec<serde_json::Value> = vocab[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let special =
        |name: &str, id: usize| serde_json::json!({"id": name, "ids": [id], "tokens": [name]});
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": special("[CLS]", 2), "[SEP]": special("[SEP]", 3)}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": map}
    });
    (json.to_string(), vocab.len())
}

pub(crate) fn tiny_config(vocab: usize, max_pos: usize) -> BertConfig {
    BertConfig {
        vocab_size: vocab + 3,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 128,
        max_position_embeddings: max_pos,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        position_embedding_type: "absolute".into(),
    }
}

/// Random weights for `c` as safetensors bytes (`dtype` F32 or F16), tensor names with `prefix`.
pub(crate) fn random_safetensors(c: &BertConfig, prefix: &str, dtype: Dtype, seed: u64) -> Vec<u8> {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![c.vocab_size, d],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![c.max_position_embeddings, d],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![c.type_vocab_size, d],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![d]),
        ("embeddings.LayerNorm.bias".into(), vec![d]),
    ];
    for i in 0..c.num_hidden_layers {
        let l = format!("encoder.layer.{i}");
        for p in ["query", "key", "value"] {
            shapes.push((format!("{l}.attention.self.{p}.weight"), vec![d, d]));
            shapes.push((format!("{l}.attention.self.{p}.bias"), vec![d]));
        }
        for (n, s) in [
            ("attention.output.dense.weight", vec![d, d]),
            ("attention.output.dense.bias", vec![d]),
            ("attention.output.LayerNorm.weight", vec![d]),
            ("attention.output.LayerNorm.bias", vec![d]),
            ("intermediate.dense.weight", vec![f, d]),
            ("intermediate.dense.bias", vec![f]),
            ("output.dense.weight", vec![d, f]),
            ("output.dense.bias", vec![d]),
            ("output.LayerNorm.weight", vec![d]),
            ("output.LayerNorm.bias", vec![d]),
        ] {
            shapes.push((format!("{l}.{n}"), s));
        }
    }
    let mut data: HashMap<String, (Vec<usize>, Vec<u8>)> = HashMap::new();
    for (i, (name, shape)) in shapes.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        // LayerNorm gains near 1; everything else spread like trained weights (std ≈ 1/√fan-in).
        let scale = if shape.len() == 2 {
            1.7 / (shape[1] as f32).sqrt()
        } else {
            0.3
        };
        let mut v = random(seed + i as u64, n, scale);
        if name.ends_with("LayerNorm.weight") {
            v.iter_mut().for_each(|x| *x += 1.0);
        }
        let bytes = match dtype {
            Dtype::F16 => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        data.insert(format!("{prefix}{name}"), (shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(k, (s, b))| (k.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn tiny_encoder(
    prefix: &str,
    dtype: Dtype,
    pooling: Pooling,
    max_seq: usize,
) -> (SentenceEncoder, BertWeights) {
    let (tok, vocab) = tiny_tokenizer_json();
    let config = tiny_config(vocab, 64);
    let bytes = random_safetensors(&config, prefix, dtype, 7);
    let weights = BertWeights::from_safetensors(&config, &bytes).unwrap();
    let sentence = SentenceConfig {
        pooling,
        normalize: pooling == Pooling::Mean,
        max_seq_length: max_seq,
    };
    let tokenizer = tokenizers::Tokenizer::from_bytes(tok.as_bytes()).unwrap();
    let enc = SentenceEncoder::new(&gpu(), weights.clone(), sentence, tokenizer).unwrap();
    (enc, weights)
}

fn texts() -> Vec<String> {
    let mut t: Vec<String> = vec![
        "".into(),
        "the cat sat on the mat.".into(),
        "Rust GPU fast!".into(),
        "zebra quixotic".into(),
        "memory".into(),
    ];
    // Longer than max_seq_length: truncated.
    t.push(WORDS.repeat(8).join(" "));
    // Many mid-length inputs so that the batch spills over several submits on any adapter.
    for i in 0..150 {
        t.push(WORDS[i % WORDS.len()..].join(" ").repeat(1 + i % 3));
    }
    t
}

fn check(enc: &SentenceEncoder, w: &BertWeights, pooling: Pooling) {
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let total: usize = refs.iter().map(|t| enc.token_ids(t).unwrap().len()).sum();
    let got = block(enc.embed(&refs)).unwrap();
    assert_eq!(got.len(), texts.len());
    let normalize = enc.sentence_config().normalize;
    for (i, (t, g)) in refs.iter().zip(&got).enumerate() {
        let ids = enc.token_ids(t).unwrap();
        assert!(ids.len() <= enc.max_tokens());
        let want = encode_ref(w, &ids, pooling, normalize);
        let err = g
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            err < 2e-4,
            "text {i} ({} ids, {pooling:?}): max |Δ| {err}",
            ids.len()
        );
    }
    if normalize {
        for g in &got {
            let n: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "norm {n}");
        }
    }
    // Several batches (the whole input is larger than one), so packing across submits is covered.
    assert!(
        total > enc.batch_tokens(),
        "{total} tokens ≤ one batch of {}",
        enc.batch_tokens()
    );
}

#[test]
fn mean_pooled_f32_weights_match_reference_across_batches() {
    let (enc, w) = tiny_encoder("", Dtype::F32, Pooling::Mean, 24);
    // Force small batches: on a GPU the budget would hold everything.
    let enc = SentenceEncoder { cap: 96, ..enc };
    check(&enc, &w, Pooling::Mean);
}

#[test]
fn cls_pooled_f16_prefixed_weights_match_reference() {
    let (enc, w) = tiny_encoder("bert.", Dtype::F16, Pooling::Cls, 40);
    let enc = SentenceEncoder { cap: 128, ..enc };
    check(&enc, &w, Pooling::Cls);
}

#[test]
fn truncation_keeps_special_tokens_and_counting_does_not_truncate() {
    let (enc, _) = tiny_encoder("", Dtype::F32, Pooling::Mean, 10);
    let long = "the cat sat on the mat and the cat sat on the mat";
    let ids = enc.token_ids(long).unwrap();
    assert_eq!(ids.len(), 10);
    assert_eq!((ids[0], ids[9]), (2, 3), "[CLS] … [SEP] kept: {ids:?}");
    assert_eq!(enc.count_tokens(long), 2 + 13);
    assert_eq!(enc.count_tokens(""), 2);
}

#[test]
fn bad_weights_and_configs_are_rejected() {
    let (tok, vocab) = tiny_tokenizer_json();
    let c = tiny_config(vocab, 64);
    let bytes = random_safetensors(&c, "", Dtype::F32, 1);
    // Shapes checked against the config.
    let wide = BertConfig {
        intermediate_size: 96,
        ..c.clone()
    };
    assert!(matches!(
        BertWeights::from_safetensors(&wide, &bytes),
        Err(ModelError::TensorShape { .. })
    ));
    // Not a safetensors file at all, and one cut short.
    assert!(BertWeights::from_safetensors(&c, b"junk").is_err());
    assert!(BertWeights::from_safetensors(&c, &bytes[..bytes.len() / 2]).is_err());
    // Unsupported architecture variants say so.
    let relu = serde_json::json!({"vocab_size": 60, "hidden_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64,
        "hidden_act": "relu"});
    assert!(matches!(
        BertConfig::from_json(relu.to_string().as_bytes()),
        Err(ModelError::Unsupported(_))
    ));
    let max_pool = br#"{"pooling_mode_max_tokens": true}"#;
    assert!(matches!(
        SentenceConfig::from_files(&c, Some(max_pool), None, None),
        Err(ModelError::Unsupported(_))
    ));
    // A tokenizer whose ids exceed the embedding table.
    let small = BertConfig {
        vocab_size: vocab - 1,
        ..c.clone()
    };
    let w = BertWeights::from_safetensors(&small, &random_safetensors(&small, "", Dtype::F32, 2));
    let sentence = SentenceConfig::from_files(&small, None, None, None).unwrap();
    let t = tokenizers::Tokenizer::from_bytes(tok.as_bytes()).unwrap();
    assert!(SentenceEncoder::new(&gpu(), w.unwrap(), sentence, t).is_err());
}
