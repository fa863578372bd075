//! Shared pieces of every extractor: the text/blocks builder, whitespace collapsing and the work
//! budget.

use super::{Block, BlockKind, Limits};
use crate::{KnowledgeError, Result};

/// Deterministic cost accounting for one extraction (see [`Limits`]).
pub(crate) struct Budget {
    pub limits: Limits,
    steps: u64,
    decompressed: usize,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Budget {
            limits: limits.clone(),
            steps: 0,
            decompressed: 0,
        }
    }

    /// Charges `n` steps of work.
    pub fn step(&mut self, n: u64) -> Result<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(KnowledgeError::Limit {
                what: "work steps",
                limit: self.limits.max_steps,
            });
        }
        Ok(())
    }

    /// Bytes that the next decompression may still produce.
    pub fn decompress_allowance(&self) -> usize {
        self.limits
            .max_decompressed_bytes
            .saturating_sub(self.decompressed)
    }

    pub fn charge_decompressed(&mut self, n: usize) -> Result<()> {
        self.decompressed = self.decompressed.saturating_add(n);
        if self.decompressed > self.limits.max_decompressed_bytes {
            return Err(self.decompressed_limit());
        }
        Ok(())
    }

    pub fn decompressed_limit(&self) -> KnowledgeError {
        KnowledgeError::Limit {
            what: "decompressed bytes",
            limit: self.limits.max_decompressed_bytes as u64,
        }
    }

    pub fn depth_limit(&self) -> KnowledgeError {
        KnowledgeError::Limit {
            what: "nesting depth",
            limit: self.limits.max_depth as u64,
        }
    }
}

/// Builds `Document::text` and its blocks. Blocks are separated by a blank line, except
/// consecutive list items (newline) and cells of one table row (tab).
pub(crate) struct TextBuilder {
    text: String,
    blocks: Vec<Block>,
    last_kind: Option<BlockKind>,
    new_row: bool,
    max_text: usize,
    max_blocks: usize,
}

impl TextBuilder {
    pub fn new(limits: &Limits) -> Self {
        TextBuilder {
            text: String::new(),
            blocks: Vec::new(),
            last_kind: None,
            new_row: false,
            max_text: limits.max_text_bytes,
            max_blocks: limits.max_blocks,
        }
    }

    /// Appends a block whose text is already normalised; blank text is skipped.
    pub fn push(&mut self, kind: BlockKind, text: &str, page: Option<u32>) -> Result<()> {
        let text = if kind == BlockKind::Code {
            text.trim_matches(['\n', '\r']).trim_end()
        } else {
            text.trim()
        };
        if text.is_empty() {
            return Ok(());
        }
        let sep = match (self.last_kind, kind) {
            (None, _) => "",
            (Some(BlockKind::ListItem), BlockKind::ListItem) => "\n",
            (Some(BlockKind::TableCell), BlockKind::TableCell) if !self.new_row => "\t",
            (Some(BlockKind::TableCell), BlockKind::TableCell) => "\n",
            _ => "\n\n",
        };
        if self.text.len() + sep.len() + text.len() > self.max_text {
            return Err(KnowledgeError::Limit {
                what: "extracted text bytes",
                limit: self.max_text as u64,
            });
        }
        if self.blocks.len() >= self.max_blocks {
            return Err(KnowledgeError::Limit {
                what: "blocks",
                limit: self.max_blocks as u64,
            });
        }
        self.text.push_str(sep);
        let start = self.text.len();
        self.text.push_str(text);
        self.blocks.push(Block {
            kind,
            span: (start, self.text.len()),
            page,
        });
        self.last_kind = Some(kind);
        self.new_row = false;
        Ok(())
    }

    /// The next table cell starts a new row.
    pub fn end_row(&mut self) {
        self.new_row = true;
    }

    /// Text of the first heading, a fallback title for formats without metadata.
    pub fn first_heading(&self) -> Option<String> {
        let b = self
            .blocks
            .iter()
            .find(|b| matches!(b.kind, BlockKind::Heading(_)))?;
        Some(self.text[b.span.0..b.span.1].to_string())
    }

    pub fn finish(self) -> (String, Vec<Block>) {
        (self.text, self.blocks)
    }
}

/// Accumulates inline text with HTML-like whitespace collapsing: runs of whitespace become one
/// space, leading and trailing whitespace disappears.
pub(crate) struct Inline {
    buf: String,
    pending_space: bool,
    max: usize,
}

impl Inline {
    pub fn new(max: usize) -> Self {
        Inline {
            buf: String::new(),
            pending_space: false,
            max,
        }
    }

    pub fn push(&mut self, s: &str) -> Result<()> {
        for c in s.chars() {
            if c.is_whitespace() {
                self.pending_space = !self.buf.is_empty();
            } else if !c.is_control() {
                if self.pending_space {
                    self.buf.push(' ');
                    self.pending_space = false;
                }
                self.buf.push(c);
            }
        }
        self.check()
    }

    /// Appends verbatim (preformatted text), only dropping control characters other than
    /// newline and tab.
    pub fn push_raw(&mut self, s: &str) -> Result<()> {
        if self.pending_space {
            self.buf.push(' ');
            self.pending_space = false;
        }
        self.buf.extend(
            s.chars()
                .filter(|&c| !c.is_control() || c == '\n' || c == '\t'),
        );
        self.check()
    }

    /// A soft separator: becomes one space if more text follows.
    pub fn space(&mut self) {
        self.pending_space = !self.buf.is_empty();
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn peek(&self) -> &str {
        &self.buf
    }

    pub fn take(&mut self) -> String {
        self.pending_space = false;
        std::mem::take(&mut self.buf)
    }

    fn check(&self) -> Result<()> {
        if self.buf.len() > self.max {
            return Err(KnowledgeError::Limit {
                what: "extracted text bytes",
                limit: self.max as u64,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_spans() {
        let mut b = TextBuilder::new(&Limits::default());
        b.push(BlockKind::Heading(1), "  Title ", None).unwrap();
        b.push(BlockKind::ListItem, "one", None).unwrap();
        b.push(BlockKind::ListItem, "two", None).unwrap();
        b.push(BlockKind::TableCell, "a", None).unwrap();
        b.push(BlockKind::TableCell, "b", None).unwrap();
        b.end_row();
        b.push(BlockKind::TableCell, "c", None).unwrap();
        b.push(BlockKind::Paragraph, "   ", None).unwrap();
        b.push(BlockKind::Code, "\n  x = 1\n", None).unwrap();
        let (text, blocks) = b.finish();
        assert_eq!(text, "Title\n\none\ntwo\n\na\tb\nc\n\n  x = 1");
        let got: Vec<&str> = blocks.iter().map(|b| &text[b.span.0..b.span.1]).collect();
        assert_eq!(got, ["Title", "one", "two", "a", "b", "c", "  x = 1"]);
    }

    #[test]
    fn inline_collapses_whitespace_across_pushes() {
        let mut i = Inline::new(100);
        i.push("  a \n\t b").unwrap();
        i.push(" ").unwrap();
        i.push("c\u{0}d ").unwrap();
        assert_eq!(i.take(), "a b cd");
        let mut small = Inline::new(3);
        assert!(matches!(
            small.push("abcd"),
            Err(KnowledgeError::Limit { .. })
        ));
    }

    #[test]
    fn text_limit_is_enforced() {
        let limits = Limits {
            max_text_bytes: 8,
            ..Limits::default()
        };
        let mut b = TextBuilder::new(&limits);
        b.push(BlockKind::Paragraph, "12345", None).unwrap();
        assert!(matches!(
            b.push(BlockKind::Paragraph, "678", None),
            Err(KnowledgeError::Limit {
                what: "extracted text bytes",
                ..
            })
        ));
    }
}
