//! Fonts, as far as text extraction needs them: how a string splits into character codes, what
//! Unicode text each code stands for (ToUnicode CMap, else the simple-font encoding with its
//! `/Differences`, else UCS-2/UTF-16 predefined CMaps), and each code's advance width (to see
//! word gaps between separately positioned runs).

use std::collections::HashMap;

use super::encoding::{base_encoding, glyph_text};
use super::file::PdfFile;
use super::lexer::{parse, Dict, Lexer, Obj, Parsed};
use crate::documents::Budget;
use crate::Result;

/// Caps on one font's tables (real fonts stay far below).
const MAX_CMAP_ENTRIES: usize = 200_000;
const MAX_RANGE: u32 = 0xffff;

#[derive(Default)]
struct CMap {
    /// (byte length, low code, high code).
    codespace: Vec<(usize, u32, u32)>,
    single: HashMap<u32, String>,
    /// (low, high, text of low: the last UTF-16 unit counts up through the range).
    ranges: Vec<(u32, u32, Vec<u16>)>,
}

impl CMap {
    fn parse(data: &[u8], budget: &mut Budget) -> Result<CMap> {
        let mut map = CMap::default();
        let mut lx = Lexer::new(data, 0);
        let mut operands: Vec<Obj> = Vec::new();
        let mut entries = 0usize;
        while let Some(p) = parse(&mut lx, budget)? {
            let keyword = match p {
                Parsed::Obj(o) => {
                    operands.push(o);
                    continue;
                }
                Parsed::Keyword(k) => k,
            };
            match keyword {
                b"endcodespacerange" => {
                    for pair in operands.chunks_exact(2) {
                        if let [Obj::Str(lo), Obj::Str(hi)] = pair {
                            if (1..=4).contains(&lo.len()) {
                                map.codespace.push((lo.len(), be(lo), be(hi)));
                            }
                        }
                    }
                }
                b"endbfchar" => {
                    for pair in operands.chunks_exact(2) {
                        if let [Obj::Str(src), Obj::Str(dst)] = pair {
                            map.single.insert(be(src), utf16be(dst));
                            entries += 1;
                        }
                    }
                }
                b"endbfrange" => {
                    for triple in operands.chunks_exact(3) {
                        let (Obj::Str(lo), Obj::Str(hi)) = (&triple[0], &triple[1]) else {
                            continue;
                        };
                        let (lo, hi) = (be(lo), be(hi));
                        let hi = hi.min(lo.saturating_add(MAX_RANGE));
                        match &triple[2] {
                            Obj::Str(dst) => {
                                let units = dst.chunks(2).map(|c| be(c) as u16).collect();
                                map.ranges.push((lo, hi, units));
                                entries += 1;
                            }
                            Obj::Array(list) => {
                                for (code, dst) in (lo..=hi).zip(list) {
                                    if let Obj::Str(dst) = dst {
                                        map.single.insert(code, utf16be(dst));
                                        entries += 1;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            operands.clear();
            if entries > MAX_CMAP_ENTRIES {
                break;
            }
        }
        Ok(map)
    }

    fn lookup(&self, code: u32) -> Option<String> {
        if let Some(s) = self.single.get(&code) {
            return Some(s.clone());
        }
        let (lo, _, base) = self
            .ranges
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&code))?;
        let mut units = base.clone();
        let last = units.last_mut()?;
        *last = last.wrapping_add((code - lo) as u16);
        Some(
            char::decode_utf16(units)
                .map(|c| c.unwrap_or('\u{fffd}'))
                .collect(),
        )
    }
}

fn be(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, &b| acc << 8 | u32::from(b))
}

fn utf16be(bytes: &[u8]) -> String {
    let units = bytes.chunks(2).map(|c| be(c) as u16);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or('\u{fffd}'))
        .collect()
}

pub(crate) struct Font {
    /// Code lengths from the encoding or ToUnicode codespace; empty → `default_len`.
    codespace: Vec<(usize, u32, u32)>,
    default_len: usize,
    to_unicode: Option<CMap>,
    /// Simple fonts: text of each single-byte code.
    encoding: Option<Vec<String>>,
    /// Type0 with a `Uni…-UCS2-…`/`…-UTF16-…` CMap: codes are UTF-16 code units.
    utf16_codes: bool,
    widths: HashMap<u32, f32>,
    width_ranges: Vec<(u32, u32, f32)>,
    default_width: f32,
    /// Text-space units per glyph-space unit (1/1000, or a Type3 font's matrix).
    width_scale: f32,
}

impl Font {
    /// A font that maps bytes through StandardEncoding (for a missing or broken font).
    pub fn fallback() -> Font {
        Font {
            codespace: Vec::new(),
            default_len: 1,
            to_unicode: None,
            encoding: Some(base_encoding(b"StandardEncoding")),
            utf16_codes: false,
            widths: HashMap::new(),
            width_ranges: Vec::new(),
            default_width: 500.0,
            width_scale: 0.001,
        }
    }

    pub fn load(file: &mut PdfFile<'_>, dict: &Dict, budget: &mut Budget) -> Result<Font> {
        let mut font = Font::fallback();
        let subtype = dict.get(b"Subtype").and_then(Obj::as_name).unwrap_or(b"");
        if let Some(tu) = dict.get(b"ToUnicode") {
            let stream = file.resolve(tu, budget)?;
            // A broken ToUnicode stream falls back to the encoding.
            if let Ok(data) = file.stream_data(&stream, budget) {
                font.to_unicode = Some(CMap::parse(&data, budget)?);
            }
        }
        let encoding = match dict.get(b"Encoding") {
            Some(e) => Some(file.resolve(e, budget)?),
            None => None,
        };
        if subtype == b"Type0" {
            font.default_len = 2;
            font.encoding = None;
            match encoding.as_deref() {
                Some(Obj::Name(n)) => {
                    let name = String::from_utf8_lossy(n);
                    font.utf16_codes = name.contains("UCS2") || name.contains("UTF16");
                }
                Some(stream @ Obj::Stream(..)) => {
                    if let Ok(data) = file.stream_data(stream, budget) {
                        font.codespace = CMap::parse(&data, budget)?.codespace;
                    }
                }
                _ => {}
            }
            let descendant = match dict.get(b"DescendantFonts") {
                Some(d) => file.resolve(d, budget)?,
                None => std::rc::Rc::new(Obj::Null),
            };
            if let Some(first) = descendant.as_array().and_then(|a| a.first()) {
                let cid_font = file.resolve(first, budget)?;
                if let Some(cid) = cid_font.as_dict() {
                    font.load_cid_widths(file, cid, budget)?;
                }
            }
        } else {
            font.load_simple_encoding(file, encoding.as_deref(), budget)?;
            font.load_simple_widths(file, dict, budget)?;
            if subtype == b"Type3" {
                if let Some(m) = dict.get(b"FontMatrix").and_then(Obj::as_array) {
                    let scale = m.first().and_then(Obj::as_f64).unwrap_or(0.001) as f32;
                    font.width_scale = scale.abs();
                }
            }
        }
        if font.codespace.is_empty() {
            if let Some(tu) = &font.to_unicode {
                font.codespace = tu.codespace.clone();
            }
        }
        Ok(font)
    }

    fn load_simple_encoding(
        &mut self,
        file: &mut PdfFile<'_>,
        encoding: Option<&Obj>,
        budget: &mut Budget,
    ) -> Result<()> {
        let (base, differences) = match encoding {
            Some(Obj::Name(n)) => (n.as_slice(), None),
            Some(Obj::Dict(d)) => (
                d.get(b"BaseEncoding")
                    .and_then(Obj::as_name)
                    .unwrap_or(b"StandardEncoding"),
                d.get(b"Differences"),
            ),
            _ => (&b"StandardEncoding"[..], None),
        };
        let mut table = base_encoding(base);
        if let Some(diff) = differences {
            let diff = file.resolve(diff, budget)?;
            let mut code = 0usize;
            for item in diff.as_array().unwrap_or(&[]) {
                match item {
                    Obj::Int(c) => code = (*c).clamp(0, 256) as usize,
                    Obj::Name(name) => {
                        if let Some(slot) = table.get_mut(code) {
                            *slot = glyph_text(name).unwrap_or_default();
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
        self.encoding = Some(table);
        Ok(())
    }

    fn load_simple_widths(
        &mut self,
        file: &mut PdfFile<'_>,
        dict: &Dict,
        budget: &mut Budget,
    ) -> Result<()> {
        let first = dict
            .get(b"FirstChar")
            .and_then(Obj::as_int)
            .unwrap_or(0)
            .clamp(0, 255) as u32;
        if let Some(w) = dict.get(b"Widths") {
            let w = file.resolve(w, budget)?;
            for (i, width) in w.as_array().unwrap_or(&[]).iter().take(256).enumerate() {
                if let Some(width) = width.as_f64() {
                    self.widths.insert(first + i as u32, width as f32);
                }
            }
        }
        Ok(())
    }

    /// `/DW` and `/W [c [w…] c_first c_last w …]` of a CIDFont.
    fn load_cid_widths(
        &mut self,
        file: &mut PdfFile<'_>,
        cid: &Dict,
        budget: &mut Budget,
    ) -> Result<()> {
        self.default_width = cid.get(b"DW").and_then(Obj::as_f64).unwrap_or(1000.0) as f32;
        let Some(w) = cid.get(b"W") else {
            return Ok(());
        };
        let w = file.resolve(w, budget)?;
        let items = w.as_array().unwrap_or(&[]);
        let mut i = 0;
        while i + 1 < items.len() && self.widths.len() < MAX_CMAP_ENTRIES {
            budget.step(1)?;
            let start = items[i].as_int().unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
            match &items[i + 1] {
                Obj::Array(list) => {
                    for (k, width) in list.iter().take(MAX_RANGE as usize).enumerate() {
                        if let Some(width) = width.as_f64() {
                            self.widths
                                .insert(start.saturating_add(k as u32), width as f32);
                        }
                    }
                    i += 2;
                }
                last => {
                    let last = last.as_int().unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
                    let width = items.get(i + 2).and_then(Obj::as_f64).unwrap_or(0.0) as f32;
                    self.width_ranges.push((start, last, width));
                    i += 3;
                }
            }
        }
        Ok(())
    }

    /// Splits `s` into codes; calls `each(text, advance, is_space)` per code, where `advance`
    /// is the glyph width in text space for a font size of 1, and `is_space` marks the
    /// single-byte code 32 (the one word spacing applies to).
    pub fn decode(&self, s: &[u8], mut each: impl FnMut(&str, f32, bool)) {
        let mut i = 0;
        while i < s.len() {
            let n = self.code_len(&s[i..]);
            let code = be(&s[i..i + n]);
            let text = self.text_of(code, n);
            let width = self.widths.get(&code).copied().unwrap_or_else(|| {
                self.width_ranges
                    .iter()
                    .find(|(lo, hi, _)| (*lo..=*hi).contains(&code))
                    .map_or(self.default_width, |r| r.2)
            });
            each(
                text.as_deref().unwrap_or(""),
                width * self.width_scale,
                n == 1 && code == 32,
            );
            i += n;
        }
    }

    fn code_len(&self, rest: &[u8]) -> usize {
        for n in 1..=4.min(rest.len()) {
            let code = be(&rest[..n]);
            if self
                .codespace
                .iter()
                .any(|&(len, lo, hi)| len == n && (lo..=hi).contains(&code))
            {
                return n;
            }
        }
        let shortest = self
            .codespace
            .iter()
            .map(|c| c.0)
            .min()
            .unwrap_or(self.default_len);
        shortest.clamp(1, rest.len().max(1))
    }

    fn text_of(&self, code: u32, len: usize) -> Option<String> {
        if let Some(t) = self.to_unicode.as_ref().and_then(|m| m.lookup(code)) {
            return Some(t);
        }
        if self.utf16_codes {
            return char::from_u32(code).map(String::from);
        }
        let table = self.encoding.as_ref()?;
        (len == 1).then(|| table[code as usize & 0xff].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    #[test]
    fn cmap_chars_and_ranges() {
        let src = b"/CIDInit /ProcSet findresource begin 1 begincodespacerange <0000> <FFFF> \
            endcodespacerange 2 beginbfchar <0003> <0020> <0011> <00660069> endbfchar \
            2 beginbfrange <0024> <0026> <0041> <0030> <0031> [<0078> <D83DDE00>] endbfrange end";
        let map = CMap::parse(src, &mut Budget::new(&Limits::default())).unwrap();
        assert_eq!(map.codespace, [(2, 0, 0xffff)]);
        let got: Vec<Option<String>> = [3, 0x11, 0x24, 0x26, 0x27, 0x30, 0x31]
            .iter()
            .map(|&c| map.lookup(c))
            .collect();
        let want = [" ", "fi", "A", "C"].map(|s| Some(s.to_string()));
        assert_eq!(got[..4], want);
        assert_eq!(got[4], None);
        assert_eq!(got[5].as_deref(), Some("x"));
        assert_eq!(got[6].as_deref(), Some("😀"));
    }
}
