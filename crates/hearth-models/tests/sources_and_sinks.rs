//! The generic load path and pack writer as the browser uses them: a Hugging Face folder read
//! through a [`ModelSource`] of in-memory files, and the pack handed to a [`PackSink`] in pieces,
//! must give exactly what `hearth convert` (the native directory source and `write_pack`) writes.
#![allow(clippy::unwrap_used)] // tests may unwrap (conventions)

mod common;

use std::cell::Cell;
use std::collections::BTreeMap;

use common::*;
use hearth_models::error::Result;
use hearth_models::pack::{write_pack, write_pack_to, Manifest, PackSink, MANIFEST, STAMP};
use hearth_models::safetensors::load_hf_with;
use hearth_models::source::{ModelSource, ReadAt};
use hearth_models::{load_pack_files, load_path, ModelError};

/// A folder held in memory, like the `File`s the browser's importer reads.
struct MemSource {
    files: BTreeMap<String, Vec<u8>>,
    /// The largest single read, to check that tensors are streamed rather than read whole.
    largest_read: Cell<usize>,
}

struct MemFile<'a> {
    bytes: &'a [u8],
    largest: &'a Cell<usize>,
}

impl ReadAt for MemFile<'_> {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = offset as usize;
        let src = self
            .bytes
            .get(start..start + buf.len())
            .ok_or_else(|| ModelError::Safetensors("read past the end".into()))?;
        buf.copy_from_slice(src);
        self.largest.set(self.largest.get().max(buf.len()));
        Ok(())
    }
}

impl ModelSource for MemSource {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn exists(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
    fn open(&self, name: &str) -> Result<Box<dyn ReadAt + '_>> {
        let bytes = self
            .files
            .get(name)
            .ok_or_else(|| ModelError::MissingFile(name.into()))?;
        Ok(Box::new(MemFile {
            bytes,
            largest: &self.largest_read,
        }))
    }
}

fn mem_source(dir: &std::path::Path) -> MemSource {
    let files = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    MemSource {
        files,
        largest_read: Cell::new(0),
    }
}

/// Collects the files in the order they were written, and how many pieces each came in.
#[derive(Default)]
struct MemSink {
    order: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    pieces: BTreeMap<String, usize>,
    open: Option<String>,
    fail_on: Option<String>,
}

impl PackSink for MemSink {
    fn begin(&mut self, name: &str) -> Result<()> {
        assert!(self.open.is_none(), "{name} begun inside another file");
        if self.fail_on.as_deref() == Some(name) {
            return Err(ModelError::Pack(format!("disk full writing {name}")));
        }
        self.order.push(name.into());
        self.files.insert(name.into(), Vec::new());
        self.open = Some(name.into());
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let name = self.open.clone().unwrap();
        self.files.get_mut(&name).unwrap().extend_from_slice(bytes);
        *self.pieces.entry(name).or_default() += 1;
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        self.open.take().unwrap();
        Ok(())
    }
}

#[test]
fn a_pack_made_through_the_sink_is_byte_identical_to_hearth_convert() {
    // Native: the directory loader and `write_pack`, as `hearth convert` runs them.
    let out = temp_dir("sink-native").join("pack");
    write_pack(&load_path(&tiny_hf()).unwrap(), &out).unwrap();

    // Browser-style: in-memory source, pieces into a sink, with progress.
    let src = mem_source(&tiny_hf());
    let mut tensors_seen = Vec::new();
    let files = load_hf_with(&src, &mut |done, total| tensors_seen.push((done, total))).unwrap();
    assert_eq!(tensors_seen.last().map(|&(d, t)| d == t), Some(true));
    assert!(
        src.largest_read.get() < 1 << 22,
        "tensors are read in chunks"
    );
    let mut sink = MemSink::default();
    let mut bytes_seen = Vec::new();
    let manifest = write_pack_to(&files, &mut sink, &mut |done, total| {
        bytes_seen.push((done, total))
    })
    .unwrap();
    assert_eq!(sink.order.last().map(String::as_str), Some(MANIFEST));
    assert!(
        sink.pieces["model.safetensors"] > 10,
        "weights come in pieces"
    );
    let (done, total) = *bytes_seen.last().unwrap();
    assert_eq!(done, total);
    assert!(bytes_seen.windows(2).all(|w| w[0].0 < w[1].0));

    // Natively the pack also holds its verification stamp, which is not part of the pack.
    let mut on_disk: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != STAMP)
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, sink.files.keys().cloned().collect::<Vec<_>>());
    for (name, bytes) in &sink.files {
        assert!(
            std::fs::read(out.join(name)).unwrap() == *bytes,
            "{name} differs between write_pack and the sink"
        );
    }
    let m: Manifest = serde_json::from_slice(&sink.files[MANIFEST]).unwrap();
    assert_eq!(m, manifest);
    assert_eq!(
        m.files.iter().map(|f| f.size).sum::<u64>(),
        total,
        "progress counts every byte"
    );

    // The weights file is a valid safetensors file, and the pack loads to the same model.
    let st = safetensors::SafeTensors::deserialize(&sink.files["model.safetensors"]).unwrap();
    assert!(st.names().iter().any(|n| n.ends_with(".qs")));
    let back = load_pack_files(&|n| Ok(sink.files[n].clone())).unwrap();
    assert_eq!(back.weights, files.weights);
    assert_eq!(back.tokenizer, files.tokenizer);
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

#[test]
fn a_sink_failure_stops_before_the_manifest() {
    let files = load_path(&tiny_gguf()).unwrap();
    let mut sink = MemSink {
        fail_on: Some("config.json".into()),
        ..MemSink::default()
    };
    assert!(write_pack_to(&files, &mut sink, &mut |_, _| {}).is_err());
    assert!(!sink.files.contains_key(MANIFEST));
}

#[test]
fn broken_folders_fail_through_the_generic_source() {
    let mut src = mem_source(&tiny_hf());
    src.files.remove("model-00002-of-00002.safetensors");
    match load_hf_with(&src, &mut |_, _| {}) {
        Err(ModelError::MissingFile(f)) => assert_eq!(f, "model-00002-of-00002.safetensors"),
        other => panic!("expected a missing file, got {:?}", other.map(|_| ())),
    }

    let mut src = mem_source(&tiny_hf());
    let shard = src
        .files
        .get_mut("model-00001-of-00002.safetensors")
        .unwrap();
    shard[20] = b'!'; // inside the JSON header
    assert!(matches!(
        load_hf_with(&src, &mut |_, _| {}),
        Err(ModelError::Safetensors(m)) if m.contains("model-00001-of-00002.safetensors")
    ));

    let mut src = mem_source(&tiny_hf());
    src.files.remove("config.json");
    assert!(matches!(
        load_hf_with(&src, &mut |_, _| {}),
        Err(ModelError::MissingFile(f)) if f == "config.json"
    ));
}
