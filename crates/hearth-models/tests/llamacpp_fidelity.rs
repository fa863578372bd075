//! SmolLM2-135M-Instruct from the real GGUF on our GPU kernels against real llama.cpp
//! (`tests/fixtures/llamacpp/smollm2.json`, made by `scripts/reference/llamacpp_reference.py`).
//!
//! Needs the default models (`make models`); fails, never skips, without them.

use hearth_gpu::testing::{block, gpu};
use hearth_models::llama::{GenerateOptions, Llama, LlamaOptions};
use hearth_models::reference::argmax;
use hearth_models::{default_model_path, load_path, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    llama_cpp_commit: Option<String>,
    logits: Vec<Prompt>,
    chat: Vec<Chat>,
}

#[derive(Deserialize)]
struct Prompt {
    name: String,
    ids: Vec<u32>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct Position {
    top_ids: Vec<u32>,
    top_logits: Vec<f32>,
    margin: f32,
}

#[derive(Deserialize)]
struct Chat {
    prompt_ids: Vec<u32>,
    completion_ids: Vec<u32>,
    completion_text: String,
}

const MODEL: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/llamacpp/smollm2.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture parses")
}

fn model(max_context: usize) -> (Llama, Tokenizer) {
    let path = default_model_path(MODEL)
        .unwrap_or_else(|| panic!("{MODEL} missing from the model cache: run `make models`"));
    let files = load_path(&path).expect("SmolLM2 loads");
    let tokenizer = Tokenizer::from_files(&files.tokenizer).expect("tokenizer");
    let opts = LlamaOptions {
        max_context,
        prefill_chunk: 64,
        logits_rows: 64,
    };
    (
        block(Llama::new(&gpu(), &files.weights, opts)).expect("upload"),
        tokenizer,
    )
}

/// Under teacher forcing our top-1 equals llama.cpp's wherever llama.cpp's top-2 margin exceeds 0.3,
/// and our logits of llama.cpp's top-10 ids stay close to its values.
#[test]
fn teacher_forced_top1_agrees_with_llama_cpp() {
    let r = reference();
    eprintln!(
        "reference: llama.cpp {}",
        r.llama_cpp_commit.as_deref().unwrap_or("?")
    );
    let (mut m, _) = model(256);
    let (mut compared, mut agreed, mut worst) = (0, 0, 0f32);
    for p in &r.logits {
        let ours = block(m.logits_all(&p.ids)).expect("forward");
        assert_eq!(ours.len(), p.positions.len());
        for (i, (row, want)) in ours.iter().zip(&p.positions).enumerate() {
            for (id, l) in want.top_ids.iter().zip(&want.top_logits) {
                worst = worst.max((row[*id as usize] - l).abs());
            }
            if want.margin > 0.3 {
                compared += 1;
                let top = argmax(row) as u32;
                assert_eq!(
                    top, want.top_ids[0],
                    "{} position {i}: ours {top} ({}), llama.cpp {} ({}, margin {})",
                    p.name, row[top as usize], want.top_ids[0], want.top_logits[0], want.margin
                );
                agreed += 1;
            }
        }
    }
    eprintln!("top-1 agreed at {agreed}/{compared} positions with margin > 0.3; max |Δlogit| over llama.cpp's top-10: {worst:.3}");
    assert!(compared >= 50, "too few comparable positions ({compared})");
    // llama.cpp quantises activations to 8 bits for Q4_1/Q8_0 dot products; we keep them f32. The
    // difference stays well under the logits' spread (tens of units).
    assert!(worst < 1.5, "logits drift from llama.cpp by up to {worst}");
}

/// Greedy chat completions: the same tokens as llama.cpp's greedy run, and a sensible answer.
#[test]
fn greedy_chat_matches_llama_cpp() {
    let r = reference();
    let (mut m, tokenizer) = model(512);
    let mut answers = Vec::new();
    for c in &r.chat {
        m.reset();
        let opts = GenerateOptions {
            max_tokens: c.completion_ids.len(),
            sampling: hearth_gpu::sample::SamplingParams::greedy(),
            stop_ids: vec![],
        };
        let gen = block(m.generate(&c.prompt_ids, &opts, |_| true)).expect("generate");
        let ours = tokenizer.decode(&gen.tokens).expect("decode");
        eprintln!("ours:      {ours:?}\nllama.cpp: {:?}", c.completion_text);
        assert_eq!(
            gen.tokens, c.completion_ids,
            "greedy tokens differ from llama.cpp"
        );
        answers.push(ours);
    }
    assert!(
        answers.iter().any(|a| a.contains("Paris")),
        "the capital-of-France answer names Paris: {answers:?}"
    );
}
