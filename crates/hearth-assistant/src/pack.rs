//! Fitting text into the generator's context, counted in the generator's own tokens.
//!
//! Token counts of concatenated texts are not sums (merges across the seams, template
//! whitespace), so every decision measures the whole rendered prompt it would send.

use crate::cite::Citation;
use crate::generator::{measure, Generator, Message, Prompt};
use crate::prompt::{ask_user, source_block};
use crate::retrieve::Retrieved;
use crate::{AssistantError, Result};

/// Marks text cut short to fit.
pub const ELLIPSIS: &str = " …";

/// Tokens a prompt may use: the context less the room reserved for the reply.
pub fn input_budget<G: Generator>(gen: &G, reply_tokens: usize) -> usize {
    gen.context_len().saturating_sub(reply_tokens)
}

/// Fails with [`AssistantError::ContextTooSmall`] unless `prompt` leaves `reply_tokens`.
pub fn check_fits<G: Generator>(gen: &G, prompt: &Prompt, reply_tokens: usize) -> Result<()> {
    if prompt.tokens.saturating_add(reply_tokens) > gen.context_len() {
        return Err(AssistantError::ContextTooSmall {
            needed: prompt.tokens.saturating_add(reply_tokens),
            context: gen.context_len(),
        });
    }
    Ok(())
}

/// Byte offsets at which `text` may be cut: after each word (before the whitespace that follows
/// it), and the end.
fn word_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                ends.push(i);
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    if in_word {
        ends.push(text.len());
    }
    ends
}

/// The longest prefix `text[..end]` for which `fits` holds, cut at a word end, or inside the
/// first word when that alone does not fit (a blob without spaces); `None` when not even its
/// first character fits. `fits` must be monotone (a longer prefix never fits when a shorter
/// one does not). Binary search: O(log len) measurements.
pub fn longest_prefix(
    text: &str,
    mut fits: impl FnMut(&str) -> Result<bool>,
) -> Result<Option<usize>> {
    if let Some(end) = search(&word_ends(text), text, &mut fits)? {
        return Ok(Some(end));
    }
    let chars: Vec<usize> = text.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
    search(&chars, text, &mut fits)
}

/// The last of the increasing cut points `ends` whose prefix fits.
fn search(
    ends: &[usize],
    text: &str,
    fits: &mut impl FnMut(&str) -> Result<bool>,
) -> Result<Option<usize>> {
    let (mut lo, mut hi) = (0usize, ends.len()); // ends[..lo] known to fit
    while lo < hi {
        let mid = (lo + hi).div_ceil(2); // try ends[mid - 1]
        if fits(&text[..ends[mid - 1]])? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo.checked_sub(1).map(|i| ends[i]))
}

/// An ask prompt with the retrieved chunks that fit.
#[derive(Clone, Debug)]
pub struct PackedAsk {
    pub prompt: Prompt,
    /// The sources given, `sources[i].n == i + 1`.
    pub sources: Vec<Citation>,
    /// Whether the last source given was cut short to fit.
    pub truncated: bool,
}

/// Builds `[system, history…, user(sources + question)]` with as many of `candidates` (best
/// first) as fit while leaving `reply_tokens` of the context for the answer. A chunk that
/// does not fit is skipped (a later, shorter one may); if not even the best one fits whole,
/// as much of it as fits is given. Fails if the prompt does not fit without sources, or if
/// there are candidates and not one word of the best fits.
pub fn pack_ask<G: Generator>(
    gen: &G,
    system: &str,
    history: &[Message],
    question: &str,
    candidates: &[&Retrieved],
    reply_tokens: usize,
) -> Result<PackedAsk> {
    let build = |blocks: &[String]| {
        let mut m = Vec::with_capacity(history.len() + 2);
        m.push(Message::system(system));
        m.extend_from_slice(history);
        m.push(Message::user(ask_user(blocks, question)));
        measure(gen, &m)
    };
    let budget = input_budget(gen, reply_tokens);
    let mut best = build(&[])?;
    check_fits(gen, &best, reply_tokens)?;
    let mut blocks: Vec<String> = Vec::new();
    let mut sources = Vec::new();
    let mut truncated = false;
    for r in candidates {
        let n = blocks.len() + 1;
        let v = &r.view;
        blocks.push(source_block(n, &v.title, &v.heading, v.page, &v.text));
        let p = build(&blocks)?;
        if p.tokens <= budget {
            best = p;
            sources.push(r.citation(n));
            continue;
        }
        blocks.pop();
        if !blocks.is_empty() {
            continue;
        }
        // Not even the best chunk fits whole: give the start of it.
        let cut = longest_prefix(&v.text, |prefix| {
            let block = source_block(n, &v.title, &v.heading, v.page, &cut_text(prefix));
            Ok(build(std::slice::from_ref(&block))?.tokens <= budget)
        })?;
        let Some(end) = cut else {
            // What the smallest cut (one character) would need.
            let one = v
                .text
                .char_indices()
                .nth(1)
                .map_or(v.text.len(), |(i, _)| i);
            let block = source_block(n, &v.title, &v.heading, v.page, &cut_text(&v.text[..one]));
            return Err(AssistantError::ContextTooSmall {
                needed: build(&[block])?.tokens.saturating_add(reply_tokens),
                context: gen.context_len(),
            });
        };
        let text = cut_text(&v.text[..end]);
        blocks.push(source_block(n, &v.title, &v.heading, v.page, &text));
        best = build(&blocks)?;
        let mut c = r.citation(n);
        c.span = [v.span[0], v.span[0] + end];
        sources.push(c);
        truncated = true;
    }
    Ok(PackedAsk {
        prompt: best,
        sources,
        truncated,
    })
}

fn cut_text(prefix: &str) -> String {
    format!("{prefix}{ELLIPSIS}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_cuts_at_word_ends() {
        let text = "one two  three four";
        let words = |s: &str| s.split_whitespace().count();
        for max in 0..=5 {
            let got = longest_prefix(text, |p| Ok(words(p) <= max)).unwrap();
            let want = match max {
                0 => None,
                1 => Some(3),
                2 => Some(7),
                3 => Some(14),
                _ => Some(text.len()),
            };
            assert_eq!(got, want, "max {max}");
        }
        assert_eq!(longest_prefix("", |_| Ok(true)).unwrap(), None);
        // One long word: cut inside it, at a character boundary.
        let blob = "ééééé rest";
        let got = longest_prefix(blob, |p| Ok(p.len() <= 5)).unwrap();
        assert_eq!(got, Some(4));
        assert_eq!(longest_prefix(blob, |p| Ok(p.len() <= 1)).unwrap(), None);
    }
}
