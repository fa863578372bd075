//! Verification stamps: a pack checked once is not hashed again while its files stay the same,
//! and any change to a file, even one that puts its old modification time back, is hashed and
//! refused as before. The observable is `LoadReport::bytes_hashed`, not a clock.
//!
//! One test function: it sets `HEARTH_VERIFY`, which no other test in this binary may see.
#![allow(clippy::unwrap_used)] // tests may unwrap (conventions)

mod common;

use std::fs;
use std::path::Path;

use common::*;
use hearth_models::pack::{write_pack, Manifest, MANIFEST, STAMP, WEIGHTS};
use hearth_models::{load_path, load_path_with, LoadReport, ModelError};

/// Loads `dir`, checking that the tokenizer files were handed out once, as loaded.
fn load(dir: &Path) -> Result<LoadReport, ModelError> {
    let mut early = Vec::new();
    let (files, report) = load_path_with(dir, &mut |_, _| {}, &mut |t| early.push(t.clone()))?;
    assert_eq!(early, [files.tokenizer]);
    Ok(report)
}

fn pack_bytes(dir: &Path) -> u64 {
    let m: Manifest = serde_json::from_slice(&fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    m.files.iter().map(|f| f.size).sum()
}

#[test]
fn stamps_skip_hashing_only_while_files_are_unchanged() {
    let files = load_path(&tiny_gguf()).unwrap();
    let root = temp_dir("stamp");
    let pack = root.join("pack");
    write_pack(&files, &pack).unwrap();
    let total = pack_bytes(&pack);

    // `write_pack` hashed what it wrote and stamped it: loading reads everything, hashes nothing.
    assert!(pack.join(STAMP).is_file());
    let r = load(&pack).unwrap();
    assert_eq!((r.bytes_read, r.bytes_hashed), (total, 0));

    // HEARTH_VERIFY=always hashes regardless.
    std::env::set_var("HEARTH_VERIFY", "always");
    assert_eq!(load(&pack).unwrap().bytes_hashed, total);
    std::env::remove_var("HEARTH_VERIFY");

    // A copy carries the stamp but not the files' identities: the first load hashes all and
    // stamps the copy, the second hashes nothing.
    let copy = copy_dir(&pack, "stamp-copy");
    assert_eq!(load(&copy).unwrap().bytes_hashed, total);
    assert_eq!(load(&copy).unwrap().bytes_hashed, 0);

    // Touching one file (same bytes, new time) costs only that file's hash.
    let config = copy.join("config.json");
    let f = fs::OpenOptions::new().write(true).open(&config).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let r = load(&copy).unwrap();
    assert_eq!(r.bytes_hashed, fs::metadata(&config).unwrap().len());
    assert_eq!(load(&copy).unwrap().bytes_hashed, 0);

    // Tampering is refused even with the old modification time put back (the status-change
    // time still moves), and stays refused.
    let weights = copy.join(WEIGHTS);
    let mtime = fs::metadata(&weights).unwrap().modified().unwrap();
    let mut bytes = fs::read(&weights).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&weights, &bytes).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&weights).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&weights).unwrap().modified().unwrap(), mtime);
    for _ in 0..2 {
        assert!(
            matches!(load(&copy), Err(ModelError::Checksum { file, .. }) if file == WEIGHTS),
            "a tampered file with its old mtime is refused"
        );
    }
    // Putting the byte back makes the pack good again (hashed once, then stamped).
    bytes[mid] ^= 0x01;
    fs::write(&weights, &bytes).unwrap();
    assert_eq!(load(&copy).unwrap().bytes_hashed, bytes.len() as u64);
    assert_eq!(load(&copy).unwrap().bytes_hashed, 0);

    // A stamp copied from another pack (same manifest) vouches for nothing here.
    fs::copy(pack.join(STAMP), copy.join(STAMP)).unwrap();
    assert_eq!(load(&copy).unwrap().bytes_hashed, total);
    assert_eq!(load(&copy).unwrap().bytes_hashed, 0);

    // A different manifest (here the same content, reformatted) voids the whole stamp.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(copy.join(MANIFEST)).unwrap()).unwrap();
    fs::write(copy.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
    assert_eq!(load(&copy).unwrap().bytes_hashed, total);

    // A damaged stamp is no stamp.
    fs::write(copy.join(STAMP), b"{not json").unwrap();
    assert_eq!(load(&copy).unwrap().bytes_hashed, total);
    assert_eq!(load(&copy).unwrap().bytes_hashed, 0);

    fs::remove_dir_all(&root).unwrap();
    fs::remove_dir_all(&copy).unwrap();
}
