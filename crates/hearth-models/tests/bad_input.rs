//! Corrupt, truncated and inconsistent model files give typed errors, never panics.
#![allow(clippy::unwrap_used)] // tests may unwrap (conventions)

mod common;

use std::path::Path;

use common::*;
use hearth_models::gguf::Gguf;
use hearth_models::pack::write_pack;
use hearth_models::{load_gguf_bytes, load_path, ModelError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(tiny_gguf()).unwrap()
}

/// Offset just past the first occurrence of `needle`.
fn after(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn truncated_gguf_at_many_cut_points() {
    let bytes = tiny_bytes();
    let data = Gguf::parse(&bytes).unwrap().data_offset as usize;
    let mut cuts: Vec<usize> = (0..64).map(|k| data * k / 64).collect();
    cuts.extend((1..8).map(|k| data + (bytes.len() - data) * k / 8));
    cuts.extend([data - 1, data, bytes.len() - 1]);
    for cut in cuts {
        match load_gguf_bytes(&bytes[..cut]) {
            Err(ModelError::Gguf(_)) => {}
            other => panic!(
                "cut at {cut}: expected a GGUF error, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn corrupt_gguf_counts_and_offsets() {
    let base = tiny_bytes();
    let g = Gguf::parse(&base).unwrap();
    let tokens = after(&base, b"tokenizer.ggml.tokens");
    let first_tensor = after(&base, b"token_embd.weight"); // n_dims, dims, type, offset follow
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("tensor count 2^60", 8, (1u64 << 60).to_le_bytes().to_vec()),
        (
            "metadata count 2^60",
            16,
            (1u64 << 60).to_le_bytes().to_vec(),
        ),
        (
            "first key length 2^60",
            24,
            (1u64 << 60).to_le_bytes().to_vec(),
        ),
        (
            "token array count 2^60",
            tokens + 8,
            (1u64 << 60).to_le_bytes().to_vec(),
        ),
        (
            "token array count 2^32",
            tokens + 8,
            (1u64 << 32).to_le_bytes().to_vec(),
        ),
        (
            "token array element type",
            tokens + 4,
            77u32.to_le_bytes().to_vec(),
        ),
        ("n_dims 7", first_tensor, 7u32.to_le_bytes().to_vec()),
        (
            "dim 2^62",
            first_tensor + 4,
            (1u64 << 62).to_le_bytes().to_vec(),
        ),
        (
            "offset past the end",
            first_tensor + 24,
            (1u64 << 40).to_le_bytes().to_vec(),
        ),
        (
            "misaligned offset",
            first_tensor + 24,
            3u64.to_le_bytes().to_vec(),
        ),
        (
            "unknown ggml type",
            first_tensor + 20,
            1000u32.to_le_bytes().to_vec(),
        ),
    ];
    for (what, at, patch) in cases {
        let mut b = base.clone();
        b[at..at + patch.len()].copy_from_slice(&patch);
        match load_gguf_bytes(&b) {
            Err(ModelError::Gguf(_) | ModelError::Unsupported(_)) => {}
            other => panic!("{what}: expected an error, got {:?}", other.map(|_| ())),
        }
    }
    // A dim that still fits the file but contradicts the metadata is a shape error.
    let mut b = base.clone();
    put_u64(&mut b, first_tensor + 4 + 8, 100);
    assert!(matches!(
        load_gguf_bytes(&b),
        Err(ModelError::TensorShape { .. })
    ));
    assert_eq!(g.tensors.len(), 2 * 9 + 2);
}

#[test]
fn random_byte_flips_never_panic() {
    let base = tiny_bytes();
    let header = Gguf::parse(&base).unwrap().data_offset as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..300 {
        let mut b = base.clone();
        // Mostly the start of the file (counts, lengths, small metadata), some anywhere in the header.
        let at = if rng.gen_bool(0.5) {
            rng.gen_range(0..512)
        } else {
            rng.gen_range(0..header)
        };
        b[at] ^= 1 << rng.gen_range(0..8);
        match load_gguf_bytes(&b) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    eprintln!("{ok} flips still loaded, {err} were errors");
    assert!(err > 0);
}

#[test]
fn hf_config_with_impossible_shapes() {
    type Check = fn(&ModelError) -> bool;
    let cases: Vec<(&str, Value, Check)> = vec![
        ("hidden_size", json!(63), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("num_key_value_heads", json!(3), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("vocab_size", json!(0), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("num_hidden_layers", json!(-1), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("hidden_size", json!(1u64 << 40), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("head_dim", json!(15), |e| {
            matches!(e, ModelError::Config(_))
        }),
        ("eos_token_id", json!("x"), |e| {
            matches!(e, ModelError::Config(_))
        }),
        (
            "rope_scaling",
            json!({"rope_type": "yarn", "factor": 4.0}),
            |e| matches!(e, ModelError::Unsupported(_)),
        ),
        (
            "rope_scaling",
            json!({"rope_type": "llama3", "factor": 0.5, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
            |e| matches!(e, ModelError::Config(_)),
        ),
        ("model_type", json!("qwen2"), |e| {
            matches!(e, ModelError::Unsupported(_))
        }),
        // Consistent config, but the checkpoint's tensors are [128, 64]: a shape error.
        ("intermediate_size", json!(160), |e| {
            matches!(e, ModelError::TensorShape { .. })
        }),
    ];
    for (key, value, check) in cases {
        let dir = copy_dir(&tiny_hf(), "hfcfg");
        let path = dir.join("config.json");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cfg[key] = value.clone();
        std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
        match load_path(&dir) {
            Err(e) => assert!(check(&e), "{key} = {value}: unexpected error {e}"),
            Ok(_) => panic!("{key} = {value} loaded"),
        }
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(load_path(&dir), Err(ModelError::Config(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn edit_index(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("model.safetensors.index.json");
    let mut idx: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(idx["weight_map"].as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_vec(&idx).unwrap()).unwrap();
}

#[test]
fn hf_missing_wrong_and_truncated_tensors() {
    let name = "model.layers.1.mlp.up_proj.weight";
    let dir = copy_dir(&tiny_hf(), "hfmissing");
    edit_index(&dir, |m| {
        m.remove(name);
    });
    assert!(matches!(load_path(&dir), Err(ModelError::MissingTensor(n)) if n == name));

    // The index points at a shard that does not hold the tensor.
    edit_index(&dir, |m| {
        m.insert(name.into(), json!("model-00001-of-00002.safetensors"));
    });
    assert!(matches!(load_path(&dir), Err(ModelError::MissingTensor(n)) if n == name));

    edit_index(&dir, |m| {
        m.insert(name.into(), json!("../model-00002-of-00002.safetensors"));
    });
    assert!(matches!(load_path(&dir), Err(ModelError::Safetensors(_))));
    std::fs::remove_dir_all(&dir).unwrap();

    // A shard rewritten with one tensor of the wrong shape.
    let dir = copy_dir(&tiny_hf(), "hfshape");
    let shard = dir.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let wrong = vec![0u8; 2 * 64 * 64];
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect();
    views.push((
        name.into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![64, 64], &wrong)
            .unwrap(),
    ));
    std::fs::write(&shard, safetensors::serialize(views, None).unwrap()).unwrap();
    match load_path(&dir) {
        Err(ModelError::TensorShape {
            name: n,
            expected,
            found,
        }) => {
            assert_eq!(
                (n.as_str(), expected, found),
                (name, vec![128, 64], vec![64, 64])
            );
        }
        other => panic!("expected a shape error, got {:?}", other.map(|_| ())),
    }

    // Truncated shards, at several points (header length, header, data).
    let orig = std::fs::read(tiny_hf().join("model-00002-of-00002.safetensors")).unwrap();
    for cut in [0, 4, 8, 100, orig.len() / 2, orig.len() - 1] {
        std::fs::write(&shard, &orig[..cut]).unwrap();
        assert!(
            matches!(load_path(&dir), Err(ModelError::Safetensors(_))),
            "cut {cut}"
        );
    }
    // A header length of 2^60.
    let mut huge = orig.clone();
    put_u64(&mut huge, 0, 1 << 60);
    std::fs::write(&shard, &huge).unwrap();
    assert!(matches!(load_path(&dir), Err(ModelError::Safetensors(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_packs_are_rejected() {
    let files = load_path(&tiny_hf()).unwrap();
    let root = temp_dir("badpack");
    let pack = root.join("pack");
    write_pack(&files, &pack).unwrap();
    let fresh = |what: &str| {
        let d = root.join(what);
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&pack).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };

    let d = fresh("flip");
    let mut w = std::fs::read(d.join("model.safetensors")).unwrap();
    let mid = w.len() / 2;
    w[mid] ^= 0x10;
    std::fs::write(d.join("model.safetensors"), w).unwrap();
    assert!(
        matches!(load_path(&d), Err(ModelError::Checksum { file, .. }) if file == "model.safetensors")
    );

    let d = fresh("truncate");
    let c = std::fs::read(d.join("config.json")).unwrap();
    std::fs::write(d.join("config.json"), &c[..c.len() - 3]).unwrap();
    assert!(
        matches!(load_path(&d), Err(ModelError::Checksum { file, .. }) if file == "config.json")
    );

    let d = fresh("missing");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(matches!(load_path(&d), Err(ModelError::Io { .. })));

    let d = fresh("manifest");
    std::fs::write(d.join("manifest.json"), b"[1, 2").unwrap();
    assert!(matches!(load_path(&d), Err(ModelError::Pack(_))));

    let d = fresh("traversal");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
    m["files"][0]["name"] = json!("../pack/model.safetensors");
    std::fs::write(d.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    assert!(matches!(load_path(&d), Err(ModelError::Pack(_))));

    let d = fresh("version");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap();
    m["version"] = json!(99);
    std::fs::write(d.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    assert!(matches!(load_path(&d), Err(ModelError::Unsupported(_))));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn not_a_model() {
    let d = temp_dir("empty");
    assert!(matches!(load_path(&d), Err(ModelError::Unsupported(_))));
    std::fs::write(d.join("x.bin"), b"PK\x03\x04 not gguf").unwrap();
    assert!(matches!(
        load_path(&d.join("x.bin")),
        Err(ModelError::Unsupported(_))
    ));
    assert!(matches!(
        load_path(&d.join("nope.gguf")),
        Err(ModelError::Io { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}
