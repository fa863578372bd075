//! Index benchmark: N chunks × D-dim clustered unit vectors (a two-level Gaussian mixture:
//! topics → subtopics → points, so neighbourhoods are meaningful), with synthetic Zipfian text.
//!
//! Measures ingest, HNSW build rate, dense query latency p50/p99 and recall@10 against exact
//! search for several `ef_search`, hybrid query latency, snapshot size, save and load time.
//!
//! cargo run --release -p hearth-knowledge --example index_bench -- \
//!     [--n 100000] [--dim 384] [--queries 1000] [--ef-construction 100] [--ef-search 16,32,64] \
//!     [--heuristic 0|1] [--words 80] [--dir /tmp/hearth-index-bench] [--keep 1] [--load-only 1]
//!
//! `--words 180` gives chunk texts of about 1 KB, the size the chunker produces for real documents.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hearth_knowledge::{
    DenseParams, DocId, DocKind, IndexParams, KnowledgeIndex, Mode, NewChunk, NewDocument,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Args {
    n: usize,
    dim: usize,
    queries: usize,
    ef_construction: usize,
    ef_search: Vec<usize>,
    heuristic: bool,
    /// Words of synthetic text per chunk (80 ≈ 450 bytes, 180 ≈ 1 KB).
    words: usize,
    dir: std::path::PathBuf,
    /// Keep the saved snapshot; with `load_only`, only time loading it.
    keep: bool,
    load_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        n: 100_000,
        dim: 384,
        queries: 1000,
        ef_construction: 100,
        ef_search: vec![16, 24, 32, 48, 64, 96],
        heuristic: true,
        words: 80,
        keep: false,
        load_only: false,
        dir: std::env::temp_dir().join("hearth-index-bench"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--n" => a.n = v.parse().unwrap(),
            "--dim" => a.dim = v.parse().unwrap(),
            "--queries" => a.queries = v.parse().unwrap(),
            "--ef-construction" => a.ef_construction = v.parse().unwrap(),
            "--ef-search" => a.ef_search = v.split(',').map(|x| x.parse().unwrap()).collect(),
            "--dir" => a.dir = v.into(),
            "--heuristic" => a.heuristic = v == "1" || v == "true",
            "--words" => a.words = v.parse().unwrap(),
            "--keep" => a.keep = v == "1" || v == "true",
            "--load-only" => a.load_only = v == "1" || v == "true",
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn gauss(rng: &mut impl Rng) -> f32 {
    let u: f32 = rng.gen_range(f32::EPSILON..1.0);
    let v: f32 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// `c + scale · (random unit direction)`, normalised.
fn jitter(rng: &mut impl Rng, c: &[f32], scale: f32) -> Vec<f32> {
    let dir = unit((0..c.len()).map(|_| gauss(rng)).collect());
    unit(c.iter().zip(dir).map(|(x, d)| x + scale * d).collect())
}

/// Draws from the mixture: 250 topics, 20 subtopics each, points around subtopics.
struct Mixture {
    subtopics: Vec<Vec<f32>>,
}

impl Mixture {
    fn new(rng: &mut impl Rng, dim: usize) -> Self {
        let topics: Vec<Vec<f32>> = (0..250)
            .map(|_| unit((0..dim).map(|_| gauss(rng)).collect()))
            .collect();
        let subtopics = topics
            .iter()
            .flat_map(|t| (0..20).map(|_| jitter(rng, t, 0.9)).collect::<Vec<_>>())
            .collect();
        Self { subtopics }
    }

    fn sample(&self, rng: &mut impl Rng) -> (usize, Vec<f32>) {
        let s = rng.gen_range(0..self.subtopics.len());
        (s, jitter(rng, &self.subtopics[s], 0.7))
    }
}

/// A Zipf-ish word from a 20k-word vocabulary of made-up words, biased by subtopic so text and
/// vectors agree somewhat (as they do for real embeddings).
fn text(rng: &mut impl Rng, subtopic: usize, words: usize) -> String {
    let mut out = String::new();
    for _ in 0..words {
        let r: f64 = rng.gen();
        let rank = if rng.gen_bool(0.2) {
            20_000 - (subtopic * 7 + rng.gen_range(0..7)) % 20_000
        } else {
            ((20_000f64).powf(r) as usize).max(1)
        };
        out.push_str(&word(rank));
        out.push(' ');
    }
    out
}

fn word(rank: usize) -> String {
    let letters = b"bcdfghjklmnprstvz";
    let vowels = b"aeiou";
    let mut x = rank;
    let mut w = String::new();
    loop {
        w.push(letters[x % letters.len()] as char);
        x /= letters.len();
        w.push(vowels[x % vowels.len()] as char);
        x /= vowels.len();
        if x == 0 {
            break;
        }
    }
    w
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// On-CPU time of the calling thread (Linux schedstat): separates our cost from time spent
/// waiting for a core on a busy machine. Its resolution can be a scheduler tick (4 ms), so
/// only its mean over many queries is reported.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

/// On-CPU time of all threads of the process (rayon workers included).
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Wall time and process CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Option<Duration>) {
    let (cpu0, t) = (process_cpu(), Instant::now());
    let out = f();
    let wall = t.elapsed();
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    (out, wall, cpu)
}

/// p50 / p99 / mean of a set of durations, in ms.
fn mean_ms(times: &[Duration]) -> f64 {
    ms(times.iter().sum::<Duration>()) / times.len().max(1) as f64
}

fn summary(mut times: Vec<Duration>) -> String {
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    times.sort_unstable();
    format!(
        "{:>6.3}  {:>6.3}  {:>6.3}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(mean)
    )
}

fn main() {
    let args = args();
    if args.load_only {
        for _ in 0..3 {
            let (index, wall, cpu) = timed(|| KnowledgeIndex::load(&args.dir).unwrap());
            let chunks = index.chunk_count();
            println!(
                "load {chunks} chunks: wall {:.3} s, cpu {}",
                wall.as_secs_f64(),
                secs(cpu)
            );
        }
        // The browser's path: the snapshot already in memory.
        let path = args.dir.join(hearth_knowledge::store::SNAPSHOT_FILE);
        let bytes = std::fs::read(path).unwrap();
        let (_, wall, cpu) = timed(|| KnowledgeIndex::from_bytes(&bytes).unwrap());
        println!(
            "from_bytes (in memory): wall {:.3} s, cpu {}",
            wall.as_secs_f64(),
            secs(cpu)
        );
        return;
    }
    let (n, dim) = (args.n, args.dim);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mixture = Mixture::new(&mut rng, dim);
    println!(
        "index_bench: n={n} dim={dim} queries={} ef_construction={} heuristic={}",
        args.queries, args.ef_construction, args.heuristic
    );

    // Ingest as 10-chunk documents (fresh segment), then one HNSW build over everything.
    let params = IndexParams {
        dense: DenseParams {
            ef_construction: args.ef_construction,
            ef_search: args.ef_search[0],
            heuristic: args.heuristic,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut index = KnowledgeIndex::new(dim, params).unwrap();
    let per_doc = 10;
    let mut docs = Vec::with_capacity(n.div_ceil(per_doc));
    for d in 0..n.div_ceil(per_doc) {
        let count = per_doc.min(n - d * per_doc);
        let mut chunks = Vec::with_capacity(count);
        let mut emb = Vec::with_capacity(count * dim);
        for c in 0..count {
            let (s, v) = mixture.sample(&mut rng);
            let span = (c * 500, c * 500 + 500);
            chunks.push(NewChunk {
                heading_path: vec![format!("Doc {d}")],
                page: None,
                span,
                text: text(&mut rng, s, args.words),
            });
            emb.extend_from_slice(&v);
        }
        let doc = NewDocument {
            id: DocId(format!("{d:032x}")),
            title: format!("Document {d}"),
            source_path: format!("/bench/{d}.md"),
            kind: DocKind::Markdown,
            size: 5000,
            content_hash: format!("{d:064x}"),
            added_unix_ms: 0,
        };
        docs.push((doc, chunks, emb));
    }
    let (_, wall, cpu) = timed(|| {
        for (doc, chunks, emb) in docs {
            index.upsert(doc, chunks, &emb).unwrap();
        }
    });
    println!(
        "ingest (BM25 + fresh segment): wall {:.2} s ({:.0} chunks/s), cpu {}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        secs(cpu)
    );

    let (_, wall, cpu) = timed(|| index.rebuild().unwrap());
    println!(
        "HNSW build: wall {:.2} s ({:.0} vectors/s), cpu {} (all threads), segments {:?}",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        secs(cpu),
        index.dense().segment_sizes()
    );

    let queries: Vec<(usize, Vec<f32>)> = (0..args.queries)
        .map(|_| mixture.sample(&mut rng))
        .collect();
    let (truth, wall, _) = timed(|| {
        let exact = |q: &Vec<f32>| index.dense().exact_search(q, 10).unwrap();
        let ids = |q| exact(q).into_iter().map(|h| h.0).collect::<Vec<u64>>();
        queries.iter().map(|(_, q)| ids(q)).collect::<Vec<_>>()
    });
    println!(
        "exact search (reference): {:.3} ms/query",
        ms(wall) / queries.len() as f64
    );

    println!("ef_search  recall@10  wall: p50 ms  p99 ms  mean ms   on-cpu mean ms");
    for &ef in &args.ef_search {
        index.set_ef_search(ef).unwrap();
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        let mut found = 0usize;
        for ((_, q), want) in queries.iter().zip(&truth) {
            let (c, t) = (thread_cpu(), Instant::now());
            let hits = index.search(q, "", 10, Mode::Dense).unwrap();
            walls.push(t.elapsed());
            if let (Some(a), Some(b)) = (c, thread_cpu()) {
                cpus.push(b.saturating_sub(a));
            }
            found += hits.iter().filter(|h| want.contains(&h.chunk_id)).count();
        }
        println!(
            "{ef:>9}  {:>9.4}        {}           {:.3}",
            found as f64 / (10 * queries.len()) as f64,
            summary(walls),
            mean_ms(&cpus)
        );
    }

    let (mut walls, mut cpus) = (Vec::new(), Vec::new());
    for (s, q) in &queries {
        let query_text = text(&mut rng, *s, 4);
        let (c, t) = (thread_cpu(), Instant::now());
        let hits = index.search(q, &query_text, 10, Mode::Hybrid).unwrap();
        walls.push(t.elapsed());
        if let (Some(a), Some(b)) = (c, thread_cpu()) {
            cpus.push(b.saturating_sub(a));
        }
        assert!(!hits.is_empty());
    }
    println!(
        "hybrid (RRF of dense top-40 + BM25 top-40, 4-word queries, ef_search {}): wall p50/p99/mean {} ms; on-cpu mean {:.3} ms",
        args.ef_search[args.ef_search.len() - 1],
        summary(walls),
        mean_ms(&cpus)
    );

    let (bytes, wall, _) = timed(|| index.to_bytes().unwrap());
    println!(
        "to_bytes: {:.3} s, snapshot {:.1} MiB ({:.0} bytes/chunk)",
        wall.as_secs_f64(),
        bytes.len() as f64 / 1048576.0,
        bytes.len() as f64 / n as f64
    );
    let (back, wall, cpu) = timed(|| KnowledgeIndex::from_bytes(&bytes).unwrap());
    println!(
        "from_bytes: wall {:.3} s, cpu {}",
        wall.as_secs_f64(),
        secs(cpu)
    );
    drop((back, bytes));
    let (_, wall, _) = timed(|| index.save(&args.dir).unwrap());
    println!("save (write + fsync + rename): {:.3} s", wall.as_secs_f64());
    drop(index);
    let (loaded, wall, cpu) = timed(|| KnowledgeIndex::load(&args.dir).unwrap());
    println!(
        "load (read + verify + decode, file in page cache): wall {:.3} s, cpu {}",
        wall.as_secs_f64(),
        secs(cpu)
    );
    let hits = loaded.search(&queries[0].1, "", 10, Mode::Dense).unwrap();
    assert_eq!(hits.len(), 10);
    if !args.keep {
        std::fs::remove_dir_all(&args.dir).ok();
    }
}
