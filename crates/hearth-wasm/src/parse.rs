//! Document parsing for the extension's throwaway parse worker: bytes → text with structure →
//! chunks sized in the encoder's own tokens. It runs in its own wasm instance (a dedicated worker
//! of the side panel), never in the service worker: a document that makes a parser panic traps that
//! instance only, and the models and the index live on.
//!
//! Also [`Sha256`], the streaming hash the panel checks imported model files with.

use std::cell::RefCell;

use hearth_knowledge::documents::content_hash;
use hearth_knowledge::{
    chunk_document, extract_with, ChunkOptions, KnowledgeError, Limits, NewDocument, SourceHint,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use wasm_bindgen::prelude::*;

use crate::library::{kind_name, ChunkInput, DocInput};
use crate::{js_err, to_js};

/// Where the bytes came from (the file's name and type, or the page's URL and title).
#[derive(Clone, Debug, Deserialize)]
pub struct ParseHint {
    /// File name or URL: the document's identity in an index.
    pub source: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub mime: Option<String>,
    /// Replaces the extracted title when non-empty (a page's title as the browser shows it).
    #[serde(default)]
    pub title: Option<String>,
    /// Milliseconds since the Unix epoch, recorded as the time added.
    #[serde(default)]
    pub now_ms: f64,
}

/// A parsed document as the service worker's `library.add` takes it.
#[derive(Clone, Debug, Serialize)]
pub struct ParsedDocument {
    pub doc: DocInputOut,
    pub chunks: Vec<ChunkInput>,
}

/// [`DocInput`] as it is sent back to JavaScript.
#[derive(Clone, Debug, Serialize)]
pub struct DocInputOut {
    pub source: String,
    pub title: String,
    pub id: String,
    pub kind: &'static str,
    pub size: u64,
    pub content_hash: String,
    pub added_unix_ms: u64,
}

impl DocInputOut {
    pub fn into_input(self) -> DocInput {
        DocInput {
            source: self.source,
            title: self.title,
            id: Some(self.id),
            kind: Some(self.kind.to_string()),
            size: self.size,
            content_hash: self.content_hash,
            added_unix_ms: self.added_unix_ms,
        }
    }
}

/// Extracts and chunks `bytes`; `count` gives a text's length in the encoder's tokens and
/// `max_tokens` is the encoder's input size.
pub fn parse(
    bytes: &[u8],
    hint: &ParseHint,
    count: &dyn Fn(&str) -> usize,
    max_tokens: usize,
) -> Result<ParsedDocument, KnowledgeError> {
    if hint.source.trim().is_empty() {
        return Err(KnowledgeError::InvalidInput(
            "a document needs a source (file name or URL)".into(),
        ));
    }
    let mut source_hint = SourceHint::new(hint.source.clone());
    if let Some(mime) = &hint.mime {
        source_hint = source_hint.with_mime(mime.clone());
    }
    if let Some(name) = &hint.file_name {
        source_hint = source_hint.with_file_name(name.clone());
    }
    let mut doc = extract_with(bytes, source_hint, &Limits::default())?;
    if let Some(title) = hint
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        doc.title = title.to_string();
    }
    let defaults = ChunkOptions::default();
    let max_tokens = max_tokens.clamp(8, defaults.max_tokens.max(max_tokens));
    let opts = ChunkOptions {
        max_tokens,
        target_tokens: defaults.target_tokens.min(max_tokens),
        overlap_tokens: defaults.overlap_tokens.min(max_tokens / 4),
        ..defaults
    };
    let chunks = chunk_document(&doc, &count, &opts);
    let now = if hint.now_ms.is_finite() && hint.now_ms > 0.0 {
        hint.now_ms as u64
    } else {
        0
    };
    let meta = NewDocument::from_document(&doc, &hint.source, now);
    Ok(ParsedDocument {
        doc: DocInputOut {
            source: meta.source_path,
            title: meta.title,
            id: meta.id.0,
            kind: kind_name(meta.kind),
            size: meta.size,
            content_hash: meta.content_hash,
            added_unix_ms: meta.added_unix_ms,
        },
        chunks: chunks
            .into_iter()
            .map(|c| ChunkInput {
                heading_path: c.heading_path,
                page: c.page,
                span: [c.span.0, c.span.1],
                text: c.text,
            })
            .collect(),
    })
}

thread_local! {
    /// The last tokenizer parsed, by the sha256 of its JSON (every call passes the same file).
    static COUNTER: RefCell<Option<(String, tokenizers::Tokenizer)>> = const { RefCell::new(None) };
}

/// A tokenizer that counts every token with special tokens, never truncating or padding (as
/// [`hearth_models::bert::SentenceEncoder::count_tokens`] does, so chunks fit the encoder).
fn counter_for(json: &[u8]) -> Result<(), JsError> {
    let key = content_hash(json);
    if COUNTER.with(|c| c.borrow().as_ref().is_some_and(|(k, _)| *k == key)) {
        return Ok(());
    }
    let mut tok = tokenizers::Tokenizer::from_bytes(json)
        .map_err(|e| JsError::new(&format!("tokenizer.json: {e}")))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| JsError::new(&format!("tokenizer.json: {e}")))?;
    COUNTER.with(|c| *c.borrow_mut() = Some((key, tok)));
    Ok(())
}

/// `parseDocument(bytes, hint, tokenizer_json, max_tokens)` → `{ doc, chunks }`. Synchronous;
/// throws a readable error for a document it cannot read.
#[wasm_bindgen(js_name = parseDocument)]
pub fn parse_document(
    bytes: &[u8],
    hint: JsValue,
    tokenizer_json: &[u8],
    max_tokens: u32,
) -> Result<JsValue, JsError> {
    let hint: ParseHint = serde_wasm_bindgen::from_value(hint).map_err(js_err)?;
    counter_for(tokenizer_json)?;
    COUNTER.with(|c| {
        let c = c.borrow();
        let Some((_, tok)) = c.as_ref() else {
            return Err(JsError::new("no tokenizer"));
        };
        let count = |t: &str| tok.encode(t, true).map_or(0, |e| e.get_ids().len());
        let parsed = parse(bytes, &hint, &count, max_tokens as usize).map_err(js_err)?;
        to_js(&parsed)
    })
}

/// Streaming SHA-256 (imported model files are gigabytes: hashed as they are copied).
#[wasm_bindgen]
pub struct Sha256(sha2::Sha256);

#[wasm_bindgen]
impl Sha256 {
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Sha256 {
        Sha256(sha2::Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hex digest; the hasher starts over.
    pub fn finish(&mut self) -> String {
        hex::encode(self.0.finalize_reset())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hint(source: &str, mime: Option<&str>) -> ParseHint {
        ParseHint {
            source: source.into(),
            file_name: None,
            mime: mime.map(String::from),
            title: None,
            now_ms: 1_700_000_000_000.0,
        }
    }

    fn words(t: &str) -> usize {
        t.split_whitespace().count() + 2
    }

    #[test]
    fn parses_markdown_into_chunks_with_headings_and_exact_spans() {
        let md = "# Garden\n\n## Tomatoes\n\nWater them deeply twice a week.\n\n## Roses\n\nPrune in late winter.\n";
        let p = parse(md.as_bytes(), &hint("notes.md", None), &words, 256).unwrap();
        assert_eq!(p.doc.kind, "markdown");
        assert_eq!(p.doc.title, "Garden");
        assert_eq!(p.doc.size, md.len() as u64);
        assert_eq!(p.doc.content_hash, content_hash(md.as_bytes()));
        assert_eq!(p.doc.added_unix_ms, 1_700_000_000_000);
        assert!(p.chunks.len() >= 2, "{:?}", p.chunks);
        let roses = p.chunks.iter().find(|c| c.text.contains("Prune")).unwrap();
        assert_eq!(roses.heading_path, ["Garden", "Roses"]);
        assert!(roses.span[0] < roses.span[1]);
    }

    #[test]
    fn a_page_keeps_the_browser_title_and_its_url_as_source() {
        let html = "<html><head><title>x</title></head><body><main><h1>Canal</h1><p>Dug in 1790.</p></main></body></html>";
        let mut h = hint("http://hearth.test/canal", Some("text/html"));
        h.title = Some("  The Canal  ".into());
        let p = parse(html.as_bytes(), &h, &words, 256).unwrap();
        assert_eq!(p.doc.kind, "html");
        assert_eq!(p.doc.title, "The Canal");
        assert_eq!(p.doc.source, "http://hearth.test/canal");
        assert!(p.chunks.iter().any(|c| c.text.contains("1790")));
    }

    #[test]
    fn chunks_respect_the_encoders_size() {
        let text = "word ".repeat(2000);
        let p = parse(text.as_bytes(), &hint("long.txt", None), &words, 64).unwrap();
        assert!(p.chunks.len() > 30);
        assert!(p.chunks.iter().all(|c| words(&c.text) <= 64));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse(b"%PDF-1.7 garbage", &hint("x.pdf", None), &words, 256).is_err());
        assert!(parse(b"PK\x03\x04zzzz", &hint("x.docx", None), &words, 256).is_err());
        assert!(parse(b"text", &hint("  ", None), &words, 256).is_err());
    }

    #[test]
    fn sha256_streams() {
        let mut h = Sha256::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), content_hash(b"hello world"));
        assert_eq!(h.finish(), content_hash(b""));
    }
}
