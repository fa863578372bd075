//! The `hearth` command-line contract: names, JSON shapes, exit codes. Runs the real binary on the tiny
//! fixture models (lavapipe or any GPU).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{hearth, json};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id"))
        .collect()
}

#[test]
fn generate_json_has_the_contract_fields_and_is_deterministic() {
    let gguf = fixture("tiny/tiny-llama.gguf");
    let args = [
        "generate",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "6",
        "--greedy",
        "--json",
    ];
    let a = json(&args);
    let prompt = ids(&a["prompt_tokens"]);
    let tokens = ids(&a["tokens"]);
    assert!(!prompt.is_empty());
    assert!(tokens.len() <= 6);
    assert!(a["text"].is_string());
    assert_eq!(
        json(&args)["tokens"],
        a["tokens"],
        "greedy generation is deterministic"
    );
    // Seeded sampling is reproducible too.
    let s = [
        "generate",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "Once",
        "--max-tokens",
        "6",
        "--temperature",
        "0.9",
        "--top-p",
        "0.9",
        "--seed",
        "7",
        "--json",
    ];
    assert_eq!(json(&s)["tokens"], json(&s)["tokens"]);
    // --chat wraps the prompt in the model's (ChatML) template.
    let c = json(&[
        "generate",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "Hi",
        "--chat",
        "--max-tokens",
        "2",
        "--json",
    ]);
    assert!(
        ids(&c["prompt_tokens"]).len() > prompt.len().min(3),
        "the template adds tokens"
    );
}

#[test]
fn logits_gives_one_sorted_top_list_per_position() {
    let gguf = fixture("tiny/tiny-llama.gguf");
    let dir = tempdir("logits");
    let file = dir.join("tokens.json");
    std::fs::write(&file, r#"{"tokens":[1, 42, 7, 300, 9]}"#).unwrap();
    let v = json(&[
        "logits",
        "--model",
        gguf.to_str().unwrap(),
        "--tokens-json",
        file.to_str().unwrap(),
        "--top",
        "4",
    ]);
    let positions = v["positions"].as_array().expect("positions");
    assert_eq!(positions.len(), 5);
    for p in positions {
        assert_eq!(ids(&p["top_ids"]).len(), 4);
        let l: Vec<f64> = p["top_logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!(
            l.windows(2).all(|w| w[0] >= w[1]),
            "sorted best first: {l:?}"
        );
    }
}

#[test]
fn convert_writes_a_pack_that_generates_like_its_source() {
    let hf = fixture("tiny/tiny-llama3-hf");
    let out = tempdir("pack").join("pack");
    let conv = hearth(&[
        "convert",
        "--model",
        hf.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.to_string().contains("sha256"));
    assert_eq!(manifest["quantization"], "q4s", "symmetric INT4 by default");
    let gen = |m: &Path| {
        json(&[
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            "Hello there",
            "--max-tokens",
            "5",
            "--json",
        ])
    };
    let (from_hf, from_pack) = (gen(&hf), gen(&out));
    assert_eq!(from_hf["prompt_tokens"], from_pack["prompt_tokens"]);
    // Cold-start timings, phase by phase; `convert` stamped the files it hashed while writing
    // them, so loading the pack reads every byte and hashes none.
    let t = &from_pack["timings"];
    for phase in [
        "device_s",
        "read_s",
        "verify_s",
        "tokenizer_s",
        "upload_s",
        "compile_s",
        "first_token_s",
        "process_to_first_token_s",
    ] {
        assert!(t[phase].as_f64().is_some_and(|s| s >= 0.0), "{phase}: {t}");
    }
    assert!(t["bytes_read"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["bytes_hashed"].as_u64(), Some(0), "{t}");
    assert_eq!(
        from_hf["tokens"], from_pack["tokens"],
        "the pack holds the same INT4 weights"
    );

    // --quant picks the format of a Hugging Face checkpoint's matrices, and nothing else's.
    let q4 = out.with_file_name("pack-q4");
    let (hf_s, q4_s) = (hf.to_str().unwrap(), q4.to_str().unwrap());
    let conv = hearth(&["convert", "--model", hf_s, "--out", q4_s, "--quant", "q4"]);
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(q4.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["quantization"], "q4");
    let gguf = fixture("tiny/tiny-llama.gguf");
    let other = out.with_file_name("pack-other");
    let (g, o) = (gguf.to_str().unwrap(), other.to_str().unwrap());
    for (args, code) in [
        (["convert", "--model", g, "--out", o, "--quant", "q4"], 1),
        (["convert", "--model", hf_s, "--out", o, "--quant", "q5"], 2),
    ] {
        let r = hearth(&args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains("q4") && !other.exists(),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempdir("bad");
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(fixture("tiny/tiny-llama.gguf")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let long = "word ".repeat(5000);
    for args in [
        vec![
            "generate",
            "--model",
            "/nonexistent/model.gguf",
            "--prompt",
            "x",
        ],
        vec![
            "generate",
            "--model",
            truncated.to_str().unwrap(),
            "--prompt",
            "x",
        ],
        // The tiny model's context is 4096 tokens.
        vec![
            "generate",
            "--model",
            fixture("tiny/tiny-llama.gguf").to_str().unwrap(),
            "--prompt",
            &long,
        ],
    ] {
        let out = hearth(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error:") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hearth-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
