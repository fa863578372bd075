//! PDF: text per page, with page numbers, from a small reader written for untrusted input.
//!
//! Why not `lopdf`/`pdf-extract`: they load every object eagerly, inflate streams without a size
//! cap, and (before lopdf 0.42) recursed on nesting; a wasm build aborts on the first panic or
//! stack overflow. This reader parses iteratively with a depth cap, inflates through the shared
//! decompression allowance, charges every token to the work budget, and repairs broken files
//! the way viewers do (object table rebuilt by scanning).
//!
//! Structure: lines become paragraphs by vertical gaps; lines set clearly larger than the body
//! text become headings (level by size rank); running headers/footers (the same text at the top
//! or bottom of most pages) and bare page numbers are dropped.
//!
//! Not handled (clear errors or missing text, never crashes): encryption, LZW/RunLength/image
//! filters, fonts without any Unicode information (e.g. Identity-H without ToUnicode), text in
//! annotations, and right-to-left/vertical layout.

mod content;
mod encoding;
mod file;
mod font;
mod lexer;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use content::{FontCache, Interpreter, Line};
use file::PdfFile;
use lexer::Obj;

use super::{find, BlockKind, Budget, Extracted, TextBuilder};
use crate::{KnowledgeError, Result};

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted> {
    if find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_none() {
        return Err(KnowledgeError::Malformed {
            format: "PDF",
            reason: "no %PDF- header".into(),
        });
    }
    let mut file = PdfFile::load(bytes, budget)?;
    if file.trailer(b"Encrypt").is_some() {
        return Err(KnowledgeError::Unsupported("encrypted PDF".into()));
    }
    let pages = page_list(&mut file, budget)?;
    let mut fonts = FontCache::new();
    let mut all: Vec<Vec<Line>> = Vec::with_capacity(pages.len());
    for (page, resources) in &pages {
        let data = page_content(&mut file, page, budget)?;
        let resources = resources.as_deref().and_then(Obj::as_dict);
        all.push(Interpreter::new(&mut file, &mut fonts, budget).page(&data, resources)?);
    }
    drop_running_lines(&mut all);
    let mut out = TextBuilder::new(&budget.limits);
    layout(&all, &mut out)?;
    let title = info_title(&mut file, budget)?.or_else(|| out.first_heading());
    let (text, blocks) = out.finish();
    if blocks.is_empty() && !pages.is_empty() {
        return Err(KnowledgeError::Unsupported(
            "PDF without extractable text (scanned pages or fonts without Unicode mappings)".into(),
        ));
    }
    Ok(Extracted {
        title,
        text,
        blocks,
    })
}

/// A page object and its (possibly inherited) resources.
type Page = (Rc<Obj>, Option<Rc<Obj>>);

/// Pages in document order.
fn page_list(file: &mut PdfFile<'_>, budget: &mut Budget) -> Result<Vec<Page>> {
    let root = match file.trailer(b"Root").cloned() {
        Some(r) => file.resolve(&r, budget)?,
        None => Rc::new(Obj::Null),
    };
    let root = if root.as_dict().is_some_and(|d| d.get(b"Pages").is_some()) {
        root
    } else {
        find_catalog(file, budget)?.ok_or_else(|| KnowledgeError::Malformed {
            format: "PDF",
            reason: "no catalog".into(),
        })?
    };
    let Some(tree) = root.as_dict().and_then(|d| d.get(b"Pages")).cloned() else {
        return Ok(Vec::new());
    };
    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    // (node, inherited resources, depth); kids are pushed in reverse to pop in order.
    let mut stack = vec![(tree, None::<Rc<Obj>>, 0usize)];
    while let Some((node, inherited, depth)) = stack.pop() {
        budget.step(1)?;
        if depth > budget.limits.max_depth {
            return Err(budget.depth_limit());
        }
        if let Obj::Ref(n) = node {
            if !seen.insert(n) {
                continue; // a cycle or a shared kid
            }
        }
        let node = file.resolve(&node, budget)?;
        let Some(dict) = node.as_dict() else { continue };
        let resources = match dict.get(b"Resources") {
            Some(r) => Some(file.resolve(r, budget)?),
            None => inherited,
        };
        match dict.get(b"Kids") {
            Some(kids) => {
                let kids = file.resolve(kids, budget)?;
                for kid in kids.as_array().unwrap_or(&[]).iter().rev() {
                    stack.push((kid.clone(), resources.clone(), depth + 1));
                }
            }
            None => {
                pages.push((node.clone(), resources));
                if pages.len() > budget.limits.max_pages {
                    return Err(KnowledgeError::Limit {
                        what: "PDF pages",
                        limit: budget.limits.max_pages as u64,
                    });
                }
            }
        }
    }
    Ok(pages)
}

/// For files whose trailer is lost: the first `/Type /Catalog` object.
fn find_catalog(file: &mut PdfFile<'_>, budget: &mut Budget) -> Result<Option<Rc<Obj>>> {
    for num in file.object_numbers() {
        let obj = file.get(num, budget)?;
        let is_catalog = obj.as_dict().is_some_and(|d| {
            d.get(b"Type").and_then(Obj::as_name) == Some(b"Catalog") && d.get(b"Pages").is_some()
        });
        if is_catalog {
            return Ok(Some(obj));
        }
    }
    Ok(None)
}

/// The page's content streams, decoded and joined (a stream that fails to decode is skipped).
fn page_content(file: &mut PdfFile<'_>, page: &Obj, budget: &mut Budget) -> Result<Vec<u8>> {
    let Some(contents) = page.as_dict().and_then(|d| d.get(b"Contents")) else {
        return Ok(Vec::new());
    };
    let contents = file.resolve(contents, budget)?;
    let parts: Vec<Obj> = match &*contents {
        Obj::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut data = Vec::new();
    for part in parts {
        let stream = file.resolve(&part, budget)?;
        match file.stream_data(&stream, budget) {
            Ok(d) => {
                data.extend_from_slice(&d);
                data.push(b'\n');
            }
            Err(e @ KnowledgeError::Limit { .. }) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(data)
}

fn info_title(file: &mut PdfFile<'_>, budget: &mut Budget) -> Result<Option<String>> {
    let Some(info) = file.trailer(b"Info").cloned() else {
        return Ok(None);
    };
    let info = file.resolve(&info, budget)?;
    let Some(title) = info.as_dict().and_then(|d| d.get(b"Title")).cloned() else {
        return Ok(None);
    };
    let Obj::Str(bytes) = &*file.resolve(&title, budget)? else {
        return Ok(None);
    };
    let text = if let Some(be) = bytes.strip_prefix(b"\xfe\xff") {
        let units = be.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or('\u{fffd}'))
            .collect()
    } else {
        encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned()
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}

/// Running heads and feet: the first/last line of a page whose text, digits removed, recurs at
/// the same end of more than half the pages (3+ pages); and bare page numbers there.
fn drop_running_lines(pages: &mut [Vec<Line>]) {
    let key = |l: &Line| -> String { l.text.chars().filter(|c| !c.is_ascii_digit()).collect() };
    let mut counts: HashMap<(bool, String), usize> = HashMap::new();
    for lines in pages.iter() {
        for (top, line) in [(true, lines.first()), (false, lines.last())] {
            if let Some(line) = line {
                *counts.entry((top, key(line))).or_default() += 1;
            }
        }
    }
    let n = pages.len();
    for lines in pages.iter_mut() {
        for top in [true, false] {
            let Some(line) = (if top { lines.first() } else { lines.last() }) else {
                continue;
            };
            let k = key(line);
            let repeated = n >= 3 && counts.get(&(top, k.clone())).is_some_and(|&c| c * 2 > n);
            let k = k.trim();
            let roman = !k.is_empty() && k.len() <= 6 && k.chars().all(|c| "ivxlcdm".contains(c));
            // A lone line is content, not a page number.
            let page_number =
                lines.len() > 2 && (k.is_empty() || k.eq_ignore_ascii_case("page") || roman);
            if repeated || page_number {
                if top {
                    lines.remove(0);
                } else {
                    lines.pop();
                }
            }
        }
    }
}

/// Characters that start a bulleted list item.
const BULLETS: [char; 7] = ['•', '◦', '▪', '‣', '●', '○', '■'];

fn size_key(size: f32) -> i32 {
    (size * 2.0).round() as i32
}

/// Lines → headings and paragraphs, page by page.
fn layout(pages: &[Vec<Line>], out: &mut TextBuilder) -> Result<()> {
    // Body size: the size that sets the most characters.
    let mut by_size: HashMap<i32, usize> = HashMap::new();
    for line in pages.iter().flatten() {
        *by_size.entry(size_key(line.size)).or_default() += line.text.chars().count();
    }
    let body = by_size
        .iter()
        .max_by_key(|&(&k, &n)| (n, -k))
        .map_or(0, |(&k, _)| k);
    let mut heading_sizes: Vec<i32> = by_size
        .keys()
        .copied()
        .filter(|&k| k as f32 >= body as f32 * 1.15 && k > body)
        .collect();
    heading_sizes.sort_unstable_by(|a, b| b.cmp(a));
    let level_of = |line: &Line| -> Option<u8> {
        if line.text.chars().count() > 200 {
            return None;
        }
        let pos = heading_sizes
            .iter()
            .position(|&k| k == size_key(line.size))?;
        Some((pos + 1).min(6) as u8)
    };
    for (index, lines) in pages.iter().enumerate() {
        let page = Some(index as u32 + 1);
        let mut para = String::new();
        let mut kind = BlockKind::Paragraph;
        let mut prev: Option<&Line> = None;
        for line in lines {
            let mut text = line.text.as_str();
            let bullet = text.strip_prefix(BULLETS).map(str::trim_start);
            let gap_break = prev.is_none_or(|p| {
                let gap = p.y - line.y;
                gap > 1.6 * p.size.max(line.size)
                    || gap < -0.5 * line.size
                    || size_key(p.size) != size_key(line.size) && kind != BlockKind::ListItem
            });
            let line_kind = match (level_of(line), bullet) {
                (Some(level), _) => BlockKind::Heading(level),
                (None, Some(_)) => BlockKind::ListItem,
                // A wrapped list item continues until a gap.
                (None, None) if !gap_break && kind == BlockKind::ListItem => BlockKind::ListItem,
                (None, None) => BlockKind::Paragraph,
            };
            if gap_break || bullet.is_some() || line_kind != kind {
                out.push(kind, &para, page)?;
                para.clear();
                kind = line_kind;
            } else {
                join_line(&mut para);
            }
            if let (BlockKind::ListItem, Some(rest)) = (line_kind, bullet) {
                text = rest;
            }
            para.push_str(text);
            prev = Some(line);
        }
        out.push(kind, &para, page)?;
    }
    Ok(())
}

/// Prepares `para` for the next line: a space, or nothing after a hyphen that split a word.
fn join_line(para: &mut String) {
    let mut tail = para.chars().rev();
    let hyphen_split = tail.next() == Some('-') && tail.next().is_some_and(char::is_alphabetic);
    if hyphen_split {
        para.pop();
    } else if !para.is_empty() {
        para.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(y: f32, size: f32, text: &str) -> Line {
        Line {
            y,
            size,
            text: text.into(),
        }
    }

    #[test]
    fn layout_groups_lines_and_finds_headings() {
        let pages = vec![
            vec![
                line(700.0, 18.0, "Big Title"),
                line(660.0, 10.0, "First para line one con-"),
                line(648.0, 10.0, "tinues here."),
                line(620.0, 10.0, "Second para."),
                line(590.0, 14.0, "Sub heading"),
                line(570.0, 10.0, "Body under sub."),
                line(558.0, 10.0, "• first item wraps"),
                line(546.0, 10.0, "onto a second line"),
                line(534.0, 10.0, "• second item"),
                line(510.0, 10.0, "After the list."),
            ],
            vec![line(700.0, 10.0, "Page two text.")],
        ];
        let mut out = TextBuilder::new(&crate::documents::Limits::default());
        layout(&pages, &mut out).unwrap();
        let (text, blocks) = out.finish();
        let got: Vec<(BlockKind, &str, Option<u32>)> = blocks
            .iter()
            .map(|b| (b.kind, &text[b.span.0..b.span.1], b.page))
            .collect();
        use BlockKind::*;
        assert_eq!(
            got,
            [
                (Heading(1), "Big Title", Some(1)),
                (Paragraph, "First para line one continues here.", Some(1)),
                (Paragraph, "Second para.", Some(1)),
                (Heading(2), "Sub heading", Some(1)),
                (Paragraph, "Body under sub.", Some(1)),
                (ListItem, "first item wraps onto a second line", Some(1)),
                (ListItem, "second item", Some(1)),
                (Paragraph, "After the list.", Some(1)),
                (Paragraph, "Page two text.", Some(2)),
            ]
        );
    }

    #[test]
    fn running_heads_and_page_numbers_go() {
        let mut pages: Vec<Vec<Line>> = (1..=4)
            .map(|i| {
                vec![
                    line(800.0, 8.0, &format!("ACME Manual — chapter {i}")),
                    line(700.0, 10.0, &format!("Body {i}")),
                    line(50.0, 8.0, &format!("{i}")),
                ]
            })
            .collect();
        drop_running_lines(&mut pages);
        for (i, lines) in pages.iter().enumerate() {
            let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, [format!("Body {}", i + 1)]);
        }
    }
}
