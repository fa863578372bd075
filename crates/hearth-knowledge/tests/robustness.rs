//! Hostile input: huge lines, blobs, deep nesting, binary junk, decompression bombs, cycles,
//! and a seeded mutation harness over the real fixtures (the normal-`cargo test` companion of
//! the cargo-fuzz targets in `fuzz/`). Every input must end in a document or a clean error,
//! within bounded time; the regression corpus in `tests/fixtures/docs/regress/` replays
//! inputs that once crashed or hung.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use hearth_knowledge::{
    chunk_document, extract_with, ApproxTokenCounter, ChunkOptions, Document, KnowledgeError,
    Limits, SourceHint,
};
use rand::{Rng, SeedableRng};

const NAMES: [&str; 5] = ["x.html", "x.md", "x.txt", "x.pdf", "x.docx"];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/docs")
            .join(name),
    )
    .unwrap()
}

/// Extraction and chunking invariants on a successful result.
fn check(doc: &Document) {
    let mut last = 0;
    for b in &doc.blocks {
        assert!(last <= b.span.0 && b.span.0 < b.span.1 && b.span.1 <= doc.text.len());
        assert!(doc.text.is_char_boundary(b.span.0) && doc.text.is_char_boundary(b.span.1));
        last = b.span.1;
    }
    let opts = ChunkOptions::default();
    let mut prev: Option<(usize, usize)> = None;
    for c in chunk_document(doc, &ApproxTokenCounter, &opts) {
        assert_eq!(c.text, doc.text[c.span.0..c.span.1]);
        assert!(c.tokens <= opts.max_tokens && c.text.len() <= opts.max_chunk_bytes);
        if let Some((s, e)) = prev {
            assert!(
                c.span.0 > s && c.span.1 > e,
                "chunk {:?} after {:?}",
                c.span,
                (s, e)
            );
        }
        prev = Some(c.span);
    }
}

fn run(bytes: &[u8], name: &str, limits: &Limits) -> Result<Document, KnowledgeError> {
    let r = extract_with(bytes, SourceHint::new(name), limits);
    if let Ok(doc) = &r {
        check(doc);
    }
    r
}

#[test]
fn fifty_megabytes_on_one_line() {
    let t = Instant::now();
    let words = "lorem ipsum dolor sit amet consectetur ";
    let line = words.repeat(50_000_000 / words.len());
    let doc = run(line.as_bytes(), "big.txt", &Limits::default()).unwrap();
    assert_eq!(doc.blocks.len(), 1);
    let blob = "x".repeat(50_000_000);
    let doc = run(blob.as_bytes(), "blob.txt", &Limits::default()).unwrap();
    assert_eq!(doc.text.len(), 50_000_000);
    let html = format!("<p>{line}</p>");
    run(html.as_bytes(), "big.html", &Limits::default()).unwrap();
    let elapsed = t.elapsed();
    eprintln!("3 × 50 MB extracted and chunked in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(180), "{elapsed:?}");
    // Over the input limit: refused before any work.
    let t = Instant::now();
    let huge = vec![b'a'; 65 << 20];
    let err = run(&huge, "huge.txt", &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            KnowledgeError::Limit {
                what: "input bytes",
                ..
            }
        ),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn ten_thousand_deep_nesting_everywhere() {
    let n = 10_000;
    let limits = Limits::default();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "deep.html",
            format!("{}x{}", "<div>".repeat(n), "</div>".repeat(n)).into_bytes(),
        ),
        (
            "deep2.html",
            format!("{}x", "<table><tr><td><ul><li><b><i>".repeat(n / 6)).into_bytes(),
        ),
        ("deep3.html", "<b><i>".repeat(n).into_bytes()),
        ("deep.md", format!("{} x", ">".repeat(n)).into_bytes()),
        (
            "deep2.md",
            format!("{}x{}", "[".repeat(n), "](u)".repeat(n)).into_bytes(),
        ),
        (
            "deep3.md",
            (0..n)
                .map(|i| format!("{}- x\n", " ".repeat(2 * i.min(3000))))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "deep4.md",
            format!("{}x{}", "*".repeat(n), "*".repeat(n)).into_bytes(),
        ),
        (
            "deep.docx",
            docx(&format!(
                "<w:document><w:body>{}<w:r><w:t>x</w:t></w:r>{}</w:body></w:document>",
                "<w:p>".repeat(n),
                "</w:p>".repeat(n)
            )),
        ),
        (
            "deep2.docx",
            docx(&format!(
                "<w:document><w:body><w:p>{}<w:r><w:t>x</w:t></w:r>{}</w:p></w:body></w:document>",
                "<w:sdt>".repeat(n),
                "</w:sdt>".repeat(n)
            )),
        ),
        (
            "deep.pdf",
            pdf_with_content(&format!(
                "BT /F1 12 Tf 72 700 Td {}(x) Tj ET",
                "[".repeat(n)
            )),
        ),
        (
            "deep2.pdf",
            pdf_with_content(&format!(
                "{} BT /F1 12 Tf 72 700 Td (x) Tj ET {}",
                "q ".repeat(n),
                "Q ".repeat(n)
            )),
        ),
        (
            "deep3.pdf",
            format!(
                "%PDF-1.4\n1 0 obj {} endobj trailer << /Root 1 0 R >>",
                "<< /A ".repeat(n)
            )
            .into_bytes(),
        ),
    ];
    for (name, bytes) in cases {
        let t = Instant::now();
        let result = run(&bytes, name, &limits);
        let elapsed = t.elapsed();
        eprintln!(
            "{name}: {:?} in {elapsed:?}",
            result.as_ref().map(|d| d.text.len())
        );
        assert!(elapsed < Duration::from_secs(20), "{name}: {elapsed:?}");
        match result {
            Ok(doc) => assert!(
                doc.text.contains('x') || name.starts_with("deep3.html"),
                "{name}: {:?}",
                doc.text
            ),
            Err(e) => assert!(
                matches!(
                    e,
                    KnowledgeError::Limit {
                        what: "nesting depth",
                        ..
                    }
                ),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn binary_junk_and_invalid_utf8() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for round in 0..20 {
        let len = rng.gen_range(0..200_000);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        for name in NAMES {
            let t = Instant::now();
            let _ = run(&junk, name, &Limits::default());
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "round {round} {name}"
            );
        }
    }
    // Invalid UTF-8 in text formats decodes as windows-1252 instead of failing.
    let latin = b"<p>na\xefve caf\xe9</p>";
    assert_eq!(
        run(latin, "l.html", &Limits::default()).unwrap().text,
        "naïve café"
    );
    assert_eq!(
        run(b"# Caf\xe9\n", "l.md", &Limits::default())
            .unwrap()
            .text,
        "Café"
    );
}

fn docx(document_xml: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("word/document.xml", opts).unwrap();
    w.write_all(document_xml.as_bytes()).unwrap();
    w.finish().unwrap();
    buf.into_inner()
}

/// A one-page PDF whose page content is `content` (font F1 = Helvetica).
fn pdf_with_content(content: &str) -> Vec<u8> {
    pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .into(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        stream("", content.as_bytes()),
    ])
}

fn stream(dict_extra: &str, data: &[u8]) -> Vec<u8> {
    let mut s = format!("<< /Length {} {dict_extra} >>\nstream\n", data.len()).into_bytes();
    s.extend_from_slice(data);
    s.extend_from_slice(b"\nendstream");
    s
}

fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    for (i, body) in objects.iter().enumerate() {
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    out.extend_from_slice(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n");
    out
}

#[test]
fn hand_made_pdf_and_hostile_variants() {
    let doc = run(
        &pdf_with_content("BT /F1 12 Tf 72 700 Td (Hello) Tj ( world) Tj ET"),
        "a.pdf",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        (doc.text.as_str(), doc.blocks[0].page),
        ("Hello world", Some(1))
    );

    // Decompression bomb in the content stream.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..64 {
        z.write_all(&[b' '; 1 << 20]).unwrap();
    }
    let bomb = z.finish().unwrap();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Resources << >> /Contents 4 0 R >>".to_vec(),
        stream("/Filter /FlateDecode", &bomb),
    ];
    let limits = Limits {
        max_decompressed_bytes: 8 << 20,
        ..Limits::default()
    };
    let err = run(&pdf(&objects), "bomb.pdf", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            KnowledgeError::Limit {
                what: "decompressed bytes",
                ..
            }
        ),
        "{err}"
    );

    // A page tree that contains itself, a form that draws itself, and a /Length cycle.
    objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [2 0 R 3 0 R 3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Resources 6 0 R /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        stream("", b"/X1 Do BT /F1 12 Tf 72 700 Td (loop) Tj ET"),
        b"<< /Font << /F1 4 0 R >> /XObject << /X1 7 0 R >> >>".to_vec(),
        b"<< /Type /XObject /Subtype /Form /Resources 6 0 R /Length 8 0 R >>\nstream\nBT /F1 12 Tf 72 600 Td (form) Tj ET /X1 Do\nendstream".to_vec(),
        b"8 0 R".to_vec(),
    ];
    let doc = run(&pdf(&objects), "cycle.pdf", &Limits::default()).unwrap();
    assert_eq!(doc.text, "form\n\nloop", "each page and form once");

    // Encrypted and image-only files are clean errors.
    let mut enc = pdf_with_content("BT /F1 12 Tf (x) Tj ET");
    enc.extend_from_slice(b"trailer << /Root 1 0 R /Encrypt << /Filter /Standard >> >>\n");
    assert!(matches!(
        run(&enc, "e.pdf", &Limits::default()),
        Err(KnowledgeError::Unsupported(_))
    ));
    let err = run(
        &pdf_with_content("q 100 0 0 100 0 0 cm /Im1 Do Q"),
        "scan.pdf",
        &Limits::default(),
    );
    assert!(
        matches!(err, Err(KnowledgeError::Unsupported(_))),
        "{err:?}"
    );
}

/// The reader's feature paths on one hand-made page: a Type1 font with `/Differences` (glyph
/// names `uni0041`, `fi`, `eacute`), a Type0 font with 2-byte codes mapped by a ToUnicode CMap
/// (`bfrange` and a ligature `bfchar`), a TJ gap wide enough to be a space, an inline image
/// whose binary data contains `EI`, a form XObject, a compressed content stream and an Info
/// title with an octal escape.
#[test]
fn hand_made_pdf_features() {
    let content = b"BT /F1 12 Tf 72 700 Td (Hello ABC) Tj 0 -14 Td [(Wide) -1000 (world)] TJ \
        0 -14 Td /F2 12 Tf <000100020003> Tj ET \
        BI /W 2 /H 2 /BPC 8 /CS /G ID \x00\x01EI\x02 EI /X Do";
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(content).unwrap();
    let cmap = b"begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange \
        1 beginbfrange <0001> <0002> <0061> endbfrange 1 beginbfchar <0003> <00660069> endbfchar endcmap";
    let objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /Contents 5 0 R /Resources << /Font << /F1 4 0 R /F2 6 0 R >> \
          /XObject << /X 8 0 R >> >> >>"
            .to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica \
          /Encoding << /Differences [65 /uni0041 /fi /eacute] >> >>"
            .to_vec(),
        stream("/Filter /FlateDecode", &z.finish().unwrap()),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H /ToUnicode 7 0 R \
          /DescendantFonts [<< /Subtype /CIDFontType2 /DW 500 /W [1 [600 700] 3 5 400] >>] >>"
            .to_vec(),
        stream("", cmap),
        stream(
            "/Type /XObject /Subtype /Form /Resources << /Font << /F1 4 0 R >> >> \
             /Matrix [1 0 0 1 0 -100]",
            b"BT /F1 12 Tf 72 600 Td (in form) Tj ET",
        ),
    ];
    let mut bytes = pdf(&objects);
    bytes.extend_from_slice(b"trailer << /Root 1 0 R /Info << /Title (T\\351st) >> >>\n");
    let doc = run(&bytes, "f.pdf", &Limits::default()).unwrap();
    assert_eq!(doc.title, "T\u{e9}st");
    let blocks: Vec<&str> = doc.blocks.iter().map(|b| doc.block_text(b)).collect();
    // 14pt line spacing joins the three lines into one paragraph; the form's line, 100pt
    // lower, is another.
    assert_eq!(blocks, ["Hello Afi\u{e9} Wide world abfi", "in form"]);
}

#[test]
fn work_budget_bounds_time() {
    let mut content = String::new();
    for _ in 0..200_000 {
        content.push_str("BT /F1 12 Tf 72 700 Td (x) Tj ET\n");
    }
    let limits = Limits {
        max_steps: 100_000,
        ..Limits::default()
    };
    let err = run(&pdf_with_content(&content), "slow.pdf", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            KnowledgeError::Limit {
                what: "work steps",
                ..
            }
        ),
        "{err}"
    );
}

/// Seeded mutations of real documents: byte flips, truncation, deletion, duplication,
/// insertion of junk and of format keywords.
#[test]
fn mutation_harness_over_fixtures() {
    let book = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| {
            let p = Path::new(String::from_utf8(o.stdout).ok()?.trim())
                .join("share/doc/rust/html/book/ch04-01-what-is-ownership.html");
            std::fs::read(p).ok()
        });
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("m.pdf", fixture("lighthouse.pdf")),
        ("m.docx", fixture("lighthouse.docx")),
        ("m.md", b"# Title\n\nSome *text* with [a link](x) and `code`.\n\n- a\n- b\n\n| a | b |\n|---|---|\n| c | d |\n\n```\ncode\n```\n".to_vec()),
        ("m.txt", "plain text\n\nwith paragraphs and caf\u{e9}\n".as_bytes().to_vec()),
    ];
    seeds.push((
        "m.html",
        book.unwrap_or_else(|| {
            b"<html><body><main><h1>T</h1><p>x</p></main></body></html>".to_vec()
        }),
    ));
    let keywords: [&[u8]; 12] = [
        b"obj",
        b"endobj",
        b"stream",
        b"<<",
        b"[",
        b"(",
        b"<w:p>",
        b"</w:p>",
        b"<div>",
        b">",
        b"\xff\xfe",
        b"BT",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let iterations: usize = std::env::var("HEARTH_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let limits = Limits {
        max_steps: 20_000_000,
        ..Limits::default()
    };
    let (mut ok, mut err) = (0, 0);
    let start = Instant::now();
    for (name, seed) in &seeds {
        for _ in 0..iterations {
            let mut data = seed.clone();
            for _ in 0..rng.gen_range(1..8) {
                let len = data.len().max(1);
                let at = rng.gen_range(0..len).min(data.len());
                match rng.gen_range(0..6) {
                    0 => {
                        if let Some(b) = data.get_mut(at) {
                            *b ^= 1 << rng.gen_range(0..8);
                        }
                    }
                    1 => data.truncate(at),
                    2 => {
                        let end = (at + rng.gen_range(0..4096)).min(data.len());
                        data.drain(at..end);
                    }
                    3 => {
                        let end = (at + rng.gen_range(0..4096)).min(data.len());
                        let copy = data[at..end].to_vec();
                        let to = rng.gen_range(0..=data.len());
                        data.splice(to..to, copy);
                    }
                    4 => {
                        let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
                        data.splice(at..at, junk);
                    }
                    _ => {
                        let k = keywords[rng.gen_range(0..keywords.len())];
                        data.splice(at..at, k.iter().copied());
                    }
                }
            }
            let t = Instant::now();
            match run(&data, name, &limits) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{name}: slow mutation"
            );
        }
    }
    eprintln!(
        "mutations: {ok} ok, {err} clean errors, {:?}",
        start.elapsed()
    );
}

/// Inputs that once crashed or hung (kept from fuzzing): each must now end cleanly with every
/// format's extractor.
#[test]
fn regression_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs/regress");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "md" && path.file_stem().is_some_and(|s| s == "README"))
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for name in NAMES {
            let t = Instant::now();
            let _ = run(&bytes, name, &Limits::default());
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{}: {name}",
                path.display()
            );
        }
        n += 1;
    }
    eprintln!("{n} regression inputs replayed");
}
