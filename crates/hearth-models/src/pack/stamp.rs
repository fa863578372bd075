//! Natively, a pack directory's verification stamp: `.hearth-verified.json` beside the pack's
//! files records, for the `manifest.json` it was made with, the identity of each file whose
//! sha256 was checked (written by `write_pack`, refreshed by a load that hashed). A load
//! re-hashes only the files whose identity differs, so a pack verified once loads without reading
//! its gigabyte twice; `HEARTH_VERIFY=always` hashes everything regardless.
//!
//! A file's identity is its size, modification and status-change times (nanoseconds), inode and
//! device. Writing a file changes its modification and change times; putting the old modification
//! time back (`touch -d`) changes the status-change time, which only the kernel sets; a copy is
//! another inode. The identity is taken from the open file before it is read, so a change during
//! or after the read makes the stamp stale. What a stamp cannot see is a same-size rewrite within
//! the filesystem's timestamp granularity (a few milliseconds) of the moment it was taken.
//! Whoever can rewrite the stamp can rewrite `manifest.json` too, so it adds no trust beyond the
//! manifest's own.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{load_checked, MANIFEST};
use crate::error::{ModelError, Result};
use crate::loader::{LoadReport, ModelFiles, TokenizerFiles};
use crate::source::{disk_file, ReadAt};

/// The stamp's file name (a leading dot: never a name a manifest may list).
pub const STAMP: &str = ".hearth-verified.json";
const STAMP_VERSION: u32 = 1;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Stamp {
    version: u32,
    /// sha256 of the `manifest.json` bytes the files were checked against.
    manifest_sha256: String,
    files: BTreeMap<String, FileId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileId {
    size: u64,
    /// Seconds and nanoseconds.
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl FileId {
    #[cfg(unix)]
    fn of(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    /// Elsewhere only size and modification time are portable.
    #[cfg(not(unix))]
    fn of(m: &fs::Metadata) -> Self {
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos() as i64));
        Self {
            size: m.len(),
            mtime,
            ctime: (0, 0),
            ino: 0,
            dev: 0,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `HEARTH_VERIFY=always`: ignore stamps and hash every file.
fn always_verify() -> bool {
    std::env::var("HEARTH_VERIFY").is_ok_and(|v| v == "always")
}

fn manifest_sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The pack in `dir`: files the stamp vouches for are read without hashing, the rest are hashed;
/// if anything was hashed and every file checked out, the stamp is rewritten. `tokenizer` gets
/// the tokenizer files while the weights are read.
pub(crate) fn load_pack_dir(
    dir: &Path,
    tokenizer: &mut (dyn FnMut(&TokenizerFiles) + Send),
) -> Result<(ModelFiles, LoadReport)> {
    let manifest_path = dir.join(MANIFEST);
    let manifest = fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let manifest_sha256 = manifest_sha(&manifest);
    let old = match always_verify() {
        true => None,
        false => read_stamp(dir).filter(|s| s.manifest_sha256 == manifest_sha256),
    };
    // Identities of the opened files, taken before each is read.
    let seen = RefCell::new(BTreeMap::new());
    let open = |name: &str| -> Result<Box<dyn ReadAt + '_>> {
        let path = dir.join(name);
        let file = File::open(&path).map_err(io(&path))?;
        let meta = file.metadata().map_err(io(&path))?;
        seen.borrow_mut()
            .insert(name.to_string(), FileId::of(&meta));
        disk_file(path, file)
    };
    let vouched = |name: &str| {
        let (seen, old) = (seen.borrow(), old.as_ref());
        matches!((seen.get(name), old.and_then(|s| s.files.get(name))), (Some(a), Some(b)) if a == b)
    };
    let mut report = LoadReport::default();
    let files = load_checked(&open, &manifest, &vouched, &mut report, tokenizer)?;
    let stamp = Stamp {
        version: STAMP_VERSION,
        manifest_sha256,
        files: seen.into_inner(),
    };
    if report.bytes_hashed > 0 || old.as_ref() != Some(&stamp) {
        // Best effort: a read-only pack just keeps being hashed at every load.
        let _ = write_stamp(dir, &stamp);
    }
    Ok((files, report))
}

/// The stamp in `dir`, if there is a readable one of this version.
fn read_stamp(dir: &Path) -> Option<Stamp> {
    let bytes = fs::read(dir.join(STAMP)).ok()?;
    serde_json::from_slice::<Stamp>(&bytes)
        .ok()
        .filter(|s| s.version == STAMP_VERSION)
}

/// Writes `stamp` into `dir` through a temporary file renamed into place, so a reader never
/// sees half of one.
fn write_stamp(dir: &Path, stamp: &Stamp) -> Result<()> {
    let json = serde_json::to_vec(stamp).map_err(|e| super::bad(e.to_string()))?;
    let tmp = dir.join(format!("{STAMP}.{}", std::process::id()));
    fs::write(&tmp, json).map_err(io(&tmp))?;
    let path = dir.join(STAMP);
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(&path)(e)
    })
}

/// Stamps a pack just written into `dir` whose files `write_pack` hashed as it wrote them: their
/// identities now, against the `manifest.json` there.
pub(crate) fn stamp_written(dir: &Path, manifest: &super::Manifest) -> Result<()> {
    let manifest_path = dir.join(MANIFEST);
    let bytes = fs::read(&manifest_path).map_err(io(&manifest_path))?;
    let mut files = BTreeMap::new();
    for f in &manifest.files {
        let path = dir.join(&f.name);
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.len() != f.size {
            return Err(super::bad(format!(
                "{} is not the size just written",
                f.name
            )));
        }
        files.insert(f.name.clone(), FileId::of(&meta));
    }
    let stamp = Stamp {
        version: STAMP_VERSION,
        manifest_sha256: manifest_sha(&bytes),
        files,
    };
    write_stamp(dir, &stamp)
}
