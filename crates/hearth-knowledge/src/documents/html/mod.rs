//! HTML: the main content only. The content root is `<main>` (or `role="main"`), else a single
//! `<article>`, else the element that a readability-style density score picks, else `<body>`.
//! Inside it, navigation, asides, footers, scripts, forms' controls and hidden elements are
//! dropped; headings, paragraphs, list items, table cells and `<pre>` blocks become blocks.
//!
//! html5ever builds the tree (any nesting depth); every walk here is iterative, so deep input
//! costs time linear in its size and no stack.

mod survey;

use std::collections::HashMap;

use ego_tree::iter::Edge;
use ego_tree::{NodeId, NodeRef};
use scraper::{Html, Node};

use super::builder::Inline;
use super::{BlockKind, Budget, Extracted, TextBuilder};
use crate::Result;
use survey::{is_boilerplate, parse_cost, survey, Stats};

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted> {
    let source = decode(bytes);
    // html5ever's tree building costs about the open-element depth per start tag (scope
    // checks walk the stack), so 100k nested <div>s would run for minutes: charge that
    // estimate before parsing.
    budget.step(source.len() as u64 / 16 + parse_cost(&source))?;
    let html = Html::parse_document(&source);
    let stats = survey(&html, budget)?;
    let semantic = stats.main.or(stats.single_article);
    let root = semantic
        .or(stats.densest)
        .or(stats.body)
        .and_then(|id| html.tree.get(id))
        .unwrap_or_else(|| html.tree.root());
    // Without semantic markup, link-dense lists and tables inside the chosen root are menus.
    let prune = if semantic.is_none() {
        Some(&stats.stats)
    } else {
        None
    };
    let mut walk = Walk::new(budget, prune);
    walk.run(root)?;
    let title = stats
        .title
        .filter(|t| !t.is_empty())
        .or_else(|| walk.out.first_heading());
    let (text, blocks) = walk.out.finish();
    Ok(Extracted {
        title,
        text,
        blocks,
    })
}

/// BOM, then a `charset=` declaration near the top, then UTF-8, then windows-1252.
fn decode(bytes: &[u8]) -> String {
    if encoding_rs::Encoding::for_bom(bytes).is_none() && std::str::from_utf8(bytes).is_err() {
        let head: Vec<u8> = bytes
            .iter()
            .take(2048)
            .map(u8::to_ascii_lowercase)
            .collect();
        if let Some(at) = super::find(&head, b"charset=") {
            let label: Vec<u8> = head[at + 8..]
                .iter()
                .copied()
                .skip_while(|&c| c == b'"' || c == b'\'')
                .take_while(|c| c.is_ascii_alphanumeric() || b"-_:.".contains(c))
                .collect();
            if let Some(enc) = encoding_rs::Encoding::for_label(&label) {
                return enc.decode_without_bom_handling(bytes).0.into_owned();
            }
        }
    }
    super::text::decode(bytes)
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "section"
            | "article"
            | "main"
            | "header"
            | "footer"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "pre"
            | "blockquote"
            | "li"
            | "dt"
            | "dd"
            | "td"
            | "th"
            | "tr"
            | "table"
            | "ul"
            | "ol"
            | "dl"
            | "figure"
            | "figcaption"
            | "address"
            | "details"
            | "summary"
            | "hr"
            | "body"
            | "html"
            | "center"
            | "fieldset"
            | "caption"
            | "legend"
            | "hgroup"
            | "menu"
            | "tbody"
            | "thead"
            | "tfoot"
    )
}

/// The block kind an element opens, given the kind of the enclosing block.
fn block_kind(name: &str, outer: BlockKind) -> BlockKind {
    match name {
        "h1" => BlockKind::Heading(1),
        "h2" => BlockKind::Heading(2),
        "h3" => BlockKind::Heading(3),
        "h4" => BlockKind::Heading(4),
        "h5" => BlockKind::Heading(5),
        "h6" => BlockKind::Heading(6),
        "pre" => BlockKind::Code,
        "li" | "dt" | "dd" => BlockKind::ListItem,
        "td" | "th" => BlockKind::TableCell,
        "table" | "tr" | "tbody" | "thead" | "tfoot" => BlockKind::Paragraph,
        _ => match outer {
            BlockKind::Heading(_) | BlockKind::Code => BlockKind::Paragraph,
            other => other,
        },
    }
}

/// The second pass: blocks from the content root.
struct Walk<'b> {
    budget: &'b mut Budget,
    out: TextBuilder,
    inline: Inline,
    prune: Option<&'b HashMap<NodeId, Stats>>,
}

impl<'b> Walk<'b> {
    fn new(budget: &'b mut Budget, prune: Option<&'b HashMap<NodeId, Stats>>) -> Self {
        let out = TextBuilder::new(&budget.limits);
        let inline = Inline::new(budget.limits.max_text_bytes);
        Walk {
            budget,
            out,
            inline,
            prune,
        }
    }

    /// A list, table or box that is mostly link text (when pruning is on).
    fn link_dense(&self, id: NodeId, name: &str) -> bool {
        let Some(stats) = self.prune.and_then(|p| p.get(&id)) else {
            return false;
        };
        matches!(name, "ul" | "ol" | "dl" | "table" | "div" | "section")
            && stats.chars > 0
            && stats.link_density() > 0.5
    }

    fn flush(&mut self, kind: BlockKind) -> Result<()> {
        if !self.inline.is_empty() {
            let text = self.inline.take();
            self.out.push(kind, &text, None)?;
        }
        Ok(())
    }

    fn run(&mut self, root: NodeRef<'_, Node>) -> Result<()> {
        // `header` survives inside an article/main, including when the root sits in one.
        let mut article_depth =
            usize::from(root.ancestors().chain(std::iter::once(root)).any(|n| {
                n.value()
                    .as_element()
                    .is_some_and(|e| matches!(e.name(), "article" | "main"))
            }));
        let mut pre_depth = 0usize;
        let mut skipping: Option<NodeId> = None;
        let mut stack: Vec<(NodeId, BlockKind)> = Vec::new();
        for edge in root.traverse() {
            self.budget.step(1)?;
            let current = stack.last().map_or(BlockKind::Paragraph, |s| s.1);
            match edge {
                Edge::Open(node) => {
                    if skipping.is_some() {
                        continue;
                    }
                    match node.value() {
                        Node::Text(t) if pre_depth > 0 => self.inline.push_raw(t)?,
                        Node::Text(t) => self.inline.push(t)?,
                        Node::Element(el) => {
                            let name = el.name();
                            let drop = is_boilerplate(el, article_depth > 0)
                                || name == "title"
                                || self.link_dense(node.id(), name);
                            if drop {
                                skipping = Some(node.id());
                                continue;
                            }
                            match name {
                                "article" | "main" => article_depth += 1,
                                "pre" => pre_depth += 1,
                                "br" if pre_depth > 0 => self.inline.push_raw("\n")?,
                                "br" => self.inline.space(),
                                "img" => {
                                    if let Some(alt) = el.attr("alt") {
                                        self.inline.push(alt)?;
                                    }
                                }
                                _ => {}
                            }
                            if is_block(name) {
                                self.flush(current)?;
                                stack.push((node.id(), block_kind(name, current)));
                            }
                        }
                        _ => {}
                    }
                }
                Edge::Close(node) => {
                    if let Some(id) = skipping {
                        if id == node.id() {
                            skipping = None;
                        }
                        continue;
                    }
                    let Node::Element(el) = node.value() else {
                        continue;
                    };
                    let name = el.name();
                    match name {
                        "article" | "main" => article_depth = article_depth.saturating_sub(1),
                        "pre" => pre_depth = pre_depth.saturating_sub(1),
                        _ => {}
                    }
                    if is_block(name) && stack.last().is_some_and(|s| s.0 == node.id()) {
                        self.flush(current)?;
                        stack.pop();
                        if name == "tr" {
                            self.out.end_row();
                        }
                    }
                }
            }
        }
        self.flush(BlockKind::Paragraph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    fn run(html: &str) -> Extracted {
        extract(html.as_bytes(), &mut Budget::new(&Limits::default())).unwrap()
    }

    fn blocks(e: &Extracted) -> Vec<(BlockKind, &str)> {
        e.blocks
            .iter()
            .map(|b| (b.kind, &e.text[b.span.0..b.span.1]))
            .collect()
    }

    #[test]
    fn main_wins_and_boilerplate_goes() {
        let e = run(
            r##"<html><head><title> T </title><style>p{}</style></head><body>
            <nav>Menu A</nav><header>Site banner</header>
            <main><header><h1>Real <em>title</em></h1></header>
              <p>First   para
                 with <a href="#">link</a>.</p>
              <div hidden>secret one</div><p aria-hidden="true">secret two</p>
              <p style="display: none">secret three</p><span style="visibility:hidden">s4</span>
              <ul><li>one</li><li>two <ul><li>inner</li></ul> tail</li></ul>
              <pre><code>fn main() {
    x();
}</code></pre>
              <table><tr><td>a</td><th>b</th></tr><tr><td>c</td></tr></table>
              <aside>Related</aside><script>var x;</script>
            </main><footer>Copyright</footer></body></html>"##,
        );
        assert_eq!(e.title.as_deref(), Some("T"));
        use BlockKind::*;
        assert_eq!(
            blocks(&e),
            [
                (Heading(1), "Real title"),
                (Paragraph, "First para with link."),
                (ListItem, "one"),
                (ListItem, "two"),
                (ListItem, "inner"),
                (ListItem, "tail"),
                (Code, "fn main() {\n    x();\n}"),
                (TableCell, "a"),
                (TableCell, "b"),
                (TableCell, "c"),
            ]
        );
        assert!(e.text.contains("a\tb\nc"));
        for gone in [
            "Menu",
            "banner",
            "secret",
            "s4",
            "Related",
            "var x",
            "Copyright",
            "p{}",
        ] {
            assert!(!e.text.contains(gone), "{gone:?} leaked into {:?}", e.text);
        }
    }

    #[test]
    fn density_picks_the_content_column() {
        let para = "This sentence is long enough to count as real content, with commas, clauses, \
                    and more words than any menu entry would ever hold.";
        let links: String = (0..30)
            .map(|i| format!("<li><a href='/{i}'>Link {i}</a></li>"))
            .collect();
        let page = format!(
            "<body><div id=side><ul>{links}</ul></div><div id=promo><p>Buy now</p></div>\
             <div id=content><div><h2>Section</h2><p>{para}</p><p>{para}</p><p>{para}</p></div>\
             <div><h2>Second</h2><p>{para}</p></div><ul>{links}</ul></div></body>"
        );
        let e = run(&page);
        assert!(e.text.starts_with("Section\n\nThis sentence"), "{}", e.text);
        // The smaller second section stays; menus outside and inside the column go.
        assert!(e.text.contains("Second\n\nThis sentence"), "{}", e.text);
        assert!(!e.text.contains("Link 3") && !e.text.contains("Buy now"));
        assert_eq!(e.title.as_deref(), Some("Section"));
    }

    #[test]
    fn legacy_charset_is_honoured() {
        let bytes = b"<html><head><meta charset=\"iso-8859-1\"></head><body><p>caf\xe9</p></body>";
        let e = extract(bytes, &mut Budget::new(&Limits::default())).unwrap();
        assert_eq!(e.text, "café");
    }

    #[test]
    fn deep_nesting_is_iterative() {
        let depth = 10_000;
        let page = format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth));
        assert_eq!(run(&page).text, "deep");
        let spans = format!(
            "<p>{}x{}</p>",
            "<span><b>".repeat(depth),
            "</b></span>".repeat(depth)
        );
        assert_eq!(run(&spans).text, "x");
    }
}
