//! The first HTML pass: title, landmarks (`<main>`, `<article>`), per-element text statistics
//! for the density heuristic, and the cost estimate that bounds html5ever's work.

use std::collections::HashMap;

use ego_tree::iter::Edge;
use ego_tree::NodeId;
use scraper::node::Element;
use scraper::{Html, Node};

use crate::documents::builder::Inline;
use crate::documents::Budget;
use crate::Result;

/// Σ over start tags of the estimated open-element depth at that tag. Elements whose end tag
/// is optional or absent (`p`, `li`, `td`, void elements…) are not counted as open, since the
/// parser closes them implicitly; raw-text elements and comments are skipped.
pub(super) fn parse_cost(source: &str) -> u64 {
    let bytes = source.as_bytes();
    let mut cost = 0u64;
    let mut depth = 0u64;
    let mut i = 0;
    while let Some(lt) = bytes[i..].iter().position(|&b| b == b'<') {
        i += lt + 1;
        if bytes[i..].starts_with(b"!--") {
            i = crate::documents::find(&bytes[i..], b"-->").map_or(bytes.len(), |e| i + e + 3);
            continue;
        }
        let closing = bytes.get(i) == Some(&b'/');
        let name_start = i + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 {
            continue;
        }
        let name = source[name_start..name_start + name_len].to_ascii_lowercase();
        i = name_start + name_len;
        let implicit = matches!(
            name.as_str(),
            "p" | "li"
                | "dt"
                | "dd"
                | "tr"
                | "td"
                | "th"
                | "option"
                | "optgroup"
                | "thead"
                | "tbody"
                | "tfoot"
                | "colgroup"
                | "rb"
                | "rt"
                | "rp"
                | "br"
                | "img"
                | "hr"
                | "meta"
                | "link"
                | "input"
                | "area"
                | "base"
                | "col"
                | "embed"
                | "param"
                | "source"
                | "track"
                | "wbr"
        );
        if closing {
            if !implicit {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        // Start tags that close an open `p` search the stack for one ("in button scope").
        cost += if closes_p(&name) { depth } else { 1 };
        if matches!(
            name.as_str(),
            "script" | "style" | "textarea" | "title" | "xmp"
        ) {
            let end = format!("</{name}");
            let lower_rest = &bytes[i..];
            i = find_ascii_ci(lower_rest, end.as_bytes()).map_or(bytes.len(), |e| i + e);
            continue;
        }
        if !implicit {
            depth += 1;
        }
    }
    cost
}

fn closes_p(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "center"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "header"
            | "hgroup"
            | "main"
            | "menu"
            | "nav"
            | "ol"
            | "p"
            | "search"
            | "section"
            | "summary"
            | "ul"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "pre"
            | "listing"
            | "form"
            | "table"
            | "hr"
            | "xmp"
            | "plaintext"
            | "li"
            | "dd"
            | "dt"
    )
}

fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Elements never part of the readable content. `header` is kept inside `<article>`/`<main>`
/// (where it holds the title) and dropped elsewhere.
pub(super) fn is_boilerplate(el: &Element, in_article: bool) -> bool {
    let name = el.name();
    let by_name = matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "nav"
            | "aside"
            | "footer"
            | "head"
            | "button"
            | "select"
            | "textarea"
            | "input"
            | "svg"
            | "iframe"
            | "object"
            | "embed"
            | "canvas"
            | "dialog"
            | "audio"
            | "video"
            | "map"
    ) || (name == "header" && !in_article);
    if by_name || el.attr("hidden").is_some() {
        return true;
    }
    if el
        .attr("aria-hidden")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    if let Some(role) = el.attr("role") {
        let role = role.trim().to_ascii_lowercase();
        let landmark = matches!(
            role.as_str(),
            "navigation"
                | "contentinfo"
                | "complementary"
                | "search"
                | "menu"
                | "menubar"
                | "toolbar"
                | "dialog"
                | "alertdialog"
        );
        if landmark || (role == "banner" && !in_article) {
            return true;
        }
    }
    if let Some(style) = el.attr("style") {
        let style: String = style
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if style.contains("display:none") || style.contains("visibility:hidden") {
            return true;
        }
    }
    el.classes().any(|c| c == "hidden" || c == "d-none")
}

/// What the first pass learns about the page.
#[derive(Default)]
pub(super) struct Survey {
    pub(super) title: Option<String>,
    pub(super) body: Option<NodeId>,
    pub(super) main: Option<NodeId>,
    pub(super) single_article: Option<NodeId>,
    pub(super) densest: Option<NodeId>,
    /// Per element: text statistics of its (non-boilerplate) subtree.
    pub(super) stats: HashMap<NodeId, Stats>,
}

#[derive(Clone, Copy, Default)]
pub(super) struct Stats {
    /// Non-whitespace characters.
    pub(super) chars: usize,
    /// Of which inside links.
    pub(super) linked: usize,
    pub(super) commas: usize,
    /// Sum of the paragraph scores inside.
    pub(super) content: f64,
}

impl Stats {
    pub(super) fn link_density(&self) -> f64 {
        if self.chars == 0 {
            0.0
        } else {
            self.linked as f64 / self.chars as f64
        }
    }
}

/// One iterative pass over the whole tree: title, landmarks, and per-element text statistics.
/// Paragraph-like elements score by length and commas, discounted by their link density
/// (readability's signals); an element's content score is the sum over its subtree.
pub(super) fn survey(html: &Html, budget: &mut Budget) -> Result<Survey> {
    let mut s = Survey::default();
    let mut articles = 0usize;
    let mut first_article = None;
    let mut skipping: Option<NodeId> = None;
    let mut in_title = false;
    let mut title = Inline::new(4096);
    let mut acc: Vec<Stats> = vec![Stats::default()];
    let mut links = 0usize;
    for edge in html.tree.root().traverse() {
        budget.step(1)?;
        match edge {
            Edge::Open(node) => {
                if skipping.is_some() {
                    continue;
                }
                match node.value() {
                    Node::Text(t) => {
                        if in_title {
                            // The title never exceeds its small cap in real pages; cut quietly.
                            let _ = title.push(t);
                        }
                        if let Some(top) = acc.last_mut() {
                            let chars = t.chars().filter(|c| !c.is_whitespace()).count();
                            top.chars += chars;
                            top.commas += t.matches(',').count();
                            if links > 0 {
                                top.linked += chars;
                            }
                        }
                    }
                    Node::Element(el) => {
                        let name = el.name();
                        if name == "title" && s.title.is_none() {
                            in_title = true;
                            continue;
                        }
                        // `head` must be entered to find the title; its scripts and styles
                        // are still skipped one by one.
                        if is_boilerplate(el, false) && !matches!(name, "header" | "head") {
                            skipping = Some(node.id());
                            continue;
                        }
                        match name {
                            "body" => s.body = s.body.or(Some(node.id())),
                            "main" => s.main = s.main.or(Some(node.id())),
                            "article" => {
                                articles += 1;
                                first_article = first_article.or(Some(node.id()));
                            }
                            "a" => links += 1,
                            _ => {}
                        }
                        if s.main.is_none() && el.attr("role").is_some_and(|r| r == "main") {
                            s.main = Some(node.id());
                        }
                        acc.push(Stats::default());
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
                if name == "title" && in_title {
                    in_title = false;
                    s.title = Some(title.take());
                    continue;
                }
                if name == "a" {
                    links = links.saturating_sub(1);
                }
                let Some(mut mine) = acc.pop() else { continue };
                if matches!(name, "p" | "pre" | "td" | "blockquote") && mine.chars >= 25 {
                    let score = 1.0 + mine.commas as f64 + (mine.chars as f64 / 100.0).min(3.0);
                    mine.content += score * (1.0 - mine.link_density());
                }
                if let Some(parent) = acc.last_mut() {
                    parent.chars += mine.chars;
                    parent.linked += mine.linked;
                    parent.commas += mine.commas;
                    parent.content += mine.content;
                }
                s.stats.insert(node.id(), mine);
            }
        }
    }
    if articles == 1 {
        s.single_article = first_article;
    }
    s.densest = s.body.and_then(|body| densest(html, body, &s.stats));
    Ok(s)
}

/// From `<body>`, descend into the child element holding most of the page's paragraph content
/// while one child holds at least 90% of it: the innermost container of the main text, which
/// keeps all of a chapter's sections and leaves out sidebars.
fn densest(html: &Html, body: NodeId, stats: &HashMap<NodeId, Stats>) -> Option<NodeId> {
    let total = stats.get(&body)?.content;
    if total < 10.0 {
        return None; // no real paragraphs: keep the whole body
    }
    let mut at = html.tree.get(body)?;
    loop {
        let best = at
            .children()
            .filter_map(|c| Some((c, stats.get(&c.id())?.content)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((child, content)) if content >= 0.9 * total => at = child,
            _ => return Some(at.id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    #[test]
    fn parse_cost_tracks_depth() {
        assert_eq!(
            parse_cost("<div><div><p>a<p>b</div><br><span>x</span></div>"),
            1 + 2 + 2 + 1 + 1
        );
        assert_eq!(parse_cost(&"<span><b>".repeat(1000)), 2000);
        // The script counts once; the '<div>' inside it is not a tag.
        assert_eq!(
            parse_cost("<script>if (a<b) { x = '<div>' }</script><div></div>"),
            1
        );
        let deep = "<div>".repeat(100_000);
        let err = super::super::extract(deep.as_bytes(), &mut Budget::new(&Limits::default()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                crate::KnowledgeError::Limit {
                    what: "work steps",
                    ..
                }
            ),
            "{err}"
        );
    }
}
