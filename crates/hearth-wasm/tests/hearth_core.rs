//! The service worker's engine end to end on lavapipe: the real MiniLM encoder, the tiny random
//! Llama, documents parsed as the parse worker parses them, the assistant over the library and
//! the page, snapshots, and recovery from a lost GPU device. Needs the default models
//! (`make models`); fails, never skips, without them.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hearth_models::bert::default_encoder_dir;
use hearth_models::{load_gguf_bytes, EncoderFiles};
use hearth_wasm::hearth::{Event, HearthCore, ParsedInput, Scope};
use hearth_wasm::parse::{parse, ParseHint};

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = default_encoder_dir().expect("all-MiniLM-L6-v2 is missing: run `make models`");
        Files { dir }
    }
    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }
}

fn load_encoder(core: &mut HearthCore, f: &Files) {
    let (config, weights, tokenizer) = (
        f.read("config.json"),
        f.read("model.safetensors"),
        f.read("tokenizer.json"),
    );
    let (pooling, sentence, modules) = (
        f.read("1_Pooling/config.json"),
        f.read("sentence_bert_config.json"),
        f.read("modules.json"),
    );
    let files = EncoderFiles {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
        pooling: Some(&pooling),
        sentence: Some(&sentence),
        modules: Some(&modules),
    };
    assert_eq!(core.load_encoder(&files).unwrap(), (384, 256));
}

fn tiny_llama() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny/tiny-llama.gguf"
    ))
    .unwrap()
}

fn parsed(f: &Files, source: &str, text: &str) -> ParsedInput {
    let tok = tokenizers::Tokenizer::from_bytes(f.read("tokenizer.json")).unwrap();
    let count = |t: &str| tok.encode(t, true).map_or(0, |e| e.get_ids().len());
    let hint = ParseHint {
        source: source.into(),
        file_name: None,
        mime: None,
        title: None,
        now_ms: 1.0,
    };
    let p = parse(text.as_bytes(), &hint, &count, 256).unwrap();
    // Through JSON, as the panel sends it.
    serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap()
}

const LIGHTHOUSE: &str = "# Varnholm\n\n## The lighthouse\n\nThe Varnholm lighthouse keeper, Ingrid Solberg, lit the lamp for the first time in 1887. The tower stands on a granite skerry.\n";
const GARDEN: &str = "# Garden notes\n\n## Tomatoes\n\nWater tomatoes deeply twice a week and pinch out the side shoots.\n";
const PAGE: &str = "# The Orme Canal\n\nThe Orme canal was dug by hand between 1790 and 1796 to carry slate to the sea.\n";

fn ready() -> (HearthCore, Files) {
    let f = Files::new();
    let mut core = pollster::block_on(HearthCore::new()).unwrap();
    load_encoder(&mut core, &f);
    core.open_library(None).unwrap();
    let files = load_gguf_bytes(&tiny_llama()).unwrap();
    pollster::block_on(core.load_generator(&files, 2048)).unwrap();
    (core, f)
}

fn quiet(_: Event) -> bool {
    true
}

#[test]
fn library_answers_cite_the_document_with_its_passage() {
    let (mut core, f) = ready();
    let mut embedded = Vec::new();
    let r = pollster::block_on(core.add_document(
        parsed(&f, "varnholm.md", LIGHTHOUSE),
        &mut |e| {
            if let Event::Embedded(p) = e {
                embedded.push((p.chunks_done, p.chunks_total));
            }
            true
        },
    ))
    .unwrap();
    assert_eq!(r.upsert.status, "added");
    assert_eq!(embedded.last().map(|p| p.0), embedded.last().map(|p| p.1));
    pollster::block_on(core.add_document(parsed(&f, "garden.md", GARDEN), &mut quiet)).unwrap();
    assert_eq!(core.counts().0, 2);

    // The same bytes again are not embedded again.
    let mut calls = 0;
    let again = pollster::block_on(core.add_document(
        parsed(&f, "varnholm.md", LIGHTHOUSE),
        &mut |_| {
            calls += 1;
            true
        },
    ))
    .unwrap();
    assert_eq!((again.upsert.status, calls), ("unchanged", 0));

    let mut streamed = String::new();
    let a = pollster::block_on(core.ask(
        "Who lit the Varnholm lighthouse lamp for the first time?",
        Scope::Library,
        &mut |e| {
            if let Event::Piece(p) = e {
                streamed.push_str(p);
            }
            true
        },
    ))
    .unwrap();
    assert!(a.grounded);
    // Only the lighthouse chunk clears the relevance floor, so it is the one source and whatever
    // the random model writes, the citation it chooses is that chunk.
    assert_eq!(a.sources.len(), 1, "{:?}", a.sources);
    assert_eq!(a.sources[0].citation.source, "varnholm.md");
    assert_eq!(a.sources[0].origin, "library");
    assert!(a.sources[0].quote.contains("Ingrid Solberg"));
    // The random model may write nothing worth citing; what it cites can only be that source.
    assert!(a.citations.iter().all(|c| c.citation.n == 1), "{a:?}");
    assert!(a.text.starts_with(streamed.trim_end()) || streamed.starts_with(a.text.trim_end()));

    // Unrelated questions are answered honestly without the model.
    let none =
        pollster::block_on(core.ask("What is the capital of Peru?", Scope::Library, &mut quiet))
            .unwrap();
    assert!(!none.grounded);

    // Snapshot round trip; removal.
    let snap = core.snapshot().unwrap();
    let id = core.documents().unwrap()[0].id.clone();
    assert!(core.remove(&id).is_ok());
    assert_eq!(core.counts().0, 1);
    core.open_library(Some(&snap)).unwrap();
    assert_eq!(core.counts().0, 2);
}

#[test]
fn page_questions_summaries_and_chat() {
    let (mut core, f) = ready();
    assert!(pollster::block_on(core.ask("canal?", Scope::Page, &mut quiet)).is_err());
    let n = pollster::block_on(
        core.index_page(parsed(&f, "http://hearth.test/canal", PAGE), &mut quiet),
    )
    .unwrap();
    assert!(n >= 1);
    assert_eq!(core.page_info().unwrap().0, "http://hearth.test/canal");

    let a = pollster::block_on(core.ask("When was the Orme canal dug?", Scope::Page, &mut quiet))
        .unwrap();
    assert_eq!(a.sources[0].origin, "page");
    assert!(a.sources[0].quote.contains("1790"));

    let mut steps = 0;
    let mut pieces = String::new();
    let s = pollster::block_on(core.summarize(None, &mut |e| {
        match e {
            Event::Step(_) => steps += 1,
            Event::Piece(p) => pieces.push_str(p),
            Event::Embedded(_) => {}
        }
        true
    }))
    .unwrap();
    assert!(steps >= 1 && s.calls >= 1);
    assert!(!s.sections.is_empty() && s.sections[0].quote.contains("Orme"));

    // Stopping: the callback says no at the first piece.
    let stopped = pollster::block_on(core.chat(
        "When was the Orme canal dug?",
        Scope::All,
        false,
        &mut |e| !matches!(e, Event::Piece(_)),
    ))
    .unwrap();
    assert!(stopped.stopped);
    let again =
        pollster::block_on(core.chat("When was the Orme canal dug?", Scope::All, true, &mut quiet))
            .unwrap();
    assert!(!again.stopped);

    // The page goes into the library with its embeddings.
    let added = core.add_page().unwrap();
    assert_eq!(added.upsert.status, "added");
    assert_eq!(core.counts(), (1, n));
}

#[test]
fn a_lost_device_is_rebuilt_and_the_library_survives() {
    let (mut core, f) = ready();
    pollster::block_on(core.add_document(parsed(&f, "varnholm.md", LIGHTHOUSE), &mut quiet))
        .unwrap();
    assert!(!core.device_lost());
    core.lose_device();
    core.gpu().poll_wait();
    assert!(core.device_lost());
    // The old device fails; a new one answers after the models are loaded again.
    pollster::block_on(core.reset_gpu()).unwrap();
    assert!(!core.device_lost());
    assert!(pollster::block_on(core.ask("lighthouse?", Scope::Library, &mut quiet)).is_err());
    load_encoder(&mut core, &f);
    let files = load_gguf_bytes(&tiny_llama()).unwrap();
    pollster::block_on(core.load_generator(&files, 2048)).unwrap();
    let a = pollster::block_on(core.ask(
        "Who lit the Varnholm lighthouse lamp for the first time?",
        Scope::Library,
        &mut quiet,
    ))
    .unwrap();
    assert_eq!(a.sources[0].citation.source, "varnholm.md");
}
