//! PDF tokens and objects. The object parser keeps its own stack of open arrays/dictionaries
//! (no recursion), so nesting depth costs heap, is capped by `Limits::max_depth`, and a
//! `[[[[…` bomb is a clean error.

use crate::documents::Budget;
use crate::Result;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Obj {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Name(Vec<u8>),
    Str(Vec<u8>),
    Array(Vec<Obj>),
    Dict(Dict),
    Ref(u32),
    /// A stream's dictionary and the byte range of its raw (still encoded) data in the file.
    Stream(Dict, std::ops::Range<usize>),
}

#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Dict(pub Vec<(Vec<u8>, Obj)>);

impl Dict {
    pub fn get(&self, key: &[u8]) -> Option<&Obj> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl Obj {
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Obj::Int(i) => Some(i as f64),
            Obj::Real(r) if r.is_finite() => Some(r),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Obj::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_name(&self) -> Option<&[u8]> {
        match self {
            Obj::Name(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Obj::Dict(d) | Obj::Stream(d, _) => Some(d),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Obj]> {
        match self {
            Obj::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum Tok<'a> {
    Int(i64),
    Real(f64),
    Name(Vec<u8>),
    Str(Vec<u8>),
    ArrOpen,
    ArrClose,
    DictOpen,
    DictClose,
    Keyword(&'a [u8]),
}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delim(b: u8) -> bool {
    b"()<>[]{}/%".contains(&b)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub(crate) struct Lexer<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        Lexer {
            data,
            pos: pos.min(data.len()),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_ws(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(b) = self.peek() {
                    if b == b'\n' || b == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Next token, or `None` at the end. Every call consumes at least one byte or ends.
    pub fn next_tok(&mut self) -> Option<Tok<'a>> {
        self.skip_ws();
        let start = self.pos;
        let b = self.peek()?;
        self.pos += 1;
        Some(match b {
            b'[' => Tok::ArrOpen,
            b']' => Tok::ArrClose,
            b'<' if self.peek() == Some(b'<') => {
                self.pos += 1;
                Tok::DictOpen
            }
            b'>' if self.peek() == Some(b'>') => {
                self.pos += 1;
                Tok::DictClose
            }
            b'<' => Tok::Str(self.hex_string()),
            b'(' => Tok::Str(self.literal_string()),
            b'/' => Tok::Name(self.name()),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || c == b'.' || c == b'-')
                {
                    self.pos += 1;
                }
                number(&self.data[start..self.pos])
            }
            b')' | b'>' | b'{' | b'}' => Tok::Keyword(&self.data[start..self.pos]),
            _ => {
                while self.peek().is_some_and(|c| !is_ws(c) && !is_delim(c)) {
                    self.pos += 1;
                }
                Tok::Keyword(&self.data[start..self.pos])
            }
        })
    }

    fn hex_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            if let Some(v) = hex_val(b) {
                match high.take() {
                    Some(h) => out.push(h << 4 | v),
                    None => high = Some(v),
                }
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        out
    }

    fn literal_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    out.push(b);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }

    fn name(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if is_ws(b) || is_delim(b) {
                break;
            }
            self.pos += 1;
            if b == b'#' {
                let hi = self.data.get(self.pos).and_then(|&c| hex_val(c));
                let lo = self.data.get(self.pos + 1).and_then(|&c| hex_val(c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    self.pos += 2;
                    continue;
                }
            }
            out.push(b);
        }
        out
    }
}

fn number(text: &[u8]) -> Tok<'_> {
    let s = std::str::from_utf8(text).unwrap_or("0");
    if let Ok(i) = s.parse::<i64>() {
        return Tok::Int(i);
    }
    // Malformed numbers (`--1`, `1.2.3`, a lone `-`) read as 0, as most readers do.
    Tok::Real(
        s.parse::<f64>()
            .ok()
            .filter(|r| r.is_finite())
            .unwrap_or(0.0),
    )
}

pub(crate) enum Parsed<'a> {
    Obj(Obj),
    /// A bare keyword at the top level: a content-stream operator, `stream`, `endobj`…
    Keyword(&'a [u8]),
}

enum Open {
    Array(Vec<Obj>),
    Dict(Vec<Obj>),
}

/// Parses the next complete object (or top-level keyword). Unbalanced input is repaired: stray
/// closers are ignored and containers still open at the end are closed.
pub(crate) fn parse<'a>(lx: &mut Lexer<'a>, budget: &mut Budget) -> Result<Option<Parsed<'a>>> {
    let mut stack: Vec<Open> = Vec::new();
    loop {
        budget.step(1)?;
        let Some(tok) = lx.next_tok() else {
            return Ok(close_all(stack).map(Parsed::Obj));
        };
        let obj = match tok {
            Tok::ArrOpen | Tok::DictOpen => {
                if stack.len() >= budget.limits.max_depth {
                    return Err(budget.depth_limit());
                }
                stack.push(if tok == Tok::ArrOpen {
                    Open::Array(Vec::new())
                } else {
                    Open::Dict(Vec::new())
                });
                continue;
            }
            Tok::ArrClose => match stack.pop() {
                Some(Open::Array(items)) => Obj::Array(items),
                Some(other) => {
                    stack.push(other);
                    continue;
                }
                None => continue,
            },
            Tok::DictClose => match stack.pop() {
                Some(Open::Dict(items)) => Obj::Dict(pairs(items)),
                Some(other) => {
                    stack.push(other);
                    continue;
                }
                None => continue,
            },
            Tok::Int(i) => Obj::Int(i),
            Tok::Real(r) => Obj::Real(r),
            Tok::Name(n) => Obj::Name(n),
            Tok::Str(s) => Obj::Str(s),
            Tok::Keyword(b"true") => Obj::Bool(true),
            Tok::Keyword(b"false") => Obj::Bool(false),
            Tok::Keyword(b"null") => Obj::Null,
            Tok::Keyword(b"R") => {
                if let Some(Open::Array(items) | Open::Dict(items)) = stack.last_mut() {
                    make_ref(items);
                }
                continue;
            }
            Tok::Keyword(k) => {
                if stack.is_empty() {
                    return Ok(Some(Parsed::Keyword(k)));
                }
                continue; // garbage inside a container
            }
        };
        match stack.last_mut() {
            Some(Open::Array(items) | Open::Dict(items)) => items.push(obj),
            None => return Ok(Some(Parsed::Obj(obj))),
        }
    }
}

/// `… num gen R` → `Ref(num)`.
fn make_ref(items: &mut Vec<Obj>) {
    let n = items.len();
    if n >= 2 {
        if let (Obj::Int(num), Obj::Int(generation)) = (&items[n - 2], &items[n - 1]) {
            if let (Ok(num), true) = (u32::try_from(*num), *generation >= 0) {
                items.truncate(n - 2);
                items.push(Obj::Ref(num));
            }
        }
    }
}

fn pairs(items: Vec<Obj>) -> Dict {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(key) = it.next() {
        let Obj::Name(k) = key else { continue };
        let Some(v) = it.next() else { break };
        out.push((k, v));
    }
    Dict(out)
}

fn close_all(mut stack: Vec<Open>) -> Option<Obj> {
    let mut done: Option<Obj> = None;
    while let Some(open) = stack.pop() {
        let obj = match open {
            Open::Array(mut items) => {
                items.extend(done.take());
                Obj::Array(items)
            }
            Open::Dict(mut items) => {
                items.extend(done.take());
                Obj::Dict(pairs(items))
            }
        };
        done = Some(obj);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;
    use crate::KnowledgeError;

    fn one(src: &[u8]) -> Obj {
        let mut b = Budget::new(&Limits::default());
        match parse(&mut Lexer::new(src, 0), &mut b).unwrap() {
            Some(Parsed::Obj(o)) => o,
            _ => panic!("no object in {src:?}"),
        }
    }

    #[test]
    fn objects() {
        let o = one(b"<< /Type /Page /Kids [1 0 R 2 0 R] /N -3.5 /S (a\\(b\\)\\101\\\nc) /H <48 65 6> /F#20x true >>");
        let d = o.as_dict().unwrap();
        assert_eq!(d.get(b"Type"), Some(&Obj::Name(b"Page".to_vec())));
        assert_eq!(
            d.get(b"Kids"),
            Some(&Obj::Array(vec![Obj::Ref(1), Obj::Ref(2)]))
        );
        assert_eq!(d.get(b"N"), Some(&Obj::Real(-3.5)));
        assert_eq!(d.get(b"S"), Some(&Obj::Str(b"a(b)Ac".to_vec())));
        assert_eq!(d.get(b"H"), Some(&Obj::Str(b"He`".to_vec())));
        assert_eq!(d.get(b"F x"), Some(&Obj::Bool(true)));
    }

    #[test]
    fn broken_input_is_repaired() {
        assert_eq!(
            one(b"[1 2 >> ] ]"),
            Obj::Array(vec![Obj::Int(1), Obj::Int(2)])
        );
        assert_eq!(one(b"[(abc"), Obj::Array(vec![Obj::Str(b"abc".to_vec())]));
        assert_eq!(
            one(b"<< /A [ /B"),
            Obj::Dict(Dict(vec![(
                b"A".to_vec(),
                Obj::Array(vec![Obj::Name(b"B".to_vec())])
            )]))
        );
        assert_eq!(one(b"--5"), Obj::Real(0.0));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let mut b = Budget::new(&Limits::default());
        let err = parse(&mut Lexer::new(deep.as_bytes(), 0), &mut b)
            .err()
            .unwrap();
        assert!(matches!(
            err,
            KnowledgeError::Limit {
                what: "nesting depth",
                ..
            }
        ));
    }
}
