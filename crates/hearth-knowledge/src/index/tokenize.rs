//! The keyword tokenizer: Unicode lowercase, split on anything that is not alphanumeric,
//! one token per CJK ideograph/kana (those scripts do not separate words with spaces),
//! and a light English plural stemmer (Harman's "S" stemmer) on ASCII words.
//! No stop-word list: BM25's IDF already discounts words that occur everywhere.

/// Longer runs are almost always junk (base64, hashes) and would bloat the vocabulary.
pub const MAX_TOKEN_CHARS: usize = 48;

/// Appends the tokens of `text` to `out`.
pub fn tokenize_into(text: &str, out: &mut Vec<String>) {
    let mut word = String::new();
    let mut chars = 0usize;
    for c in text.chars() {
        if is_cjk(c) {
            flush(&mut word, &mut chars, out);
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            chars += 1;
        } else {
            flush(&mut word, &mut chars, out);
        }
    }
    flush(&mut word, &mut chars, out);
}

pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    tokenize_into(text, &mut out);
    out
}

fn flush(word: &mut String, chars: &mut usize, out: &mut Vec<String>) {
    if !word.is_empty() && *chars <= MAX_TOKEN_CHARS {
        out.push(stem(word));
    }
    word.clear();
    *chars = 0;
}

/// Harman (1991) S-stemmer, restricted to ASCII-alphabetic words of four letters or more:
/// "-ies" → "-y" (not "-eies"/"-aies"), "-es" → "-e" (not "-aes"/"-ees"/"-oes"),
/// "-s" → "" (not "-us"/"-ss", nor "-is": "this", "analysis").
pub fn stem(word: &str) -> String {
    if word.len() < 4 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_string();
    }
    let n = word.len();
    if word.ends_with("ies") && !word.ends_with("eies") && !word.ends_with("aies") {
        return format!("{}y", &word[..n - 3]);
    }
    if word.ends_with("es")
        && !(word.ends_with("aes") || word.ends_with("ees") || word.ends_with("oes"))
    {
        return word[..n - 1].to_string();
    }
    if word.ends_with('s')
        && !(word.ends_with("us") || word.ends_with("ss") || word.ends_with("is"))
    {
        return word[..n - 1].to_string();
    }
    word.to_string()
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B–F, compatibility supplement
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_lowercases_and_stems() {
        assert_eq!(
            tokenize("The Queries' bodies, Models & Straße: café-au-lait x86_64"),
            ["the", "query", "body", "model", "straße", "café", "au", "lait", "x86", "64"]
        );
        // "-ss", "-us" and short words are left alone; "-es" keeps its "e".
        assert_eq!(
            tokenize("glass status this horses"),
            ["glass", "status", "this", "horse"]
        );
    }

    #[test]
    fn cjk_ideographs_are_single_tokens_and_junk_is_dropped() {
        assert_eq!(
            tokenize("東京タワー tower"),
            ["東", "京", "タ", "ワ", "ー", "tower"]
        );
        let junk = "a".repeat(MAX_TOKEN_CHARS + 1);
        assert_eq!(tokenize(&format!("keep {junk} this")), ["keep", "this"]);
        // Uppercase that lowercases to several chars still counts as one letter for the limit.
        assert_eq!(tokenize("İstanbul"), ["i\u{307}stanbul"]);
    }
}
