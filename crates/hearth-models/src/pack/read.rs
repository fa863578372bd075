//! Reading a pack's files, checking them against `manifest.json` on the way.
//!
//! The small files (config, tokenizer) come first, so the tokenizer can be built while the weights
//! are read. `model.safetensors` is read tensor by tensor straight into the `u32` buffers the
//! weights keep (no whole-file buffer, no second copy); natively by several threads when it is not
//! hashed. When a file must be checksummed, its pieces go through SHA-256 in file order: natively
//! on a helper thread, so hashing one tensor overlaps reading the next, and inline on wasm32 (no
//! threads there). No file is used before its own checksum has matched, and the load fails if any
//! does not.

use std::collections::BTreeMap;

use ::safetensors::tensor::Metadata;
use sha2::{Digest, Sha256};

use super::{bad, Manifest, MANIFEST, WEIGHTS};
use crate::error::{ModelError, Result};
use crate::loader::{LoadReport, Stopwatch};
use crate::safetensors::is_plain_file_name;
use crate::source::ReadAt;

/// Opens one of the pack's files by its plain name.
pub(crate) type Open<'a> = &'a dyn Fn(&str) -> Result<Box<dyn ReadAt + 'a>>;

/// Largest safetensors header accepted (as the `safetensors` crate).
const MAX_HEADER: u64 = 100_000_000;

/// Bytes of a file, as they were read: whole bytes, or a tensor's 32-bit words in file byte order.
enum Piece {
    Bytes(Vec<u8>),
    Words(Vec<u32>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Bytes(b) => b,
            Piece::Words(w) => bytemuck::cast_slice(w),
        }
    }
}

/// `model.safetensors` as read: its header and every tensor's words (native byte order).
pub(crate) struct Tensors {
    pub header: Metadata,
    pub words: BTreeMap<String, Vec<u32>>,
}

/// Reads the pack whose `manifest.json` holds `manifest_bytes`: first every file but the weights,
/// handed whole to `small` (so a caller can start on the tokenizer; natively on a second thread
/// while the weights are read), then the weights. Every file's size is checked; its sha256 too
/// unless `vouched(name)` (a verification stamp says this very file was checked before). Fails on
/// the first mismatch; nothing reaches `small` or the caller before it is checked.
pub(crate) fn read_pack(
    open: Open<'_>,
    manifest_bytes: &[u8],
    vouched: &dyn Fn(&str) -> bool,
    report: &mut LoadReport,
    small: &mut (dyn FnMut(BTreeMap<String, Vec<u8>>) -> Result<()> + Send),
) -> Result<Tensors> {
    let clock = Stopwatch::start();
    let manifest = parse_manifest(manifest_bytes)?;
    let weights = manifest
        .files
        .iter()
        .find(|f| f.name == WEIGHTS)
        .ok_or_else(|| bad(format!("{MANIFEST} does not list {WEIGHTS}")))?;
    let mut files = BTreeMap::new();
    for f in manifest.files.iter().filter(|f| f.name != WEIGHTS) {
        let (_, pieces) = read_file(open, f, vouched, report, |file, emit, _| {
            let mut bytes = vec![0u8; to_usize(f.size)?];
            file.read_at(0, &mut bytes)?;
            emit(Piece::Bytes(bytes));
            Ok(())
        })?;
        let bytes = pieces.into_iter().next().map(|p| match p {
            Piece::Bytes(b) => b,
            Piece::Words(w) => bytemuck::cast_slice(&w).to_vec(),
        });
        files.insert(f.name.clone(), bytes.unwrap_or_default());
    }
    let mut read_weights = || {
        let (header, pieces) = read_file(open, weights, vouched, report, |file, emit, hash| {
            read_tensors(file, emit, reader_threads(hash))
        })?;
        assemble(header, pieces)
    };
    #[cfg(not(target_arch = "wasm32"))]
    let tensors = std::thread::scope(|s| {
        let early = s.spawn(move || small(files));
        let tensors = read_weights();
        let early = early
            .join()
            .unwrap_or_else(|_| Err(bad("a thread panicked on the pack's small files")));
        early.and(tensors)
    })?;
    #[cfg(target_arch = "wasm32")]
    let tensors = small(files).and_then(|_| read_weights())?;
    report.read_s += clock.secs() - report.verify_s;
    Ok(tensors)
}

/// Opens `f`, checks its size, reads it through `read` (told whether the file is being hashed)
/// and checks its sha256 unless vouched.
fn read_file<R>(
    open: Open<'_>,
    f: &super::ManifestFile,
    vouched: &dyn Fn(&str) -> bool,
    report: &mut LoadReport,
    read: impl FnOnce(&mut dyn ReadAt, &mut dyn FnMut(Piece), bool) -> Result<R>,
) -> Result<(R, Vec<Piece>)> {
    let mut file = open(&f.name)?;
    if file.size() != f.size {
        return Err(mismatch(f, file.size(), "not computed"));
    }
    let hash = !vouched(&f.name);
    let (r, pieces, digest) = read_hashed(hash, report, |emit| read(&mut *file, emit, hash))?;
    report.bytes_read += f.size;
    if let Some(digest) = digest {
        report.bytes_hashed += f.size;
        let found = hex::encode(digest);
        if !found.eq_ignore_ascii_case(&f.sha256) {
            return Err(mismatch(f, f.size, &found));
        }
    }
    Ok((r, pieces))
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    if manifest.format != super::FORMAT || manifest.version != super::VERSION {
        return Err(ModelError::Unsupported(format!(
            "pack format {} version {} (this build reads {} {})",
            manifest.format,
            manifest.version,
            super::FORMAT,
            super::VERSION
        )));
    }
    if manifest.architecture != "llama" {
        return Err(ModelError::Unsupported(format!(
            "pack architecture `{}`",
            manifest.architecture
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &manifest.files {
        if !is_plain_file_name(&f.name) {
            return Err(bad(format!(
                "{MANIFEST} lists a bad file name {:?}",
                f.name
            )));
        }
        if f.name == MANIFEST || !seen.insert(&f.name) {
            return Err(bad(format!("{MANIFEST} lists `{}` twice", f.name)));
        }
    }
    Ok(manifest)
}

fn mismatch(f: &super::ManifestFile, size: u64, found: &str) -> ModelError {
    ModelError::Checksum {
        file: f.name.clone(),
        expected: format!("{} bytes, sha256 {}", f.size, f.sha256),
        found: format!("{size} bytes, sha256 {found}"),
    }
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| bad(format!("a file of {n} bytes is too large to read")))
}

/// Emits the safetensors header, then every tensor in file order as words; returns the parsed
/// header. It is parsed before its checksum is known: the parser is the `safetensors` crate's,
/// made for untrusted input, and every length it yields is bounded by the file's size. With
/// `threads > 1` (natively, when nothing is hashed) tensors are read by that many threads at once.
fn read_tensors(
    file: &mut dyn ReadAt,
    emit: &mut dyn FnMut(Piece),
    threads: usize,
) -> Result<Metadata> {
    let (header, meta) = read_header(file)?;
    let data0 = header.len() as u64;
    emit(Piece::Bytes(header));
    let mut spans: Vec<(u64, usize)> = Vec::new();
    let mut infos: Vec<_> = meta.tensors().into_values().collect();
    infos.sort_by_key(|t| t.data_offsets);
    for t in infos {
        let n = t.data_offsets.1 - t.data_offsets.0;
        if n % 4 != 0 {
            return Err(ModelError::Safetensors(format!(
                "pack {WEIGHTS}: a tensor of {n} bytes (pack tensors are 32-bit words)"
            )));
        }
        spans.push((data0 + t.data_offsets.0 as u64, n / 4));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if threads > 1 {
        if let Some(all) = read_parallel(&*file, &spans, threads) {
            all?.into_iter().for_each(|w| emit(Piece::Words(w)));
            return Ok(meta);
        }
    }
    let _ = threads; // unused on wasm32
    for &(at, n) in &spans {
        emit(Piece::Words(read_words(file, at, n)?));
    }
    Ok(meta)
}

/// `n` words at byte `at` of `file`, in file byte order.
fn read_words(file: &mut dyn ReadAt, at: u64, n: usize) -> Result<Vec<u32>> {
    let mut words = vec![0u32; n];
    file.read_at(at, bytemuck::cast_slice_mut(&mut words))?;
    Ok(words)
}

/// Threads that read a pack's tensors: natively, when the file is not hashed, a few (reading a
/// page-cached file is copying memory, which a few cores do faster than one); when it is, one
/// (hashing is sequential and slower than reading). One on wasm32.
fn reader_threads(hashed: bool) -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    if !hashed {
        return std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    }
    let _ = hashed;
    1
}

/// The `(byte offset, words)` spans of `file`, read by `threads` threads (each taking the next
/// span, so reads stay roughly in file order); `None` if the file cannot be shared.
#[cfg(not(target_arch = "wasm32"))]
fn read_parallel(
    file: &dyn ReadAt,
    spans: &[(u64, usize)],
    threads: usize,
) -> Option<Result<Vec<Vec<u32>>>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let handles = (0..threads.min(spans.len()))
        .map(|_| file.try_clone())
        .collect::<Option<Vec<_>>>()?;
    let next = AtomicUsize::new(0);
    let next = &next;
    let done: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|mut f| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(at, n)) = spans.get(i) else {
                            break out;
                        };
                        out.push((i, read_words(&mut *f, at, n)));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let mut slots: Vec<Option<Result<Vec<u32>>>> = spans.iter().map(|_| None).collect();
    for worker in done {
        let Ok(results) = worker else {
            return Some(Err(bad("a reading thread panicked")));
        };
        for (i, r) in results {
            slots[i] = Some(r);
        }
    }
    Some(
        slots
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(bad("a tensor was not read"))))
            .collect(),
    )
}

/// The length prefix and JSON header (as bytes, for the checksum) and what it says.
fn read_header(file: &mut dyn ReadAt) -> Result<(Vec<u8>, Metadata)> {
    let err = |m: String| ModelError::Safetensors(format!("pack {WEIGHTS}: {m}"));
    let len = file.size();
    if len < 8 {
        return Err(err("shorter than a safetensors header".into()));
    }
    let mut n = [0u8; 8];
    file.read_at(0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len - 8 {
        return Err(err(format!("header length {n} in a {len}-byte file")));
    }
    let mut header = vec![0u8; 8 + to_usize(n)?];
    file.read_at(0, &mut header)?;
    // Deserialising `Metadata` checks that the tensors tile the data without gaps or overlap.
    let meta: Metadata = serde_json::from_slice(&header[8..]).map_err(|e| err(e.to_string()))?;
    if 8 + n + meta.data_len() as u64 != len {
        return Err(err(format!(
            "{len} bytes, but the header describes {}",
            8 + n + meta.data_len() as u64
        )));
    }
    Ok((header, meta))
}

/// Pairs the pieces [`read_tensors`] emitted (the header's bytes, then the tensors in file order)
/// with their names again.
fn assemble(header: Metadata, pieces: Vec<Piece>) -> Result<Tensors> {
    let mut names: Vec<(String, (usize, usize))> = header
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.data_offsets))
        .collect();
    names.sort_by_key(|(_, o)| *o);
    if names.len() + 1 != pieces.len() {
        return Err(bad(format!(
            "{WEIGHTS}: read {} pieces for {} tensors",
            pieces.len(),
            names.len()
        )));
    }
    let mut words = BTreeMap::new();
    for ((name, _), piece) in names.into_iter().zip(pieces.into_iter().skip(1)) {
        let Piece::Words(mut w) = piece else {
            return Err(bad(format!("{WEIGHTS}: `{name}` was not read as words")));
        };
        if cfg!(target_endian = "big") {
            w.iter_mut().for_each(|x| *x = u32::from_le(*x));
        }
        words.insert(name, w);
    }
    Ok(Tensors { header, words })
}

/// Runs `read`, which emits a file's pieces in order, and returns what it returned and the pieces
/// in order, with the sha256 of their bytes when `hash`. Natively the hashing runs on a second
/// thread, overlapping the reading; on wasm32 (no threads) it runs inline.
fn read_hashed<R>(
    hash: bool,
    report: &mut LoadReport,
    read: impl FnOnce(&mut dyn FnMut(Piece)) -> Result<R>,
) -> Result<(R, Vec<Piece>, Option<[u8; 32]>)> {
    if !hash {
        let mut pieces = Vec::new();
        let r = read(&mut |p| pieces.push(p))?;
        return Ok((r, pieces, None));
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<Piece>();
            let worker = s.spawn(move || {
                let mut sha = Sha256::new();
                let pieces: Vec<Piece> = rx.iter().inspect(|p| sha.update(p.bytes())).collect();
                (pieces, sha.finalize())
            });
            // A send fails only if the worker died; joining it below reports that.
            let result = read(&mut |p| {
                let _ = tx.send(p);
            });
            drop(tx);
            let waiting = Stopwatch::start();
            let joined = worker.join();
            report.verify_s += waiting.secs();
            let r = result?;
            let (pieces, digest) = joined.map_err(|_| bad("the checksum thread panicked"))?;
            Ok((r, pieces, Some(digest.into())))
        })
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut pieces = Vec::new();
        let r = read(&mut |p| pieces.push(p))?;
        let hashing = Stopwatch::start();
        let mut sha = Sha256::new();
        pieces.iter().for_each(|p| sha.update(p.bytes()));
        report.verify_s += hashing.secs();
        Ok((r, pieces, Some(sha.finalize().into())))
    }
}
