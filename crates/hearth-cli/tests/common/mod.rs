//! Running the real `hearth` binary from the CLI contract tests.

#![allow(dead_code, clippy::expect_used)] // each test crate uses a part

use std::process::{Command, Output};

use serde_json::Value;

/// Runs `hearth args…` (with a private XDG_RUNTIME_DIR so Mesa stays quiet).
pub fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("run hearth")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `args`, requires success, and parses stdout as exactly one JSON line.
pub fn json(args: &[&str]) -> Value {
    let out = hearth(args);
    assert!(
        out.status.success(),
        "hearth {args:?} failed: {}",
        stderr(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON line from {args:?}: {stdout}");
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}"))
}
