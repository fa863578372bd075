//! Shared fixtures for the index tests: clustered unit vectors, a brute-force reference and a
//! small document set.
#![allow(dead_code, clippy::unwrap_used)]

use hearth_knowledge::{DocId, DocKind, NewChunk, NewDocument};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` unit vectors from a mixture of `clusters` Gaussians (centres uniform on the sphere,
/// per-component noise `sigma`), so nearest-neighbour structure is meaningful.
pub fn clustered(seed: u64, n: usize, dim: usize, clusters: usize, sigma: f32) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| unit((0..dim).map(|_| gauss(&mut rng)).collect()))
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..clusters)];
            unit(c.iter().map(|x| x + sigma * gauss(&mut rng)).collect())
        })
        .collect()
}

pub fn gauss(rng: &mut impl Rng) -> f32 {
    // Box–Muller.
    let u: f32 = rng.gen_range(f32::EPSILON..1.0);
    let v: f32 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

pub fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Brute-force top-k ids over `(id, vector)` pairs (ties: smaller id first).
pub fn exact_top_k(items: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(u64, f32)> = items.iter().map(|(id, v)| (*id, dot(q, v))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(k).map(|(id, _)| id).collect()
}

pub fn new_doc(path: &str, hash: &str) -> NewDocument {
    NewDocument {
        id: DocId(format!("id:{path}")),
        title: format!("Title of {path}"),
        source_path: path.to_string(),
        kind: DocKind::Markdown,
        size: 1234,
        content_hash: hash.to_string(),
        added_unix_ms: 1_700_000_000_000,
    }
}

pub fn chunk(text: &str, n: usize) -> NewChunk {
    NewChunk {
        heading_path: vec!["Top".into(), format!("Section {n}")],
        page: (n & 1 == 0).then_some(n as u32 + 1),
        span: (n * 100, n * 100 + text.len()),
        text: text.to_string(),
    }
}
