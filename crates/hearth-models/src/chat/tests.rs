//! Chat templates rendered by minijinja against jinja2's renderings of the same templates
//! (`tests/fixtures/llamacpp/chat_templates.json`, from `scripts/reference/chat_templates.py`).

use super::*;
use crate::tokenizer::tests::{fixtures, smollm2_metadata};

#[derive(serde::Deserialize)]
struct Reference {
    conversations: Vec<Conversation>,
    templates: Vec<RefTemplate>,
}

#[derive(serde::Deserialize)]
struct Conversation {
    name: String,
    messages: Vec<Message>,
}

#[derive(serde::Deserialize)]
struct RefTemplate {
    name: String,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    renders: Vec<Render>,
}

#[derive(serde::Deserialize)]
struct Render {
    conversation: String,
    add_generation_prompt: bool,
    text: Option<String>,
    error: Option<String>,
}

fn reference() -> Reference {
    let json = std::fs::read(fixtures().join("llamacpp/chat_templates.json")).unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn smollm2_files() -> TokenizerFiles {
    TokenizerFiles::Gguf(smollm2_metadata().clone())
}

/// The template a reference entry names, built the way Hearth builds it in use.
fn template_for(t: &RefTemplate) -> ChatTemplate {
    let (bos, eos) = (t.bos_token.as_deref(), t.eos_token.as_deref());
    match t.source.as_str() {
        "gguf:tokenizer.chat_template" => {
            ChatTemplate::from_files(&smollm2_files(), bos, eos).unwrap()
        }
        "builtin:chatml" => ChatTemplate::chatml(),
        "builtin:llama3" => ChatTemplate::llama3(),
        file => {
            let path = file.strip_prefix("file:").unwrap();
            let source = std::fs::read_to_string(fixtures().join("llamacpp").join(path)).unwrap();
            ChatTemplate::new(source, bos, eos).unwrap()
        }
    }
}

#[test]
fn templates_render_like_jinja2() {
    let r = reference();
    let mut checked = 0;
    let mut errors = 0;
    let mut failed = Vec::new();
    for t in &r.templates {
        let template = template_for(t);
        if t.source.starts_with("builtin") {
            // The built-ins' special texts are what the script passed.
            assert_eq!(
                template.bos.as_deref(),
                t.bos_token.as_deref(),
                "{}",
                t.name
            );
            assert_eq!(
                template.eos.as_deref(),
                t.eos_token.as_deref(),
                "{}",
                t.name
            );
        }
        for render in &t.renders {
            let conv = r
                .conversations
                .iter()
                .find(|c| c.name == render.conversation)
                .unwrap();
            let got = template.render(&conv.messages, render.add_generation_prompt);
            checked += 1;
            let what = format!(
                "{} / {} / agp={}",
                t.name, conv.name, render.add_generation_prompt
            );
            match (&got, &render.text, &render.error) {
                (Ok(g), Some(want), None) if g == want => {}
                (Err(ModelError::Template(m)), None, Some(e)) => {
                    errors += 1;
                    assert!(
                        m.contains(e.as_str()),
                        "{what}: error {m:?} lacks jinja2's {e:?}"
                    );
                }
                _ => failed.push(format!(
                    "{what}:\n  minijinja {got:?}\n  jinja2    {:?}",
                    render.text.as_ref().ok_or(&render.error)
                )),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {checked} differ:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(r.templates.len() >= 7 && checked >= 80, "{checked}");
    assert!(errors >= 1, "some template must raise_exception");
}

#[test]
fn smollm2_uses_its_gguf_template() {
    let t = ChatTemplate::from_files(&smollm2_files(), Some("<|im_start|>"), Some("<|im_end|>"))
        .unwrap();
    let meta_source = match smollm2_metadata().get("tokenizer.chat_template") {
        Some(MetaValue::String(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(t.source(), meta_source);
    let text = t.render(&[Message::user("Hi")], true).unwrap();
    assert!(text.starts_with("<|im_start|>system\n") && text.ends_with("<|im_start|>assistant\n"));
    assert_eq!(t.stop_strings(), vec!["<|im_end|>".to_string()]);

    let tok = Tokenizer::from_files(&smollm2_files()).unwrap();
    // `<|im_end|>` is already the tokenizer's EOS, so the stop ids are its end ids.
    assert_eq!(t.stop_ids(&tok), tok.eos_ids());
    assert!(tok.is_eos(2));
    // The prompt's markers are single special tokens; SmolLM2 adds no BOS.
    let ids = t.render_ids(&tok, &[Message::user("Hi")], true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids, tok.encode(&text, false).unwrap());
}

#[test]
fn fallbacks_follow_the_vocabulary() {
    let mut meta = smollm2_metadata().clone();
    meta.remove("tokenizer.chat_template");
    let t =
        ChatTemplate::from_files(&TokenizerFiles::Gguf(meta), None, Some("<|im_end|>")).unwrap();
    assert_eq!(t, ChatTemplate::chatml());

    let llama = ChatTemplate::from_files(
        &TokenizerFiles::Hf {
            tokenizer_json: br#"{"added_tokens": [{"content": "<|start_header_id|>"}]}"#.to_vec(),
            tokenizer_config_json: Some(b"{}".to_vec()),
        },
        None,
        None,
    )
    .unwrap();
    assert_eq!(llama, ChatTemplate::llama3());
    let text = llama
        .render(&[Message::system("S"), Message::user(" Q ")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(llama.stop_strings(), vec!["<|eot_id|>".to_string()]);

    let none = ChatTemplate::from_files(
        &TokenizerFiles::Hf {
            tokenizer_json: b"{}".to_vec(),
            tokenizer_config_json: None,
        },
        None,
        None,
    );
    assert!(matches!(none, Err(ModelError::Template(_))));
}

#[test]
fn hf_config_template_forms() {
    let files = |config: &str| TokenizerFiles::Hf {
        tokenizer_json: b"{}".to_vec(),
        tokenizer_config_json: Some(config.as_bytes().to_vec()),
    };
    let t = ChatTemplate::from_files(
        &files(r#"{"chat_template": "{{ bos_token }}x"}"#),
        Some("<s>"),
        None,
    )
    .unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "<s>x");
    let t = ChatTemplate::from_files(
        &files(r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#),
        None,
        None,
    )
    .unwrap();
    assert_eq!(t.source(), "D");
    for bad in [
        r#"{"chat_template": 3}"#,
        "not json",
        r#"{"chat_template": "{% if %}"}"#,
    ] {
        assert!(
            matches!(
                ChatTemplate::from_files(&files(bad), None, None),
                Err(ModelError::Template(_))
            ),
            "{bad}"
        );
    }
    let raising = ChatTemplate::new("{{ raise_exception('nope') }}", None, None).unwrap();
    match raising.render(&[], false) {
        Err(ModelError::Template(m)) => assert!(m.contains("nope"), "{m}"),
        other => panic!("{other:?}"),
    }
}
