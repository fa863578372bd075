//! The knowledge commands' contract: `ingest`, `search`, `docs`, `embed` — names, JSON shapes,
//! exit codes, re-ingest behaviour. Runs the real binary with the real all-MiniLM-L6-v2 encoder
//! (lavapipe or any GPU) on a corpus of a few tiny files; the model-dependent tests skip, saying
//! why, when the model cache lacks it (`make models`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hearth_knowledge::{DocId, DocKind, IndexParams, KnowledgeIndex, NewChunk, NewDocument};
use serde_json::Value;

mod common;
use common::{hearth, stderr};

/// Every stdout line as JSON.
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// Runs `args`, requires success, and parses stdout as exactly one JSON object.
fn json(args: &[&str]) -> Value {
    let out = hearth(args);
    assert!(
        out.status.success(),
        "hearth {args:?} failed: {}",
        stderr(&out)
    );
    let mut v = lines(&out);
    assert_eq!(v.len(), 1, "one JSON line from {args:?}");
    v.remove(0)
}

/// A failing run: exit code 1, an `error:` line, no panic.
fn fails(args: &[&str]) -> String {
    let out = hearth(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains("error:") && !err.contains("panicked"),
        "{args:?}: {err}"
    );
    err
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hearth-kcli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn minilm() -> Option<PathBuf> {
    let dir = hearth_models::bert::default_encoder_dir();
    if dir.is_none() {
        eprintln!("SKIPPED: all-minilm-l6-v2 is not in the model cache (run `make models`)");
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Three small documents on unrelated topics, one broken PDF and one unsupported file.
fn corpus(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(docs.join("animals")).unwrap();
    std::fs::write(
        docs.join("bread.md"),
        "# Baking sourdough bread\n\nA sourdough starter is flour and water fermented by wild \
         yeast. Feed it every day.\n\n## Baking\n\nKnead the dough, let it rise overnight in a \
         cool place, then bake it hot in a covered pot until the crust is dark.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("animals/otters.html"),
        "<!doctype html><html><head><title>Sea otters</title></head><body><h1>Sea otters</h1>\
         <p>Sea otters live along the coasts of the North Pacific and sleep floating on their \
         backs.</p><h2>Diet</h2><p>They eat sea urchins, crabs and clams, cracking the shells \
         open with stones they carry.</p></body></html>",
    )
    .unwrap();
    std::fs::write(
        docs.join("python.txt"),
        "Python lists are mutable sequences. Call append to add an item at the end of a list, \
         and pop to remove the last one.\n",
    )
    .unwrap();
    std::fs::write(docs.join("broken.pdf"), "this is not a PDF").unwrap();
    std::fs::write(docs.join("notes.xyz"), "unsupported").unwrap();
    docs
}

fn top_source(hits: &Value) -> String {
    hits["hits"][0]["source"]
        .as_str()
        .expect("a hit")
        .to_string()
}

#[test]
fn ingest_search_docs_embed_with_minilm() {
    if minilm().is_none() {
        return;
    }
    let dir = tempdir("roundtrip");
    let docs = corpus(&dir);
    let index = dir.join("index"); // does not exist yet
    let ix = s(&index);

    // One broken file fails alone (exit 1 after saving the rest); unsupported files are counted.
    let out = hearth(&["ingest", "--index", ix, "--json", s(&docs)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sum = &lines(&out)[0];
    assert_eq!(
        (sum["added"].as_u64(), sum["unchanged"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(sum["replaced"], 0);
    assert_eq!(sum["skipped"], 1);
    assert_eq!(sum["documents"], 3);
    let failed = sum["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["path"].as_str().unwrap().ends_with("broken.pdf"));
    assert!(failed[0]["error"].as_str().unwrap().contains("PDF"));
    let chunks = sum["chunks"].as_u64().unwrap();
    assert!(chunks >= 3);
    assert_eq!(sum["index_chunks"].as_u64(), Some(chunks));

    // The JSON shape, exactly.
    let v = json(&[
        "search",
        "--index",
        ix,
        "--json",
        "-k",
        "3",
        "what do sea otters eat",
    ]);
    assert_eq!(v.as_object().unwrap().len(), 1);
    let hits = v["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3);
    let want: BTreeSet<&str> = [
        "source", "title", "heading", "page", "span", "score", "text",
    ]
    .into();
    for h in hits {
        let keys: BTreeSet<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, want);
        assert!(h["page"].is_null(), "no pages outside PDFs");
        let span: Vec<u64> = h["span"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let text = h["text"].as_str().unwrap();
        assert_eq!(span.len(), 2);
        assert_eq!(
            (span[1] - span[0]) as usize,
            text.len(),
            "span is the text's byte range"
        );
        assert!(h["score"].is_f64() && h["heading"].is_string() && h["title"].is_string());
    }
    assert!(top_source(&v).ends_with("animals/otters.html"), "{v}");
    assert_eq!(hits[0]["title"], "Sea otters");
    // Heading paths are joined with " › " (the Diet section is the other otters chunk).
    assert!(
        hits.iter().any(|h| h["heading"] == "Sea otters › Diet"),
        "{v}"
    );
    // Scores rank best first.
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Every mode finds the obvious document.
    for (mode, query, file) in [
        (
            "dense",
            "how long should dough rise before baking",
            "bread.md",
        ),
        ("keyword", "append", "python.txt"),
        (
            "hybrid",
            "removing the last element of a list",
            "python.txt",
        ),
    ] {
        let v = json(&["search", "--index", ix, "--json", "--mode", mode, query]);
        assert!(top_source(&v).ends_with(file), "{mode} {query:?}: {v}");
    }
    // Dense scores are cosines.
    let v = json(&[
        "search", "--index", ix, "--json", "--mode", "dense", "-k", "10", "bread",
    ]);
    assert_eq!(
        v["hits"].as_array().unwrap().len() as u64,
        chunks,
        "k above the chunk count"
    );
    assert!(v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["score"].as_f64().unwrap().abs() <= 1.0 + 1e-5));

    // --queries: one JSON line per non-empty line, in order, one model load.
    let qfile = dir.join("queries.txt");
    std::fs::write(&qfile, "wild yeast starter\n\ncrabs and clams\n").unwrap();
    let out = hearth(&["search", "--index", ix, "--queries", s(&qfile), "-k", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = lines(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["query"], "wild yeast starter");
    assert!(top_source(&rows[0]).ends_with("bread.md"));
    assert!(top_source(&rows[1]).ends_with("otters.html"));
    assert_eq!(stderr(&out).matches("loading encoder").count(), 1);

    // The readable forms.
    let out = hearth(&["search", "--index", ix, "sea otters"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("1. [") && text.contains("otters.html"),
        "{text}"
    );

    // Re-ingesting unchanged files does nothing, without even loading the model.
    let good = ["bread.md", "animals/otters.html", "python.txt"].map(|f| docs.join(f));
    let mut args = vec!["ingest", "--index", ix, "--json"];
    args.extend(good.iter().map(|p| s(p)));
    let out = hearth(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let sum = &lines(&out)[0];
    assert_eq!(
        (
            sum["added"].as_u64(),
            sum["unchanged"].as_u64(),
            sum["chunks"].as_u64()
        ),
        (Some(0), Some(3), Some(0))
    );
    assert!(
        !stderr(&out).contains("loading encoder"),
        "{}",
        stderr(&out)
    );

    // A modified file is replaced.
    std::fs::write(
        docs.join("python.txt"),
        "Python tuples are immutable sequences; once built, a tuple cannot change.\n",
    )
    .unwrap();
    let sum = json(&["ingest", "--index", ix, "--json", s(&good[2])]);
    assert_eq!(
        (sum["replaced"].as_u64(), sum["documents"].as_u64()),
        (Some(1), Some(3))
    );
    let v = json(&[
        "search", "--index", ix, "--json", "--mode", "keyword", "append",
    ]);
    assert!(
        v["hits"].as_array().unwrap().is_empty(),
        "old text gone: {v}"
    );
    let v = json(&[
        "search", "--index", ix, "--json", "--mode", "keyword", "tuples",
    ]);
    assert!(top_source(&v).ends_with("python.txt"));

    // docs list / remove.
    let list = json(&["docs", "--index", ix, "--json"]);
    let listed = list["documents"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    let otters = listed
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("otters.html"))
        .unwrap();
    assert_eq!(otters["title"], "Sea otters");
    assert_eq!(otters["kind"], "html");
    assert_eq!(
        otters["size"].as_u64(),
        Some(std::fs::metadata(&good[1]).unwrap().len())
    );
    assert!(otters["chunks"].as_u64().unwrap() >= 1);
    assert!(
        otters["added"].as_str().unwrap().len() == 19
            && otters["added_unix_ms"].as_u64().unwrap() > 0
    );
    let path = otters["path"].as_str().unwrap().to_string();
    let removed = json(&["docs", "remove", &path, "--index", ix, "--json"]);
    assert_eq!(removed["removed"]["path"].as_str(), Some(path.as_str()));
    let list = json(&["docs", "list", "--index", ix, "--json"]);
    assert_eq!(list["documents"].as_array().unwrap().len(), 2);
    let v = json(&[
        "search", "--index", ix, "--json", "--mode", "keyword", "otters",
    ]);
    assert!(v["hits"].as_array().unwrap().is_empty(), "{v}");
    let err = fails(&["docs", "--index", ix, "remove", &path]);
    assert!(err.contains("no document"), "{err}");
    let out = hearth(&["docs", "--index", ix]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 documents"));

    // embed: unit vectors of the model's dimension, the same text the same vector.
    let v = json(&["embed", "--json", "sea otters", "sourdough", "sea otters"]);
    let e: Vec<Vec<f64>> = v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(e.len(), 3);
    for row in &e {
        assert_eq!(row.len(), 384);
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let cos = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!(cos(&e[0], &e[2]) > 0.9999);
    assert!(cos(&e[0], &e[1]) < 0.9);
}

/// An index with one document and an 8-dimensional embedding (no real model makes those).
fn tiny_index(dir: &Path) -> PathBuf {
    let mut index = KnowledgeIndex::new(8, IndexParams::default()).unwrap();
    let doc = NewDocument {
        id: DocId::for_source("/x/lighthouse.txt"),
        title: "Lighthouses".into(),
        source_path: "/x/lighthouse.txt".into(),
        kind: DocKind::Text,
        size: 40,
        content_hash: "00".repeat(32),
        added_unix_ms: 1_700_000_000_000,
    };
    let text = "A lighthouse keeper trims the lamp wick.";
    let chunk = NewChunk {
        heading_path: vec![],
        page: None,
        span: (0, text.len()),
        text: text.into(),
    };
    let mut v = vec![0.0f32; 8];
    v[3] = 1.0;
    index.upsert(doc, vec![chunk], &v).unwrap();
    let path = dir.join("index");
    index.save(&path).unwrap();
    path
}

#[test]
fn keyword_search_and_docs_need_no_model() {
    let dir = tempdir("nomodel");
    let index = tiny_index(&dir);
    // No model anywhere: HOME and HEARTH_MODELS point at an empty folder.
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HOME", &dir)
            .env("HEARTH_MODELS", &dir)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .unwrap()
    };
    let out = run(&[
        "search",
        "--index",
        s(&index),
        "--json",
        "--mode",
        "keyword",
        "lamp keeper",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &lines(&out)[0];
    assert_eq!(v["hits"][0]["source"], "/x/lighthouse.txt");
    assert_eq!(v["hits"][0]["heading"], "");
    let out = run(&["docs", "--index", s(&index), "--json"]);
    assert_eq!(
        lines(&out)[0]["documents"][0]["added"],
        "2023-11-14 22:13:20"
    );
    // Without the default model, commands that need it say how to get it.
    for args in [
        vec!["search", "--index", s(&index), "lamp"],
        vec!["embed", "hello"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("make models") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn clear_errors_for_missing_indexes_models_and_dimensions() {
    let dir = tempdir("errors");
    let missing = dir.join("nowhere");
    let err = fails(&["search", "--index", s(&missing), "--mode", "keyword", "x"]);
    assert!(
        err.contains("no index") && err.contains("hearth ingest"),
        "{err}"
    );
    let err = fails(&["docs", "--index", s(&missing)]);
    assert!(err.contains("no index"), "{err}");
    let err = fails(&["docs", "list"]);
    assert!(err.contains("--index"), "{err}");
    fails(&["embed", "--model", s(&missing), "x"]);
    if minilm().is_none() {
        return;
    }
    // An index built with another embedding size refuses this model's queries and documents.
    let index = tiny_index(&dir);
    let err = fails(&["search", "--index", s(&index), "--mode", "dense", "lamp"]);
    assert!(
        err.contains("8-dimensional") && err.contains("384"),
        "{err}"
    );
    let doc = dir.join("new.txt");
    std::fs::write(&doc, "some new text").unwrap();
    let err = fails(&["ingest", "--index", s(&index), s(&doc)]);
    assert!(err.contains("8-dimensional"), "{err}");
    let list = json(&["docs", "--index", s(&index), "--json"]);
    assert_eq!(
        list["documents"].as_array().unwrap().len(),
        1,
        "the index is untouched"
    );
}
