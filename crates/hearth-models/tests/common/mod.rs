//! Shared helpers of the loader integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use half::f16;
use hearth_models::gguf::{GgmlType, Gguf};

pub const SMOLLM2: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

pub fn tiny_gguf() -> PathBuf {
    tiny().join("tiny-llama.gguf")
}

pub fn tiny_hf() -> PathBuf {
    tiny().join("tiny-llama3-hf")
}

/// A fresh empty directory under the system temp dir, unique per process and call.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "hearth-models-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies a flat directory (the HF fixture) into a fresh temp dir.
pub fn copy_dir(src: &Path, name: &str) -> PathBuf {
    let d = temp_dir(name);
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

/// ggml's `dequantize_row_*` for F32/F16/Q4_0/Q4_1/Q8_0, from the block layouts (independent of
/// the loader's repacking).
pub fn ggml_dequantize(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    let mut y = Vec::new();
    match ty {
        GgmlType::F32 => y.extend(
            data.chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
        ),
        GgmlType::F16 => y.extend(data.chunks(2).map(h)),
        GgmlType::Q8_0 => data
            .chunks(34)
            .for_each(|b| y.extend(b[2..].iter().map(|&q| q as i8 as f32 * h(&b[..2])))),
        GgmlType::Q4_1 => data.chunks(20).for_each(|b| {
            let (d, m) = (h(&b[..2]), h(&b[2..4]));
            y.extend(b[4..].iter().map(|&q| (q & 15) as f32 * d + m));
            y.extend(b[4..].iter().map(|&q| (q >> 4) as f32 * d + m));
        }),
        GgmlType::Q4_0 => data.chunks(18).for_each(|b| {
            let d = h(&b[..2]);
            y.extend(b[2..].iter().map(|&q| ((q & 15) as i32 - 8) as f32 * d));
            y.extend(b[2..].iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
        }),
        t => panic!("no reference for {}", t.name()),
    }
    y
}

/// Asserts that `got` holds exactly ggml's values of tensor `name`.
pub fn assert_lossless(g: &Gguf, bytes: &[u8], name: &str, got: &[f32]) {
    let t = g.tensor(name).unwrap();
    let want = ggml_dequantize(t.dtype, g.tensor_data(bytes, name).unwrap());
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        // Bit for bit, signed zeros included (Q4_0 → Q4S computes ggml's `d·(q − 8)`).
        assert_eq!(a.to_bits(), b.to_bits(), "{name}[{i}]: {a} vs {b}");
    }
}
