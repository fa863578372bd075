//! The knowledge index exported to JavaScript: documents with their chunks and embeddings in,
//! hits out (shaped like the CLI's `hearth search --json`), snapshots as bytes for OPFS.
//!
//! Pure CPU, no GPU: the methods are synchronous. [`LibraryCore`] holds the logic on plain Rust
//! types (tested natively); [`Library`] only converts to and from JS values. The snapshot bytes
//! are the same as natively (`hearth_knowledge::store`), so an index moves freely between the
//! CLI and the extension.

use hearth_knowledge::{
    DocId, DocKind, HitView, IndexParams, KnowledgeError, KnowledgeIndex, Mode, NewChunk,
    NewDocument, Upsert,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::{js_err, to_js};

/// A document as JavaScript passes it to `upsert`.
#[derive(Clone, Debug, Deserialize)]
pub struct DocInput {
    /// Path or URL; unique in the index (a new version of the same source replaces the old).
    pub source: String,
    pub title: String,
    /// Defaults to the id the extraction pipeline derives from `source`.
    #[serde(default)]
    pub id: Option<String>,
    /// `html`, `markdown`, `text`, `pdf` or `docx` (default `text`).
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub size: u64,
    /// Hex SHA-256 of the source bytes: the same source with the same hash is left alone.
    pub content_hash: String,
    #[serde(default)]
    pub added_unix_ms: u64,
}

/// A chunk as JavaScript passes it to `upsert`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChunkInput {
    #[serde(default)]
    pub heading_path: Vec<String>,
    #[serde(default)]
    pub page: Option<u32>,
    /// Byte range `[start, end)` of the chunk in the document text.
    pub span: [usize; 2],
    pub text: String,
}

/// What `documents()` lists per document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocListing {
    pub id: String,
    pub source: String,
    pub title: String,
    pub kind: &'static str,
    pub size: u64,
    pub content_hash: String,
    pub added_unix_ms: u64,
    pub chunks: usize,
}

/// What `upsert` did: `status` is `added`, `unchanged` or `replaced` (then `old` is set).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpsertReport {
    pub status: &'static str,
    pub id: String,
    pub old: Option<String>,
}

const KINDS: [(&str, DocKind); 5] = [
    ("html", DocKind::Html),
    ("markdown", DocKind::Markdown),
    ("text", DocKind::Text),
    ("pdf", DocKind::Pdf),
    ("docx", DocKind::Docx),
];

pub(crate) fn kind_name(kind: DocKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("text", |(name, _)| name)
}

fn invalid(msg: String) -> KnowledgeError {
    KnowledgeError::InvalidInput(msg)
}

/// `dense`, `keyword` or `hybrid`.
pub fn parse_mode(mode: &str) -> Result<Mode, KnowledgeError> {
    match mode {
        "dense" => Ok(Mode::Dense),
        "keyword" => Ok(Mode::Keyword),
        "hybrid" => Ok(Mode::Hybrid),
        other => Err(invalid(format!(
            "search mode {other:?} is not dense, keyword or hybrid"
        ))),
    }
}

/// The index behind [`Library`], on Rust types.
pub struct LibraryCore {
    pub index: KnowledgeIndex,
}

impl LibraryCore {
    pub fn new(dim: usize) -> Result<Self, KnowledgeError> {
        Ok(Self {
            index: KnowledgeIndex::new(dim, IndexParams::default())?,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KnowledgeError> {
        Ok(Self {
            index: KnowledgeIndex::from_bytes(bytes)?,
        })
    }

    /// Adds (or replaces, or keeps if unchanged) a document; `embeddings` is
    /// `chunks.len() × dim` floats, row-major.
    pub fn upsert(
        &mut self,
        doc: DocInput,
        chunks: Vec<ChunkInput>,
        embeddings: &[f32],
    ) -> Result<UpsertReport, KnowledgeError> {
        let kind = match doc.kind.as_deref() {
            None => DocKind::Text,
            Some(name) => KINDS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, k)| *k)
                .ok_or_else(|| invalid(format!("unknown document kind {name:?}")))?,
        };
        for c in &chunks {
            if c.span[0] > c.span[1] {
                return Err(invalid(format!("chunk span {:?} is reversed", c.span)));
            }
        }
        let new = NewDocument {
            id: doc.id.map_or_else(|| DocId::for_source(&doc.source), DocId),
            title: doc.title,
            source_path: doc.source,
            kind,
            size: doc.size,
            content_hash: doc.content_hash,
            added_unix_ms: doc.added_unix_ms,
        };
        let chunks: Vec<NewChunk> = chunks
            .into_iter()
            .map(|c| NewChunk {
                heading_path: c.heading_path,
                page: c.page,
                span: (c.span[0], c.span[1]),
                text: c.text,
            })
            .collect();
        Ok(match self.index.upsert(new, chunks, embeddings)? {
            Upsert::Added(id) => UpsertReport {
                status: "added",
                id: id.0,
                old: None,
            },
            Upsert::Unchanged(id) => UpsertReport {
                status: "unchanged",
                id: id.0,
                old: None,
            },
            Upsert::Replaced { old, new } => UpsertReport {
                status: "replaced",
                id: new.0,
                old: Some(old.0),
            },
        })
    }

    /// Removes a document by id; returns its listing.
    pub fn remove(&mut self, id: &str) -> Result<DocListing, KnowledgeError> {
        let meta = self.index.remove_document(&DocId(id.to_string()))?;
        Ok(listing(&meta))
    }

    /// Every document, ordered by id.
    pub fn documents(&self) -> Vec<DocListing> {
        self.index.documents().map(listing).collect()
    }

    /// The `k` best chunks. `query` (an embedding) is ignored in keyword mode and may be empty
    /// there; `text` is ignored in dense mode.
    pub fn search(
        &self,
        query: &[f32],
        text: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<HitView>, KnowledgeError> {
        let hits = self.index.search(query, text, k, mode)?;
        Ok(hits.iter().filter_map(|h| self.index.view(h)).collect())
    }
}

pub(crate) fn listing(d: &hearth_knowledge::DocumentMeta) -> DocListing {
    DocListing {
        id: d.id.0.clone(),
        source: d.source_path.clone(),
        title: d.title.clone(),
        kind: kind_name(d.kind),
        size: d.size,
        content_hash: d.content_hash.clone(),
        added_unix_ms: d.added_unix_ms,
        chunks: d.chunks.len(),
    }
}

/// The knowledge index for JavaScript: `new Library(dim)` or `Library.fromBytes(bytes)`.
#[wasm_bindgen]
pub struct Library(LibraryCore);

#[wasm_bindgen]
impl Library {
    /// An empty index for `dim`-dimensional embeddings.
    #[wasm_bindgen(constructor)]
    pub fn new(dim: usize) -> Result<Library, JsError> {
        LibraryCore::new(dim).map(Library).map_err(js_err)
    }

    /// Loads a snapshot (as written by `toBytes` here or by the native CLI).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Library, JsError> {
        LibraryCore::from_bytes(bytes).map(Library).map_err(js_err)
    }

    /// The snapshot bytes (versioned, checksummed; identical to a native save).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Result<Vec<u8>, JsError> {
        self.0.index.to_bytes().map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.0.index.dim()
    }

    #[wasm_bindgen(getter, js_name = chunkCount)]
    pub fn chunk_count(&self) -> usize {
        self.0.index.chunk_count()
    }

    /// `upsert({source, title, content_hash, id?, kind?, size?, added_unix_ms?},
    /// [{span: [s, e], text, heading_path?, page?}], Float32Array)` →
    /// `{status: 'added' | 'unchanged' | 'replaced', id, old}`.
    pub fn upsert(
        &mut self,
        doc: JsValue,
        chunks: JsValue,
        embeddings: &[f32],
    ) -> Result<JsValue, JsError> {
        let doc: DocInput = serde_wasm_bindgen::from_value(doc).map_err(js_err)?;
        let chunks: Vec<ChunkInput> = serde_wasm_bindgen::from_value(chunks).map_err(js_err)?;
        let report = self.0.upsert(doc, chunks, embeddings).map_err(js_err)?;
        to_js(&report)
    }

    /// Removes the document with this id; resolves to its listing.
    pub fn remove(&mut self, id: &str) -> Result<JsValue, JsError> {
        let removed = self.0.remove(id).map_err(js_err)?;
        to_js(&removed)
    }

    /// `[{id, source, title, kind, size, content_hash, added_unix_ms, chunks}]`.
    pub fn documents(&self) -> Result<JsValue, JsError> {
        to_js(&self.0.documents())
    }

    /// `search(Float32Array, text, k, 'dense' | 'keyword' | 'hybrid')` →
    /// `[{source, title, heading, page, span: [s, e], score, text}]`, best first.
    pub fn search(
        &self,
        query: &[f32],
        text: &str,
        k: usize,
        mode: &str,
    ) -> Result<JsValue, JsError> {
        let mode = parse_mode(mode).map_err(js_err)?;
        let hits = self.0.search(query, text, k, mode).map_err(js_err)?;
        to_js(&hits)
    }

    /// Whether enough was added or removed since the last rebuild that one is due.
    #[wasm_bindgen(getter, js_name = needsRebuild)]
    pub fn needs_rebuild(&self) -> bool {
        self.0.index.needs_rebuild()
    }

    /// Folds recent additions and deletions into the HNSW graph (CPU work proportional to the
    /// index; schedule it when idle).
    pub fn rebuild(&mut self) -> Result<(), JsError> {
        self.0.index.rebuild().map_err(js_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(source: &str, hash: &str) -> DocInput {
        DocInput {
            source: source.into(),
            title: format!("Title {source}"),
            id: None,
            kind: Some("markdown".into()),
            size: 10,
            content_hash: hash.into(),
            added_unix_ms: 5,
        }
    }

    fn chunk(text: &str, at: usize) -> ChunkInput {
        ChunkInput {
            heading_path: vec!["Intro".into(), "Part".into()],
            page: Some(3),
            span: [at, at + text.len()],
            text: text.into(),
        }
    }

    #[test]
    fn upsert_search_remove_and_snapshot_round_trip() {
        let mut lib = LibraryCore::new(3).unwrap();
        let a = lib
            .upsert(
                doc("/a.md", "1"),
                vec![chunk("apple pie", 0), chunk("pear tart", 20)],
                &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            )
            .unwrap();
        assert_eq!((a.status, a.old.as_deref()), ("added", None));
        assert_eq!(a.id, DocId::for_source("/a.md").0);
        let again = lib
            .upsert(doc("/a.md", "1"), vec![chunk("x", 0)], &[1.0, 1.0, 1.0])
            .unwrap();
        assert_eq!(again.status, "unchanged");
        lib.upsert(
            doc("/b.md", "2"),
            vec![chunk("plum jam", 0)],
            &[0.0, 0.0, 2.0],
        )
        .unwrap();

        let hits = lib.search(&[0.1, 1.0, 0.0], "", 2, Mode::Dense).unwrap();
        assert_eq!(hits.len(), 2);
        let best = &hits[0];
        assert_eq!(
            (best.source.as_str(), best.text.as_str()),
            ("/a.md", "pear tart")
        );
        assert_eq!(best.title, "Title /a.md");
        assert_eq!(best.heading, "Intro › Part");
        assert_eq!((best.page, best.span), (Some(3), [20, 29]));
        let cosine = 1.0 / (1.0f32 + 0.01).sqrt();
        assert!((best.score - cosine).abs() < 1e-6, "{}", best.score);
        let words = lib.search(&[], "plum", 5, Mode::Keyword).unwrap();
        assert_eq!(words.len(), 1);
        assert_eq!(words[0].source, "/b.md");

        let bytes = lib.index.to_bytes().unwrap();
        let back = LibraryCore::from_bytes(&bytes).unwrap();
        assert_eq!(back.documents(), lib.documents());
        assert_eq!(
            back.search(&[0.1, 1.0, 0.0], "pie", 3, Mode::Hybrid)
                .unwrap(),
            lib.search(&[0.1, 1.0, 0.0], "pie", 3, Mode::Hybrid)
                .unwrap()
        );

        let removed = lib.remove(&a.id).unwrap();
        assert_eq!((removed.source.as_str(), removed.chunks), ("/a.md", 2));
        assert_eq!(removed.kind, "markdown");
        assert_eq!(lib.documents().len(), 1);
        assert!(lib.remove(&a.id).is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut lib = LibraryCore::new(2).unwrap();
        assert!(LibraryCore::new(0).is_err());
        let wrong_len = lib.upsert(doc("/a", "1"), vec![chunk("a", 0)], &[1.0]);
        assert!(wrong_len.is_err());
        let mut bad_kind = doc("/a", "1");
        bad_kind.kind = Some("exe".into());
        assert!(lib.upsert(bad_kind, vec![], &[]).is_err());
        let mut reversed = chunk("a", 0);
        reversed.span = [5, 1];
        assert!(lib
            .upsert(doc("/a", "1"), vec![reversed], &[1.0, 0.0])
            .is_err());
        assert!(lib
            .upsert(doc("/a", "1"), vec![chunk("a", 0)], &[f32::NAN, 0.0])
            .is_err());
        assert!(lib.search(&[1.0], "", 3, Mode::Dense).is_err());
        assert!(parse_mode("fuzzy").is_err());
        assert!(LibraryCore::from_bytes(b"not a snapshot at all, no").is_err());
        assert!(lib.documents().is_empty());
    }
}
