//! Documents → one structured plain text with typed blocks.
//!
//! Every extractor produces a [`Document`]: `text` is the readable plain text of the document and
//! `blocks` partition the interesting parts of it into headings, paragraphs, list items, code and
//! table cells. **Spans are byte offsets into `text`** (half-open, always on UTF-8 character
//! boundaries), so `&doc.text[b.span.0..b.span.1]` is the block's text; the browser extension
//! converts to UTF-16 offsets with [`Document::utf16_offset`] before highlighting.
//!
//! All extractors run on untrusted bytes under [`Limits`]: input size, text size, nesting depth,
//! object/entry counts, decompressed size and a deterministic work budget (a step counter, not a
//! clock: `std::time::Instant` panics on wasm32-unknown-unknown). Going over any limit is a
//! [`KnowledgeError::Limit`]; nothing on these paths panics.

mod builder;
mod docx;
mod html;
mod markdown;
mod pdf;
mod text;

use sha2::{Digest, Sha256};

use crate::{KnowledgeError, Result};

pub(crate) use builder::{Budget, TextBuilder};

/// Stable identity of a document source: the first 16 bytes of SHA-256 of its path or URL, in
/// hex. The same source keeps its id when its content changes ([`Document::content_hash`] tells
/// re-ingest whether it did).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct DocId(pub String);

impl DocId {
    pub fn for_source(source: &str) -> Self {
        let digest = Sha256::digest(source.as_bytes());
        DocId(hex::encode(&digest[..16]))
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DocKind {
    Html,
    Markdown,
    Text,
    Pdf,
    Docx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlockKind {
    /// Heading level 1..=6 (1 is the largest).
    Heading(u8),
    Paragraph,
    ListItem,
    /// Preformatted text; whitespace inside is kept as written.
    Code,
    TableCell,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    pub kind: BlockKind,
    /// Byte range `[start, end)` into [`Document::text`].
    pub span: (usize, usize),
    /// 1-based page number (PDF only).
    pub page: Option<u32>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Document {
    pub id: DocId,
    pub title: String,
    pub kind: DocKind,
    /// Size of the source in bytes.
    pub size: u64,
    /// Hex SHA-256 of the source bytes.
    pub content_hash: String,
    pub text: String,
    /// In text order, non-overlapping; each block's text is non-empty and (except `Code`)
    /// trimmed. Text between blocks is only separators (`\n\n`, `\n`, `\t`).
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn block_text(&self, block: &Block) -> &str {
        self.text.get(block.span.0..block.span.1).unwrap_or("")
    }

    /// UTF-16 code-unit offset of byte offset `byte` of `text` (what JavaScript strings index
    /// by). Offsets past the end map to the end.
    pub fn utf16_offset(&self, byte: usize) -> usize {
        let end = floor_char_boundary(&self.text, byte);
        self.text[..end].encode_utf16().count()
    }
}

/// What the caller knows about the bytes: where they came from and what they claim to be.
#[derive(Clone, Debug, Default)]
pub struct SourceHint {
    /// Path or URL; the document's identity ([`DocId::for_source`]). When empty, the id is
    /// derived from the content hash instead.
    pub source: String,
    /// File name (for the extension and a fallback title); derived from `source` when `None`.
    pub file_name: Option<String>,
    /// MIME type, e.g. from an HTTP `Content-Type` header (parameters allowed).
    pub mime: Option<String>,
}

impl SourceHint {
    pub fn new(source: impl Into<String>) -> Self {
        SourceHint {
            source: source.into(),
            ..Default::default()
        }
    }

    pub fn with_mime(mut self, mime: impl Into<String>) -> Self {
        self.mime = Some(mime.into());
        self
    }

    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    fn file_name(&self) -> &str {
        if let Some(name) = &self.file_name {
            return name;
        }
        let path = self.source.split(['?', '#']).next().unwrap_or("");
        path.rsplit(['/', '\\']).next().unwrap_or("")
    }
}

/// Bounds on what one document may cost. The defaults suit an interactive ingest of one file in
/// the browser; everything over them is a clean [`KnowledgeError::Limit`].
#[derive(Clone, Debug)]
pub struct Limits {
    /// Size of the input bytes.
    pub max_input_bytes: usize,
    /// Size of the extracted `text`.
    pub max_text_bytes: usize,
    /// Nesting depth of containers (PDF objects, DOCX XML, Markdown/HTML blocks).
    pub max_depth: usize,
    /// Number of blocks in the result.
    pub max_blocks: usize,
    /// PDF objects, or ZIP entries in a DOCX.
    pub max_objects: usize,
    /// PDF pages.
    pub max_pages: usize,
    /// Total bytes produced by decompression (PDF streams, DOCX parts).
    pub max_decompressed_bytes: usize,
    /// Work budget in abstract steps (roughly: tokens or nodes visited). Bounds time
    /// deterministically, independently of the clock.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 << 20,
            max_text_bytes: 64 << 20,
            max_depth: 512,
            max_blocks: 1_000_000,
            max_objects: 500_000,
            max_pages: 10_000,
            max_decompressed_bytes: 256 << 20,
            max_steps: 200_000_000,
        }
    }
}

/// Extracts `bytes` with the default [`Limits`].
pub fn extract(bytes: &[u8], hint: SourceHint) -> Result<Document> {
    extract_with(bytes, hint, &Limits::default())
}

pub fn extract_with(bytes: &[u8], hint: SourceHint, limits: &Limits) -> Result<Document> {
    extract_hashed(bytes, hint, limits, content_hash(bytes))
}

/// Hex SHA-256 of source bytes: [`Document::content_hash`], and what the index compares.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// [`extract_with`] for a caller that already hashed `bytes` ([`content_hash`]), so a large file
/// is hashed once per ingest.
pub(crate) fn extract_hashed(
    bytes: &[u8],
    hint: SourceHint,
    limits: &Limits,
    content_hash: String,
) -> Result<Document> {
    if bytes.len() > limits.max_input_bytes {
        return Err(KnowledgeError::Limit {
            what: "input bytes",
            limit: limits.max_input_bytes as u64,
        });
    }
    let kind = detect_kind(bytes, &hint)?;
    let mut budget = Budget::new(limits);
    let content = match kind {
        DocKind::Html => html::extract(bytes, &mut budget)?,
        DocKind::Markdown => markdown::extract(bytes, &mut budget)?,
        DocKind::Text => text::extract(bytes, &mut budget)?,
        DocKind::Pdf => pdf::extract(bytes, &mut budget)?,
        DocKind::Docx => docx::extract(bytes, &mut budget)?,
    };
    let id = if hint.source.is_empty() {
        DocId(content_hash[..32].to_string())
    } else {
        DocId::for_source(&hint.source)
    };
    let title = match content.title {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => fallback_title(&hint),
    };
    Ok(Document {
        id,
        title,
        kind,
        size: bytes.len() as u64,
        content_hash,
        text: content.text,
        blocks: content.blocks,
    })
}

/// What an extractor hands back; `extract_with` adds identity and metadata.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub title: Option<String>,
    pub text: String,
    pub blocks: Vec<Block>,
}

fn fallback_title(hint: &SourceHint) -> String {
    let name = hint.file_name();
    let stem = match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    };
    if stem.is_empty() {
        "Untitled".to_string()
    } else {
        stem.to_string()
    }
}

/// MIME type first, then the file extension, then the bytes themselves.
fn detect_kind(bytes: &[u8], hint: &SourceHint) -> Result<DocKind> {
    if let Some(mime) = &hint.mime {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let kind = match essence.as_str() {
            "text/html" | "application/xhtml+xml" => Some(DocKind::Html),
            "text/markdown" | "text/x-markdown" => Some(DocKind::Markdown),
            "text/plain" => Some(DocKind::Text),
            "application/pdf" => Some(DocKind::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Some(DocKind::Docx)
            }
            _ => None,
        };
        if let Some(kind) = kind {
            return Ok(kind);
        }
    }
    let name = hint.file_name().to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let kind = match ext {
        "html" | "htm" | "xhtml" => Some(DocKind::Html),
        "md" | "markdown" | "mdown" | "mkd" => Some(DocKind::Markdown),
        "txt" | "text" | "log" | "csv" | "rst" => Some(DocKind::Text),
        "pdf" => Some(DocKind::Pdf),
        "docx" => Some(DocKind::Docx),
        _ => None,
    };
    if let Some(kind) = kind {
        return Ok(kind);
    }
    Ok(sniff(bytes))
}

fn sniff(bytes: &[u8]) -> DocKind {
    let head = &bytes[..bytes.len().min(1024)];
    if find(head, b"%PDF-").is_some() {
        return DocKind::Pdf;
    }
    if head.starts_with(b"PK\x03\x04") {
        return DocKind::Docx;
    }
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let trimmed = lower.trim_ascii_start();
    let trimmed = trimmed.strip_prefix(b"\xef\xbb\xbf").unwrap_or(trimmed);
    if trimmed.starts_with(b"<!doctype html") || trimmed.starts_with(b"<html") {
        return DocKind::Html;
    }
    DocKind::Text
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_detection_prefers_mime_then_extension_then_bytes() {
        let html = SourceHint::new("https://x.org/a?b=c").with_mime("text/html; charset=utf-8");
        assert_eq!(detect_kind(b"plain", &html).unwrap(), DocKind::Html);
        assert_eq!(
            detect_kind(b"", &SourceHint::new("/d/notes.MD")).unwrap(),
            DocKind::Markdown
        );
        assert_eq!(
            detect_kind(b"%PDF-1.7\n", &SourceHint::new("blob")).unwrap(),
            DocKind::Pdf
        );
        assert_eq!(
            detect_kind(b"  <!DOCTYPE html><p>x", &SourceHint::new("blob")).unwrap(),
            DocKind::Html
        );
        assert_eq!(
            detect_kind(b"hello", &SourceHint::default()).unwrap(),
            DocKind::Text
        );
    }

    #[test]
    fn id_is_stable_per_source_and_hash_tracks_content() {
        let a = extract(b"one", SourceHint::new("/docs/a.txt")).unwrap();
        let b = extract(b"two", SourceHint::new("/docs/a.txt")).unwrap();
        let c = extract(b"one", SourceHint::new("/docs/c.txt")).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.content_hash, b.content_hash);
        assert_ne!(a.id, c.id);
        assert_eq!(a.content_hash, c.content_hash);
        assert_eq!(a.title, "a");
        assert_eq!(a.id.0.len(), 32);
    }

    #[test]
    fn utf16_offsets_count_code_units() {
        let doc = extract("é𝄞x".as_bytes(), SourceHint::new("u.txt")).unwrap();
        assert_eq!(doc.utf16_offset(0), 0);
        assert_eq!(doc.utf16_offset(2), 1); // after 'é' (2 bytes, 1 unit)
        assert_eq!(doc.utf16_offset(6), 3); // after '𝄞' (4 bytes, 2 units)
        assert_eq!(doc.utf16_offset(99), 4);
    }

    #[test]
    fn oversized_input_is_a_limit_error() {
        let limits = Limits {
            max_input_bytes: 4,
            ..Limits::default()
        };
        let err = extract_with(b"hello", SourceHint::new("a.txt"), &limits).unwrap_err();
        assert!(
            matches!(
                err,
                KnowledgeError::Limit {
                    what: "input bytes",
                    ..
                }
            ),
            "{err}"
        );
    }
}
