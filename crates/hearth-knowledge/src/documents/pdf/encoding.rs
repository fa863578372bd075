//! Simple-font encodings (WinAnsi, MacRoman, Standard) and glyph names → Unicode.

/// Glyph names of WinAnsiEncoding, codes 0x20..=0xFF ("" where undefined); doubles as the glyph
/// list for `/Differences`.
#[rustfmt::skip]
const WIN_ANSI_NAMES: [&str; 224] = [
    "space", "exclam", "quotedbl", "numbersign", "dollar", "percent", "ampersand", "quotesingle",
    "parenleft", "parenright", "asterisk", "plus", "comma", "hyphen", "period", "slash", "zero",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "colon", "semicolon",
    "less", "equal", "greater", "question", "at", "A", "B", "C", "D", "E", "F", "G", "H", "I",
    "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
    "bracketleft", "backslash", "bracketright", "asciicircum", "underscore", "grave", "a", "b",
    "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u",
    "v", "w", "x", "y", "z", "braceleft", "bar", "braceright", "asciitilde", "", "Euro", "",
    "quotesinglbase", "florin", "quotedblbase", "ellipsis", "dagger", "daggerdbl", "circumflex",
    "perthousand", "Scaron", "guilsinglleft", "OE", "", "Zcaron", "", "", "quoteleft",
    "quoteright", "quotedblleft", "quotedblright", "bullet", "endash", "emdash", "tilde",
    "trademark", "scaron", "guilsinglright", "oe", "", "zcaron", "Ydieresis", "nbspace",
    "exclamdown", "cent", "sterling", "currency", "yen", "brokenbar", "section", "dieresis",
    "copyright", "ordfeminine", "guillemotleft", "logicalnot", "sfthyphen", "registered",
    "macron", "degree", "plusminus", "twosuperior", "threesuperior", "acute", "mu", "paragraph",
    "periodcentered", "cedilla", "onesuperior", "ordmasculine", "guillemotright", "onequarter",
    "onehalf", "threequarters", "questiondown", "Agrave", "Aacute", "Acircumflex", "Atilde",
    "Adieresis", "Aring", "AE", "Ccedilla", "Egrave", "Eacute", "Ecircumflex", "Edieresis",
    "Igrave", "Iacute", "Icircumflex", "Idieresis", "Eth", "Ntilde", "Ograve", "Oacute",
    "Ocircumflex", "Otilde", "Odieresis", "multiply", "Oslash", "Ugrave", "Uacute", "Ucircumflex",
    "Udieresis", "Yacute", "Thorn", "germandbls", "agrave", "aacute", "acircumflex", "atilde",
    "adieresis", "aring", "ae", "ccedilla", "egrave", "eacute", "ecircumflex", "edieresis",
    "igrave", "iacute", "icircumflex", "idieresis", "eth", "ntilde", "ograve", "oacute",
    "ocircumflex", "otilde", "odieresis", "divide", "oslash", "ugrave", "uacute", "ucircumflex",
    "udieresis", "yacute", "thorn", "ydieresis",
];

fn single_byte(enc: &'static encoding_rs::Encoding, code: u8) -> String {
    let bytes = [code];
    let (s, _) = enc.decode_without_bom_handling(&bytes);
    s.chars().filter(|c| !c.is_control()).collect()
}

pub(super) fn base_encoding(name: &[u8]) -> Vec<String> {
    let mut table: Vec<String> = vec![String::new(); 256];
    let enc = match name {
        b"MacRomanEncoding" => encoding_rs::MACINTOSH,
        _ => encoding_rs::WINDOWS_1252,
    };
    for (code, slot) in table.iter_mut().enumerate().skip(0x20) {
        *slot = single_byte(enc, code as u8);
    }
    if name != b"WinAnsiEncoding" && name != b"MacRomanEncoding" {
        // StandardEncoding: ASCII but for the quotes; its upper half differs from WinAnsi.
        table[0x27] = "\u{2019}".into();
        table[0x60] = "\u{2018}".into();
        for (code, slot) in table.iter_mut().enumerate().skip(0x80) {
            *slot = standard_upper(code as u8)
                .map(String::from)
                .unwrap_or_default();
        }
    }
    table
}

#[rustfmt::skip]
fn standard_upper(code: u8) -> Option<&'static str> {
    Some(match code {
        0xa1 => "¡", 0xa2 => "¢", 0xa3 => "£", 0xa4 => "⁄", 0xa5 => "¥", 0xa6 => "ƒ", 0xa7 => "§",
        0xa8 => "¤", 0xa9 => "'", 0xaa => "“", 0xab => "«", 0xac => "‹", 0xad => "›",
        0xae => "fi", 0xaf => "fl", 0xb1 => "–", 0xb2 => "†", 0xb3 => "‡", 0xb4 => "·",
        0xb6 => "¶", 0xb7 => "•", 0xb8 => "‚", 0xb9 => "„", 0xba => "”", 0xbb => "»", 0xbc => "…",
        0xbd => "‰", 0xbf => "¿", 0xd0 => "—", 0xe1 => "Æ", 0xe3 => "ª", 0xe8 => "Ł", 0xe9 => "Ø",
        0xea => "Œ", 0xeb => "º", 0xf1 => "æ", 0xf5 => "ı", 0xf8 => "ł", 0xf9 => "ø", 0xfa => "œ",
        0xfb => "ß",
        _ => return None,
    })
}

/// Unicode text for a glyph name: `uniXXXX…`, `uXXXX`, the WinAnsi names, common ligatures;
/// `a.sc` and `f_f_i` style names decompose.
pub(super) fn glyph_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let name = name.split('.').next()?;
    if name.contains('_') {
        let parts: Option<String> = name.split('_').map(|p| glyph_text(p.as_bytes())).collect();
        return parts;
    }
    if let Some(hex) = name.strip_prefix("uni") {
        if !hex.is_empty() && hex.len() % 4 == 0 && hex.len() <= 32 {
            let units: Option<Vec<u16>> = (0..hex.len())
                .step_by(4)
                .map(|i| u16::from_str_radix(&hex[i..i + 4], 16).ok())
                .collect();
            return Some(
                char::decode_utf16(units?)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            );
        }
    }
    if let Some(hex) = name.strip_prefix('u') {
        if (4..=6).contains(&hex.len()) {
            if let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                return Some(c.to_string());
            }
        }
    }
    let extra = match name {
        "fi" | "ff" | "fl" | "ffi" | "ffl" => return Some(name.to_string()),
        "dotlessi" => "ı",
        "Lslash" => "Ł",
        "lslash" => "ł",
        "minus" => "−",
        "fraction" => "⁄",
        "space" | "nbspace" | "nonbreakingspace" => " ",
        "sfthyphen" | "hyphen" => "-",
        _ => "",
    };
    if !extra.is_empty() {
        return Some(extra.to_string());
    }
    let code = WIN_ANSI_NAMES.iter().position(|&n| n == name)? + 0x20;
    Some(single_byte(encoding_rs::WINDOWS_1252, code as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names() {
        assert_eq!(glyph_text(b"eacute").as_deref(), Some("é"));
        assert_eq!(glyph_text(b"quotedblright").as_deref(), Some("\u{201d}"));
        assert_eq!(glyph_text(b"uni00660069").as_deref(), Some("fi"));
        assert_eq!(glyph_text(b"u1F600").as_deref(), Some("😀"));
        assert_eq!(glyph_text(b"f_f_i").as_deref(), Some("ffi"));
        assert_eq!(glyph_text(b"a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_text(b"g123"), None);
    }

    #[test]
    fn simple_encodings() {
        let std_enc = base_encoding(b"StandardEncoding");
        assert_eq!(
            (std_enc[0x41].as_str(), std_enc[0x27].as_str()),
            ("A", "\u{2019}")
        );
        assert_eq!(std_enc[0xae], "fi");
        let win = base_encoding(b"WinAnsiEncoding");
        assert_eq!(
            (win[0x93].as_str(), win[0xe9].as_str(), win[0x81].as_str()),
            ("“", "é", "")
        );
        assert_eq!(base_encoding(b"MacRomanEncoding")[0x8e], "é");
    }
}
