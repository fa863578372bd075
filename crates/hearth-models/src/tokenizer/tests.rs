//! Tokenizer tests against llama.cpp: its own vocab test files (`tests/fixtures/vocab/`, copied
//! from llama.cpp's `models/`) and tokenizations of the real SmolLM2 GGUF recorded by
//! `scripts/reference/llamacpp_reference.py` (`tests/fixtures/llamacpp/smollm2.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::*;
use crate::gguf::{Gguf, MetaArray, MetaValue};

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub(crate) const SMOLLM2: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// SmolLM2's GGUF metadata. Panics (fails the test, never skips) when the model is missing: CI
/// fetches models before testing.
pub(crate) fn smollm2_metadata() -> &'static BTreeMap<String, MetaValue> {
    static META: OnceLock<BTreeMap<String, MetaValue>> = OnceLock::new();
    META.get_or_init(|| {
        let path = crate::loader::default_model_path(SMOLLM2).unwrap_or_else(|| {
            panic!("{SMOLLM2} not found under $HEARTH_MODELS or ~/.cache/hearth/models: fetch the models first")
        });
        let bytes = std::fs::read(&path).unwrap();
        Gguf::parse(&bytes).unwrap().metadata
    })
}

fn smollm2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        Tokenizer::from_files(&TokenizerFiles::Gguf(smollm2_metadata().clone())).unwrap()
    })
}

fn vocab_metadata(name: &str) -> BTreeMap<String, MetaValue> {
    let bytes = std::fs::read(fixtures().join(format!("vocab/ggml-vocab-{name}.gguf"))).unwrap();
    Gguf::parse(&bytes).unwrap().metadata
}

#[derive(serde::Deserialize)]
struct Reference {
    vocab: RefVocab,
    tokenize: Vec<RefTokenize>,
}

#[derive(serde::Deserialize)]
struct RefVocab {
    n_vocab: usize,
    bos_id: u32,
    eog_ids: Vec<u32>,
    add_bos: bool,
}

#[derive(serde::Deserialize)]
struct RefTokenize {
    text: String,
    ids: Vec<u32>,
    ids_add_special: Vec<u32>,
}

fn reference() -> Reference {
    let json = std::fs::read(fixtures().join("llamacpp/smollm2.json")).unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[test]
fn smollm2_tokenizes_like_llamacpp() {
    let tok = smollm2();
    let r = reference();
    assert_eq!(tok.vocab_size(), r.vocab.n_vocab);
    assert_eq!(tok.bos(), Some(r.vocab.bos_id));
    assert_eq!(tok.add_bos(), r.vocab.add_bos);
    let mut eos = tok.eos_ids().to_vec();
    eos.sort_unstable();
    assert_eq!(eos, r.vocab.eog_ids);
    assert_eq!(tok.eos_ids()[0], 2, "the GGUF's eos_token_id comes first");

    let mut failed = Vec::new();
    for case in &r.tokenize {
        let ids = tok.encode(&case.text, false).unwrap();
        let with_special = tok.encode(&case.text, true).unwrap();
        if ids != case.ids || with_special != case.ids_add_special {
            failed.push(format!(
                "{:?}\n  hearth   {ids:?} / {with_special:?}\n  llama.cpp {:?} / {:?}",
                case.text, case.ids, case.ids_add_special
            ));
        }
    }
    assert!(r.tokenize.len() >= 40);
    assert!(
        failed.is_empty(),
        "{} of {} differ:\n{}",
        failed.len(),
        r.tokenize.len(),
        failed.join("\n")
    );
}

/// llama.cpp's `test-tokenizer-0` data: inputs separated by `\n__ggml_vocab_test__\n`, one line of
/// space-separated ids per input (tokenized without BOS).
fn vocab_cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let dir = fixtures().join("vocab");
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let mut inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if inputs.last() == Some(&"") {
        inputs.pop();
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    inputs
        .into_iter()
        .map(str::to_string)
        .zip(outputs)
        .collect()
}

fn check_vocab(name: &str, min_cases: usize) {
    let tok = Tokenizer::from_files(&TokenizerFiles::Gguf(vocab_metadata(name))).unwrap();
    let cases = vocab_cases(name);
    assert!(
        cases.len() >= min_cases,
        "{name}: only {} cases",
        cases.len()
    );
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = tok.encode(text, false).unwrap();
            (&got != want).then(|| format!("{text:?}\n  hearth    {got:?}\n  llama.cpp {want:?}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{name}: {} of {} differ:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    // decode inverts encode for byte-level BPE.
    for (text, want) in &cases {
        assert_eq!(&tok.decode(want).unwrap(), text, "{name}: decode");
    }
}

#[test]
fn llama3_vocab_matches_llamacpp() {
    check_vocab("llama-bpe", 40);
    let tok = Tokenizer::from_files(&TokenizerFiles::Gguf(vocab_metadata("llama-bpe"))).unwrap();
    // llama-bpe adds BOS by default (no add_bos_token key in this file).
    assert!(tok.add_bos());
    assert_eq!(tok.encode("Hi", true).unwrap()[0], 128000);
    assert!(
        tok.is_eos(128001) && tok.is_eos(128009),
        "{:?}",
        tok.eos_ids()
    );
}

#[test]
fn gpt2_vocab_matches_llamacpp() {
    check_vocab("gpt-2", 40);
}

/// StarCoder's split is the one llama.cpp uses for `smollm`.
#[test]
fn starcoder_vocab_matches_llamacpp() {
    check_vocab("starcoder", 40);
}

#[test]
fn smollm2_decode_inverts_encode() {
    let tok = smollm2();
    for case in reference().tokenize {
        let ids = tok.encode(&case.text, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), case.text);
    }
}

#[test]
fn stream_decoder_matches_decode() {
    let tok = smollm2();
    let texts = [
        "Emoji: 😀🎉👍🏽 and ❤️ done",
        "日本語のテキストです。中文分词测试",
        "🦙🦙🦙<|im_end|>",
        "Café, naïve, résumé — ∑ x² ≥ ∫",
    ];
    let mut split_chars = 0;
    for text in texts {
        let ids = tok.encode(text, false).unwrap();
        // Count tokens that are not valid UTF-8 on their own: the stream must hold them back.
        split_chars += ids
            .iter()
            .filter(|&&id| tok.decode(&[id]).unwrap().contains('\u{FFFD}'))
            .count();
        let mut stream = tok.stream_decoder();
        let mut pieces = Vec::new();
        for &id in &ids {
            if let Some(p) = stream.step(tok, id).unwrap() {
                assert!(
                    !p.contains('\u{FFFD}'),
                    "{text:?}: emitted a partial character {p:?}"
                );
                pieces.push(p);
            }
        }
        pieces.extend(stream.flush(tok).unwrap());
        assert_eq!(pieces.concat(), tok.decode(&ids).unwrap());
        assert_eq!(pieces.concat(), text);
    }
    assert!(
        split_chars > 5,
        "the texts must split characters over tokens ({split_chars})"
    );

    // A truncated character comes out of flush as U+FFFD, like decode.
    let ids = tok.encode("ok 😀", false).unwrap();
    let cut = &ids[..ids.len() - 1];
    let mut stream = StreamDecoder::new();
    let mut out = String::new();
    for &id in cut {
        out.extend(stream.step(tok, id).unwrap());
    }
    out.extend(stream.flush(tok).unwrap());
    assert_eq!(out, tok.decode(cut).unwrap());
    assert!(out.ends_with('\u{FFFD}'));
}

#[test]
fn json_export_round_trips() {
    for tok in [
        smollm2().clone(),
        Tokenizer::from_files(&TokenizerFiles::Gguf(vocab_metadata("llama-bpe"))).unwrap(),
    ] {
        let files = TokenizerFiles::Hf {
            tokenizer_json: tok.to_json().unwrap().into_bytes(),
            tokenizer_config_json: Some(tok.to_config_json(None).unwrap().into_bytes()),
        };
        let back = Tokenizer::from_files(&files).unwrap();
        assert_eq!(back.bos(), tok.bos());
        assert_eq!(back.add_bos(), tok.add_bos());
        assert_eq!(back.eos_ids(), tok.eos_ids());
        assert_eq!(back.vocab_size(), tok.vocab_size());
        // Without the config, BOS comes from the exported post-processor.
        let bare = Tokenizer::from_json_bytes(tok.to_json().unwrap().as_bytes(), None).unwrap();
        assert_eq!(bare.add_bos(), tok.add_bos());
        for text in [
            "Hello  world\n\n 123 😀 <|im_start|>x<|eot_id|>",
            "I'll go",
            "",
        ] {
            for special in [false, true] {
                let want = tok.encode(text, special).unwrap();
                assert_eq!(back.encode(text, special).unwrap(), want, "{text:?}");
                assert_eq!(bare.encode(text, special).unwrap(), want, "{text:?}");
            }
        }
    }
}

fn tokenizer_error<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(ModelError::Tokenizer(m)) => m,
        other => panic!("expected ModelError::Tokenizer, got {other:?}"),
    }
}

#[test]
fn bad_tokenizer_json_is_a_typed_error() {
    tokenizer_error(Tokenizer::from_json_bytes(b"{not json", None));
    tokenizer_error(Tokenizer::from_json_bytes(
        b"{\"model\": {\"type\": \"BPE\", \"vocab\": 3}}",
        None,
    ));
    let good = smollm2().to_json().unwrap();
    tokenizer_error(Tokenizer::from_json_bytes(good.as_bytes(), Some(b"[1, 2]")));
    let m = tokenizer_error(Tokenizer::from_json_bytes(
        good.as_bytes(),
        Some(br#"{"eos_token": "<|no such token|>"}"#),
    ));
    assert!(m.contains("not in the vocabulary"), "{m}");
    tokenizer_error(Tokenizer::from_json_bytes(
        good.as_bytes(),
        Some(br#"{"add_bos_token": "yes"}"#),
    ));
    assert!(matches!(
        smollm2().decode(&[49152]),
        Err(ModelError::Tokenizer(_))
    ));
}

#[test]
fn bad_gguf_metadata_is_a_typed_error() {
    let good = vocab_metadata("gpt-2");
    let with = |key: &str, v: Option<MetaValue>| {
        let mut m = good.clone();
        match v {
            Some(v) => m.insert(key.to_string(), v),
            None => m.remove(key),
        };
        Tokenizer::from_files(&TokenizerFiles::Gguf(m))
    };
    let s = |t: &str| Some(MetaValue::String(t.to_string()));
    let m = tokenizer_error(with("tokenizer.ggml.pre", s("no-such-pre")));
    assert!(m.contains("no-such-pre"), "{m}");
    let m = tokenizer_error(with("tokenizer.ggml.model", s("llama")));
    assert!(m.contains("llama"), "{m}");
    tokenizer_error(with(
        "tokenizer.ggml.bos_token_id",
        Some(MetaValue::U32(50257)),
    ));
    tokenizer_error(with(
        "tokenizer.ggml.merges",
        Some(MetaValue::Array(MetaArray::String(vec!["nospace".into()]))),
    ));
    tokenizer_error(with(
        "tokenizer.ggml.token_type",
        Some(MetaValue::Array(MetaArray::I32(vec![1; 3]))),
    ));
    tokenizer_error(with(
        "tokenizer.ggml.tokens",
        Some(MetaValue::Array(MetaArray::String(Vec::new()))),
    ));
    // Missing or mistyped keys are the GGUF reader's typed errors.
    assert!(matches!(
        with("tokenizer.ggml.tokens", None),
        Err(ModelError::Gguf(_))
    ));
    assert!(matches!(
        with("tokenizer.ggml.merges", Some(MetaValue::U32(1))),
        Err(ModelError::Gguf(_))
    ));
    // A missing `pre` is llama.cpp's `default` split, not an error.
    with("tokenizer.ggml.pre", None).unwrap();
}

#[test]
fn merges_that_cannot_apply_are_dropped() {
    // The builder is tried on every merge first; one whose parts are not tokens makes it fall
    // back to the filtered list, which tokenizes exactly as without that merge.
    let good = vocab_metadata("gpt-2");
    let mut bad = good.clone();
    match bad.get_mut("tokenizer.ggml.merges") {
        Some(MetaValue::Array(MetaArray::String(m))) => m.insert(0, "no-such-token other".into()),
        other => panic!("merges: {other:?}"),
    }
    let a = Tokenizer::from_files(&TokenizerFiles::Gguf(good)).unwrap();
    let b = Tokenizer::from_files(&TokenizerFiles::Gguf(bad)).unwrap();
    for text in [
        "Hello world",
        "no-such-token other",
        "merging rarely helps, 1234!",
    ] {
        assert_eq!(
            a.encode(text, false).unwrap(),
            b.encode(text, false).unwrap()
        );
    }
}

#[derive(serde::Deserialize)]
struct Prompts {
    logits: Vec<RefPrompt>,
    chat: Vec<RefChat>,
}

#[derive(serde::Deserialize)]
struct RefPrompt {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct RefChat {
    messages: Vec<crate::chat::Message>,
    prompt: String,
    prompt_ids: Vec<u32>,
    completion_ids: Vec<u32>,
    completion_text: String,
}

/// The fidelity fixture's prompts are what Hearth's template and tokenizer produce, and its
/// completions decode to llama.cpp's text.
#[test]
fn smollm2_reference_prompts_and_completions() {
    let tok = smollm2();
    let json = std::fs::read(fixtures().join("llamacpp/smollm2.json")).unwrap();
    let r: Prompts = serde_json::from_slice(&json).unwrap();
    assert!(r.logits.len() >= 3 && r.chat.len() >= 2);
    for p in &r.logits {
        assert_eq!(tok.encode(&p.text, true).unwrap(), p.ids, "{:?}", p.text);
    }
    let files = TokenizerFiles::Gguf(smollm2_metadata().clone());
    let bos = tok.bos().and_then(|b| tok.id_to_token(b));
    let eos = tok.id_to_token(tok.eos_ids()[0]);
    let template =
        crate::chat::ChatTemplate::from_files(&files, bos.as_deref(), eos.as_deref()).unwrap();
    for c in &r.chat {
        assert_eq!(template.render(&c.messages, true).unwrap(), c.prompt);
        assert_eq!(
            template.render_ids(tok, &c.messages, true).unwrap(),
            c.prompt_ids
        );
        let content: Vec<u32> = c
            .completion_ids
            .iter()
            .copied()
            .filter(|&id| !tok.is_eos(id))
            .collect();
        assert_eq!(tok.decode(&content).unwrap(), c.completion_text);
    }
}
