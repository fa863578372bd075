//! A content-stream interpreter that tracks only what text extraction needs: the text and
//! current transformation matrices, the font and its size, and where each glyph lands. Glyphs
//! become lines (a baseline change starts a new line; a horizontal gap wider than a fraction of
//! an em inserts a space). Form XObjects are followed a few levels deep; inline images are
//! skipped.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::file::PdfFile;
use super::font::Font;
use super::lexer::{is_ws, parse, Dict, Lexer, Obj, Parsed};
use crate::documents::{find, Budget};
use crate::Result;

/// One line of text on a page, in content order.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    /// Baseline, in user space (larger is higher on the page).
    pub y: f32,
    /// Largest font size on the line, in user space.
    pub size: f32,
    pub text: String,
}

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
/// Form XObjects inside form XObjects; deeper ones are ignored.
const MAX_FORM_DEPTH: usize = 8;
const MAX_SAVED_STATES: usize = 256;

/// `a × b` for PDF's row-vector matrices `[a b c d e f]`.
fn mul(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]
}

fn matrix(operands: &[Obj]) -> Option<Matrix> {
    let v: Vec<f32> = operands
        .iter()
        .filter_map(|o| o.as_f64().map(|f| f as f32))
        .collect();
    (v.len() == 6 && v.iter().all(|f| f.is_finite())).then(|| [v[0], v[1], v[2], v[3], v[4], v[5]])
}

#[derive(Clone)]
struct State {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f32,
    char_spacing: f32,
    word_spacing: f32,
    h_scale: f32,
    leading: f32,
}

/// Fonts already loaded, by object number; shared by all pages of a document.
pub(crate) type FontCache = HashMap<u32, Rc<Font>>;

pub(crate) struct Interpreter<'f, 'a, 'b> {
    file: &'f mut PdfFile<'a>,
    budget: &'b mut Budget,
    fonts: &'f mut FontCache,
    state: State,
    tm: Matrix,
    tlm: Matrix,
    lines: Vec<Line>,
    /// The line being built and the x where its last glyph ended.
    current: Option<(Line, f32)>,
    forms: HashSet<u32>,
}

impl<'f, 'a, 'b> Interpreter<'f, 'a, 'b> {
    pub fn new(
        file: &'f mut PdfFile<'a>,
        fonts: &'f mut FontCache,
        budget: &'b mut Budget,
    ) -> Self {
        Interpreter {
            file,
            budget,
            fonts,
            state: State {
                ctm: IDENTITY,
                font: None,
                size: 0.0,
                char_spacing: 0.0,
                word_spacing: 0.0,
                h_scale: 1.0,
                leading: 0.0,
            },
            tm: IDENTITY,
            tlm: IDENTITY,
            lines: Vec::new(),
            current: None,
            forms: HashSet::new(),
        }
    }

    /// Runs one page's content and returns its lines.
    pub fn page(mut self, content: &[u8], resources: Option<&Dict>) -> Result<Vec<Line>> {
        self.run(content, resources, 0)?;
        self.end_line();
        Ok(self.lines)
    }

    fn run(&mut self, content: &[u8], resources: Option<&Dict>, depth: usize) -> Result<()> {
        let mut lx = Lexer::new(content, 0);
        let mut operands: Vec<Obj> = Vec::new();
        let mut saved: Vec<State> = Vec::new();
        while let Some(p) = parse(&mut lx, self.budget)? {
            let op = match p {
                Parsed::Obj(o) => {
                    // Operators take at most 6 operands; a flood of them is junk.
                    if operands.len() < 64 {
                        operands.push(o);
                    }
                    continue;
                }
                Parsed::Keyword(k) => k,
            };
            let num = |i: usize| {
                operands
                    .get(i)
                    .and_then(Obj::as_f64)
                    .map_or(0.0, |f| f as f32)
            };
            match op {
                b"q" if saved.len() < MAX_SAVED_STATES => saved.push(self.state.clone()),
                b"Q" => {
                    if let Some(s) = saved.pop() {
                        self.state = s;
                    }
                }
                b"cm" => {
                    if let Some(m) = matrix(&operands) {
                        self.state.ctm = mul(&m, &self.state.ctm);
                    }
                }
                b"BT" => {
                    self.tm = IDENTITY;
                    self.tlm = IDENTITY;
                }
                b"Tf" => {
                    self.state.size = num(1);
                    let name = operands.first().and_then(Obj::as_name).unwrap_or(b"");
                    self.state.font = Some(self.font(resources, name)?);
                }
                b"Tc" => self.state.char_spacing = num(0),
                b"Tw" => self.state.word_spacing = num(0),
                b"Tz" => self.state.h_scale = num(0) / 100.0,
                b"TL" => self.state.leading = num(0),
                b"Td" => self.next_line(num(0), num(1)),
                b"TD" => {
                    self.state.leading = -num(1);
                    self.next_line(num(0), num(1));
                }
                b"Tm" => {
                    if let Some(m) = matrix(&operands) {
                        self.tm = m;
                        self.tlm = m;
                    }
                }
                b"T*" => self.next_line(0.0, -self.state.leading),
                b"Tj" => self.show_operand(operands.first()),
                b"'" => {
                    self.next_line(0.0, -self.state.leading);
                    self.show_operand(operands.first());
                }
                b"\"" => {
                    self.state.word_spacing = num(0);
                    self.state.char_spacing = num(1);
                    self.next_line(0.0, -self.state.leading);
                    self.show_operand(operands.get(2));
                }
                b"TJ" => {
                    for item in operands.first().and_then(Obj::as_array).unwrap_or(&[]) {
                        match item {
                            Obj::Str(s) => self.show(s),
                            other => {
                                let adjust = other.as_f64().unwrap_or(0.0) as f32;
                                let tx = -adjust / 1000.0 * self.state.size * self.state.h_scale;
                                self.tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], &self.tm);
                            }
                        }
                    }
                }
                b"Do" if depth < MAX_FORM_DEPTH => {
                    let name = operands.first().and_then(Obj::as_name).unwrap_or(b"");
                    self.form(resources, name, depth)?;
                }
                b"BI" => skip_inline_image(&mut lx),
                _ => {}
            }
            operands.clear();
        }
        Ok(())
    }

    fn next_line(&mut self, tx: f32, ty: f32) {
        self.tlm = mul(&[1.0, 0.0, 0.0, 1.0, tx, ty], &self.tlm);
        self.tm = self.tlm;
    }

    /// A named entry of a resource category (`/Font`, `/XObject`), resolved.
    fn resource(
        &mut self,
        resources: Option<&Dict>,
        category: &[u8],
        name: &[u8],
    ) -> Result<Option<(Option<u32>, Rc<Obj>)>> {
        let Some(cat) = resources.and_then(|r| r.get(category)) else {
            return Ok(None);
        };
        let cat = self.file.resolve(cat, self.budget)?;
        let Some(entry) = cat.as_dict().and_then(|d| d.get(name)) else {
            return Ok(None);
        };
        let num = match entry {
            Obj::Ref(n) => Some(*n),
            _ => None,
        };
        Ok(Some((num, self.file.resolve(entry, self.budget)?)))
    }

    fn font(&mut self, resources: Option<&Dict>, name: &[u8]) -> Result<Rc<Font>> {
        let Some((num, obj)) = self.resource(resources, b"Font", name)? else {
            return Ok(Rc::new(Font::fallback()));
        };
        if let Some(f) = num.and_then(|n| self.fonts.get(&n)) {
            return Ok(f.clone());
        }
        let font = match obj.as_dict() {
            Some(d) => Rc::new(Font::load(self.file, d, self.budget)?),
            None => Rc::new(Font::fallback()),
        };
        if let Some(n) = num {
            self.fonts.insert(n, font.clone());
        }
        Ok(font)
    }

    fn form(&mut self, resources: Option<&Dict>, name: &[u8], depth: usize) -> Result<()> {
        let Some((num, obj)) = self.resource(resources, b"XObject", name)? else {
            return Ok(());
        };
        let Obj::Stream(dict, _) = &*obj else {
            return Ok(());
        };
        if dict.get(b"Subtype").and_then(Obj::as_name) != Some(b"Form") {
            return Ok(());
        }
        // A form that (indirectly) draws itself is drawn once.
        if let Some(n) = num {
            if !self.forms.insert(n) {
                return Ok(());
            }
        }
        let Ok(data) = self.file.stream_data(&obj, self.budget) else {
            return Ok(());
        };
        let own = match dict.get(b"Resources") {
            Some(r) => Some(self.file.resolve(r, self.budget)?),
            None => None,
        };
        let form_resources = own.as_deref().and_then(Obj::as_dict).or(resources);
        let saved = (self.state.clone(), self.tm, self.tlm);
        if let Some(m) = dict.get(b"Matrix").and_then(Obj::as_array).and_then(matrix) {
            self.state.ctm = mul(&m, &self.state.ctm);
        }
        let result = self.run(&data, form_resources, depth + 1);
        (self.state, self.tm, self.tlm) = saved;
        if let Some(n) = num {
            self.forms.remove(&n);
        }
        result
    }

    fn show_operand(&mut self, operand: Option<&Obj>) {
        if let Some(Obj::Str(s)) = operand {
            self.show(s);
        }
    }

    fn show(&mut self, s: &[u8]) {
        let Some(font) = self.state.font.clone() else {
            return;
        };
        let st = self.state.clone();
        font.decode(s, |text, width, is_space| {
            let trm = mul(&self.tm, &st.ctm);
            let (x, y) = (trm[4], trm[5]);
            let size = (st.size * trm[2].hypot(trm[3])).abs().max(0.1);
            let advance =
                (width * st.size + st.char_spacing + if is_space { st.word_spacing } else { 0.0 })
                    * st.h_scale;
            self.tm = mul(&[1.0, 0.0, 0.0, 1.0, advance, 0.0], &self.tm);
            let end_x = mul(&self.tm, &st.ctm)[4];
            self.glyph(text, x, y, end_x, size);
        });
    }

    fn glyph(&mut self, text: &str, x: f32, y: f32, end_x: f32, size: f32) {
        let same_line = self.current.as_ref().is_some_and(|(line, last_x)| {
            (line.y - y).abs() <= 0.5 * line.size.max(size) && x > last_x - 3.0 * size
        });
        if !same_line {
            self.end_line();
            self.current = Some((
                Line {
                    y,
                    size,
                    text: String::new(),
                },
                x,
            ));
        }
        let Some((line, last_x)) = self.current.as_mut() else {
            return;
        };
        let gap = x - *last_x;
        if gap > 0.2 * size && !line.text.is_empty() && !line.text.ends_with(' ') {
            line.text.push(' ');
        }
        // Whitespace collapses: justified text often has both a space glyph and a gap.
        for c in text.chars().filter(|c| !c.is_control()) {
            if c.is_whitespace() {
                if !line.text.is_empty() && !line.text.ends_with(' ') {
                    line.text.push(' ');
                }
            } else {
                line.text.push(c);
            }
        }
        line.size = line.size.max(size);
        *last_x = end_x;
    }

    fn end_line(&mut self) {
        if let Some((mut line, _)) = self.current.take() {
            let trimmed = line.text.trim();
            if !trimmed.is_empty() {
                line.text = trimmed.to_string();
                self.lines.push(line);
            }
        }
    }
}

/// After `BI`: the image dictionary, `ID`, one whitespace byte, binary data, then `EI` between
/// whitespace.
fn skip_inline_image(lx: &mut Lexer<'_>) {
    let Some(id) = find(&lx.data[lx.pos..], b"ID") else {
        lx.pos = lx.data.len();
        return;
    };
    let mut at = lx.pos + id + 3;
    while at < lx.data.len() {
        let Some(i) = find(&lx.data[at..], b"EI") else {
            break;
        };
        let ei = at + i;
        let before = ei == 0 || is_ws(lx.data[ei - 1]);
        let after = lx.data.get(ei + 2).is_none_or(|&b| is_ws(b));
        if before && after {
            lx.pos = ei + 2;
            return;
        }
        at = ei + 2;
    }
    lx.pos = lx.data.len();
}
