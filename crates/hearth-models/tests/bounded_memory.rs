//! Corrupt counts never turn into huge allocations: a counting allocator records the largest single
//! allocation while bad inputs are parsed. (Its own test binary, with one test, so nothing else
//! allocates concurrently.)
#![allow(clippy::unwrap_used)] // tests may unwrap (conventions)
#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; the impl only forwards to `System`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use hearth_models::gguf::Gguf;
use hearth_models::{load_gguf_bytes, load_path};

struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

fn after(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
}

#[test]
fn huge_counts_allocate_nothing_big() {
    let base = std::fs::read(tiny_gguf()).unwrap();
    let file = base.len();
    let tokens = after(&base, b"tokenizer.ggml.tokens");
    let merges = after(&base, b"tokenizer.ggml.merges");
    let embd = after(&base, b"token_embd.weight");
    let data = Gguf::parse(&base).unwrap().data_offset as usize;
    // Counts just past what the file could hold, and absurd ones.
    let huge = [1u64 << 60, u64::MAX, (file as u64) / 8 + 1, 1 << 33];
    let mut cases = vec![];
    for &n in &huge {
        for at in [8, 16, 24, tokens + 8, merges + 8] {
            cases.push((at, n.to_le_bytes().to_vec()));
        }
        // A string length inside the token array (its first element).
        cases.push((tokens + 16, n.to_le_bytes().to_vec()));
        cases.push((embd + 4, n.to_le_bytes().to_vec()));
        cases.push((embd + 12, n.to_le_bytes().to_vec()));
        cases.push((embd + 24, (n & !31).to_le_bytes().to_vec()));
    }
    let limit = 4 * file; // parsing may hold the metadata a few times over, never more
    for (at, patch) in cases {
        let mut b = base.clone();
        b[at..at + patch.len()].copy_from_slice(&patch);
        LARGEST.store(0, Ordering::Relaxed);
        let r = load_gguf_bytes(&b);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(r.is_err(), "patch at {at} loaded");
        assert!(
            largest < limit,
            "patch at {at}: an allocation of {largest} bytes"
        );
    }
    // Truncated in the data section: the header parses, the weights are never converted.
    LARGEST.store(0, Ordering::Relaxed);
    assert!(load_gguf_bytes(&base[..data + 100]).is_err());
    assert!(LARGEST.load(Ordering::Relaxed) < limit);

    // A safetensors header length of 2^60 and one just past the file size.
    let dir = copy_dir(&tiny_hf(), "bounded");
    let shard = dir.join("model-00001-of-00002.safetensors");
    let orig = std::fs::read(&shard).unwrap();
    for n in [1u64 << 60, orig.len() as u64] {
        let mut b = orig.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        std::fs::write(&shard, &b).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        assert!(load_path(&dir).is_err());
        assert!(LARGEST.load(Ordering::Relaxed) < 4 * orig.len().max(1 << 20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
