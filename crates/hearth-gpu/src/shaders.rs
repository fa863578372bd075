//! The shader registry and a tiny preprocessor.
//!
//! Every kernel family is one file in `shaders/`. Variants are made by [`Defines`]: each define becomes a
//! `const` at the top of the module (so `@workgroup_size(WG)` and loop bounds are compile-time), and
//! lines between `#if EXPR` / `#elif EXPR` / `#else` / `#endif` are kept or dropped. `EXPR` is `NAME`,
//! `!NAME`, `NAME == value` or `NAME != value`, or several of those joined by `||`. `enable`/`requires` directives are hoisted above the
//! constants. Defines are part of the pipeline-cache key, so a variant is compiled once.

use std::fmt::Write;

use crate::error::{GpuError, Result};

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// The source of one kernel family, as shipped.
pub fn source(family: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == family)
        .map(|(_, s)| *s)
        .ok_or_else(|| GpuError::UnknownShader(family.to_string()))
}

/// Names of every shipped kernel family.
pub fn families() -> impl Iterator<Item = &'static str> {
    SHADERS.iter().map(|(n, _)| *n)
}

/// A define's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    U32(u32),
    /// Stored as bits so the key can be hashed.
    F32(u32),
    Bool(bool),
    /// Only for `#if NAME == sym`; emits no constant.
    Sym(&'static str),
}

/// An ordered set of defines: the specialisation of a kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Defines(Vec<(&'static str, Value)>);

impl Defines {
    pub fn new() -> Self {
        Self::default()
    }
    fn set(mut self, name: &'static str, v: Value) -> Self {
        match self.0.binary_search_by(|(n, _)| n.cmp(&name)) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => self.0.insert(i, (name, v)),
        }
        self
    }
    pub fn u32(self, name: &'static str, v: u32) -> Self {
        self.set(name, Value::U32(v))
    }
    pub fn f32(self, name: &'static str, v: f32) -> Self {
        self.set(name, Value::F32(v.to_bits()))
    }
    pub fn flag(self, name: &'static str, v: bool) -> Self {
        self.set(name, Value::Bool(v))
    }
    pub fn sym(self, name: &'static str, v: &'static str) -> Self {
        self.set(name, Value::Sym(v))
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.0.iter()
    }

    fn truthy(&self, name: &str) -> bool {
        match self.get(name) {
            None => false,
            Some(Value::U32(v)) => *v != 0,
            Some(Value::F32(v)) => f32::from_bits(*v) != 0.0,
            Some(Value::Bool(b)) => *b,
            Some(Value::Sym(s)) => !s.is_empty(),
        }
    }
    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| match v {
            Value::U32(v) => v.to_string(),
            Value::F32(v) => format!("{:?}", f32::from_bits(*v)),
            Value::Bool(b) => b.to_string(),
            Value::Sym(s) => s.to_string(),
        })
    }
}

fn eval(defs: &Defines, expr: &str, family: &str) -> Result<bool> {
    if expr.contains("||") {
        // Every alternative is evaluated, so a malformed one is an error whatever the others say.
        let mut any = false;
        for part in expr.split("||") {
            any |= eval(defs, part, family)?;
        }
        return Ok(any);
    }
    let expr = expr.trim();
    let err = || GpuError::Preprocess {
        family: family.into(),
        message: format!("bad condition `{expr}`"),
    };
    if let Some((l, r)) = expr.split_once("==") {
        return Ok(defs.text(l.trim()).ok_or_else(err)? == r.trim());
    }
    if let Some((l, r)) = expr.split_once("!=") {
        return Ok(defs.text(l.trim()).ok_or_else(err)? != r.trim());
    }
    if let Some(n) = expr.strip_prefix('!') {
        return Ok(!defs.truthy(n.trim()));
    }
    if expr.is_empty() || expr.contains(' ') {
        return Err(err());
    }
    Ok(defs.truthy(expr))
}

/// `src` with every `#include NAME` line replaced by the shipped file `shaders/NAME.wgsl` (itself
/// expanded), before any `#if` is evaluated, so included text sees the same defines. A family's parts
/// and the fragments families share (e.g. `rope_angle`) are files like any other.
fn expand_includes(family: &str, src: &str, depth: usize) -> Result<String> {
    if !src.contains("#include ") {
        return Ok(src.to_string());
    }
    if depth > 4 {
        return Err(GpuError::Preprocess {
            family: family.into(),
            message: "#include nested deeper than 4 (a cycle?)".into(),
        });
    }
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        match line.trim_start().strip_prefix("#include ") {
            Some(name) => out += &expand_includes(family, source(name.trim())?, depth + 1)?,
            None => {
                out += line;
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Applies `defs` to `src` (the file of kernel family `family`), after its `#include`s.
pub fn preprocess(family: &str, src: &str, defs: &Defines) -> Result<String> {
    let src = &expand_includes(family, src, 0)?;
    // Stack of (this branch active, some branch of this #if already taken, parent active).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let mut directives = String::new();
    let mut body = String::new();
    let active = |s: &Vec<(bool, bool, bool)>| s.last().is_none_or(|t| t.0);
    let perr = |line: usize, m: &str| GpuError::Preprocess {
        family: family.into(),
        message: format!("line {line}: {m}"),
    };
    for (i, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if let Some(c) = t.strip_prefix("#if ") {
            let parent = active(&stack);
            let v = parent && eval(defs, c, family)?;
            stack.push((v, v, parent));
        } else if let Some(c) = t.strip_prefix("#elif ") {
            let top = stack
                .last_mut()
                .ok_or_else(|| perr(i + 1, "#elif without #if"))?;
            let v = top.2 && !top.1 && eval(defs, c, family)?;
            top.0 = v;
            top.1 |= v;
        } else if t.starts_with("#else") {
            let top = stack
                .last_mut()
                .ok_or_else(|| perr(i + 1, "#else without #if"))?;
            top.0 = top.2 && !top.1;
            top.1 = true;
        } else if t.starts_with("#endif") {
            stack
                .pop()
                .ok_or_else(|| perr(i + 1, "#endif without #if"))?;
        } else if active(&stack) {
            if t.starts_with("enable ") || t.starts_with("requires ") {
                directives += line;
                directives.push('\n');
            } else {
                body += line;
                body.push('\n');
            }
        }
    }
    if !stack.is_empty() {
        return Err(perr(src.lines().count(), "unterminated #if"));
    }
    let mut out = directives;
    for (name, v) in defs.iter() {
        // Writing to a String cannot fail.
        let _ = match v {
            Value::U32(x) => writeln!(out, "const {name}: u32 = {x}u;"),
            Value::F32(x) => writeln!(out, "const {name}: f32 = {:?};", f32::from_bits(*x)),
            Value::Bool(b) => writeln!(out, "const {name}: bool = {b};"),
            Value::Sym(_) => Ok(()),
        };
    }
    out += &body;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditionals_and_constants() {
        let src =
            "enable f16;\n#if A == q4\nx\n#elif A == q8\ny\n#else\nz\n#endif\n#if !F\nnf\n#endif\n";
        let d = Defines::new().sym("A", "q8").u32("N", 3).flag("F", false);
        let out = preprocess("t", src, &d).unwrap();
        assert_eq!(
            out,
            "enable f16;\nconst F: bool = false;\nconst N: u32 = 3u;\ny\nnf\n"
        );
        let d = Defines::new().sym("A", "q4");
        assert!(preprocess("t", src, &d).unwrap().contains("\nx\n"));
        let either = "#if A == q4 || A == q4s\nx\n#endif\n";
        for (a, kept) in [("q4", true), ("q4s", true), ("q8", false)] {
            let out = preprocess("t", either, &Defines::new().sym("A", a)).unwrap();
            assert_eq!(out.contains('x'), kept, "{a}");
        }
        assert!(preprocess("t", "#if A == q4 ||\nx\n#endif\n", &d).is_err());
        assert!(preprocess("t", "#if A\n", &d).is_err());
        assert!(preprocess("t", "#endif\n", &d).is_err());
    }

    #[test]
    fn nested_inactive_branches_stay_inactive() {
        let src = "#if A\n#if B\nab\n#else\nanb\n#endif\n#endif\n";
        let out = preprocess("t", src, &Defines::new().flag("A", false).flag("B", false)).unwrap();
        assert!(!out.contains("anb"));
    }

    #[test]
    fn includes_expand_before_conditionals() {
        let d = Defines::new().flag("ROPE", true);
        let out = preprocess("t", "#if ROPE\n#include rope_angle\n#endif\n", &d).unwrap();
        assert!(out.contains("fn reduce_angle"), "{out}");
        let off = preprocess(
            "t",
            "#if ROPE\n#include rope_angle\n#endif\n",
            &Defines::new().flag("ROPE", false),
        );
        assert!(!off.unwrap().contains("reduce_angle"));
        assert!(preprocess("t", "#include no-such-file\n", &d).is_err());
    }

    #[test]
    fn every_shipped_family_is_listed() {
        assert!(families().count() > 0);
        assert!(source("no-such-family").is_err());
    }
}
