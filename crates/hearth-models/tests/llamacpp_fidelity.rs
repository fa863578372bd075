//! SmolLM2-135M-Instruct from the real GGUF on our GPU kernels against two references:
//! - real llama.cpp (`tests/fixtures/llamacpp/smollm2.json`, `scripts/reference/llamacpp_reference.py`),
//!   which quantises activations to 8 bits inside its Q4_1/Q8_0 dot products;
//! - an exact float64 forward pass (`tests/fixtures/reference_f64/smollm2.json`,
//!   `scripts/reference/numpy_reference.py`), which arbitrates where llama.cpp's rounding flips a
//!   near-tie.
//!
//! Needs the default models (`make models`); fails, never skips, without them.

use hearth_gpu::sample::SamplingParams;
use hearth_gpu::testing::{block, gpu};
use hearth_models::llama::{GenerateOptions, Llama, LlamaOptions};
use hearth_models::reference::argmax;
use hearth_models::{default_model_path, load_path, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
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
    /// Top-1 − top-2 at each greedy step (float64 reference only).
    #[serde(default)]
    completion_margins: Vec<f32>,
}

const MODEL: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

fn fixture(name: &str) -> Reference {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture parses")
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

/// Teacher forcing over the fixture prompts: (1) our top-1 equals llama.cpp's wherever llama.cpp's
/// top-2 margin exceeds 0.3 — unless the float64 reference itself disagrees with llama.cpp there, in
/// which case ours must equal the float64 top-1; (2) our logits stay within 0.05 of the float64
/// reference on its top-10 ids (llama.cpp drifts by up to ~1.3 there) — 0.15 where prefill runs on
/// the tensor cores with f16 operands (measured 0.071 on an H200, 2026-11-21).
#[test]
fn teacher_forced_logits_agree_with_llama_cpp_and_f64() {
    let (cpp, f64r) = (
        fixture("llamacpp/smollm2.json"),
        fixture("reference_f64/smollm2.json"),
    );
    let (mut m, _) = model(256);
    let (mut compared, mut arbitrated, mut worst_f64, mut worst_cpp) = (0, 0, 0f32, 0f32);
    for (p, q) in cpp.logits.iter().zip(&f64r.logits) {
        assert_eq!(
            (&p.name, &p.ids),
            (&q.name, &q.ids),
            "fixtures describe the same prompts"
        );
        let ours = block(m.logits_all(&p.ids)).expect("forward");
        for (i, ((row, c), e)) in ours.iter().zip(&p.positions).zip(&q.positions).enumerate() {
            for (id, l) in c.top_ids.iter().zip(&c.top_logits) {
                worst_cpp = worst_cpp.max((row[*id as usize] - l).abs());
            }
            for (id, l) in e.top_ids.iter().zip(&e.top_logits) {
                worst_f64 = worst_f64.max((row[*id as usize] - l).abs());
            }
            let top = argmax(row) as u32;
            if e.margin > 0.1 {
                assert_eq!(
                    top, e.top_ids[0],
                    "{} position {i}: ours {top}, float64 {} (margin {})",
                    p.name, e.top_ids[0], e.margin
                );
            }
            if c.margin > 0.3 {
                compared += 1;
                let want = if e.top_ids[0] == c.top_ids[0] {
                    c.top_ids[0]
                } else {
                    arbitrated += 1;
                    eprintln!(
                        "{} position {i}: llama.cpp {} (margin {:.3}) vs float64 {} (margin {:.3}): following float64",
                        p.name, c.top_ids[0], c.margin, e.top_ids[0], e.margin
                    );
                    e.top_ids[0]
                };
                assert_eq!(
                    top, want,
                    "{} position {i}: ours {top} ({}), expected {want}",
                    p.name, row[top as usize]
                );
            }
        }
    }
    eprintln!(
        "top-1 checked at {compared} positions with llama.cpp margin > 0.3 ({arbitrated} arbitrated by float64); \
         max |Δlogit|: {worst_f64:.4} vs float64, {worst_cpp:.3} vs llama.cpp"
    );
    assert!(compared >= 50, "too few comparable positions ({compared})");
    assert!(
        arbitrated <= 2,
        "llama.cpp and float64 disagree at {arbitrated} confident positions: check the fixtures"
    );
    let bound = if m.gpu().features().coop { 0.15 } else { 0.05 };
    assert!(
        worst_f64 < bound,
        "logits drift from the float64 reference by up to {worst_f64} (bound {bound})"
    );
}

/// Greedy chat: the float64 reference's tokens up to its first step with a margin under 0.2 (where
/// f32 rounding may legitimately choose otherwise), and a sensible answer to the capital question.
#[test]
fn greedy_chat_follows_the_f64_reference() {
    let f64r = fixture("reference_f64/smollm2.json");
    let (mut m, tokenizer) = model(512);
    let mut answers = Vec::new();
    for (n, c) in f64r.chat.iter().enumerate() {
        m.reset();
        let opts = GenerateOptions {
            max_tokens: 48,
            sampling: SamplingParams::greedy(),
            stop_ids: tokenizer.eos_ids().to_vec(),
        };
        let gen = block(m.generate(&c.prompt_ids, &opts, |_| true)).expect("generate");
        let answer = tokenizer.decode(&gen.tokens).expect("decode");
        eprintln!("chat {n}: {answer:?}");
        // The first step's margin is 0.082 in the capital question; f32 must still get it right
        // (our logits sit within ~0.005 of float64), so only later thin margins end the comparison.
        let sure = 1 + c
            .completion_margins
            .iter()
            .skip(1)
            .position(|&g| g < 0.2)
            .unwrap_or(c.completion_margins.len());
        let n_cmp = sure.min(c.completion_ids.len());
        let want: Vec<u32> = c.completion_ids[..n_cmp]
            .iter()
            .copied()
            .filter(|id| !tokenizer.is_eos(*id))
            .collect();
        assert_eq!(
            &gen.tokens[..want.len()],
            &want[..],
            "chat {n}: greedy tokens differ from the float64 reference in its first {n_cmp} steps"
        );
        answers.push(answer);
    }
    assert!(
        answers[0].contains("Paris"),
        "the capital of France is Paris: {:?}",
        answers[0]
    );
}
