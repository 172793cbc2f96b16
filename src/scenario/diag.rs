//! Input diagnostics for scenario files: `file:line:col: key.path: message`.
//!
//! This module owns how every input error a user sees is positioned and rendered, and the
//! machinery `file.rs`/`build.rs` call to get there:
//! - [`from_toml`] parses TOML text into a raw serde struct; any failure (syntax, unknown key,
//!   wrong type, bad unit string, out-of-range number, missing field) becomes one
//!   [`Diagnostic`] with position and key path.
//! - [`SourceMap`] maps a [`KeyPath`] to a position after parsing, for errors that
//!   validation (`build.rs`) finds in values that parsed fine.
//! - [`Diagnostics`] collects several of them; the CLI maps it to exit code 2.
//!
//! Contracts:
//! - Lines and columns are 1-based. Columns count Unicode scalar values (chars) from the start
//!   of the line, so a tab is one column and `é` is one column.
//! - Key paths use TOML syntax: `sites[3].name`, `campus.clients`; a key that is not a bare
//!   TOML key is quoted (`hosts."a.b"`). Array indexes are 0-based, as in serde and in
//!   `toml` itself: the second `[[item]]` is `item[1]`.
//! - Nothing here panics, whatever the text (empty, huge numbers, deep nesting: the `toml`
//!   parser rejects nesting beyond 80 levels itself).
//!
//! How positions are found: `toml::de::Error::span()` carries the byte range of the
//! offending key (unknown field) or value (everything else), and that survives the
//! `serde_path_to_error` wrapper, which supplies the key path (verified in the tests).
//! When a span is missing, the position comes from the path through a [`SourceMap`] built
//! from `toml::de::DeTable::parse_recoverable`, whose keys and values all carry spans.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One input error at a position in a file.
#[derive(Clone, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {}{message}", path_prefix(.key_path))]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in chars.
    pub col: usize,
    /// `sites[3].name`; empty when the error is not about one key (e.g. a syntax error).
    pub key_path: String,
    pub message: String,
}

fn path_prefix(key_path: &str) -> String {
    if key_path.is_empty() { String::new() } else { format!("{key_path}: ") }
}

/// Several diagnostics, e.g. everything validation found in one file. Displays one per line.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render_all(diags: &[Diagnostic]) -> String {
    diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    /// Orders by file, line, column; stable, so equal positions keep the order found.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    }
    /// `Ok(())` when empty, so validation can end with `diags.into_result()?`.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<I: IntoIterator<Item = Diagnostic>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl FromIterator<Diagnostic> for Diagnostics {
    fn from_iter<I: IntoIterator<Item = Diagnostic>>(iter: I) -> Self {
        Diagnostics(iter.into_iter().collect())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One step of a [`KeyPath`].
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum PathSegment {
    /// A table key.
    Key(String),
    /// A 0-based array index (plain arrays and arrays of tables alike).
    Index(usize),
}

/// Where a value lives in a document: `KeyPath::root().key("sites").index(3).key("name")`
/// displays as `sites[3].name`. The root displays as the empty string.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub struct KeyPath(Vec<PathSegment>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }
    /// This path extended by a table key. Takes `&self` so a parent path can be reused in a
    /// loop (`let p = site.key("name")`) as well as chained on a temporary.
    #[must_use]
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(PathSegment::Key(key.into()));
        KeyPath(v)
    }
    /// This path extended by an array index.
    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut v = self.0.clone();
        v.push(PathSegment::Index(index));
        KeyPath(v)
    }
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// The path one step up; `None` for the root.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, rest) = self.0.split_last()?;
        Some(KeyPath(rest.to_vec()))
    }
}

impl From<&serde_path_to_error::Path> for KeyPath {
    fn from(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        KeyPath(
            path.iter()
                .map(|s| match s {
                    Segment::Seq { index } => PathSegment::Index(*index),
                    Segment::Map { key } => PathSegment::Key(key.clone()),
                    // An externally tagged enum written as `{ variant = ... }`: the variant
                    // is a key in the TOML text.
                    Segment::Enum { variant } => PathSegment::Key(variant.clone()),
                    // Non-string map keys cannot occur in TOML; keep the path readable.
                    Segment::Unknown => PathSegment::Key("?".to_owned()),
                })
                .collect(),
        )
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Index(n) => write!(f, "[{n}]")?,
                PathSegment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write_key(f, k)?;
                }
            }
        }
        Ok(())
    }
}

/// A bare TOML key as is, anything else as a TOML basic string, so the path is unambiguous.
fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        return f.write_str(key);
    }
    f.write_str("\"")?;
    for c in key.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{:04X}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Parses TOML `text` (from `file`, used only in messages) into `T`, a raw serde struct
/// (normally `deny_unknown_fields`). Every failure is one [`Diagnostic`]:
/// - syntax error: the parser's position, empty key path;
/// - unknown key: the position of the key itself, the path naming it (`campus.clientz`),
///   serde's "expected one of ..." list in the message;
/// - wrong type, bad unit string, negative or out-of-range number: the position of the
///   value and its path;
/// - missing field: the position of the table that lacks it (its `[header]`, or 1:1 for the
///   top level) and the path of the missing key (`campus.clients`).
///
/// Inside an internally tagged enum (`#[serde(tag = "...")]`), an untagged enum or a
/// `#[serde(flatten)]` struct, serde buffers the table and the path and position stop at that
/// table; only unknown keys are traced further (by the key name in serde's message).
///
/// When a document has several problems, only the first one met is reported; tables are
/// visited in key order (the `toml` crate sorts keys), not document order.
pub fn from_toml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Diagnostic> {
    let de = match toml::de::Deserializer::parse(text) {
        Ok(de) => de,
        Err(e) => {
            let (line, col) = match e.span() {
                Some(span) => offset_to_position(text, span.start),
                None => (1, 1),
            };
            return Err(Diagnostic {
                file: file.to_owned(),
                line,
                col,
                key_path: String::new(),
                message: e.message().trim_end().to_owned(),
            });
        }
    };
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut path = KeyPath::from(e.path());
        let inner = e.into_inner();
        let mut position = match inner.span() {
            Some(span) => offset_to_position(text, span.start),
            // Not seen in practice with toml 1.2 (every value carries a span), but an error
            // from a custom Deserialize could lack one; fall back to where the path is.
            None => SourceMap::new(file, text).locate(&path),
        };
        // Inside an internally tagged enum or a flattened struct serde buffers the table,
        // so both the path and the span stop at the table. For the most common error there,
        // an unknown key, the message names the key: point at it if it is in the document.
        if let Some(name) = unknown_field_name(inner.message()) {
            let ends_with_it = matches!(path.segments().last(), Some(PathSegment::Key(k)) if k == name);
            let candidate = path.key(name);
            let map = SourceMap::new(file, text);
            if !ends_with_it && map.contains(&candidate) {
                position = map.locate_key(&candidate);
                path = candidate;
            }
        }
        // A missing key is named in the path (`campus.clients`), positioned at the table
        // that lacks it: every diagnostic names a key, also one absent from the text.
        if let Some(name) = missing_field_name(inner.message()) {
            path = path.key(name);
        }
        Diagnostic {
            file: file.to_owned(),
            line: position.0,
            col: position.1,
            key_path: path.to_string(),
            message: humanize(inner.message()),
        }
    })
}

/// `x` from serde's "missing field `x`".
fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next().filter(|n| !n.is_empty())
}

/// `x` from serde's "unknown field `x`, expected ..." / "unknown field `x`, there are no fields".
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find("`, ").or_else(|| rest.strip_suffix('`').map(str::len))?;
    Some(&rest[..end])
}

/// Rewrites serde's Rust-type jargon at the end of a message into plain words:
/// "invalid value: integer `-3`, expected u32" -> "..., expected an integer from 0 to 4294967295".
fn humanize(message: &str) -> String {
    const RANGES: &[(&str, &str)] = &[
        ("u8", "an integer from 0 to 255"),
        ("u16", "an integer from 0 to 65535"),
        ("u32", "an integer from 0 to 4294967295"),
        ("u64", "an integer from 0 to 18446744073709551615"),
        ("usize", "a non-negative integer"),
        ("i8", "an integer from -128 to 127"),
        ("i16", "an integer from -32768 to 32767"),
        ("i32", "an integer from -2147483648 to 2147483647"),
        ("i64", "an integer from -9223372036854775808 to 9223372036854775807"),
        ("f32", "a number"),
        ("f64", "a number"),
    ];
    let message = message.trim_end();
    for (rust, plain) in RANGES {
        if let Some(head) = message.strip_suffix(&format!("expected {rust}")) {
            return format!("{head}expected {plain}");
        }
    }
    message.to_owned()
}

/// Converts a UTF-8 file's bytes to text, or a diagnostic at the first invalid byte. For
/// callers that read files as bytes (the CLI), so that invalid UTF-8 is an input error
/// like any other rather than an I/O error.
pub fn text_from_utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let text = std::str::from_utf8(valid).unwrap_or("");
        let (line, col) = offset_to_position(text, text.len());
        Diagnostic {
            file: file.to_owned(),
            line,
            col,
            key_path: String::new(),
            message: "the file is not valid UTF-8".to_owned(),
        }
    })
}

/// 1-based (line, column in chars) of a byte offset; offsets past the end or inside a
/// multi-byte char are clamped rather than trusted.
fn offset_to_position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Positions of every key and value of a document, for errors found after parsing.
///
/// A table opened by a `[header]` is positioned at its header, an array of tables at its
/// first `[[header]]`, each element at its own `[[header]]`, an inline table or array at
/// its opening bracket, a scalar at its first character. A table that only exists through
/// a dotted key or a longer header (`campus` in `[campus.inner]`) is at that key.
#[derive(Clone, Debug)]
pub struct SourceMap {
    file: String,
    text: String,
    root: Node,
}

#[derive(Clone, Debug)]
struct Node {
    /// Where the key naming this node is (`None` for the root and array elements).
    key_start: Option<usize>,
    value_start: usize,
    kind: NodeKind,
}

#[derive(Clone, Debug)]
enum NodeKind {
    Scalar,
    Table(BTreeMap<String, Node>),
    Array(Vec<Node>),
}

impl SourceMap {
    /// Never fails: text that does not parse gets a best-effort map of what did parse
    /// (`DeTable::parse_recoverable`), and lookups fall back to ancestors or 1:1.
    pub fn new(file: &str, text: &str) -> Self {
        let (root, _errors) = DeTable::parse_recoverable(text);
        let span = root.span();
        let root =
            Node { key_start: None, value_start: span.start, kind: NodeKind::Table(table_nodes(root.get_ref())) };
        SourceMap { file: file.to_owned(), text: text.to_owned(), root }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// (line, col) of the value at `path`; if it is absent, of its nearest existing
    /// ancestor; (1, 1) for the root.
    pub fn locate(&self, path: &KeyPath) -> (usize, usize) {
        match self.walk(path) {
            Some(node) => self.position(node.value_start),
            None => (1, 1),
        }
    }

    /// (line, col) of the key naming the value at `path` (for an array element or when the
    /// key is absent: as [`locate`](Self::locate)). For errors about the key itself, such as
    /// a deprecated name.
    pub fn locate_key(&self, path: &KeyPath) -> (usize, usize) {
        match self.walk(path) {
            Some(node) => self.position(node.key_start.unwrap_or(node.value_start)),
            None => (1, 1),
        }
    }

    /// Whether the document spells out a value at `path` (as opposed to a serde default).
    pub fn contains(&self, path: &KeyPath) -> bool {
        let mut node = &self.root;
        for seg in path.segments() {
            match step(node, seg) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }

    /// A diagnostic positioned at the value at `path` (see [`locate`](Self::locate)).
    pub fn error(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.locate(path);
        Diagnostic { file: self.file.clone(), line, col, key_path: path.to_string(), message: message.into() }
    }

    /// 1-based (line, col in chars) of a byte offset into the text, e.g. from a
    /// `toml::Spanned` field.
    pub fn position(&self, byte_offset: usize) -> (usize, usize) {
        offset_to_position(&self.text, byte_offset)
    }

    /// The deepest node along `path`; `None` when even the first step is missing (root).
    fn walk(&self, path: &KeyPath) -> Option<&Node> {
        let mut node = &self.root;
        let mut found = None;
        for seg in path.segments() {
            match step(node, seg) {
                Some(next) => {
                    node = next;
                    found = Some(next);
                }
                None => break,
            }
        }
        found
    }
}

fn step<'a>(node: &'a Node, seg: &PathSegment) -> Option<&'a Node> {
    match (seg, &node.kind) {
        (PathSegment::Key(k), NodeKind::Table(t)) => t.get(k),
        (PathSegment::Index(i), NodeKind::Array(a)) => a.get(*i),
        _ => None,
    }
}

fn table_nodes(table: &DeTable<'_>) -> BTreeMap<String, Node> {
    table
        .iter()
        .map(|(k, v)| {
            let mut node = value_node(v);
            node.key_start = Some(k.span().start);
            (k.get_ref().to_string(), node)
        })
        .collect()
}

fn value_node(v: &Spanned<DeValue<'_>>) -> Node {
    let span: Range<usize> = v.span();
    let kind = match v.get_ref() {
        DeValue::Table(t) => NodeKind::Table(table_nodes(t)),
        DeValue::Array(a) => NodeKind::Array(a.iter().map(value_node).collect()),
        _ => NodeKind::Scalar,
    };
    Node { key_start: None, value_start: span.start, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_display() {
        let p = KeyPath::root().key("sites").index(3).key("name");
        assert_eq!(p.to_string(), "sites[3].name");
        assert_eq!(KeyPath::root().to_string(), "");
        assert_eq!(KeyPath::root().key("ports").index(1).to_string(), "ports[1]");
        assert_eq!(KeyPath::root().key("hosts").key("a.b").key("").to_string(), r#"hosts."a.b"."""#);
        assert_eq!(p.parent().unwrap().to_string(), "sites[3]");
        assert_eq!(KeyPath::root().parent(), None);
    }

    #[test]
    fn diagnostic_display_omits_empty_path() {
        let mut d = Diagnostic {
            file: "a.toml".into(),
            line: 3,
            col: 7,
            key_path: "campus.clients".into(),
            message: "boom".into(),
        };
        assert_eq!(d.to_string(), "a.toml:3:7: campus.clients: boom");
        d.key_path.clear();
        assert_eq!(d.to_string(), "a.toml:3:7: boom");
        let mut all = Diagnostics::from(d.clone());
        all.push(Diagnostic { line: 1, ..d });
        assert_eq!(all.to_string(), "a.toml:3:7: boom\na.toml:1:7: boom");
        all.sort();
        assert_eq!(all.0[0].line, 1);
        assert!(Diagnostics::new().into_result().is_ok());
    }

    #[test]
    fn positions_count_chars_and_clamp() {
        let text = "a = \"é\"\nbb = 1\n";
        assert_eq!(offset_to_position(text, 0), (1, 1));
        assert_eq!(offset_to_position(text, text.find('\n').unwrap()), (1, 8));
        assert_eq!(offset_to_position(text, text.find("bb").unwrap()), (2, 1));
        // Inside the two-byte é: clamped back to its start.
        assert_eq!(offset_to_position(text, 6), (1, 6));
        assert_eq!(offset_to_position(text, 10_000), (3, 1));
        assert_eq!(offset_to_position("", 5), (1, 1));
    }

    #[test]
    fn unknown_field_name_from_serde_messages() {
        assert_eq!(unknown_field_name("unknown field `hostz`, expected `hosts`"), Some("hostz"));
        assert_eq!(unknown_field_name("unknown field `nmae`, expected one of `name`, `count`"), Some("nmae"));
        assert_eq!(unknown_field_name("unknown field `a`, there are no fields"), Some("a"));
        assert_eq!(unknown_field_name("unknown field `x`"), Some("x"));
        assert_eq!(unknown_field_name("missing field `x`"), None);
        assert_eq!(missing_field_name("missing field `x`"), Some("x"));
        assert_eq!(missing_field_name("unknown field `x`"), None);
    }

    #[test]
    fn humanize_rewrites_rust_types() {
        assert_eq!(
            humanize("invalid value: integer `-3`, expected u32"),
            "invalid value: integer `-3`, expected an integer from 0 to 4294967295"
        );
        assert_eq!(humanize("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn utf8_error_position() {
        let e = text_from_utf8("f.toml", b"a = 1\nb = \"\xff\"\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 6));
        assert_eq!(text_from_utf8("f.toml", b"a = 1").unwrap(), "a = 1");
    }
}

/// Source maps of a document assembled from layers (a file and the files it extends),
/// most specific first. A problem at a key path is reported in the first layer that spells
/// out that path, else in the first layer that spells out its nearest ancestor, so the
/// user is sent to the file whose text decides the value.
#[derive(Debug, Clone)]
pub struct LayeredMap {
    layers: Vec<SourceMap>,
}

impl LayeredMap {
    /// `layers`: most specific first; must not be empty.
    pub fn new(layers: Vec<SourceMap>) -> Self {
        assert!(!layers.is_empty(), "a LayeredMap needs at least one layer");
        LayeredMap { layers }
    }

    /// The layer that decides the value at `path`.
    pub fn layer_for(&self, path: &KeyPath) -> &SourceMap {
        let mut probe = Some(path.clone());
        while let Some(p) = probe {
            if let Some(layer) = self.layers.iter().find(|l| l.contains(&p)) {
                return layer;
            }
            probe = p.parent();
        }
        &self.layers[0]
    }

    pub fn error(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.layer_for(path).error(path, message)
    }

    /// Whether any layer spells out a value at `path`.
    pub fn contains(&self, path: &KeyPath) -> bool {
        self.layers.iter().any(|l| l.contains(path))
    }

    /// The most specific layer's file name.
    pub fn file(&self) -> &str {
        self.layers[0].file()
    }
}

/// Merges `over` into `base`: tables merge key by key, recursively; any other value
/// (including arrays and arrays of tables) replaces the base's value as a whole.
pub fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Deserialises `T` from a merged table. Errors carry the key path from serde and the
/// position of that path in the layer that decides it (see [`LayeredMap`]).
pub fn from_table<T: DeserializeOwned>(table: toml::Table, map: &LayeredMap) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = KeyPath::from(e.path());
        let inner = e.into_inner();
        let layer = map.layer_for(&path);
        let (line, col) =
            if unknown_field_name(inner.message()).is_some() { layer.locate_key(&path) } else { layer.locate(&path) };
        let path = match missing_field_name(inner.message()) {
            Some(name) => path.key(name),
            None => path,
        };
        Diagnostic {
            file: layer.file().to_owned(),
            line,
            col,
            key_path: path.to_string(),
            message: humanize(inner.message()),
        }
    })
}
