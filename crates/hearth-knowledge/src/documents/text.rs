//! Plain text: UTF-8 (with or without BOM), UTF-16 LE/BE with BOM, otherwise windows-1252.
//! Paragraphs are separated by blank lines; line breaks inside a paragraph are kept.

use super::{BlockKind, Budget, Extracted, TextBuilder};
use crate::{KnowledgeError, Result};

pub(crate) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted> {
    let text = decode(bytes);
    budget.step(text.len() as u64 / 64 + 1)?;
    if looks_binary(&text) {
        return Err(KnowledgeError::Unsupported("binary data, not text".into()));
    }
    let mut out = TextBuilder::new(&budget.limits);
    for para in paragraphs(&text) {
        out.push(BlockKind::Paragraph, para, None)?;
    }
    let (text, blocks) = out.finish();
    Ok(Extracted {
        title: None,
        text,
        blocks,
    })
}

/// Decodes by BOM, else strict UTF-8, else windows-1252 (which maps every byte). Line endings
/// become `\n`.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let decoded = if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        enc.decode_without_bom_handling(&bytes[bom_len..])
            .0
            .into_owned()
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        }
    };
    if decoded.contains('\r') {
        decoded.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        decoded
    }
}

/// More than 10% control characters (other than whitespace, form feed and escape) in the first
/// 64 Ki characters.
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars().take(1 << 16) {
        total += 1;
        if c.is_control() && !matches!(c, '\n' | '\t' | '\x0c' | '\x1b') {
            control += 1;
        }
    }
    control * 10 > total
}

/// Splits on lines that are empty or whitespace only.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        // Find the end of the paragraph: the first blank line.
        let mut end = rest.len();
        let mut next = rest.len();
        let mut pos = 0;
        while let Some(nl) = rest[pos..].find('\n') {
            let line_start = pos + nl + 1;
            let line_end = rest[line_start..]
                .find('\n')
                .map_or(rest.len(), |i| line_start + i);
            if rest[line_start..line_end].trim().is_empty() {
                end = pos + nl;
                next = line_start;
                break;
            }
            pos = line_start;
        }
        let para = &rest[..end];
        rest = &rest[next..];
        if !para.trim().is_empty() {
            return Some(para);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    fn run(bytes: &[u8]) -> Result<Extracted> {
        extract(bytes, &mut Budget::new(&Limits::default()))
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let got = run(b"first line\nsecond line\n\n  \n\nnext para\r\n\r\nlast").unwrap();
        assert_eq!(got.text, "first line\nsecond line\n\nnext para\n\nlast");
        let paras: Vec<&str> = got
            .blocks
            .iter()
            .map(|b| &got.text[b.span.0..b.span.1])
            .collect();
        assert_eq!(paras, ["first line\nsecond line", "next para", "last"]);
    }

    #[test]
    fn encodings() {
        assert_eq!(decode(b"\xef\xbb\xbfh\xc3\xa9"), "hé");
        // UTF-16 LE and BE with BOM: "hé".
        assert_eq!(decode(b"\xff\xfeh\x00\xe9\x00"), "hé");
        assert_eq!(decode(b"\xfe\xff\x00h\x00\xe9"), "hé");
        // Invalid UTF-8: windows-1252, where 0x93/0x94 are curly quotes and 0xE9 is é.
        assert_eq!(decode(b"\x93caf\xe9\x94"), "\u{201c}café\u{201d}");
        // A lone surrogate and an odd trailing byte decode to replacement characters.
        let broken = decode(b"\xff\xfeA\x00\x00\xd8a");
        assert!(
            broken.starts_with("A\u{fffd}") && !broken.contains('a'),
            "{broken:?}"
        );
    }

    #[test]
    fn binary_is_refused() {
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
        assert!(matches!(run(&junk), Err(KnowledgeError::Unsupported(_))));
        assert!(run(b"").unwrap().blocks.is_empty());
    }
}
