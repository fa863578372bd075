//! Markdown (CommonMark + GFM tables, footnotes, strikethrough, task lists) via pulldown-cmark,
//! rendered to plain text: markup disappears, headings/paragraphs/list items/code blocks/table
//! cells become blocks. Raw HTML and front matter are dropped.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::builder::Inline;
use super::{BlockKind, Budget, Extracted, TextBuilder};
use crate::Result;

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted> {
    let source = super::text::decode(bytes);
    budget.step(source.len() as u64 / 16 + 1)?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut out = TextBuilder::new(&budget.limits);
    let mut inline = Inline::new(budget.limits.max_text_bytes);
    // Open blocks, innermost last; text belongs to the innermost.
    let mut stack: Vec<BlockKind> = Vec::new();
    let mut in_code = false;
    let mut skip = 0usize; // inside front matter or an HTML block
    let mut first_h1: Option<String> = None;
    let flush = |inline: &mut Inline, out: &mut TextBuilder, kind: BlockKind| -> Result<()> {
        if !inline.is_empty() {
            out.push(kind, &inline.take(), None)?;
        }
        Ok(())
    };
    for event in Parser::new_ext(&source, options) {
        budget.step(1)?;
        let current = stack.last().copied().unwrap_or(BlockKind::Paragraph);
        match event {
            Event::Start(tag) => {
                if matches!(tag, Tag::MetadataBlock(_) | Tag::HtmlBlock) {
                    skip += 1;
                    continue;
                }
                let Some(kind) = block_kind(&tag, current) else {
                    continue;
                };
                flush(&mut inline, &mut out, current)?;
                in_code |= kind == BlockKind::Code;
                stack.push(kind);
            }
            Event::End(end) => {
                if matches!(end, TagEnd::MetadataBlock(_) | TagEnd::HtmlBlock) {
                    skip = skip.saturating_sub(1);
                    continue;
                }
                if !is_block_end(&end) {
                    continue;
                }
                if end == TagEnd::Heading(HeadingLevel::H1) && first_h1.is_none() {
                    first_h1 = Some(inline_preview(&inline));
                }
                flush(&mut inline, &mut out, current)?;
                stack.pop();
                if end == TagEnd::CodeBlock {
                    in_code = false;
                }
                if matches!(end, TagEnd::TableRow | TagEnd::TableHead) {
                    out.end_row();
                }
            }
            Event::Text(t) if skip == 0 => {
                if in_code {
                    inline.push_raw(&t)?;
                } else {
                    inline.push(&t)?;
                }
            }
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) if skip == 0 => {
                inline.push(&t)?;
            }
            Event::SoftBreak | Event::HardBreak => inline.space(),
            Event::TaskListMarker(done) => inline.push(if done { "[x] " } else { "[ ] " })?,
            _ => {}
        }
    }
    flush(&mut inline, &mut out, BlockKind::Paragraph)?;
    let title = first_h1.or_else(|| out.first_heading());
    let (text, blocks) = out.finish();
    Ok(Extracted {
        title,
        text,
        blocks,
    })
}

fn inline_preview(inline: &Inline) -> String {
    inline.peek().chars().take(300).collect()
}

/// The block a start tag opens; `None` for inline tags.
fn block_kind(tag: &Tag<'_>, outer: BlockKind) -> Option<BlockKind> {
    Some(match tag {
        Tag::Heading { level, .. } => BlockKind::Heading(*level as u8),
        Tag::CodeBlock(_) => BlockKind::Code,
        Tag::Item | Tag::DefinitionListTitle | Tag::DefinitionListDefinition => BlockKind::ListItem,
        Tag::TableCell => BlockKind::TableCell,
        Tag::Table(_) | Tag::TableHead | Tag::TableRow => BlockKind::Paragraph,
        Tag::Paragraph
        | Tag::BlockQuote(_)
        | Tag::List(_)
        | Tag::FootnoteDefinition(_)
        | Tag::DefinitionList => match outer {
            BlockKind::ListItem | BlockKind::TableCell => outer,
            _ => BlockKind::Paragraph,
        },
        _ => return None,
    })
}

fn is_block_end(end: &TagEnd) -> bool {
    matches!(
        end,
        TagEnd::Heading(_)
            | TagEnd::CodeBlock
            | TagEnd::Item
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::TableCell
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::Paragraph
            | TagEnd::BlockQuote(_)
            | TagEnd::List(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    fn run(md: &str) -> Extracted {
        extract(md.as_bytes(), &mut Budget::new(&Limits::default())).unwrap()
    }

    #[test]
    fn structure_and_plain_text() {
        let e = run("---\ntitle: meta\n---\n# The *Title*\n\nSome `code` and [a link](http://x).\n\
                     Soft break.\n\n## Sub\n\n- one\n- two\n  - nested\n\n```rust\nfn f() {\n    1\n}\n```\n\n\
                     | a | b |\n|---|---|\n| c | d |\n\n<div>raw html</div>\n\n> quoted\n");
        use BlockKind::*;
        let got: Vec<(BlockKind, &str)> = e
            .blocks
            .iter()
            .map(|b| (b.kind, &e.text[b.span.0..b.span.1]))
            .collect();
        assert_eq!(
            got,
            [
                (Heading(1), "The Title"),
                (Paragraph, "Some code and a link. Soft break."),
                (Heading(2), "Sub"),
                (ListItem, "one"),
                (ListItem, "two"),
                (ListItem, "nested"),
                (Code, "fn f() {\n    1\n}"),
                (TableCell, "a"),
                (TableCell, "b"),
                (TableCell, "c"),
                (TableCell, "d"),
                (Paragraph, "quoted"),
            ]
        );
        assert_eq!(e.title.as_deref(), Some("The Title"));
        assert!(e.text.contains("a\tb\nc\td"));
        assert!(!e.text.contains("meta") && !e.text.contains("raw html"));
    }

    #[test]
    fn deep_nesting_is_fine() {
        let quotes = format!("{} deep\n", ">".repeat(10_000));
        assert_eq!(run(&quotes).text, "deep");
        let lists: String = (0..2_000)
            .map(|i| format!("{}- item{i}\n", "  ".repeat(i)))
            .collect();
        let e = run(&lists);
        assert!(
            e.text.starts_with("item0"),
            "{}",
            &e.text[..50.min(e.text.len())]
        );
    }
}
