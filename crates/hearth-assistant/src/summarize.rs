//! Summarize a document of any length. When the whole text fits the context it is summarized
//! in one pass; otherwise map-reduce: consecutive sections are grouped to fit and each group
//! is summarized (map), then the summaries are summarized, in groups again while they do not
//! fit together (reduce), so every section, the last one included, reaches the model. Sections
//! are numbered sources throughout, so the summary cites them as [n].

use hearth_knowledge::{BlockKind, Document, IndexedChunk};
use serde::Serialize;

use crate::cite::{self, Citation};
use crate::generator::{measure, run, Generator, Message, Prompt};
use crate::pack::{check_fits, input_budget, longest_prefix};
use crate::prompt::{attr, source_block, summary_block, SUMMARIZE_SYSTEM};
use crate::{AssistantError, Result};

/// Longest prefix of a section measured when splitting it, in bytes per token of budget: no
/// tokenizer packs more than this into one token, and measuring a whole long section for
/// every cut would make splitting quadratic.
const MAX_BYTES_PER_TOKEN: usize = 32;

/// A stretch of a document under one heading path (and on one page).
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Heading path joined with " › " (empty before the first heading).
    pub heading: String,
    pub page: Option<u32>,
    /// Byte range in the document text; `text` is that range of it.
    pub span: [usize; 2],
    pub text: String,
}

/// A document's text in sections, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentText {
    /// Path or URL.
    pub source: String,
    pub title: String,
    pub sections: Vec<Section>,
}

impl DocumentText {
    /// Sections from an extracted document's blocks: a new section at every heading and every
    /// page change; a heading with no text of its own joins the next section's path.
    pub fn from_document(doc: &Document, source: &str) -> Self {
        let mut sections: Vec<Section> = Vec::new();
        let mut path: Vec<(u8, &str)> = Vec::new();
        let mut open: Option<Section> = None;
        for block in &doc.blocks {
            let text = doc.block_text(block);
            if let BlockKind::Heading(level) = block.kind {
                sections.extend(open.take());
                path.retain(|(l, _)| *l < level);
                path.push((level, text));
                continue;
            }
            let heading = path.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" › ");
            match &mut open {
                Some(s) if s.page == block.page && s.heading == heading => s.span[1] = block.span.1,
                _ => {
                    sections.extend(open.take());
                    open = Some(Section {
                        heading,
                        page: block.page,
                        span: [block.span.0, block.span.1],
                        text: String::new(),
                    });
                }
            }
        }
        sections.extend(open);
        if sections.is_empty() && !doc.text.trim().is_empty() {
            sections.push(Section {
                heading: String::new(),
                page: None,
                span: [0, doc.text.len()],
                text: String::new(),
            });
        }
        for s in &mut sections {
            s.text = doc.text.get(s.span[0]..s.span[1]).unwrap_or("").to_string();
        }
        sections.retain(|s| !s.text.trim().is_empty());
        DocumentText {
            source: source.to_string(),
            title: doc.title.clone(),
            sections,
        }
    }

    /// Sections from an indexed document's chunks (in document order): consecutive chunks with
    /// the same heading path and page form a section, with the chunker's overlap removed.
    pub fn from_chunks<'a>(
        source: &str,
        title: &str,
        chunks: impl IntoIterator<Item = &'a IndexedChunk>,
    ) -> Self {
        let mut sections: Vec<Section> = Vec::new();
        for c in chunks {
            let heading = c.heading_path.join(" › ");
            let start = c.span.0;
            // The chunker overlaps consecutive chunks: keep only what the last one lacks.
            let prev_end = sections.last().map_or(0, |s| s.span[1]);
            let skip = prev_end.saturating_sub(start);
            let (start, new) = match c.text.get(skip..) {
                Some(t) => (start + skip, t),
                None if skip < c.text.len() => (start, c.text.as_str()),
                None => continue, // wholly inside the previous chunk
            };
            if new.is_empty() {
                continue;
            }
            match sections.last_mut() {
                Some(s) if s.heading == heading && s.page == c.page && s.span[1] == start => {
                    s.text.push_str(new);
                    s.span[1] = start + new.len();
                }
                _ => sections.push(Section {
                    heading,
                    page: c.page,
                    span: [start, start + new.len()],
                    text: new.to_string(),
                }),
            }
        }
        DocumentText {
            source: source.to_string(),
            title: title.to_string(),
            sections,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SummarizeOptions {
    /// Tokens reserved for (and generated at most in) the final summary.
    pub summary_tokens: usize,
    /// Tokens reserved for each partial summary of the map and intermediate reduce steps.
    pub part_tokens: usize,
}

impl Default for SummarizeOptions {
    fn default() -> Self {
        SummarizeOptions {
            summary_tokens: 384,
            part_tokens: 192,
        }
    }
}

/// Where a summarization is, reported before each generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Summarizing group `group` (from 1) of `of` groups of sections.
    Map { group: usize, of: usize },
    /// Reduce round `round` (from 1): summarizing group `group` of `of` groups of summaries.
    Reduce {
        round: usize,
        group: usize,
        of: usize,
    },
    /// The final pass, whose pieces stream to `on_piece`.
    Final,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub text: String,
    /// The sections the summary cites, each once, in order of first mention.
    pub citations: Vec<Citation>,
    /// Numbers cited that name no section (dropped).
    pub unknown_citations: Vec<usize>,
    /// The numbered sections, `sections[i].n == i + 1` (long sections split into parts).
    pub sections: Vec<Citation>,
    /// Generator calls made (1 when the document fitted in one pass).
    pub calls: usize,
    /// Stopped by the caller (`on_step` or `on_piece`); `text` is what there was by then.
    pub stopped: bool,
}

/// A summary of sections `first..=last` (1-based section numbers).
#[derive(Clone)]
struct Partial {
    first: usize,
    last: usize,
    text: String,
}

/// Summarizes `doc`. `on_step` is called before every generation and may cancel by returning
/// `false`; the final pass streams to `on_piece` (returning `false` stops it).
pub async fn summarize<G: Generator>(
    gen: &mut G,
    doc: &DocumentText,
    opts: &SummarizeOptions,
    on_step: &mut dyn FnMut(Step) -> bool,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Summary> {
    if doc.sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(AssistantError::InvalidInput(format!(
            "{}: no text to summarize",
            doc.source
        )));
    }
    let mut out = Summary {
        text: String::new(),
        citations: Vec::new(),
        unknown_citations: Vec::new(),
        sections: Vec::new(),
        calls: 0,
        stopped: false,
    };

    // One pass when everything fits.
    let whole: Vec<&Section> = doc.sections.iter().collect();
    let prompt = map_prompt(gen, doc, &whole, 1, true)?;
    if prompt.tokens.saturating_add(opts.summary_tokens) <= gen.context_len() {
        out.sections = numbered(doc, &whole);
        return finish(gen, prompt, opts, out, on_step, on_piece).await;
    }

    // Map: sections split to fit a prompt alone, then grouped.
    let parts = split_sections(gen, doc, opts.part_tokens)?;
    let refs: Vec<&Section> = parts.iter().collect();
    out.sections = numbered(doc, &refs);
    let groups = group(refs.len(), opts.part_tokens, gen, |range| {
        map_prompt(gen, doc, &refs[range.clone()], range.start + 1, false)
    })?;
    let mut partials = Vec::with_capacity(groups.len());
    for (g, (range, prompt)) in groups.iter().enumerate() {
        if !on_step(Step::Map {
            group: g + 1,
            of: groups.len(),
        }) {
            return Ok(stopped(out, &partials));
        }
        let text = run(gen, prompt, opts.part_tokens, &mut |_| true)
            .await?
            .text;
        out.calls += 1;
        partials.push(Partial {
            first: range.start + 1,
            last: range.end,
            text,
        });
    }

    // Reduce until the summaries fit one final prompt.
    let mut round = 0;
    loop {
        round += 1;
        let prompt = reduce_prompt(gen, doc, &partials, true)?;
        if prompt.tokens.saturating_add(opts.summary_tokens) <= gen.context_len() {
            return finish(gen, prompt, opts, out, on_step, on_piece).await;
        }
        let groups = group(partials.len(), opts.part_tokens, gen, |range| {
            reduce_prompt(gen, doc, &partials[range], false)
        })?;
        if groups.len() == partials.len() {
            // No two summaries fit one prompt: no progress is possible.
            return Err(AssistantError::ContextTooSmall {
                needed: prompt.tokens.saturating_add(opts.summary_tokens),
                context: gen.context_len(),
            });
        }
        let mut next = Vec::with_capacity(groups.len());
        for (g, (range, prompt)) in groups.iter().enumerate() {
            if range.len() == 1 {
                // Alone in its group: already a summary, carried over as it is.
                next.extend(partials.get(range.start).cloned());
                continue;
            }
            if !on_step(Step::Reduce {
                round,
                group: g + 1,
                of: groups.len(),
            }) {
                return Ok(stopped(out, &partials));
            }
            let text = run(gen, prompt, opts.part_tokens, &mut |_| true)
                .await?
                .text;
            out.calls += 1;
            next.push(Partial {
                first: partials[range.start].first,
                last: partials[range.end - 1].last,
                text,
            });
        }
        partials = next;
    }
}

/// The final generation, streamed, and its citations.
async fn finish<G: Generator>(
    gen: &mut G,
    prompt: Prompt,
    opts: &SummarizeOptions,
    mut out: Summary,
    on_step: &mut dyn FnMut(Step) -> bool,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Summary> {
    if !on_step(Step::Final) {
        out.stopped = true;
        return Ok(out);
    }
    let g = run(gen, &prompt, opts.summary_tokens, on_piece).await?;
    out.calls += 1;
    let cited = cite::resolve(&g.text, &out.sections);
    out.text = g.text;
    out.citations = cited.citations;
    out.unknown_citations = cited.unknown;
    out.stopped = g.stopped;
    Ok(out)
}

fn stopped(mut out: Summary, partials: &[Partial]) -> Summary {
    let text: Vec<&str> = partials.iter().map(|p| p.text.trim()).collect();
    out.text = text.join("\n\n");
    let cited = cite::resolve(&out.text, &out.sections);
    out.citations = cited.citations;
    out.unknown_citations = cited.unknown;
    out.stopped = true;
    out
}

fn numbered(doc: &DocumentText, sections: &[&Section]) -> Vec<Citation> {
    sections
        .iter()
        .enumerate()
        .map(|(i, s)| Citation {
            n: i + 1,
            source: doc.source.clone(),
            title: doc.title.clone(),
            heading: s.heading.clone(),
            page: s.page,
            span: s.span,
        })
        .collect()
}

/// Consecutive groups of `n` items, each as large as fits with `reply_tokens` to spare, with
/// their prompts. Fails if one item alone does not fit.
fn group<G: Generator>(
    n: usize,
    reply_tokens: usize,
    gen: &G,
    prompt: impl Fn(std::ops::Range<usize>) -> Result<Prompt>,
) -> Result<Vec<(std::ops::Range<usize>, Prompt)>> {
    let budget = input_budget(gen, reply_tokens);
    let mut groups = Vec::new();
    let mut start = 0;
    while start < n {
        let first = prompt(start..start + 1)?;
        check_fits(gen, &first, reply_tokens)?;
        let mut best = (start..start + 1, first);
        for end in start + 2..=n {
            let p = prompt(start..end)?;
            if p.tokens > budget {
                break;
            }
            best = (start..end, p);
        }
        start = best.0.end;
        groups.push(best);
    }
    Ok(groups)
}

/// Sections split into parts that each fit a map prompt alone.
fn split_sections<G: Generator>(
    gen: &G,
    doc: &DocumentText,
    part_tokens: usize,
) -> Result<Vec<Section>> {
    let budget = input_budget(gen, part_tokens);
    let fits = |s: &Section| -> Result<bool> {
        Ok(map_prompt(gen, doc, &[s], 1, false)?.tokens <= budget)
    };
    let mut parts = Vec::new();
    for s in &doc.sections {
        if s.text.trim().is_empty() {
            continue;
        }
        if fits(s)? {
            parts.push(s.clone());
            continue;
        }
        let mut at = 0; // byte offset into s.text
        let mut k = 1;
        while at < s.text.len() {
            let rest = &s.text[at..];
            let lead = rest.len() - rest.trim_start().len();
            let rest = &rest[lead..];
            if rest.is_empty() {
                break;
            }
            let window = floor_char_boundary(rest, budget.saturating_mul(MAX_BYTES_PER_TOKEN));
            let part = |end: usize| Section {
                heading: format!("{} (part {k})", s.heading).trim_start().to_string(),
                page: s.page,
                span: [s.span[0] + at + lead, s.span[0] + at + lead + end],
                text: rest[..end].to_string(),
            };
            let end = longest_prefix(&rest[..window], |p| fits(&part(p.len())))?;
            let Some(end) = end else {
                let p = map_prompt(gen, doc, &[&part(0)], 1, false)?;
                return Err(AssistantError::ContextTooSmall {
                    needed: p.tokens.saturating_add(part_tokens + 1),
                    context: gen.context_len(),
                });
            };
            parts.push(part(end));
            at += lead + end;
            k += 1;
        }
    }
    Ok(parts)
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A prompt summarizing `sections`, numbered from `first_n`; `whole` when they are the whole
/// document (one pass), else a map step's group.
fn map_prompt<G: Generator>(
    gen: &G,
    doc: &DocumentText,
    sections: &[&Section],
    first_n: usize,
    whole: bool,
) -> Result<Prompt> {
    let mut user = format!("Document: \"{}\"\n\n", attr(&doc.title));
    for (i, s) in sections.iter().enumerate() {
        user.push_str(&source_block(first_n + i, "", &s.heading, s.page, &s.text));
        user.push_str("\n\n");
    }
    user.push_str(if whole {
        "Summarize the document."
    } else {
        "Summarize these sections of the document."
    });
    measure(
        gen,
        &[Message::system(SUMMARIZE_SYSTEM), Message::user(user)],
    )
}

/// A prompt summarizing consecutive partial summaries; `last` for the final summary.
fn reduce_prompt<G: Generator>(
    gen: &G,
    doc: &DocumentText,
    partials: &[Partial],
    last: bool,
) -> Result<Prompt> {
    let mut user = format!(
        "Document: \"{}\"\n\nSummaries of consecutive parts of the document, in order:\n\n",
        attr(&doc.title)
    );
    for (i, p) in partials.iter().enumerate() {
        user.push_str(&summary_block(i + 1, p.first, p.last, &p.text));
        user.push_str("\n\n");
    }
    user.push_str(if last {
        "Write one summary of the whole document from these summaries."
    } else {
        "Write one summary of these parts of the document."
    });
    measure(
        gen,
        &[Message::system(SUMMARIZE_SYSTEM), Message::user(user)],
    )
}
