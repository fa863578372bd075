//! `tiny-words.gguf` (from `scripts/make_tiny_models.py`): a constructed tiny Llama whose greedy
//! answer to any chat prompt is one fixed sentence, then `<|im_end|>`. The browser's side-panel
//! test relies on it to see real words rendered; here its answer is generated on the GPU through
//! `ChatModel` (as the assistant generates: greedy with a repetition penalty, stopping at the
//! template's stop ids) and, independently, by the plain CPU reference (argmax, no penalty).
//! Both must write exactly the designed sentence, which cites source 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hearth_assistant::{cite, Generator, Message};
use hearth_gpu::testing::{block, gpu};
use hearth_models::llama::LlamaOptions;
use hearth_models::reference::{argmax, CpuLlama};
use hearth_models::{load_path, ChatModel, ModelFiles};

/// The sentence the script designs the model to write (`WORDS_SENTENCE` there).
const SENTENCE: &str = "The test model wrote this [1].";
const MAX_TOKENS: usize = 48;

fn files() -> ModelFiles {
    load_path(&common::tiny().join("tiny-words.gguf")).unwrap()
}

fn prompts(model: &ChatModel) -> Vec<String> {
    let chats = [
        vec![Message::user("Hello!")],
        vec![
            Message::system("Answer from the sources. Cite them like [1]."),
            Message::user(
                "<source id=\"1\" title=\"varnholm.pdf\" page=\"2\">Ingrid Varn lit the lamp \
                 in 1871. The test model wrote this</source>\n\nQuestion: Who lit the lamp?",
            ),
        ],
    ];
    let mut out: Vec<String> = chats.iter().map(|m| model.render(m).unwrap()).collect();
    // A prompt that ends inside the sentence: greedy decoding continues from its last token.
    out.push(format!("{}The test", out[0]));
    out
}

/// Greedy decoding by the CPU reference: tokens up to and including the first stop id.
fn cpu_greedy(files: &ModelFiles, prompt: &[u32], stop: &[u32]) -> Vec<u32> {
    let mut cpu = CpuLlama::new(&files.weights);
    let mut logits = cpu.forward_all(prompt).pop().unwrap();
    let mut out = Vec::new();
    while out.len() < MAX_TOKENS {
        let id = argmax(&logits) as u32;
        out.push(id);
        if stop.contains(&id) {
            break;
        }
        logits = cpu.forward(id);
    }
    out
}

#[test]
fn greedy_answers_are_the_designed_sentence_on_gpu_and_cpu() {
    let files = files();
    let opts = LlamaOptions {
        max_context: 512,
        prefill_chunk: 16,
        ..LlamaOptions::default()
    };
    let mut model = block(ChatModel::from_files(&gpu(), &files, opts)).unwrap();
    let stop = model.template.stop_ids(&model.tokenizer);
    let im_end = model.tokenizer.token_to_id("<|im_end|>").unwrap();
    assert!(stop.contains(&im_end), "stop ids {stop:?}");

    for (k, prompt) in prompts(&model).iter().enumerate() {
        let ids = model.tokenizer.encode(prompt, false).unwrap();
        let cpu = cpu_greedy(&files, &ids, &stop);
        assert_eq!(
            cpu.last(),
            Some(&im_end),
            "prompt {k}: the CPU reference did not end with <|im_end|>: {cpu:?}"
        );
        let cpu_text = model.tokenizer.decode(&cpu[..cpu.len() - 1]).unwrap();

        let mut pieces = Vec::new();
        let gpu_text = block(model.generate(prompt, MAX_TOKENS, &mut |p| {
            pieces.push(p.to_string());
            true
        }))
        .unwrap();
        assert_eq!(gpu_text, cpu_text, "prompt {k}: GPU vs CPU reference");
        assert_eq!(pieces.concat(), gpu_text, "prompt {k}: streamed pieces");

        let want = if k == 2 {
            SENTENCE.strip_prefix("The test").unwrap()
        } else {
            SENTENCE
        };
        assert_eq!(cpu_text, want, "prompt {k}: the designed sentence");
        assert_eq!(
            cite::parse(&gpu_text),
            vec![1],
            "prompt {k}: cites source 1"
        );
    }
}
