//! Shared by every target: extract under tight limits (so a slow input shows up as a limit
//! error, and a hang as a libFuzzer timeout), then check the document and chunk invariants.

use hearth_knowledge::{
    chunk_document, extract_with, ApproxTokenCounter, ChunkOptions, Limits, SourceHint,
};

pub fn run(data: &[u8], file_name: &str) {
    let limits = Limits {
        max_input_bytes: 4 << 20,
        max_text_bytes: 4 << 20,
        max_decompressed_bytes: 32 << 20,
        max_steps: 5_000_000,
        ..Limits::default()
    };
    let Ok(doc) = extract_with(data, SourceHint::new(file_name), &limits) else {
        return;
    };
    let mut last = 0;
    for b in &doc.blocks {
        assert!(last <= b.span.0 && b.span.0 < b.span.1 && b.span.1 <= doc.text.len());
        assert!(doc.text.is_char_boundary(b.span.0) && doc.text.is_char_boundary(b.span.1));
        last = b.span.1;
    }
    let opts = ChunkOptions::default();
    let mut prev = None;
    for c in chunk_document(&doc, &ApproxTokenCounter, &opts) {
        assert_eq!(c.text, doc.text[c.span.0..c.span.1]);
        assert!(c.tokens <= opts.max_tokens && c.text.len() <= opts.max_chunk_bytes);
        if let Some((s, e)) = prev {
            assert!(c.span.0 > s && c.span.1 > e, "chunks go forward");
        }
        prev = Some(c.span);
    }
}
