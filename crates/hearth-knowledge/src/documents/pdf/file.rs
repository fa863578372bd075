//! The object table of a PDF, rebuilt by scanning for `N G obj` headers (what readers do to
//! repair broken files) instead of trusting cross-reference tables, plus objects packed in
//! object streams. Objects parse lazily and are cached; stream data decodes through size-capped
//! filters. Every scan is linear: `endobj`/`stream` positions are found with forward-only
//! cursors.

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use super::lexer::{is_ws, parse, Dict, Lexer, Obj, Parsed, Tok};
use crate::documents::{find, Budget};
use crate::{KnowledgeError, Result};

fn malformed(reason: impl Into<String>) -> KnowledgeError {
    KnowledgeError::Malformed {
        format: "PDF",
        reason: reason.into(),
    }
}

/// An object stream, decoded: its data and where each member object starts.
struct ObjStm {
    data: Vec<u8>,
    members: HashMap<u32, usize>,
}

pub(crate) struct PdfFile<'a> {
    data: &'a [u8],
    /// Object number → offset just past its `obj` keyword (later definitions win).
    direct: HashMap<u32, usize>,
    /// Object number → the object stream holding it.
    packed: HashMap<u32, u32>,
    streams: HashMap<u32, Rc<ObjStm>>,
    cache: HashMap<u32, Rc<Obj>>,
    /// Trailer dictionaries (classic and cross-reference streams) in file order.
    pub trailers: Vec<Dict>,
}

/// Forward-only search for `needle`: positions asked for never decrease, so a whole scan reads
/// the data once.
struct Cursor<'n> {
    needle: &'n [u8],
    /// The last match found (valid while it is at or after the position asked for).
    next: Option<usize>,
    /// Everything before this has been searched; `usize::MAX` once no match remains.
    searched_to: usize,
}

impl<'n> Cursor<'n> {
    fn new(needle: &'n [u8]) -> Self {
        Cursor {
            needle,
            next: None,
            searched_to: 0,
        }
    }

    /// First match at or after `at`, skipping matches that `reject` refuses.
    fn seek(&mut self, data: &[u8], at: usize, reject: impl Fn(usize) -> bool) -> Option<usize> {
        if let Some(n) = self.next.filter(|&n| n >= at) {
            return Some(n);
        }
        if self.searched_to == usize::MAX {
            return None;
        }
        let mut from = at.max(self.searched_to);
        loop {
            match data.get(from..).and_then(|rest| find(rest, self.needle)) {
                Some(i) if reject(from + i) => from += i + 1,
                Some(i) => {
                    self.next = Some(from + i);
                    self.searched_to = from + i + 1;
                    return self.next;
                }
                None => {
                    self.next = None;
                    self.searched_to = usize::MAX;
                    return None;
                }
            }
        }
    }
}

impl<'a> PdfFile<'a> {
    pub fn load(data: &'a [u8], budget: &mut Budget) -> Result<Self> {
        let mut file = PdfFile {
            data,
            direct: HashMap::new(),
            packed: HashMap::new(),
            streams: HashMap::new(),
            cache: HashMap::new(),
            trailers: Vec::new(),
        };
        let ends_with_end = |i: usize| i >= 3 && &data[i - 3..i] == b"end";
        let mut endobj = Cursor::new(b"endobj");
        let mut stream = Cursor::new(b"stream");
        let mut obj_streams = Vec::new();
        let mut trailer_at: Vec<(usize, Option<u32>)> = Vec::new();
        let mut pos = 0;
        while let Some(i) = find(&data[pos..], b"obj") {
            let at = pos + i;
            pos = at + 3;
            budget.step(1)?;
            let bad_next = data
                .get(pos)
                .is_some_and(|&b| !is_ws(b) && !b"<[(/".contains(&b));
            if ends_with_end(at) || bad_next {
                continue;
            }
            let Some(num) = header_number(data, at) else {
                continue;
            };
            file.direct.insert(num, pos);
            if file.direct.len() > budget.limits.max_objects {
                return Err(KnowledgeError::Limit {
                    what: "PDF objects",
                    limit: budget.limits.max_objects as u64,
                });
            }
            let end = endobj.seek(data, pos, |_| false).unwrap_or(data.len());
            if let Some(s) = stream.seek(data, pos, ends_with_end).filter(|&s| s < end) {
                let head = &data[pos..s];
                if find(head, b"/ObjStm").is_some() {
                    obj_streams.push(num);
                }
                if find(head, b"/XRef").is_some() {
                    trailer_at.push((at, Some(num)));
                }
                pos = end.max(pos); // skip the stream's data
            }
        }
        let mut t = 0;
        while let Some(i) = find(&data[t..], b"trailer") {
            trailer_at.push((t + i, None));
            t += i + 7;
            budget.step(1)?;
        }
        trailer_at.sort_by_key(|&(at, _)| at);
        for (at, num) in trailer_at {
            let dict = match num {
                Some(num) => file.get(num, budget)?.as_dict().cloned(),
                None => match parse(&mut Lexer::new(data, at + 7), budget)? {
                    Some(Parsed::Obj(Obj::Dict(d))) => Some(d),
                    _ => None,
                },
            };
            file.trailers.extend(dict);
        }
        for num in obj_streams {
            // A broken object stream loses only its own members.
            if let Ok(stm) = file.load_obj_stream(num, budget) {
                for &member in stm.members.keys() {
                    if !file.direct.contains_key(&member) {
                        file.packed.insert(member, num);
                    }
                }
                file.streams.insert(num, Rc::new(stm));
            }
        }
        Ok(file)
    }

    /// The last trailer's value for `key` (the newest incremental update wins).
    pub fn trailer(&self, key: &[u8]) -> Option<&Obj> {
        self.trailers.iter().rev().find_map(|t| t.get(key))
    }

    pub fn object_numbers(&self) -> Vec<u32> {
        let mut nums: Vec<u32> = self
            .direct
            .keys()
            .chain(self.packed.keys())
            .copied()
            .collect();
        nums.sort_unstable();
        nums
    }

    /// Object `num`, or `Null` when it does not exist.
    pub fn get(&mut self, num: u32, budget: &mut Budget) -> Result<Rc<Obj>> {
        if let Some(o) = self.cache.get(&num) {
            return Ok(o.clone());
        }
        budget.step(1)?;
        let obj = if let Some(&at) = self.direct.get(&num) {
            self.parse_direct(at, budget)?
        } else if let Some(stm) = self.packed.get(&num).and_then(|s| self.streams.get(s)) {
            let stm = stm.clone();
            match stm.members.get(&num) {
                Some(&at) => match parse(&mut Lexer::new(&stm.data, at), budget)? {
                    Some(Parsed::Obj(o)) => o,
                    _ => Obj::Null,
                },
                None => Obj::Null,
            }
        } else {
            Obj::Null
        };
        let obj = Rc::new(obj);
        self.cache.insert(num, obj.clone());
        Ok(obj)
    }

    /// Follows a reference (one level: references to references are malformed).
    pub fn resolve(&mut self, obj: &Obj, budget: &mut Budget) -> Result<Rc<Obj>> {
        match obj {
            Obj::Ref(num) => self.get(*num, budget),
            other => Ok(Rc::new(other.clone())),
        }
    }

    fn parse_direct(&self, at: usize, budget: &mut Budget) -> Result<Obj> {
        let mut lx = Lexer::new(self.data, at);
        let obj = match parse(&mut lx, budget)? {
            Some(Parsed::Obj(o)) => o,
            _ => return Ok(Obj::Null),
        };
        let Obj::Dict(dict) = obj else { return Ok(obj) };
        let mut peek = Lexer::new(self.data, lx.pos);
        if peek.next_tok() != Some(Tok::Keyword(b"stream")) {
            return Ok(Obj::Dict(dict));
        }
        // Data starts after the EOL that follows `stream`.
        let mut start = peek.pos;
        if self.data.get(start) == Some(&b'\r') {
            start += 1;
        }
        if self.data.get(start) == Some(&b'\n') {
            start += 1;
        }
        let declared = match dict.get(b"Length") {
            Some(Obj::Int(n)) => Some(*n),
            Some(Obj::Ref(num)) => self.plain_int(*num, budget)?,
            _ => None,
        };
        let end = declared
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= self.data.len())
            .filter(|&end| {
                let mut after = Lexer::new(self.data, end);
                after.next_tok() == Some(Tok::Keyword(b"endstream"))
            })
            .unwrap_or_else(|| match find(&self.data[start..], b"endstream") {
                Some(i) => trim_eol(self.data, start, start + i),
                None => self.data.len(),
            });
        Ok(Obj::Stream(dict, start..end))
    }

    /// An object that must be a plain integer (a stream's `/Length`): parsed without following
    /// anything, so a `/Length` cycle cannot recurse.
    fn plain_int(&self, num: u32, budget: &mut Budget) -> Result<Option<i64>> {
        let Some(&at) = self.direct.get(&num) else {
            return Ok(None);
        };
        match parse(&mut Lexer::new(self.data, at), budget)? {
            Some(Parsed::Obj(Obj::Int(n))) => Ok(Some(n)),
            _ => Ok(None),
        }
    }

    fn load_obj_stream(&mut self, num: u32, budget: &mut Budget) -> Result<ObjStm> {
        let obj = self.get(num, budget)?;
        let Obj::Stream(dict, _) = &*obj else {
            return Err(malformed("object stream"));
        };
        let data = self.stream_data(&obj, budget)?;
        let first = dict.get(b"First").and_then(Obj::as_int).unwrap_or(0).max(0) as usize;
        let n = dict.get(b"N").and_then(Obj::as_int).unwrap_or(0).max(0) as usize;
        let mut members = HashMap::new();
        let mut lx = Lexer::new(&data, 0);
        for _ in 0..n.min(budget.limits.max_objects) {
            budget.step(1)?;
            let (Some(Tok::Int(member)), Some(Tok::Int(offset))) = (lx.next_tok(), lx.next_tok())
            else {
                break;
            };
            let (Ok(member), Ok(offset)) = (u32::try_from(member), usize::try_from(offset)) else {
                break;
            };
            members.insert(member, first.saturating_add(offset));
        }
        Ok(ObjStm { data, members })
    }

    /// The decoded data of a stream object (empty for anything else).
    pub fn stream_data(&self, obj: &Obj, budget: &mut Budget) -> Result<Vec<u8>> {
        let Obj::Stream(dict, range) = obj else {
            return Ok(Vec::new());
        };
        let raw = self.data.get(range.clone()).unwrap_or(&[]);
        // Charged per use: one huge stream shared by thousands of pages must run out of budget.
        budget.step(raw.len() as u64 / 256 + 1)?;
        let filters: Vec<&[u8]> = match dict.get(b"Filter") {
            Some(Obj::Name(n)) => vec![n],
            Some(Obj::Array(a)) => a.iter().filter_map(Obj::as_name).take(8).collect(),
            _ => Vec::new(),
        };
        let mut data = raw.to_vec();
        for f in filters {
            data = match f {
                b"FlateDecode" | b"Fl" => inflate(&data, budget)?,
                b"ASCIIHexDecode" | b"AHx" => ascii_hex(&data),
                b"ASCII85Decode" | b"A85" => ascii85(&data),
                other => {
                    let name = String::from_utf8_lossy(other);
                    return Err(KnowledgeError::Unsupported(format!("PDF filter {name}")));
                }
            };
            budget.step(data.len() as u64 / 256 + 1)?;
        }
        Ok(data)
    }
}

/// `N G obj` ending at `at`: the object number, when the header is well formed.
fn header_number(data: &[u8], at: usize) -> Option<u32> {
    let mut i = at;
    let skip_ws = |i: &mut usize| {
        let start = *i;
        while *i > 0 && is_ws(data[*i - 1]) {
            *i -= 1;
        }
        *i < start
    };
    let digits = |i: &mut usize| {
        let end = *i;
        while *i > 0 && data[*i - 1].is_ascii_digit() && end - *i < 10 {
            *i -= 1;
        }
        (*i < end).then(|| &data[*i..end])
    };
    if !skip_ws(&mut i) {
        return None;
    }
    digits(&mut i)?;
    if !skip_ws(&mut i) {
        return None;
    }
    let num = digits(&mut i)?;
    if i > 0 && !is_ws(data[i - 1]) && !b">])".contains(&data[i - 1]) {
        return None;
    }
    std::str::from_utf8(num).ok()?.parse().ok()
}

fn trim_eol(data: &[u8], start: usize, mut end: usize) -> usize {
    if end > start && data[end - 1] == b'\n' {
        end -= 1;
    }
    if end > start && data[end - 1] == b'\r' {
        end -= 1;
    }
    end
}

/// zlib (or raw deflate, which some writers emit) capped at the remaining allowance. Truncated
/// or corrupt data keeps what decoded before the damage, as viewers do.
fn inflate(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>> {
    let cap = budget.decompress_allowance() as u64 + 1;
    let mut out = Vec::new();
    let zlib = flate2::read::ZlibDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out);
    if zlib.is_err() && out.is_empty() {
        let _ = flate2::read::DeflateDecoder::new(data)
            .take(cap)
            .read_to_end(&mut out);
    }
    budget.charge_decompressed(out.len())?;
    Ok(out)
}

fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let digits = data
        .iter()
        .take_while(|&&b| b != b'>')
        .filter_map(|&b| (b as char).to_digit(16).map(|d| d as u8));
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut high: Option<u8> = None;
    for d in digits {
        match high.take() {
            Some(h) => out.push(h << 4 | d),
            None => high = Some(d),
        }
    }
    out.extend(high.map(|h| h << 4));
    out
}

fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 4 / 5);
    let mut group = [0u8; 5];
    let mut n = 0;
    for &b in data {
        match b {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[n] = b - b'!';
                n += 1;
                if n == 5 {
                    let v = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
                    out.extend_from_slice(&(v as u32).to_be_bytes());
                    n = 0;
                }
            }
            _ => {}
        }
    }
    if n > 1 {
        for g in group.iter_mut().skip(n) {
            *g = 84;
        }
        let v = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
        out.extend_from_slice(&(v as u32).to_be_bytes()[..n - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Limits;

    #[test]
    fn filters() {
        assert_eq!(ascii_hex(b"48 65 6C6c 6>"), b"Hell`");
        assert_eq!(ascii85(b"87cURD]i,\"Ebo80~>"), b"Hello World!");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &[7u8; 100_000]).unwrap();
        let packed = z.finish().unwrap();
        let mut b = Budget::new(&Limits::default());
        assert_eq!(inflate(&packed, &mut b).unwrap().len(), 100_000);
        let mut small = Budget::new(&Limits {
            max_decompressed_bytes: 1000,
            ..Limits::default()
        });
        let err = inflate(&packed, &mut small).unwrap_err();
        assert!(matches!(
            err,
            KnowledgeError::Limit {
                what: "decompressed bytes",
                ..
            }
        ));
        // Truncated data keeps the prefix.
        let mut b = Budget::new(&Limits::default());
        let partial = inflate(&packed[..packed.len() / 2], &mut b).unwrap();
        assert!(!partial.is_empty() && partial.iter().all(|&x| x == 7));
    }

    #[test]
    fn scan_finds_objects_streams_and_trailer() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\
            2 0 obj << /Length 3 0 R >>\nstream\nBT 9 0 obj ET\nendstream\nendobj\n\
            3 0 obj 13 endobj\n1 0 obj << /Type /Catalog /V 2 >> endobj\n\
            trailer << /Root 1 0 R >>\n%%EOF";
        let mut b = Budget::new(&Limits::default());
        let mut f = PdfFile::load(pdf, &mut b).unwrap();
        // "9 0 obj" inside stream data is not an object.
        assert_eq!(f.object_numbers(), [1, 2, 3]);
        assert_eq!(f.trailer(b"Root"), Some(&Obj::Ref(1)));
        let cat = f.get(1, &mut b).unwrap();
        assert_eq!(cat.as_dict().unwrap().get(b"V"), Some(&Obj::Int(2)));
        let s = f.get(2, &mut b).unwrap();
        assert_eq!(f.stream_data(&s, &mut b).unwrap(), b"BT 9 0 obj ET");
    }
}
