//! Structure-aware chunking with exact provenance.
//!
//! A document splits into *segments* at headings and page changes (a heading with no body text
//! of its own joins the next segment, so "Chapter / Section / text" stays together). Each
//! segment is packed greedily into chunks of about `target_tokens`, preferring to end at a
//! paragraph boundary, then a sentence end, then a word boundary, never inside a word (except
//! inside a "word" that alone exceeds a chunk: base64, minified code; see
//! [`ChunkOptions::max_word_bytes`]). Consecutive chunks of a segment overlap by about
//! `overlap_tokens`. Every chunk's `span` is a byte range of `Document::text` and
//! `text == doc.text[span.0..span.1]`; its exact token count (counted by the caller's
//! [`TokenCounter`] on that text) never exceeds `max_tokens`.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::documents::{BlockKind, DocId, Document};

/// Distinct words whose token counts are remembered (real tokenizers are slow per call, and
/// word frequencies are Zipfian).
const WORD_CACHE: usize = 1 << 16;

/// Counts embedding-model tokens. `count` must include the special tokens the model adds
/// (`[CLS]`/`[SEP]` for MiniLM), so `count("")` is the per-sequence overhead, and must not
/// truncate (disable truncation on a `tokenizers::Tokenizer` before counting with it).
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

/// A tokenizer-free estimate of BERT WordPiece counts: 2 special tokens, one token per
/// punctuation/symbol character or CJK character, and `ceil(len / 6)` tokens per run of other
/// alphanumeric characters (rare words split into several pieces). It tends to overestimate,
/// which errs on the side of smaller chunks.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApproxTokenCounter;

impl TokenCounter for ApproxTokenCounter {
    fn count(&self, text: &str) -> usize {
        let mut tokens = 2;
        let mut run = 0usize;
        for c in text.chars() {
            if c.is_alphanumeric() && !is_cjk(c) {
                run += 1;
                continue;
            }
            tokens += run.div_ceil(6);
            run = 0;
            if !c.is_whitespace() {
                tokens += 1;
            }
        }
        tokens + run.div_ceil(6)
    }
}

#[derive(Clone, Debug)]
pub struct ChunkOptions {
    /// Preferred size of a chunk.
    pub target_tokens: usize,
    /// Hard cap per chunk, special tokens included (MiniLM: 256).
    pub max_tokens: usize,
    /// Tokens repeated from the end of one chunk at the start of the next within a segment.
    pub overlap_tokens: usize,
    /// Hard cap on a chunk's text, whatever the counter says (a counter may map a 10 MB blob
    /// to one `[UNK]`).
    pub max_chunk_bytes: usize,
    /// Words longer than this are blobs and may be split between chunks (at `char` bounds).
    pub max_word_bytes: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            target_tokens: 224,
            max_tokens: 256,
            overlap_tokens: 32,
            max_chunk_bytes: 4096,
            max_word_bytes: 256,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    pub doc_id: DocId,
    /// Position of the chunk in its document, from 0.
    pub index: u32,
    /// Enclosing headings, outermost first (e.g. `["Ownership", "The Stack and the Heap"]`).
    pub heading_path: Vec<String>,
    /// 1-based page (PDF).
    pub page: Option<u32>,
    /// Byte range of `Document::text`; `text == doc.text[span.0..span.1]`.
    pub span: (usize, usize),
    pub text: String,
    /// Token count of `text` by the counter used for chunking.
    pub tokens: usize,
}

/// A place the chunker may cut, with how good a cut it is (after `end`).
#[derive(Clone, Copy, Debug)]
struct Unit {
    start: usize,
    end: usize,
    cost: usize,
    /// 0 word, 1 sentence end, 2 block end.
    brk: u8,
}

struct Segment {
    path: Vec<String>,
    page: Option<u32>,
    units: Vec<Unit>,
    has_body: bool,
}

pub fn chunk_document(
    doc: &Document,
    counter: &dyn TokenCounter,
    opts: &ChunkOptions,
) -> Vec<Chunk> {
    let mut c = Chunker {
        doc,
        counter,
        opts,
        base: counter.count(""),
        chunks: Vec::new(),
        word_costs: RefCell::new(HashMap::new()),
    };
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut seg = Segment {
        path: Vec::new(),
        page: None,
        units: Vec::new(),
        has_body: false,
    };
    let mut last_end = 0;
    for block in &doc.blocks {
        let (start, end) = block.span;
        let valid = start >= last_end
            && start < end
            && doc.text.is_char_boundary(start)
            && doc.text.is_char_boundary(end)
            && end <= doc.text.len();
        if !valid {
            continue; // blocks are sorted and disjoint in extracted documents; skip anything else
        }
        last_end = end;
        let heading = match block.kind {
            BlockKind::Heading(level) => Some(level),
            _ => None,
        };
        let new_page = block.page != seg.page && !seg.units.is_empty();
        if new_page || (heading.is_some() && seg.has_body) {
            c.pack(&seg);
            seg.units.clear();
            seg.has_body = false;
        }
        seg.page = block.page;
        if let Some(level) = heading {
            while headings.last().is_some_and(|(l, _)| *l >= level) {
                headings.pop();
            }
            headings.push((level, doc.text[start..end].to_string()));
            seg.path = headings.iter().map(|(_, t)| t.clone()).collect();
        } else {
            seg.has_body = true;
        }
        c.units(start, end, &mut seg.units);
    }
    c.pack(&seg);
    c.chunks
}

struct Chunker<'d> {
    doc: &'d Document,
    counter: &'d dyn TokenCounter,
    opts: &'d ChunkOptions,
    /// `count("")`: the special tokens every sequence carries.
    base: usize,
    chunks: Vec<Chunk>,
    word_costs: RefCell<HashMap<&'d str, usize>>,
}

impl<'d> Chunker<'d> {
    /// Tokens available to text in one chunk.
    fn room(&self) -> usize {
        self.opts.max_tokens.saturating_sub(self.base).max(1)
    }

    fn cost(&self, text: &str) -> usize {
        self.counter.count(text).saturating_sub(self.base)
    }

    /// Words of `text[start..end]` (CJK characters are words of their own).
    fn units(&self, start: usize, end: usize, out: &mut Vec<Unit>) {
        let text = &self.doc.text;
        let first = out.len();
        let mut word: Option<usize> = None;
        for (i, ch) in text[start..end].char_indices() {
            let at = start + i;
            if ch.is_whitespace() || is_cjk(ch) {
                if let Some(w) = word.take() {
                    self.word(w, at, out);
                }
                if is_cjk(ch) {
                    self.word(at, at + ch.len_utf8(), out);
                }
            } else if word.is_none() {
                word = Some(at);
            }
        }
        if let Some(w) = word {
            self.word(w, end, out);
        }
        if out.len() > first {
            if let Some(last) = out.last_mut() {
                last.brk = 2;
            }
        }
    }

    fn word(&self, start: usize, end: usize, out: &mut Vec<Unit>) {
        let w: &'d str = &self.doc.text[start..end];
        let cached = self.word_costs.borrow().get(w).copied();
        let cost = cached.unwrap_or_else(|| {
            let cost = self.cost(w);
            let mut cache = self.word_costs.borrow_mut();
            if cache.len() < WORD_CACHE && w.len() <= 64 {
                cache.insert(w, cost);
            }
            cost
        });
        if w.len() <= self.opts.max_word_bytes && cost <= self.room() {
            let brk = u8::from(is_sentence_end(w));
            out.push(Unit {
                start,
                end,
                cost,
                brk,
            });
            return;
        }
        // A blob: pieces of at most 64 bytes, down to single characters if the counter
        // insists, so every unit fits a chunk on its own.
        let mut at = start;
        while at < end {
            let mut piece_end = crate::documents::floor_char_boundary(w, at - start + 64) + start;
            if piece_end <= at {
                piece_end = at + w[at - start..].chars().next().map_or(1, char::len_utf8);
            }
            let mut cost = self.cost(&self.doc.text[at..piece_end]);
            while cost > self.room() {
                let shorter =
                    crate::documents::floor_char_boundary(w, (at + piece_end) / 2 - start);
                let one = w[at - start..].chars().next().map_or(1, char::len_utf8);
                piece_end = (shorter + start).max(at + one);
                cost = self.cost(&self.doc.text[at..piece_end]);
                if piece_end == at + one {
                    break;
                }
            }
            out.push(Unit {
                start: at,
                end: piece_end,
                cost,
                brk: 0,
            });
            at = piece_end;
        }
    }

    fn pack(&mut self, seg: &Segment) {
        let units = &seg.units;
        let n = units.len();
        // prefix[k] = cost of units[..k]
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0usize);
        for u in units {
            prefix.push(prefix[prefix.len() - 1] + u.cost);
        }
        let target = self
            .opts
            .target_tokens
            .saturating_sub(self.base)
            .clamp(1, self.room());
        // Chunk `units[i..k]`; `done` = units already covered by the previous chunk, so every
        // chunk must end past it (k > done) or it would repeat a subset of the previous one.
        let mut i = 0;
        let mut done = 0;
        while i < n {
            let floor = (done + 1).max(i + 1);
            let fits = |k: usize| {
                prefix[k] - prefix[i] <= target
                    && units[k - 1].end - units[i].start <= self.opts.max_chunk_bytes
            };
            let mut j = floor;
            while j < n && fits(j + 1) {
                j += 1;
            }
            let mut k = if j < n {
                self.best_cut(units, &prefix, i, j, target, floor)
            } else {
                j
            };
            let mut tokens = self.counter.count(self.span_text(units, i, k));
            if tokens > self.opts.max_tokens && k > floor {
                // The estimate was optimistic (sub-additive tokenizers): largest prefix that fits.
                let (mut lo, mut hi) = (floor, k - 1);
                while lo < hi {
                    let mid = (lo + hi).div_ceil(2);
                    if self.counter.count(self.span_text(units, i, mid)) <= self.opts.max_tokens {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                k = lo;
                tokens = self.counter.count(self.span_text(units, i, k));
            }
            if tokens > self.opts.max_tokens && i < done {
                i = done; // the overlap crowds out the next unit: start without it
                continue;
            }
            self.emit(seg, units[i].start, units[k - 1].end, tokens);
            done = k;
            if k >= n {
                break;
            }
            let mut s = k;
            // Overlap is bounded in bytes too, so zero-cost units cannot make it swallow the chunk.
            while s > i + 1
                && prefix[k] - prefix[s - 1] <= self.opts.overlap_tokens
                && units[k - 1].end - units[s - 1].start <= self.opts.max_chunk_bytes / 4
            {
                s -= 1;
            }
            // ...and it must leave room for the next unit within the target.
            while s < k
                && (prefix[k + 1] - prefix[s] > target
                    || units[k].end - units[s].start > self.opts.max_chunk_bytes)
            {
                s += 1;
            }
            i = s;
        }
    }

    /// The chunk `units[i..k]` ends where the break is best: the last block end, else sentence
    /// end, else word, among cuts `k >= floor` that keep at least half the target.
    fn best_cut(
        &self,
        units: &[Unit],
        prefix: &[usize],
        i: usize,
        j: usize,
        target: usize,
        floor: usize,
    ) -> usize {
        let min = target / 2;
        for want in [2u8, 1] {
            let cut = (floor..=j)
                .rev()
                .find(|&k| units[k - 1].brk >= want && prefix[k] - prefix[i] >= min);
            if let Some(k) = cut {
                return k;
            }
        }
        j
    }

    fn span_text(&self, units: &[Unit], i: usize, k: usize) -> &str {
        &self.doc.text[units[i].start..units[k - 1].end]
    }

    fn emit(&mut self, seg: &Segment, start: usize, end: usize, tokens: usize) {
        self.chunks.push(Chunk {
            doc_id: self.doc.id.clone(),
            index: self.chunks.len() as u32,
            heading_path: seg.path.clone(),
            page: seg.page,
            span: (start, end),
            text: self.doc.text[start..end].to_string(),
            tokens,
        });
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff
        | 0x20000..=0x2fa1f)
}

fn is_sentence_end(word: &str) -> bool {
    let w = word.trim_end_matches(['"', '\'', ')', ']', '\u{201d}', '\u{2019}']);
    w.ends_with(['.', '!', '?', '。', '！', '？', ':', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approx_counter_estimates_wordpiece() {
        let c = ApproxTokenCounter;
        assert_eq!(c.count(""), 2);
        assert_eq!(c.count("the cat, sat."), 2 + 3 + 2);
        assert_eq!(c.count("internationalization"), 2 + 4);
        assert_eq!(c.count("日本語"), 2 + 3);
    }

    #[test]
    fn sentence_ends() {
        assert!(is_sentence_end("end.") && is_sentence_end("(quoted!)\u{201d}"));
        assert!(!is_sentence_end("e.g") && !is_sentence_end("word"));
    }
}
