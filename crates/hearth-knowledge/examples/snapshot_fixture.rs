//! Native side of the browser test that native and wasm snapshots are the same
//! (`tests/browser/library.test.mjs`), and of its 100k-chunk query benchmark.
//!
//! `write --dir DIR [--n 5000] [--dim 384] [--queries 16] [--words 40]`
//!     builds a deterministic index (clustered unit vectors, text biased by cluster; an HNSW
//!     segment, a fresh segment and a tombstone), saves `DIR/index.hsnap` and writes
//!     `DIR/fixture.json`: the queries (vector + text), `k`, a document to add and the id of one
//!     to remove (the browser's edits before it writes a snapshot back).
//! `search --snapshot FILE --fixture FILE [--time 1]`
//!     loads a snapshot natively and prints (JSON) its documents and, for every query and mode,
//!     the hits shaped as the CLI's; `--time 1` adds the native dense-query p50 for comparison.
//!
//! cargo run --release -p hearth-knowledge --example snapshot_fixture -- write --dir /tmp/fx
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use hearth_knowledge::{
    DocId, DocKind, HitView, IndexParams, KnowledgeIndex, Mode, NewChunk, NewDocument,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

const MODES: [(&str, Mode); 3] = [
    ("dense", Mode::Dense),
    ("keyword", Mode::Keyword),
    ("hybrid", Mode::Hybrid),
];
const CLUSTERS: usize = 64;
const PER_DOC: usize = 10;

#[derive(Serialize, Deserialize)]
struct Query {
    vector: Vec<f32>,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct ChunkJson {
    heading_path: Vec<String>,
    page: Option<u32>,
    span: [usize; 2],
    text: String,
}

#[derive(Serialize, Deserialize)]
struct DocJson {
    source: String,
    title: String,
    kind: String,
    size: u64,
    content_hash: String,
    added_unix_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Extra {
    doc: DocJson,
    chunks: Vec<ChunkJson>,
    /// `chunks.len() × dim`, row-major.
    embeddings: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Fixture {
    dim: usize,
    k: usize,
    queries: Vec<Query>,
    extra: Extra,
    /// Id of a document the browser removes.
    remove: String,
}

#[derive(Serialize)]
struct DocListing {
    id: String,
    source: String,
    title: String,
    chunks: usize,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).map_or(default, |v| v.parse().expect(name))
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u: f32 = rng.gen_range(f32::EPSILON..1.0);
    let v: f32 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Clustered vectors and cluster-biased text, all from one seeded generator.
struct Data {
    rng: ChaCha8Rng,
    centres: Vec<Vec<f32>>,
    words: usize,
}

impl Data {
    fn new(dim: usize, words: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(2026);
        let centres = (0..CLUSTERS)
            .map(|_| unit((0..dim).map(|_| gauss(&mut rng)).collect()))
            .collect();
        Self {
            rng,
            centres,
            words,
        }
    }

    fn vector(&mut self, cluster: usize, noise: f32) -> Vec<f32> {
        let c = self.centres[cluster].clone();
        unit(c.iter().map(|x| x + noise * gauss(&mut self.rng)).collect())
    }

    fn text(&mut self, cluster: usize, words: usize) -> String {
        let syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pu"];
        let mut out = Vec::with_capacity(words);
        for _ in 0..words {
            let w: usize = if self.rng.gen_bool(0.3) {
                cluster * 7 + self.rng.gen_range(0..7)
            } else {
                self.rng.gen_range(0..2000)
            };
            let (a, b, c) = (w % 10, (w / 10) % 10, w / 100);
            out.push(format!("{}{}{}", syllables[a], syllables[b], c));
        }
        out.join(" ")
    }

    fn document(&mut self, d: usize, chunks: usize) -> (NewDocument, Vec<NewChunk>, Vec<f32>) {
        let source = format!("/fixture/doc-{d}.md");
        let doc = NewDocument {
            id: DocId::for_source(&source),
            title: format!("Document {d}"),
            source_path: source,
            kind: DocKind::Markdown,
            size: 1000 * chunks as u64,
            content_hash: format!("{d:064x}"),
            added_unix_ms: 1_790_000_000_000 + d as u64,
        };
        let mut list = Vec::with_capacity(chunks);
        let mut emb = Vec::new();
        for c in 0..chunks {
            let cluster = self.rng.gen_range(0..CLUSTERS);
            let text = self.text(cluster, self.words);
            list.push(NewChunk {
                heading_path: vec![format!("Document {d}"), format!("Part {c}")],
                page: (c % 3 == 0).then_some(c as u32 + 1),
                span: (c * 1000, c * 1000 + text.len()),
                text,
            });
            emb.extend(self.vector(cluster, 0.08));
        }
        (doc, list, emb)
    }
}

fn write(args: &[String]) {
    let dir = PathBuf::from(arg(args, "--dir").expect("--dir"));
    let (n, dim) = (num(args, "--n", 5000), num(args, "--dim", 384));
    let words = num(args, "--words", 40);
    let mut data = Data::new(dim, words);
    let mut index = KnowledgeIndex::new(dim, IndexParams::default()).unwrap();
    let docs = n.div_ceil(PER_DOC);
    // Most documents go into the HNSW segment, the last few stay in the fresh segment, and one
    // removed document leaves tombstones: every part of the format is exercised.
    let built = docs.saturating_sub(3).max(1);
    let t = Instant::now();
    for d in 0..docs {
        let (doc, chunks, emb) = data.document(d, PER_DOC.min(n - d * PER_DOC));
        index.upsert(doc, chunks, &emb).unwrap();
        if d + 1 == built {
            index.rebuild().unwrap();
        }
    }
    index
        .remove_document(&DocId::for_source("/fixture/doc-1.md"))
        .unwrap();
    let segments = index.dense().segment_sizes();
    index.save(&dir).unwrap();
    eprintln!(
        "snapshot_fixture: {} chunks, segments {segments:?}, built in {:.1} s",
        index.chunk_count(),
        t.elapsed().as_secs_f64()
    );

    let queries = (0..num(args, "--queries", 16))
        .map(|_| {
            let cluster = data.rng.gen_range(0..CLUSTERS);
            Query {
                vector: data.vector(cluster, 0.12),
                text: data.text(cluster, 4),
            }
        })
        .collect();
    let (doc, chunks, embeddings) = data.document(docs + 1, 3);
    let extra = Extra {
        doc: DocJson {
            source: doc.source_path,
            title: doc.title,
            kind: "markdown".into(),
            size: doc.size,
            content_hash: doc.content_hash,
            added_unix_ms: doc.added_unix_ms,
        },
        chunks: chunks
            .into_iter()
            .map(|c| ChunkJson {
                heading_path: c.heading_path,
                page: c.page,
                span: [c.span.0, c.span.1],
                text: c.text,
            })
            .collect(),
        embeddings,
    };
    let fixture = Fixture {
        dim,
        k: 10,
        queries,
        extra,
        remove: DocId::for_source("/fixture/doc-0.md").0,
    };
    let json = serde_json::to_string(&fixture).unwrap();
    std::fs::write(dir.join("fixture.json"), json).unwrap();
}

fn search(args: &[String]) {
    let snapshot = PathBuf::from(arg(args, "--snapshot").expect("--snapshot"));
    let fixture: Fixture =
        serde_json::from_slice(&std::fs::read(arg(args, "--fixture").expect("--fixture")).unwrap())
            .unwrap();
    let index = KnowledgeIndex::from_bytes(&std::fs::read(&snapshot).unwrap()).unwrap();
    let documents: Vec<DocListing> = index
        .documents()
        .map(|d| DocListing {
            id: d.id.0.clone(),
            source: d.source_path.clone(),
            title: d.title.clone(),
            chunks: d.chunks.len(),
        })
        .collect();
    let mut hits = serde_json::Map::new();
    for (name, mode) in MODES {
        let per_query: Vec<Vec<HitView>> = fixture
            .queries
            .iter()
            .map(|q| {
                let found = index.search(&q.vector, &q.text, fixture.k, mode).unwrap();
                found.iter().filter_map(|h| index.view(h)).collect()
            })
            .collect();
        hits.insert(name.into(), serde_json::to_value(per_query).unwrap());
    }
    let mut out = serde_json::json!({
        "documents": documents,
        "chunk_count": index.chunk_count(),
        "hits": hits,
    });
    if arg(args, "--time").as_deref() == Some("1") {
        let mut times: Vec<f64> = Vec::new();
        for _ in 0..5 {
            for q in &fixture.queries {
                let t = Instant::now();
                let found = index.search(&q.vector, "", fixture.k, Mode::Dense).unwrap();
                let views: Vec<HitView> = found.iter().filter_map(|h| index.view(h)).collect();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(views.len(), fixture.k);
            }
        }
        times.sort_by(f64::total_cmp);
        out["native_dense_p50_ms"] = times[times.len() / 2].into();
    }
    println!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => write(&args),
        Some("search") => search(&args),
        _ => panic!(
            "usage: snapshot_fixture write --dir DIR | search --snapshot FILE --fixture FILE"
        ),
    }
}
