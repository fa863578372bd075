//! Deterministic stand-ins for an embedding model, for tests here and in crates above.

/// A hashed bag of words (FNV-1a per lower-cased word) as a unit vector of `dim`: texts sharing
/// words are close, as a real embedder's would be, at no cost. Never the zero vector.
pub fn bag_of_words(text: &str, dim: usize) -> Vec<f32> {
    let dim = dim.max(1);
    let mut v = vec![0.0f32; dim];
    v[0] = 1e-3;
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        v[(h % dim as u64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}
