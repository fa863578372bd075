//! Extraction on real documents: the Rust Book as shipped with the toolchain, the committed
//! PDF/DOCX fixtures (made by `tests/fixtures/docs/make_fixtures.py`, expected text in
//! `lighthouse.json`), and other real HTML/PDF found on the machine.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};

use hearth_knowledge::{extract, BlockKind, DocKind, Document, SourceHint};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(name)
}

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

/// Blocks are in order, disjoint, non-empty, on char boundaries, and slice the text.
fn check_blocks(doc: &Document) {
    let mut last = 0;
    for b in &doc.blocks {
        let (s, e) = b.span;
        assert!(
            last <= s && s < e && e <= doc.text.len(),
            "{:?} after {last}",
            b.span
        );
        assert!(doc.text.is_char_boundary(s) && doc.text.is_char_boundary(e));
        let t = doc.block_text(b);
        if b.kind != BlockKind::Code {
            assert_eq!(t, t.trim(), "untrimmed block {t:?}");
        }
        last = e;
    }
}

fn headings(doc: &Document) -> Vec<(u8, &str, Option<u32>)> {
    doc.blocks
        .iter()
        .filter_map(|b| match b.kind {
            BlockKind::Heading(l) => Some((l, doc.block_text(b), b.page)),
            _ => None,
        })
        .collect()
}

/// Text of the page chrome around mdBook's `<main>`.
const BOOK_CHROME: [&str; 5] = [
    "Keyboard shortcuts",
    "to navigate between chapters",
    "Ayu",
    "Coal",
    "to search in the book",
];

#[test]
fn rust_book_chapter_keeps_content_and_drops_chrome() {
    let Some(book) = rust_book() else {
        eprintln!("SKIP: no Rust Book in this toolchain (rustup component add rust-docs)");
        return;
    };
    let doc = load(&book.join("ch04-01-what-is-ownership.html"));
    check_blocks(&doc);
    assert_eq!(doc.kind, DocKind::Html);
    assert!(doc.title.starts_with("What is Ownership?"), "{}", doc.title);
    let heads = headings(&doc);
    for want in [
        (2, "What Is Ownership?"),
        (3, "The Stack and the Heap"),
        (3, "The String Type"),
    ] {
        assert!(
            heads.iter().any(|h| (h.0, h.1) == want),
            "{want:?} not in {heads:?}"
        );
    }
    assert_eq!(
        (heads[0].0, heads[0].1),
        (2, "What Is Ownership?"),
        "content starts at the title"
    );
    let code = doc
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Code)
        .map(|b| doc.block_text(b));
    assert!(code
        .clone()
        .any(|c| c.contains("let s = String::from(\"hello\");")));
    assert!(
        code.clone().any(|c| c.contains('\n')),
        "code keeps its line breaks"
    );
    for chrome in BOOK_CHROME {
        assert!(!doc.text.contains(chrome), "page chrome {chrome:?} leaked");
    }
    // Paragraph text is whitespace-normalised prose.
    let para = doc
        .blocks
        .iter()
        .find(|b| b.kind == BlockKind::Paragraph)
        .unwrap();
    assert!(
        doc.block_text(para)
            .starts_with("Ownership is a set of rules"),
        "{}",
        doc.block_text(para)
    );
}

#[test]
fn every_rust_book_page_extracts() {
    let Some(book) = rust_book() else {
        eprintln!("SKIP: no Rust Book in this toolchain");
        return;
    };
    let mut pages = 0;
    for entry in std::fs::read_dir(&book).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "html") {
            continue;
        }
        if std::fs::read_to_string(&path)
            .unwrap()
            .contains("http-equiv=\"refresh\"")
        {
            continue; // a redirect stub for a renamed chapter
        }
        let doc = load(&path);
        check_blocks(&doc);
        pages += 1;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("ch") || name.starts_with("appendix") {
            assert!(!headings(&doc).is_empty(), "{name}: no headings");
        }
        for chrome in BOOK_CHROME {
            assert!(
                !doc.text.contains(chrome),
                "{name}: chrome {chrome:?} leaked"
            );
        }
    }
    assert!(pages > 100, "only {pages} pages");
}

/// A page without `<main>`/`<article>`: the density heuristic must find the chapter and leave
/// the navigation tables out (Valgrind's DocBook manual, where installed).
#[test]
fn docbook_page_without_main_uses_density() {
    let path = Path::new("/usr/share/doc/valgrind/html/manual-core.html");
    if !path.exists() {
        eprintln!("SKIP: {} not installed", path.display());
        return;
    }
    let doc = load(path);
    check_blocks(&doc);
    let heads = headings(&doc);
    assert!(heads.len() > 10, "{heads:?}");
    assert!(heads[0].1.contains("Valgrind core"), "{heads:?}");
    assert!(
        heads.iter().any(|h| h.1.contains("The Commentary")),
        "a late section survives"
    );
    let first = doc.text.lines().next().unwrap();
    assert!(
        !first.contains("Prev") && !first.contains("Home"),
        "nav header leaked: {first}"
    );
}

#[derive(serde::Deserialize)]
struct Expected {
    title: String,
    pages: Vec<(String, Vec<(String, String)>)>,
    checklist: Vec<String>,
    table: Vec<Vec<String>>,
}

fn expected() -> Expected {
    serde_json::from_slice(&std::fs::read(fixture("lighthouse.json")).unwrap()).unwrap()
}

/// Both the classic PDF 1.3 file and its PDF 1.5 rewrite (object streams, cross-reference
/// stream, no trailer) give exactly the source structure.
#[test]
fn pdf_fixture_pages_headings_and_text() {
    for name in ["lighthouse.pdf", "lighthouse-objstm.pdf"] {
        check_pdf_fixture(name);
    }
}

fn check_pdf_fixture(name: &str) {
    let want = expected();
    let doc = load(&fixture(name));
    check_blocks(&doc);
    assert_eq!(
        (doc.kind, doc.title.as_str()),
        (DocKind::Pdf, want.title.as_str())
    );
    // Exactly the source structure: chapter (largest size) → level 1, section → level 2, body
    // paragraphs joined across wrapped lines; running header and "Page N" footer dropped.
    let mut expected_blocks = Vec::new();
    for (page, (chapter, sections)) in want.pages.iter().enumerate() {
        let page = Some(page as u32 + 1);
        expected_blocks.push((BlockKind::Heading(1), chapter.clone(), page));
        for (heading, body) in sections {
            expected_blocks.push((BlockKind::Heading(2), heading.clone(), page));
            expected_blocks.push((BlockKind::Paragraph, body.clone(), page));
        }
    }
    let got: Vec<(BlockKind, String, Option<u32>)> = doc
        .blocks
        .iter()
        .map(|b| (b.kind, doc.block_text(b).to_string(), b.page))
        .collect();
    assert_eq!(got, expected_blocks, "{name}");
    assert!(
        !doc.text.contains("Page 2") && !doc.text.contains("Handbook"),
        "{name}"
    );
}

#[test]
fn docx_fixture_styles_lists_and_table() {
    let want = expected();
    let doc = load(&fixture("lighthouse.docx"));
    check_blocks(&doc);
    assert_eq!(
        (doc.kind, doc.title.as_str()),
        (DocKind::Docx, want.title.as_str())
    );
    let mut expected_blocks = vec![(BlockKind::Heading(1), "Lighthouse Handbook".to_string())];
    for (chapter, sections) in &want.pages {
        expected_blocks.push((BlockKind::Heading(1), chapter.clone()));
        for (heading, body) in sections {
            expected_blocks.push((BlockKind::Heading(2), heading.clone()));
            expected_blocks.push((BlockKind::Paragraph, body.clone()));
        }
    }
    expected_blocks.push((BlockKind::Heading(1), "Checklist".to_string()));
    for item in &want.checklist {
        expected_blocks.push((BlockKind::ListItem, item.clone()));
    }
    for cell in want.table.iter().flatten() {
        expected_blocks.push((BlockKind::TableCell, cell.clone()));
    }
    let got: Vec<(BlockKind, String)> = doc
        .blocks
        .iter()
        .map(|b| (b.kind, doc.block_text(b).to_string()))
        .collect();
    assert_eq!(got, expected_blocks);
    let rows: Vec<String> = want.table.iter().map(|r| r.join("\t")).collect();
    assert!(
        doc.text.ends_with(&rows.join("\n")),
        "table rows: {:?}",
        &doc.text[doc.text.len() - 40..]
    );
}

/// Real PDFs from other producers (TeX, DocBook FOP), where installed: text comes out as words.
#[test]
fn system_pdfs_extract_readable_text() {
    let cases = [
        (
            "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
            "MIME",
        ),
        ("/usr/share/doc/libtasn1-doc/libtasn1.pdf", "libtasn1"),
    ];
    for (path, word) in cases {
        let path = Path::new(path);
        if !path.exists() {
            eprintln!("SKIP: {} not installed", path.display());
            continue;
        }
        let doc = load(path);
        check_blocks(&doc);
        let pages = doc.blocks.iter().filter_map(|b| b.page).max().unwrap_or(0);
        assert!(pages >= 5, "{}: {pages} pages", path.display());
        assert!(doc.text.contains(word), "{}: no {word:?}", path.display());
        // Mostly real words: letters dominate and words have sane lengths.
        let words: Vec<&str> = doc.text.split_whitespace().collect();
        let wordy = words
            .iter()
            .filter(|w| w.len() <= 20 && w.chars().any(char::is_alphabetic));
        let share = wordy.count() as f64 / words.len() as f64;
        assert!(
            words.len() > 1000 && share > 0.8,
            "{}: {} words, {share:.2} wordy",
            path.display(),
            words.len()
        );
        eprintln!(
            "{}: {} pages, {} words, title {:?}",
            path.display(),
            pages,
            words.len(),
            doc.title
        );
    }
}
