//! What a hostile input may do: be accepted, or be refused with diagnostics a user can act
//! on. Each check returns `Err(why)` when the property breaks.
//!
//! A refusal must name, for every problem, a file that exists (the case or one of its
//! bases), a line and column inside that file, and a key path; the only problems without a
//! key path are those of a file that is not TOML at all (a syntax error, invalid UTF-8),
//! where there is no key to name.

use std::path::Path;

use domiso::scenario::build::{BUILTIN_WHITEPAPER, BUILTIN_WHITEPAPER_NAME};
use domiso::scenario::diag::Diagnostic;

/// The text of a file a diagnostic names.
fn text_of(file: &str) -> Option<Vec<u8>> {
    if file == BUILTIN_WHITEPAPER_NAME || file == "builtin:whitepaper-2008" {
        return Some(BUILTIN_WHITEPAPER.as_bytes().to_vec());
    }
    std::fs::read(file).ok()
}

/// Whether `bytes` are a TOML document (valid UTF-8 that parses), i.e. whether every
/// problem in it has a key to name.
fn is_toml(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|t| t.parse::<toml::Table>().is_ok())
}

/// Checks a position (`line`, `col` 1-based, columns in chars) against the file's text.
fn position_in(file: &str, bytes: &[u8], line: usize, col: usize) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    if line == 0 || col == 0 {
        return Err(format!("{file}: position {line}:{col} is not 1-based"));
    }
    if line > lines.len() {
        return Err(format!("{file}: line {line} is past the end ({} lines)", lines.len()));
    }
    let width = lines[line - 1].chars().count();
    if col > width + 1 {
        return Err(format!("{file}:{line}: column {col} is past the end of the line ({width} chars)"));
    }
    Ok(())
}

/// One diagnostic of a refused scenario.
pub fn diagnostic(d: &Diagnostic) -> Result<(), String> {
    let shown = d.to_string();
    if d.file.is_empty() {
        return Err(format!("no file named: {shown}"));
    }
    let Some(bytes) = text_of(&d.file) else {
        return Err(format!("names a file that cannot be read: {shown}"));
    };
    position_in(&d.file, &bytes, d.line, d.col).map_err(|e| format!("{e}: {shown}"))?;
    if d.key_path.is_empty() && is_toml(&bytes) {
        return Err(format!("no key path, although {} is valid TOML: {shown}", d.file));
    }
    if d.message.trim().is_empty() {
        return Err(format!("empty message: {shown}"));
    }
    let prefix = format!("{}:{}:{}: ", d.file, d.line, d.col);
    if !shown.starts_with(&prefix) {
        return Err(format!("not rendered as file:line:col: key.path: message: {shown}"));
    }
    Ok(())
}

/// One `file:line:col: key: message` found in a rendered error (a CLI's stderr line, or a
/// sweep error that quotes a scenario's diagnostics).
#[derive(Debug)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// What follows the position: `key.path: message`.
    pub rest: String,
}

/// Every `FILE:L:C: ...` in `text`: a line and column in digits between colons, then a
/// space; the file name runs back to the start of the line or to the previous `: ` or
/// `; ` (a sweep error quotes a scenario's diagnostics after its own prefix).
pub fn located(text: &str) -> Vec<Located> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    for i in 0..b.len() {
        if b[i] != b':' {
            continue;
        }
        let n1 = digits(i + 1);
        let j = i + 1 + n1;
        if n1 == 0 || b.get(j) != Some(&b':') {
            continue;
        }
        let n2 = digits(j + 1);
        let k = j + 1 + n2;
        if n2 == 0 || b.get(k) != Some(&b':') || b.get(k + 1) != Some(&b' ') {
            continue;
        }
        let head = &text[..i];
        let start = [head.rfind('\n').map(|x| x + 1), head.rfind("; ").map(|x| x + 2), head.rfind(": ").map(|x| x + 2)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        let (Ok(line), Ok(col)) = (text[i + 1..j].parse(), text[j + 1..k].parse()) else { continue };
        let rest = text[k + 2..].split(['\n', ';']).next().unwrap_or("").to_string();
        out.push(Located { file: text[start..i].to_string(), line, col, rest });
    }
    out
}

/// A rendered error (a sweep's, or `domiso validate`'s stderr) must hold at least one
/// well-formed `file:line:col: key: message` naming a file that exists, within it, with a
/// key path (unless the file is not TOML). Candidates whose "file" cannot be read are text
/// that only looks like a position (a sweep's point label `open = 24:00:00: ...`).
pub fn rendered(text: &str, case_file: &Path) -> Result<(), String> {
    let found: Vec<(Located, Vec<u8>)> =
        located(text).into_iter().filter_map(|l| text_of(&l.file).map(|bytes| (l, bytes))).collect();
    if found.is_empty() {
        return Err(format!("no file:line:col naming a readable file in the error: {text}"));
    }
    for (l, bytes) in &found {
        position_in(&l.file, bytes, l.line, l.col).map_err(|e| format!("{e}: {text}"))?;
        let key = l.rest.split(": ").next().unwrap_or("");
        let has_key = l.rest.contains(": ") && looks_like_key_path(key);
        if !has_key && is_toml(bytes) {
            return Err(format!("no key path at {}:{}:{} ({}): {text}", l.file, l.line, l.col, case_file.display()));
        }
    }
    Ok(())
}

/// `campus.clients`, `app[2].to`, `propensity."ipsec blocked"`: no spaces outside quotes.
fn looks_like_key_path(s: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' if !quoted => return false,
            _ => {}
        }
    }
    !s.is_empty() && !quoted
}
