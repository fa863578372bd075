//! Citations: `[n]` markers in generated text, parsed and mapped back to the numbered sources
//! the model was given.

use serde::Serialize;

/// Longest bracket content read as a citation group (`[1, 2, 3]`, `[Sources 1-4]`).
const MAX_GROUP_CHARS: usize = 48;
/// Longest range expanded (`[1-5]`); wider ranges are not citations.
const MAX_RANGE: usize = 32;

/// Where a cited source came from. Shaped like the CLI's `--json` citations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Citation {
    /// The number the model cites it by.
    pub n: usize,
    /// Path or URL of the document.
    pub source: String,
    pub title: String,
    /// Heading path joined with " › ".
    pub heading: String,
    pub page: Option<u32>,
    /// Byte range in the document text.
    pub span: [usize; 2],
}

/// The citations of a generated text.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cited {
    /// Each cited source once, in order of first mention.
    pub citations: Vec<Citation>,
    /// Numbers cited that were not given as sources, in order of first mention (dropped).
    pub unknown: Vec<usize>,
}

/// Maps the `[n]` markers of `text` to `sources` (where `sources[i].n == i + 1`).
pub fn resolve(text: &str, sources: &[Citation]) -> Cited {
    let mut cited = Cited::default();
    for n in parse(text) {
        match n.checked_sub(1).and_then(|i| sources.get(i)) {
            Some(c) => cited.citations.push(c.clone()),
            None => cited.unknown.push(n),
        }
    }
    cited
}

/// The distinct numbers cited in `text`, in order of first mention. Accepts `[1]`, `[1][3]`,
/// `[1, 2]`, `[1; 2]`, `[1-3]`, `[Source 2]`, `[sources 1 and 2]`.
pub fn parse(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for (_, _, numbers) in groups(text) {
        for n in numbers {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// `text` without its citation markers (earlier answers in a chat history cite sources the
/// next prompt does not hold; their numbers would only mislead the model).
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, _) in groups(text) {
        out.push_str(text[at..start].trim_end_matches(' '));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Citation groups: (byte start of `[`, byte end after `]`, numbers).
fn groups(text: &str) -> Vec<(usize, usize, Vec<usize>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| from + i) {
        let body_start = open + 1;
        let close = text[body_start..]
            .char_indices()
            .take(MAX_GROUP_CHARS + 1)
            .find(|(_, c)| *c == ']' || *c == '[')
            .map(|(i, c)| (body_start + i, c));
        match close {
            Some((close, ']')) => {
                if let Some(numbers) = group_numbers(&text[body_start..close]) {
                    found.push((open, close + 1, numbers));
                }
                from = close + 1;
            }
            // Another `[` first (`[[1]`) or no `]` nearby: look again after this `[`.
            _ => from = body_start,
        }
    }
    found
}

/// The numbers of one bracket's content, or `None` when it is not a citation.
fn group_numbers(body: &str) -> Option<Vec<usize>> {
    let lower = body.trim().to_lowercase();
    let rest = lower
        .strip_prefix("sources")
        .or_else(|| lower.strip_prefix("source"))
        .unwrap_or(&lower);
    let mut numbers = Vec::new();
    for item in rest
        .split([',', ';', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "and" && *s != "&")
    {
        match item.split_once(['-', '–']) {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if hi < lo || hi - lo > MAX_RANGE {
                    return None;
                }
                numbers.extend(lo..=hi);
            }
            None => numbers.push(number(item)?),
        }
    }
    (!numbers.is_empty()).then_some(numbers)
}

fn number(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn source(n: usize) -> Citation {
        Citation {
            n,
            source: format!("/d/{n}.md"),
            title: format!("Doc {n}"),
            heading: String::new(),
            page: None,
            span: [n, n + 1],
        }
    }

    #[test]
    fn parses_the_usual_shapes() {
        assert_eq!(parse("A [1]. B [2][3], C [1, 4]."), vec![1, 2, 3, 4]);
        assert_eq!(parse("see [Source 2] and [sources 3 and 5]"), vec![2, 3, 5]);
        assert_eq!(parse("[1-3]; [6 ; 7]"), vec![1, 2, 3, 6, 7]);
        assert_eq!(parse("[[2]] [x] [] [1a] [a, 1] [1-999]"), vec![2]);
        assert_eq!(parse("no citations here"), Vec::<usize>::new());
        assert_eq!(parse("unclosed [1 and [2]"), vec![2]);
        assert_eq!(parse("[99999999999999]"), Vec::<usize>::new());
    }

    #[test]
    fn resolves_and_reports_unknown_numbers() {
        let sources: Vec<Citation> = (1..=3).map(source).collect();
        let c = resolve("x [2] y [0] z [7][3] w [2]", &sources);
        let ns: Vec<usize> = c.citations.iter().map(|c| c.n).collect();
        assert_eq!(ns, vec![2, 3]);
        assert_eq!(c.citations[0], sources[1]);
        assert_eq!(c.unknown, vec![0, 7]);
    }

    #[test]
    fn strip_removes_markers_only() {
        assert_eq!(
            strip("Otters eat fish [1][2]. Yes [a]."),
            "Otters eat fish. Yes [a]."
        );
    }
}
