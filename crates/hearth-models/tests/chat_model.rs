//! `ChatModel` reuses the KV cache across prompts that share a prefix (the citation question
//! repeats its answer's prompt; chat turns and summary steps share their instructions): a prompt
//! continued from the cache must generate exactly what a fresh model generates from scratch.
//! Tiny random Llama-3-format model from `scripts/make_tiny_models.py` (lavapipe or any GPU).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth_assistant::{Generator, Message};
use hearth_gpu::testing::{block, gpu};
use hearth_models::chat::ChatTemplate;
use hearth_models::llama::{Llama, LlamaOptions};
use hearth_models::{load_path, ChatModel, Tokenizer};

fn chat_model() -> ChatModel {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny/tiny-llama3-hf"
    );
    let files = load_path(std::path::Path::new(dir)).unwrap();
    let tok = Tokenizer::from_files(&files.tokenizer).unwrap();
    let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
    let (bos, eos) = (name(tok.bos()), name(tok.eos_ids().first().copied()));
    let template =
        ChatTemplate::from_files(&files.tokenizer, bos.as_deref(), eos.as_deref()).unwrap();
    let opts = LlamaOptions {
        max_context: 512,
        prefill_chunk: 16,
        ..LlamaOptions::default()
    };
    let model = block(Llama::new(&gpu(), &files.weights, opts)).unwrap();
    ChatModel::new(model, tok, template)
}

#[test]
fn a_prompt_continued_from_the_cache_generates_what_a_fresh_one_does() {
    let mut warm = chat_model();
    let first = warm
        .render(&[
            Message::system("Answer briefly."),
            Message::user("sea otters eat urchins"),
        ])
        .unwrap();
    let answer = block(warm.generate(&first, 12, &mut |_| true)).unwrap();
    assert_eq!(warm.reused_tokens(), 0);
    // The citation question: the same prompt and answer, continued.
    let second = format!("{first}{answer}\n\nSource: [");
    let options = ["1", "2", "3", "4"];
    let warm_choice = block(warm.choose(&second, &options)).unwrap();
    let reused = warm.reused_tokens();
    assert!(
        reused >= warm.count_tokens(&first) - 1,
        "reused {reused} tokens"
    );
    let warm_more = block(warm.generate(&second, 8, &mut |_| true)).unwrap();

    let mut cold = chat_model();
    assert_eq!(block(cold.choose(&second, &options)).unwrap(), warm_choice);
    let mut cold = chat_model();
    assert_eq!(
        block(cold.generate(&second, 8, &mut |_| true)).unwrap(),
        warm_more
    );
    assert_eq!(cold.reused_tokens(), 0);
}
