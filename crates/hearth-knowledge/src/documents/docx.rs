//! DOCX: the ZIP container (entry count capped, every part read through `take` so a ZIP bomb
//! stops at the decompression allowance), then `word/document.xml` streamed with quick-xml.
//! Paragraph styles from `word/styles.xml` give headings (`heading N`, `Title`, outline levels),
//! lists and code; `docProps/core.xml` gives the title.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::builder::Inline;
use super::{BlockKind, Budget, Extracted, TextBuilder};
use crate::{KnowledgeError, Result};

fn malformed(reason: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Malformed {
        format: "DOCX",
        reason: reason.to_string(),
    }
}

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(malformed)?;
    if archive.len() > budget.limits.max_objects {
        return Err(KnowledgeError::Limit {
            what: "ZIP entries",
            limit: budget.limits.max_objects as u64,
        });
    }
    let document = read_part(&mut archive, "word/document.xml", budget)?.ok_or_else(|| {
        KnowledgeError::Unsupported("ZIP archive without word/document.xml".into())
    })?;
    let styles = match read_part(&mut archive, "word/styles.xml", budget)? {
        Some(xml) => parse_styles(&xml, budget)?,
        None => HashMap::new(),
    };
    let core_title = match read_part(&mut archive, "docProps/core.xml", budget)? {
        Some(xml) => core_title(&xml, budget)?,
        None => None,
    };
    let (out, style_title) = parse_document(&document, &styles, budget)?;
    let title = core_title.or(style_title).or_else(|| out.first_heading());
    let (text, blocks) = out.finish();
    Ok(Extracted {
        title,
        text,
        blocks,
    })
}

/// The part's text, or `None` when the archive has no such entry.
fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut Budget,
) -> Result<Option<String>> {
    let file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(malformed(format!("{name}: {e}"))),
    };
    let allowance = budget.decompress_allowance();
    if file.size() > allowance as u64 {
        return Err(budget.decompressed_limit());
    }
    // The declared size may lie: read at most one byte past the allowance.
    let mut data = Vec::new();
    file.take(allowance as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| malformed(format!("{name}: {e}")))?;
    budget.charge_decompressed(data.len())?;
    budget.step(data.len() as u64 / 64 + 1)?;
    Ok(Some(super::text::decode(&data)))
}

fn reader(xml: &str) -> Reader<&[u8]> {
    let mut r = Reader::from_str(xml);
    let config = r.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    r
}

fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum StyleRole {
    Title,
    Heading(u8),
    List,
    Code,
}

/// `styleId` → role, from each style's name or outline level.
fn parse_styles(xml: &str, budget: &mut Budget) -> Result<HashMap<String, StyleRole>> {
    let mut styles = HashMap::new();
    let mut r = reader(xml);
    let mut current: Option<(String, Option<StyleRole>)> = None;
    loop {
        budget.step(1)?;
        match r.read_event().map_err(malformed)? {
            Event::Eof => break,
            Event::Start(e) if e.local_name().as_ref() == "style" => {
                current = attr(&e, "styleId").map(|id| (id, None));
            }
            Event::End(e) if e.local_name().as_ref() == "style" => {
                if let Some((id, Some(role))) = current.take() {
                    styles.insert(id, role);
                }
            }
            Event::Empty(e) | Event::Start(e) => {
                let Some((_, role)) = current.as_mut() else {
                    continue;
                };
                match e.local_name().as_ref() {
                    "name" => *role = attr(&e, "val").and_then(|n| role_for_name(&n)).or(*role),
                    "outlineLvl" => {
                        if let Some(level) = attr(&e, "val").and_then(|v| v.parse::<u8>().ok()) {
                            if level < 9 && role.is_none() {
                                *role = Some(StyleRole::Heading(level.min(5) + 1));
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(styles)
}

fn role_for_name(name: &str) -> Option<StyleRole> {
    let lower = name.to_ascii_lowercase();
    if lower == "title" {
        return Some(StyleRole::Title);
    }
    if let Some(n) = lower.strip_prefix("heading").map(str::trim) {
        return n
            .parse::<u8>()
            .ok()
            .filter(|&n| n >= 1)
            .map(|n| StyleRole::Heading(n.min(6)));
    }
    if lower.contains("list") {
        return Some(StyleRole::List);
    }
    if lower.contains("code") || lower.contains("preformatted") {
        return Some(StyleRole::Code);
    }
    None
}

/// Word's own ids when styles.xml is missing: `Heading1`, `Title`, `ListParagraph`.
fn role_for_id(id: &str, styles: &HashMap<String, StyleRole>) -> Option<StyleRole> {
    styles.get(id).copied().or_else(|| {
        role_for_name(id).or_else(|| {
            let lower = id.to_ascii_lowercase();
            lower
                .strip_prefix("heading")
                .and_then(|n| n.parse::<u8>().ok())
                .map(|n| StyleRole::Heading(n.clamp(1, 6)))
        })
    })
}

fn core_title(xml: &str, budget: &mut Budget) -> Result<Option<String>> {
    let mut r = reader(xml);
    let mut in_title = false;
    let mut title = Inline::new(4096);
    loop {
        budget.step(1)?;
        match r.read_event().map_err(malformed)? {
            Event::Eof => break,
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title => title.push(&t.xml10_content())?,
            _ => {}
        }
    }
    let title = title.take();
    Ok((!title.is_empty()).then_some(title))
}

/// One open `w:p` (text boxes nest paragraphs inside paragraphs).
struct Para {
    role: Option<StyleRole>,
    numbered: bool,
    text: Inline,
}

fn parse_document(
    xml: &str,
    styles: &HashMap<String, StyleRole>,
    budget: &mut Budget,
) -> Result<(TextBuilder, Option<String>)> {
    let mut out = TextBuilder::new(&budget.limits);
    let mut r = reader(xml);
    let mut paras: Vec<Para> = Vec::new();
    let mut in_text = false; // inside w:t (not w:delText or w:instrText)
    let mut cell_depth = 0usize;
    let mut title = None;
    let max_text = budget.limits.max_text_bytes;
    loop {
        budget.step(1)?;
        let event = r.read_event().map_err(malformed)?;
        match event {
            Event::Eof => break,
            Event::Start(e) => match e.local_name().as_ref() {
                "p" => {
                    if paras.len() >= budget.limits.max_depth {
                        return Err(budget.depth_limit());
                    }
                    paras.push(Para {
                        role: None,
                        numbered: false,
                        text: Inline::new(max_text),
                    });
                }
                "t" => in_text = true,
                "tc" => cell_depth += 1,
                _ => paragraph_property(&e, styles, &mut paras)?,
            },
            Event::Empty(e) => paragraph_property(&e, styles, &mut paras)?,
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "tc" => cell_depth = cell_depth.saturating_sub(1),
                "tr" => out.end_row(),
                "p" => {
                    let Some(mut p) = paras.pop() else { continue };
                    let kind = match p.role {
                        Some(StyleRole::Title) => BlockKind::Heading(1),
                        Some(StyleRole::Heading(n)) => BlockKind::Heading(n),
                        Some(StyleRole::Code) => BlockKind::Code,
                        _ if cell_depth > 0 => BlockKind::TableCell,
                        Some(StyleRole::List) => BlockKind::ListItem,
                        None if p.numbered => BlockKind::ListItem,
                        None => BlockKind::Paragraph,
                    };
                    let text = p.text.take();
                    if p.role == Some(StyleRole::Title) && title.is_none() && !text.is_empty() {
                        title = Some(text.clone());
                    }
                    out.push(kind, &text, None)?;
                }
                _ => {}
            },
            Event::Text(t) if in_text => {
                if let Some(p) = paras.last_mut() {
                    p.text.push(&t.xml10_content())?;
                }
            }
            Event::GeneralRef(g) if in_text => {
                let c = match g.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match &*g {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => None,
                    },
                };
                if let (Some(c), Some(p)) = (c, paras.last_mut()) {
                    p.text.push(c.encode_utf8(&mut [0; 4]))?;
                }
            }
            _ => {}
        }
    }
    Ok((out, title))
}

/// Paragraph style, outline level and numbering, plus tabs and breaks inside runs.
fn paragraph_property(
    e: &BytesStart<'_>,
    styles: &HashMap<String, StyleRole>,
    paras: &mut [Para],
) -> Result<()> {
    let Some(p) = paras.last_mut() else {
        return Ok(());
    };
    match e.local_name().as_ref() {
        "pStyle" => {
            if let Some(id) = attr(e, "val") {
                p.role = role_for_id(&id, styles).or(p.role);
            }
        }
        "outlineLvl" => {
            let level = attr(e, "val").and_then(|v| v.parse::<u8>().ok());
            if let Some(level) = level.filter(|&l| l < 9) {
                p.role = Some(StyleRole::Heading(level.min(5) + 1));
            }
        }
        "numPr" => p.numbered = true,
        "tab" | "br" | "cr" => p.text.space(),
        "noBreakHyphen" => p.text.push("-")?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;
    use std::io::Write;

    fn docx(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in parts {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn styles_and_ids_without_styles_xml() {
        let body = br#"<w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">A &amp; B</w:t><w:tab/><w:t>C</w:t></w:r>
                 <w:del><w:r><w:delText>gone</w:delText></w:r></w:del></w:p>
            <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/></w:numPr></w:pPr><w:r><w:t>item</w:t></w:r></w:p>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>c1</w:t></w:r></w:p></w:tc>
                         <w:tc><w:p><w:r><w:t>c2</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            </w:body></w:document>"#;
        let bytes = docx(&[("word/document.xml", body)]);
        let e = extract(&bytes, &mut Budget::new(&Limits::default())).unwrap();
        assert_eq!(e.text, "Intro\n\nA & B C\n\nitem\n\nc1\tc2");
        assert_eq!(e.blocks[0].kind, BlockKind::Heading(2));
        assert_eq!(e.blocks[2].kind, BlockKind::ListItem);
        assert_eq!(e.blocks[3].kind, BlockKind::TableCell);
        assert_eq!(e.title.as_deref(), Some("Intro"));
    }

    #[test]
    fn zip_bomb_stops_at_the_allowance() {
        let zeros = vec![b' '; 8 << 20];
        let bytes = docx(&[("word/document.xml", &zeros)]);
        assert!(bytes.len() < 100_000, "{}", bytes.len());
        let limits = Limits {
            max_decompressed_bytes: 1 << 20,
            ..Limits::default()
        };
        let err = extract(&bytes, &mut Budget::new(&limits)).unwrap_err();
        assert!(
            matches!(
                err,
                KnowledgeError::Limit {
                    what: "decompressed bytes",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn not_a_docx() {
        let bytes = docx(&[("hello.txt", b"hi")]);
        let err = extract(&bytes, &mut Budget::new(&Limits::default())).unwrap_err();
        assert!(matches!(err, KnowledgeError::Unsupported(_)), "{err}");
        let err = extract(b"PK\x03\x04junk", &mut Budget::new(&Limits::default())).unwrap_err();
        assert!(matches!(err, KnowledgeError::Malformed { .. }), "{err}");
    }
}
