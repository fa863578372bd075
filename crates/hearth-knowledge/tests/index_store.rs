//! Snapshots: round trips (bytes and behaviour), atomic native save/load, and damaged input
//! (truncation at every cut, flipped bytes, wrong version/magic, checksum-valid forgeries) that
//! must give typed errors, never a panic.
#![allow(clippy::unwrap_used)]

mod index_support;

use hearth_knowledge::store::{FORMAT_VERSION, HEADER_LEN, SNAPSHOT_FILE};
use hearth_knowledge::{DenseParams, IndexParams, KnowledgeError, KnowledgeIndex, Mode};
use index_support::{chunk, clustered, new_doc};

const DIM: usize = 16;

/// An index with every kind of state: an HNSW segment with tombstones, a fresh segment,
/// replaced and removed documents, multi-chunk documents, pages and headings.
fn populated(docs: usize) -> (KnowledgeIndex, Vec<Vec<f32>>) {
    let params = IndexParams {
        dense: DenseParams {
            fresh_min: 10_000,
            fresh_max: 10_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let vectors = clustered(21, docs * 3, DIM, 8, 0.3);
    let mut index = KnowledgeIndex::new(DIM, params).unwrap();
    let words = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa",
    ];
    let add = |index: &mut KnowledgeIndex, i: usize, hash: &str| {
        let chunks = (0..3).map(|c| {
            chunk(
                &format!("{} {} note {i} part {c}", words[i % 8], words[(i + c) % 8]),
                c,
            )
        });
        let emb = vectors[i * 3..i * 3 + 3].concat();
        index
            .upsert(
                new_doc(&format!("/docs/{i}.md"), hash),
                chunks.collect(),
                &emb,
            )
            .unwrap();
    };
    for i in 0..docs / 2 {
        add(&mut index, i, "v1");
    }
    index.rebuild().unwrap();
    for i in docs / 2..docs {
        add(&mut index, i, "v1");
    }
    add(&mut index, 1, "v2");
    index
        .remove_document(&hearth_knowledge::DocId("id:/docs/2.md".into()))
        .unwrap();
    let (base, fresh, dead) = index.dense().segment_sizes();
    assert!(base > 0 && fresh > 0 && dead > 0, "{base} {fresh} {dead}");
    (index, vectors)
}

fn same_behaviour(a: &KnowledgeIndex, b: &KnowledgeIndex, queries: &[Vec<f32>]) {
    assert_eq!(
        a.documents().collect::<Vec<_>>(),
        b.documents().collect::<Vec<_>>()
    );
    assert_eq!(a.dense().segment_sizes(), b.dense().segment_sizes());
    assert_eq!(a.params(), b.params());
    for q in queries {
        for mode in [Mode::Dense, Mode::Keyword, Mode::Hybrid] {
            let x = a.search(q, "alpha gamma note", 10, mode).unwrap();
            let y = b.search(q, "alpha gamma note", 10, mode).unwrap();
            assert_eq!(x, y, "{mode:?}");
        }
    }
    for doc in a.documents() {
        for id in &doc.chunks {
            assert_eq!(a.chunk(*id), b.chunk(*id));
        }
    }
}

#[test]
fn round_trip_is_exact() {
    let (index, vectors) = populated(40);
    let bytes = index.to_bytes().unwrap();
    let back = KnowledgeIndex::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes().unwrap(), bytes, "re-encoding differs");
    same_behaviour(&index, &back, &vectors[..8]);

    // The loaded index keeps working: new documents, rebuilds, the same results as the original.
    let (mut a, mut b) = (index, back);
    for index in [&mut a, &mut b] {
        index
            .upsert(
                new_doc("/late.md", "x"),
                vec![chunk("late alpha", 0)],
                &vectors[5],
            )
            .unwrap();
        index.rebuild().unwrap();
    }
    assert_eq!(a.dense().segment_sizes(), b.dense().segment_sizes());
    let ids =
        |i: &KnowledgeIndex| i.search(&vectors[5], "late", 5, Mode::Hybrid).unwrap()[0].chunk_id;
    assert_eq!(ids(&a), ids(&b));

    let empty = KnowledgeIndex::new(DIM, IndexParams::default()).unwrap();
    let back = KnowledgeIndex::from_bytes(&empty.to_bytes().unwrap()).unwrap();
    assert_eq!(back.documents().count(), 0);
    assert!(back
        .search(&vectors[0], "alpha", 3, Mode::Hybrid)
        .unwrap()
        .is_empty());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn save_is_atomic_and_load_reads_it_back() {
    let dir = std::env::temp_dir().join(format!("hearth-index-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (index, vectors) = populated(12);
    index.save(&dir).unwrap();
    let first = std::fs::read(dir.join(SNAPSHOT_FILE)).unwrap();
    // A crash mid-write leaves a partial temporary file next to the snapshot: loading ignores it.
    std::fs::write(
        dir.join(format!("{SNAPSHOT_FILE}.tmp")),
        &first[..first.len() / 2],
    )
    .unwrap();
    same_behaviour(&index, &KnowledgeIndex::load(&dir).unwrap(), &vectors[..4]);
    // Saving again replaces both.
    let (bigger, _) = populated(20);
    bigger.save(&dir).unwrap();
    assert!(!dir.join(format!("{SNAPSHOT_FILE}.tmp")).exists());
    assert_eq!(
        KnowledgeIndex::load(&dir).unwrap().documents().count(),
        bigger.documents().count()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(
        KnowledgeIndex::load(&dir),
        Err(KnowledgeError::Io { .. })
    ));
}

fn is_snapshot_error(e: &KnowledgeError) -> bool {
    matches!(
        e,
        KnowledgeError::SnapshotMagic
            | KnowledgeError::SnapshotVersion { .. }
            | KnowledgeError::SnapshotTruncated(_)
            | KnowledgeError::SnapshotChecksum { .. }
            | KnowledgeError::SnapshotCorrupt(_)
    )
}

#[test]
fn truncation_at_every_cut_is_an_error() {
    let (index, _) = populated(6);
    let bytes = index.to_bytes().unwrap();
    for cut in 0..bytes.len() {
        match KnowledgeIndex::from_bytes(&bytes[..cut]) {
            Ok(_) => panic!("cut at {cut} of {} loaded", bytes.len()),
            Err(e) => assert!(is_snapshot_error(&e), "cut {cut}: {e}"),
        }
    }
    assert!(matches!(
        KnowledgeIndex::from_bytes(&bytes[..HEADER_LEN + 10]),
        Err(KnowledgeError::SnapshotTruncated(_))
    ));
}

#[test]
fn flipped_bytes_version_and_magic_are_errors() {
    let (index, _) = populated(6);
    let bytes = index.to_bytes().unwrap();
    // A single flipped bit anywhere (CRC-32 catches every single-bit error).
    for pos in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[pos] ^= 1 << (pos % 8);
        let e = KnowledgeIndex::from_bytes(&bad)
            .err()
            .unwrap_or_else(|| panic!("flip at {pos} loaded"));
        assert!(is_snapshot_error(&e), "{pos}: {e}");
    }
    let mut v2 = bytes.clone();
    v2[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(
        matches!(KnowledgeIndex::from_bytes(&v2), Err(KnowledgeError::SnapshotVersion { found, .. }) if found == FORMAT_VERSION + 1)
    );
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(
        KnowledgeIndex::from_bytes(&magic),
        Err(KnowledgeError::SnapshotMagic)
    ));
    let mut longer = bytes;
    longer.push(0);
    assert!(KnowledgeIndex::from_bytes(&longer).is_err());
}

/// Rewrites both checksums so that damage reaches the structural checks.
fn reseal(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    let header = crc32fast::hash(&bytes[..28]);
    bytes[28..32].copy_from_slice(&header.to_le_bytes());
}

#[test]
fn checksum_valid_forgeries_never_panic() {
    // Damage that a checksum cannot catch (a hostile or buggy writer): every byte position of
    // the payload is overwritten with several values and the file resealed. Loading must fail
    // cleanly or give an index whose queries do not panic either.
    let (index, vectors) = populated(4);
    let bytes = index.to_bytes().unwrap();
    let (mut loaded, mut refused) = (0, 0);
    for pos in HEADER_LEN..bytes.len() {
        for value in [0x00, 0xFF, 0x7F, bytes[pos] ^ 0x10] {
            let mut bad = bytes.clone();
            if bad[pos] == value {
                continue;
            }
            bad[pos] = value;
            reseal(&mut bad);
            match KnowledgeIndex::from_bytes(&bad) {
                Ok(index) => {
                    loaded += 1;
                    for mode in [Mode::Dense, Mode::Keyword, Mode::Hybrid] {
                        let _ = index.search(&vectors[0], "alpha note", 5, mode);
                    }
                }
                Err(e) => {
                    assert!(is_snapshot_error(&e), "{pos}: {e}");
                    refused += 1;
                }
            }
        }
    }
    println!("forgeries: {loaded} loaded (harmless value changes), {refused} refused");
    assert!(refused > 0 && loaded > 0);
}

#[test]
fn forged_counts_do_not_allocate() {
    // The first count in DOCS (after its 12-byte section header) claims 2^60 documents.
    let (index, _) = populated(4);
    let mut bytes = index.to_bytes().unwrap();
    let meta_len =
        u64::from_le_bytes(bytes[HEADER_LEN + 4..HEADER_LEN + 12].try_into().unwrap()) as usize;
    let docs_body = HEADER_LEN + 12 + meta_len + 12;
    assert_eq!(&bytes[docs_body - 12..docs_body - 8], b"DOCS");
    bytes[docs_body..docs_body + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        KnowledgeIndex::from_bytes(&bytes),
        Err(KnowledgeError::SnapshotCorrupt(_))
    ));
}

#[test]
fn version_1_snapshots_are_refused_by_version() {
    // Version 1 kept the graph in instant-distance's serde encoding; its header is otherwise the
    // same, so only the version field tells them apart.
    let (index, _) = populated(4);
    let mut v1 = index.to_bytes().unwrap();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    reseal(&mut v1);
    assert!(matches!(
        KnowledgeIndex::from_bytes(&v1),
        Err(KnowledgeError::SnapshotVersion {
            found: 1,
            supported: FORMAT_VERSION
        })
    ));
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn streamed_file_load_equals_from_bytes_and_reports_damage() {
    // Large enough that the vector and link arrays cross the loader's 1 MiB read pieces.
    let (dim, docs) = (48, 2400);
    let vectors = clustered(5, docs * 3, dim, 16, 0.3);
    let mut index = KnowledgeIndex::new(dim, IndexParams::default()).unwrap();
    for i in 0..docs {
        let chunks = (0..3)
            .map(|c| chunk(&format!("doc {i} part {c} alpha"), c))
            .collect();
        let emb = vectors[i * 3..i * 3 + 3].concat();
        index
            .upsert(new_doc(&format!("/big/{i}.md"), "h"), chunks, &emb)
            .unwrap();
    }
    index.rebuild().unwrap();
    assert!(4 * dim * docs * 3 > 1 << 20);
    let dir = std::env::temp_dir().join(format!("hearth-index-stream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    index.save(&dir).unwrap();
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let loaded = KnowledgeIndex::load(&dir).unwrap();
    assert_eq!(loaded.to_bytes().unwrap(), bytes);
    let from_bytes = KnowledgeIndex::from_bytes(&bytes).unwrap();
    let ids = |i: &KnowledgeIndex, q: &[f32]| -> Vec<u64> {
        let hits = i.search(q, "alpha", 10, Mode::Dense).unwrap();
        hits.iter().map(|h| h.chunk_id).collect()
    };
    for q in &vectors[..20] {
        assert_eq!(ids(&loaded, q), ids(&from_bytes, q));
        assert_eq!(ids(&loaded, q), ids(&index, q));
    }

    let load_with = |damage: &dyn Fn(&mut Vec<u8>)| {
        let mut bad = bytes.clone();
        damage(&mut bad);
        std::fs::write(&path, &bad).unwrap();
        KnowledgeIndex::load(&dir)
            .err()
            .expect("damaged file loaded")
    };
    // A flipped bit early in the payload breaks the structure before the checksum is known;
    // it is still reported as the checksum mismatch it is. So is one in the vectors.
    for pos in [
        HEADER_LEN + 20,
        HEADER_LEN + 600,
        bytes.len() / 2,
        bytes.len() - 3,
    ] {
        let e = load_with(&|b: &mut Vec<u8>| b[pos] ^= 0x40);
        assert!(
            matches!(e, KnowledgeError::SnapshotChecksum { .. }),
            "{pos}: {e}"
        );
    }
    let e = load_with(&|b: &mut Vec<u8>| b.truncate(b.len() - 1000));
    assert!(matches!(e, KnowledgeError::SnapshotTruncated(_)), "{e}");
    let e = load_with(&|b: &mut Vec<u8>| b.truncate(HEADER_LEN - 1));
    assert!(matches!(e, KnowledgeError::SnapshotTruncated(_)), "{e}");
    let e = load_with(&|b: &mut Vec<u8>| b.push(0));
    assert!(matches!(e, KnowledgeError::SnapshotCorrupt(_)), "{e}");
    let e = load_with(&|b: &mut Vec<u8>| b[0] = b'X');
    assert!(matches!(e, KnowledgeError::SnapshotMagic), "{e}");
    // Checksum-valid structural damage (a forged count) is reported as corruption.
    let e = load_with(&|b: &mut Vec<u8>| {
        let meta_len =
            u64::from_le_bytes(b[HEADER_LEN + 4..HEADER_LEN + 12].try_into().unwrap()) as usize;
        let docs_body = HEADER_LEN + 12 + meta_len + 12;
        b[docs_body..docs_body + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        reseal(b);
    });
    assert!(matches!(e, KnowledgeError::SnapshotCorrupt(_)), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_loaded_index_deletes_and_replaces_like_the_original() {
    // Loading keeps only the posting lists; the first delete rebuilds the per-chunk term lists.
    let (mut a, vectors) = populated(24);
    let mut b = KnowledgeIndex::from_bytes(&a.to_bytes().unwrap()).unwrap();
    for index in [&mut a, &mut b] {
        index
            .remove_document(&hearth_knowledge::DocId("id:/docs/5.md".into()))
            .unwrap();
        index
            .upsert(
                new_doc("/docs/7.md", "v3"),
                vec![chunk("gamma replaced words", 0)],
                &vectors[0],
            )
            .unwrap();
    }
    same_behaviour(&a, &b, &vectors[..6]);
    for query in ["alpha", "gamma note", "replaced", "zeta part"] {
        let hits = |i: &KnowledgeIndex| i.search(&[], query, 20, Mode::Keyword).unwrap();
        assert_eq!(hits(&a), hits(&b), "{query}");
    }
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
}
