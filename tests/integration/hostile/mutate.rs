//! Mutations of shipped scenario and sweep files, as proptest strategies.
//!
//! A [`Case`] names a shipped file and a list of [`Op`]s applied to its parsed `toml::Value`
//! tree (so a problem still sits at a real key that diagnostics can name), then a few
//! [`RawOp`]s on the re-serialised bytes (syntax errors, invalid UTF-8, huge literals). The
//! ops are the hostile inputs of issue 9: wrong types, negative/zero/NaN/infinite/huge
//! numbers, broken unit strings and prefixes, deleted and unknown keys, duplicated and
//! emptied tables, dangling or self references, swapped values (dates and days out of
//! order), and sections repeated thousands of times.
//!
//! Everything here is deterministic in the case (no clock, no randomness of its own), so a
//! failing case replays and shrinks: fewer ops, smaller indexes, milder values.

use proptest::prelude::*;
use proptest::sample::select;
use toml::Value;

/// A position in a collection whose size is only known when the case is applied: the
/// fraction `.0 / 2^64` of the way in. Shrinks towards the first element.
#[derive(Clone, Copy, Debug)]
pub struct Pick(pub u64);

impl Pick {
    /// `size` must not be 0.
    pub fn index(self, size: usize) -> usize {
        ((size as u128 * u128::from(self.0)) >> 64) as usize
    }
    pub fn get<T>(self, slice: &[T]) -> &T {
        &slice[self.index(slice.len())]
    }
}

pub fn pick() -> impl Strategy<Value = Pick> {
    any::<u64>().prop_map(Pick)
}

/// One step of a path into a TOML tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Idx(usize),
}

pub type Path = Vec<Seg>;

/// Every node of the tree but the root, parents before children, in key order.
pub fn nodes(root: &Value) -> Vec<Path> {
    fn walk(v: &Value, at: &mut Path, out: &mut Vec<Path>) {
        match v {
            Value::Table(t) => {
                for (k, child) in t {
                    at.push(Seg::Key(k.clone()));
                    out.push(at.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    at.push(Seg::Idx(i));
                    out.push(at.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), &mut out);
    out
}

fn get_mut<'a>(root: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut v = root;
    for s in path {
        v = match (s, v) {
            (Seg::Key(k), Value::Table(t)) => t.get_mut(k)?,
            (Seg::Idx(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn get<'a>(root: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut v = root;
    for s in path {
        v = match (s, v) {
            (Seg::Key(k), Value::Table(t)) => t.get(k)?,
            (Seg::Idx(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Strings that break unit, prefix, date, time and reference parsing, or name files that a
/// reader must not follow (`/dev/zero` never ends).
pub const STRINGS: &[&str] = &[
    "",
    " ",
    "5 parsecs",
    "-3 min",
    "1e400 s",
    "0 s",
    "0 ns",
    "0 B",
    "0 bps",
    "1 ns",
    "18446744073709551615 ns",
    "18446744073709551616 ns",
    "213503 d",
    "99999999999999999999 d",
    "1.5 ns",
    "0.1 KiB",
    "1 Mb",
    "1 MB",
    "nan s",
    "inf ms",
    "10 s",
    "3 h",
    "1 d",
    "3650 d",
    "64 KiB",
    "16 EiB",
    "18446744073709551615 B",
    "1 Gbps",
    "18446744073709551615 bps",
    "10.0.0.0/33",
    "300.1.2.3/8",
    "10.0.0.0/8",
    "10.0.0.0/30",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "10.0.0.0/-1",
    "10.0.0.1",
    "fe80::/10",
    "2007-02-30",
    "2007-01-08",
    "2007-01-09",
    "1970-01-01",
    "0000-01-01",
    "9999-12-31",
    "-001-01-01",
    "24:00",
    "25:61",
    "23:59",
    "00:00:00",
    "24:00:00",
    "23:59:59",
    "99:99:99",
    "mon",
    "sun",
    "funday",
    "no-such-name",
    "Domain Computers",
    "builtin:whitepaper-2008",
    "builtin:nope",
    "scenario.toml",
    "sweep.toml",
    "whitepaper-2008.toml",
    "../",
    "/dev/zero",
    "/dev/null",
    "home:dc",
    "home:nope",
    "popular:",
    "peer",
    ":",
    "psk:",
    "kerberos",
    "certificate",
    "any <-> any",
    "any -> any tcp 99999",
    "10.0.0.0/8 <-> 300.0.0.0/8",
    "group:nope <-> any",
    "<->",
    "all",
    "subnets",
    "listed",
    "largest",
    "secure-request",
    "require-encryption",
    "add-to-group",
    "set-filters",
    "nap",
    "enforcement",
    "on",
    "email",
    "ipsec",
    "esp-null-sha1",
    "esp-rot13",
    "pmtu",
    "hub",
    "site",
    "é",
    "\u{0}",
    "\n",
    "a\"b",
    "ipsec.main_mode_lifetime",
    "app.999.port",
    "campus.clients.deeper",
    "wave.-1.start",
    "a..b",
];

pub const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    7,
    24,
    255,
    256,
    576,
    9217,
    65_535,
    65_536,
    3_650,
    3_651,
    10_000,
    100_000,
    5_000_000,
    5_000_001,
    10_000_000,
    10_000_001,
    i32::MAX as i64,
    u32::MAX as i64,
    1 << 32,
    1_000_000_000_000,
    i64::MAX,
    i64::MIN,
    -1_000_000_000_000,
];

pub const FLOATS: &[f64] = &[
    0.0,
    -0.0,
    -1.0,
    0.5,
    1.0,
    1.000_000_1,
    0.999,
    2.0,
    4.000_001,
    100.0,
    1e12,
    1e308,
    -1e308,
    f64::MIN_POSITIVE,
    1e-300,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// A value to put somewhere it does not belong.
#[derive(Clone, Debug)]
pub enum Hostile {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    EmptyArray,
    EmptyTable,
    /// A table with one key no schema knows.
    UnknownTable,
    /// A one-element array of the value.
    Array(Box<Hostile>),
}

impl Hostile {
    pub fn value(&self) -> Value {
        match self {
            Hostile::Int(i) => Value::Integer(*i),
            Hostile::Float(f) => Value::Float(*f),
            Hostile::Str(s) => Value::String(s.clone()),
            Hostile::Bool(b) => Value::Boolean(*b),
            Hostile::EmptyArray => Value::Array(Vec::new()),
            Hostile::EmptyTable => Value::Table(toml::Table::new()),
            Hostile::UnknownTable => {
                let mut t = toml::Table::new();
                t.insert("zz_unknown".into(), Value::Integer(1));
                Value::Table(t)
            }
            Hostile::Array(h) => Value::Array(vec![h.value()]),
        }
    }
}

fn unit_string() -> impl Strategy<Value = String> {
    const UNITS: &[&str] =
        &["ns", "ms", "s", "min", "h", "d", "B", "KB", "KiB", "GB", "TiB", "bps", "Mbps", "Tbps", "parsecs", ""];
    (any::<u64>(), 0u32..20, select(UNITS)).prop_map(|(n, digits, unit)| {
        // Numbers of every length, not only u64-sized ones: overflow must be caught.
        let n = if digits == 0 { n.to_string() } else { format!("{n}{}", "9".repeat(digits as usize * 2)) };
        format!("{n} {unit}")
    })
}

pub fn hostile() -> impl Strategy<Value = Hostile> {
    let scalar = prop_oneof![
        4 => select(INTS).prop_map(Hostile::Int),
        1 => any::<i64>().prop_map(Hostile::Int),
        3 => select(FLOATS).prop_map(Hostile::Float),
        1 => any::<f64>().prop_map(Hostile::Float),
        5 => select(STRINGS).prop_map(|s| Hostile::Str(s.to_string())),
        2 => unit_string().prop_map(Hostile::Str),
        1 => "\\PC{0,12}".prop_map(Hostile::Str),
        1 => any::<bool>().prop_map(Hostile::Bool),
        1 => Just(Hostile::EmptyArray),
        1 => Just(Hostile::EmptyTable),
        1 => Just(Hostile::UnknownTable),
    ];
    scalar.prop_recursive(1, 2, 1, |inner| inner.prop_map(|h| Hostile::Array(Box::new(h))))
}

/// Values of the same kind as `v` at the edges of what it could be: a unit string keeps its
/// family (durations stay durations) but becomes zero, one base unit, the largest that
/// parses, or a million times more; integers and floats go to 0, +-1, the edges of their
/// Rust types and NaN; prefixes, dates and times to their edge cases. These parse, so they
/// reach validation's range checks and, if let through, the model.
pub fn extremes(v: &Value) -> Vec<Value> {
    let s = |x: &str| Value::String(x.to_string());
    match v {
        Value::Integer(n) => [
            0,
            1,
            -1,
            n.saturating_sub(1),
            n.saturating_add(1),
            n.saturating_mul(2),
            n.saturating_mul(1_000_000),
            n.saturating_neg(),
            3_650,
            3_651,
            65_535,
            65_536,
            u32::MAX as i64 - 1,
            u32::MAX as i64,
            1 << 32,
            i64::MAX,
            i64::MIN,
        ]
        .into_iter()
        .map(Value::Integer)
        .collect(),
        Value::Float(x) => [0.0, -0.0, -x, x * 1e6, x + 1e-9, 1.0, 1.0 + 1e-9, 1e308, f64::NAN, f64::INFINITY, 1e-300]
            .into_iter()
            .map(Value::Float)
            .collect(),
        Value::Boolean(b) => vec![Value::Boolean(!b)],
        Value::String(text) => {
            let t = text.trim();
            let digits = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
            let unit = t[digits..].trim();
            let family = |u: &str| {
                const DURATION: &[&str] = &["ns", "us", "ms", "s", "min", "h", "d"];
                const BYTES: &[&str] = &["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
                if DURATION.contains(&u) {
                    Some(("ns", "213503 d", "3650 d", "3651 d"))
                } else if BYTES.contains(&u) {
                    Some(("B", "16 EiB", "1 TiB", "1 GiB"))
                } else if u.ends_with("bps") {
                    Some(("bps", "18 Ebps", "1 Tbps", "10 Tbps"))
                } else {
                    None
                }
            };
            if digits > 0 && !unit.is_empty() {
                if let Some((base, beyond, big, bigger)) = family(unit) {
                    let number = &t[..digits];
                    return vec![
                        s(&format!("0 {unit}")),
                        s(&format!("1 {base}")),
                        s(&format!("18446744073709551615 {base}")),
                        s(&format!("18446744073709551614 {base}")),
                        s(&format!("18446744073709551616 {base}")),
                        s(&format!("{number}000000 {unit}")),
                        s(beyond),
                        s(big),
                        s(bigger),
                        s(&format!("-{number} {unit}")),
                    ];
                }
            }
            if let Some((net, len)) = t.split_once('/') {
                return vec![
                    s(&format!("{net}/0")),
                    s(&format!("{net}/32")),
                    s(&format!("{net}/33")),
                    s("0.0.0.0/0"),
                    s("255.255.255.255/32"),
                    s(&format!("{net}/{}", len.parse::<u8>().map_or(0, |l| l.saturating_sub(1)))),
                    s("300.1.2.3/8"),
                ];
            }
            if t.len() == 10 && t.as_bytes()[4] == b'-' {
                return ["0000-01-01", "9999-12-31", "1970-01-01", "2007-02-29", "2008-02-29", "-001-01-01"]
                    .into_iter()
                    .map(s)
                    .collect();
            }
            if t.contains(':') && t.chars().all(|c| c.is_ascii_digit() || c == ':') {
                return ["00:00", "24:00", "23:59", "24:01", "00:00:00", "24:00:00", "23:59:59", "24:00:01"]
                    .into_iter()
                    .map(s)
                    .collect();
            }
            vec![s(""), s(&format!("{text}-x")), s(&format!("{text}{text}")), s(&text.to_uppercase())]
        }
        Value::Array(a) => {
            let mut out = vec![Value::Array(Vec::new())];
            if let Some(first) = a.first() {
                out.push(Value::Array(vec![first.clone()]));
                out.push(Value::Array(a.iter().rev().cloned().collect()));
                out.push(Value::Array(a.iter().chain(a.iter()).cloned().collect()));
            }
            out
        }
        Value::Table(_) => vec![Value::Table(toml::Table::new())],
        Value::Datetime(_) => vec![s("")],
    }
}

/// What to do at a node.
#[derive(Clone, Debug)]
pub enum OpKind {
    /// A value of the same kind at its edges ([`extremes`]).
    Extreme(Pick),
    Replace(Hostile),
    /// Same content, another TOML type (0 string, 1 integer, 2 float, 3 bool, 4 array, 5 table).
    Retype(u8),
    /// Numbers and the number of a unit string times 10^k.
    Scale(u8),
    Negate,
    Delete,
    /// Repeat an array element (a `[[domain]]`, a `[[wave]]`...) this many more times.
    Duplicate(u32),
    AddUnknownKey,
    Empty,
    /// Replace with another string of the document: a name where another kind is expected.
    Rename(Pick),
    /// Point a reference at its own table's `name` (a wave after itself).
    SelfRef,
    /// Exchange with another node's value (dates or days out of order).
    Swap(Pick),
    /// Copy a whole top-level section of the bases into the file (no change in meaning on
    /// its own; later ops can then mutate inherited keys from the file itself).
    Pull(Pick),
}

/// Where an op applies: a key of the schema (`app[].port`: every array index erased), all
/// keys alike however many times they repeat, then one of its occurrences.
#[derive(Clone, Debug)]
pub struct Op {
    pub at: Pick,
    pub occurrence: Pick,
    pub kind: OpKind,
}

/// A path with its array indexes erased: the key of the schema it is an instance of.
fn schema_of(path: &[Seg]) -> Vec<Option<&str>> {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Idx(_) => None,
        })
        .collect()
}

/// The node an op applies to: every schema key is as likely as another, so a key that
/// occurs once (`rollout.gp_refresh`) is hit as often as one of 20 applications' ports.
fn choose(all: &[Path], at: Pick, occurrence: Pick) -> Path {
    let mut groups: std::collections::BTreeMap<Vec<Option<&str>>, Vec<&Path>> = Default::default();
    for p in all {
        groups.entry(schema_of(p)).or_default().push(p);
    }
    let keys: Vec<_> = groups.keys().collect();
    let group = &groups[*at.get(&keys)];
    (*occurrence.get(group)).clone()
}

pub fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        16 => pick().prop_map(OpKind::Extreme),
        8 => hostile().prop_map(OpKind::Replace),
        3 => (0u8..6).prop_map(OpKind::Retype),
        3 => (1u8..16).prop_map(OpKind::Scale),
        2 => Just(OpKind::Negate),
        4 => Just(OpKind::Delete),
        3 => select(&[1u32, 1, 1, 2, 100, 5_000][..]).prop_map(OpKind::Duplicate),
        2 => Just(OpKind::AddUnknownKey),
        2 => Just(OpKind::Empty),
        3 => pick().prop_map(OpKind::Rename),
        1 => Just(OpKind::SelfRef),
        2 => pick().prop_map(OpKind::Swap),
        2 => pick().prop_map(OpKind::Pull),
    ];
    (pick(), pick(), kind).prop_map(|(at, occurrence, kind)| Op { at, occurrence, kind })
}

/// A mutation of the serialised text.
#[derive(Clone, Debug)]
pub enum RawOp {
    Truncate(Pick),
    DeleteLine(Pick),
    DuplicateLine(Pick),
    SwapLines(Pick, Pick),
    Insert(Pick, &'static str),
    /// A byte that is not UTF-8.
    InvalidUtf8(Pick),
    /// The first number at or after a position gets 400 more digits.
    LongNumber(Pick),
    /// `deep = [[[[...]]]]` nested this deep.
    Nest(u32),
    /// A byte-order mark first.
    Bom,
}

pub const SNIPPETS: &[&str] = &[
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\n[campus]\n",
    "\n[campus]\nclients = 1\n",
    "\n[[app]]\n",
    "\n[run]\ndays = 1\n",
    "x = [",
    "a.b.c = 1\n",
    "\t",
    "\r",
    "\u{0}",
    "#",
    "\n= 5\n",
    "\nname = \"again\"\n",
    "\nextends = \"scenario.toml\"\n",
];

pub fn raw_op() -> impl Strategy<Value = RawOp> {
    prop_oneof![
        2 => pick().prop_map(RawOp::Truncate),
        3 => pick().prop_map(RawOp::DeleteLine),
        3 => pick().prop_map(RawOp::DuplicateLine),
        1 => (pick(), pick()).prop_map(|(a, b)| RawOp::SwapLines(a, b)),
        3 => (pick(), select(SNIPPETS)).prop_map(|(a, s)| RawOp::Insert(a, s)),
        1 => pick().prop_map(RawOp::InvalidUtf8),
        2 => pick().prop_map(RawOp::LongNumber),
        1 => select(&[10u32, 79, 81, 500, 100_000][..]).prop_map(RawOp::Nest),
        1 => Just(RawOp::Bom),
    ]
}

/// Which shipped file and how to mutate it.
#[derive(Clone, Debug)]
pub struct Case {
    pub seed: Pick,
    /// Merge the file with its bases into one standalone file first (else keep `extends`
    /// and mutate the file itself).
    pub flatten: bool,
    /// Shrink the campus and the run to one day before mutating, so a case that still
    /// validates can be run cheaply.
    pub shrink: bool,
    pub ops: Vec<Op>,
    pub raw: Vec<RawOp>,
    /// What a valid case also does: 0 nothing more, 1 generate its campus, 2 lint it and
    /// run a day at SA granularity, 3 the same at packet granularity.
    pub depth: u8,
}

pub fn case() -> impl Strategy<Value = Case> {
    let raw = prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(raw_op(), 1..=2)];
    // Mostly shrunk and run: the model must cope with whatever validation lets through.
    let shrink = prop::bool::weighted(0.75);
    // One op most often, so that more cases get past validation to the model.
    let ops = prop_oneof![3 => prop::collection::vec(op(), 1..=1), 1 => prop::collection::vec(op(), 2..=3)];
    let depth = prop_oneof![1 => Just(0u8), 1 => Just(1), 2 => Just(2), 2 => Just(3)];
    (pick(), any::<bool>(), shrink, ops, raw, depth).prop_map(|(seed, flatten, shrink, ops, raw, depth)| Case {
        seed,
        flatten,
        shrink,
        ops,
        raw,
        depth,
    })
}

/// Every string of the tree (for [`OpKind::Rename`]).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Table(t) => t.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// `base` under `over`: tables merge key by key, anything else in `over` wins (as
/// `extends` merges).
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Table(b), Value::Table(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Table(out)
        }
        (_, o) => o.clone(),
    }
}

fn retype(v: &Value, to: u8) -> Value {
    let number = |v: &Value| -> f64 {
        match v {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Boolean(b) => f64::from(u8::from(*b)),
            Value::String(s) => {
                let head: String = s.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                head.parse().unwrap_or(s.len() as f64)
            }
            Value::Array(a) => a.len() as f64,
            Value::Table(t) => t.len() as f64,
            Value::Datetime(_) => 0.0,
        }
    };
    match to % 6 {
        0 => Value::String(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        1 => Value::Integer(number(v) as i64),
        2 => Value::Float(number(v)),
        3 => Value::Boolean(number(v) != 0.0),
        4 => Value::Array(vec![v.clone()]),
        _ => {
            let mut t = toml::Table::new();
            t.insert("value".into(), v.clone());
            Value::Table(t)
        }
    }
}

fn scale(v: &Value, k: u8) -> Option<Value> {
    let k = u32::from(k);
    match v {
        Value::Integer(i) => Some(Value::Integer(i.saturating_mul(10i64.saturating_pow(k)))),
        Value::Float(f) => Some(Value::Float(f * 10f64.powi(k as i32))),
        Value::String(s) => {
            // "500 ms" -> "500000 ms": the digits grow, the unit stays.
            let end = s.find(|c: char| !c.is_ascii_digit())?;
            (end > 0).then(|| Value::String(format!("{}{}{}", &s[..end], "0".repeat(k as usize), &s[end..])))
        }
        _ => None,
    }
}

fn negate(v: &Value) -> Option<Value> {
    match v {
        Value::Integer(i) => Some(Value::Integer(i.wrapping_neg())),
        Value::Float(f) => Some(Value::Float(-f)),
        Value::String(s) => Some(Value::String(format!("-{s}"))),
        _ => None,
    }
}

/// `app[2].port`.
pub fn show(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Idx(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Applies `op` to `root` (see [`apply_at`]) and says what it did: `"Extreme at
/// ipsec.mm_sa_memory -> \"16 EiB\""`, for reports and corpus file names.
pub fn apply(root: &mut Value, op: &Op, bases: Option<&Value>) -> String {
    let all = nodes(root);
    let kind = format!("{:?}", op.kind);
    let kind = kind.split(['(', ' ']).next().unwrap_or("").to_string();
    if let OpKind::Pull(_) = op.kind {
        apply_at(root, op, bases);
        return kind;
    }
    if all.is_empty() {
        return format!("{kind} (no node)");
    }
    let path = choose(&all, op.at, op.occurrence);
    apply_at(root, op, bases);
    let now = get(root, &path).map_or_else(
        || "(gone)".to_string(),
        |v| {
            let t = v.to_string();
            if t.chars().count() > 60 { format!("{}...", t.chars().take(60).collect::<String>()) } else { t }
        },
    );
    format!("{kind} at {} -> {now}", show(&path))
}

/// Applies `op` to `root`; `bases` is the merged tree of the files `root` extends (for
/// [`OpKind::Pull`]). Ops that do not fit the chosen node do nothing.
fn apply_at(root: &mut Value, op: &Op, bases: Option<&Value>) {
    if let OpKind::Pull(which) = &op.kind {
        let (Some(Value::Table(base)), Value::Table(mine)) = (bases, &mut *root) else { return };
        if base.is_empty() {
            return;
        }
        let key = which.get(&base.keys().collect::<Vec<_>>()).to_string();
        let merged = match mine.get(&key) {
            Some(v) => merge(&base[&key], v),
            None => base[&key].clone(),
        };
        mine.insert(key, merged);
        return;
    }
    let all = nodes(root);
    if all.is_empty() {
        return;
    }
    let path = choose(&all, op.at, op.occurrence);
    let Some((last, parent_path)) = path.split_last() else { return };
    match &op.kind {
        OpKind::Replace(h) => set(root, &path, h.value()),
        OpKind::Extreme(which) => {
            if let Some(v) = get(root, &path).map(extremes).filter(|e| !e.is_empty()).map(|e| which.get(&e).clone()) {
                set(root, &path, v);
            }
        }
        OpKind::Retype(t) => {
            if let Some(v) = get(root, &path).map(|v| retype(v, *t)) {
                set(root, &path, v);
            }
        }
        OpKind::Scale(k) => {
            if let Some(v) = get(root, &path).and_then(|v| scale(v, *k)) {
                set(root, &path, v);
            }
        }
        OpKind::Negate => {
            if let Some(v) = get(root, &path).and_then(negate) {
                set(root, &path, v);
            }
        }
        OpKind::Delete => match (get_mut(root, parent_path), last) {
            (Some(Value::Table(t)), Seg::Key(k)) => {
                t.remove(k);
            }
            (Some(Value::Array(a)), Seg::Idx(i)) => {
                a.remove(*i);
            }
            _ => {}
        },
        OpKind::Duplicate(n) => match (get_mut(root, parent_path), last) {
            (Some(Value::Array(a)), Seg::Idx(i)) => {
                let copy = a[*i].clone();
                for _ in 0..*n {
                    a.insert(*i + 1, copy.clone());
                }
            }
            (Some(Value::Table(t)), Seg::Key(k)) => {
                // A table key cannot repeat in the tree; repeat the last element of an
                // array under it instead, if it is one.
                if let Some(Value::Array(a)) = t.get_mut(k) {
                    if let Some(copy) = a.last().cloned() {
                        for _ in 0..*n {
                            a.push(copy.clone());
                        }
                    }
                }
            }
            _ => {}
        },
        OpKind::AddUnknownKey => match get_mut(root, &path) {
            Some(Value::Table(t)) => {
                t.insert("zz_unknown".into(), Value::Integer(1));
            }
            _ => {
                if let (Some(Value::Table(t)), Seg::Key(k)) = (get_mut(root, parent_path), last) {
                    let copy = t[k].clone();
                    t.insert(format!("{k}_zz"), copy);
                }
            }
        },
        OpKind::Empty => {
            if let Some(v) = get_mut(root, &path) {
                *v = match v {
                    Value::Array(_) => Value::Array(Vec::new()),
                    Value::Table(_) => Value::Table(toml::Table::new()),
                    _ => Value::String(String::new()),
                };
            }
        }
        OpKind::Rename(which) => {
            let mut pool = Vec::new();
            strings(root, &mut pool);
            if !pool.is_empty() {
                let s = which.get(&pool).clone();
                set(root, &path, Value::String(s));
            }
        }
        OpKind::SelfRef => {
            // The nearest enclosing table with a string `name`.
            let mut up = parent_path.to_vec();
            loop {
                if let Some(Value::String(name)) = get(root, &up).and_then(|t| t.get("name")) {
                    let name = name.clone();
                    set(root, &path, Value::String(name));
                    break;
                }
                if up.pop().is_none() {
                    break;
                }
            }
        }
        OpKind::Swap(other) => {
            let other = choose(&all, *other, op.occurrence);
            let nested = path.starts_with(&other) || other.starts_with(&path);
            if !nested {
                if let (Some(a), Some(b)) = (get(root, &path).cloned(), get(root, &other).cloned()) {
                    set(root, &path, b);
                    set(root, &other, a);
                }
            }
        }
        OpKind::Pull(_) => unreachable!("handled above"),
    }
}

fn set(root: &mut Value, path: &[Seg], v: Value) {
    if let Some(slot) = get_mut(root, path) {
        *slot = v;
    }
}

/// Applies a raw op to the bytes of a file.
pub fn apply_raw(bytes: &mut Vec<u8>, op: &RawOp) {
    let lines = |b: &[u8]| -> Vec<Vec<u8>> { b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect() };
    match op {
        RawOp::Truncate(at) => {
            if !bytes.is_empty() {
                let n = at.index(bytes.len());
                bytes.truncate(n);
            }
        }
        RawOp::DeleteLine(at) => {
            let mut l = lines(bytes);
            let i = at.index(l.len());
            l.remove(i);
            *bytes = l.join(&b'\n');
        }
        RawOp::DuplicateLine(at) => {
            let mut l = lines(bytes);
            let i = at.index(l.len());
            let copy = l[i].clone();
            l.insert(i, copy);
            *bytes = l.join(&b'\n');
        }
        RawOp::SwapLines(a, b) => {
            let mut l = lines(bytes);
            let (i, j) = (a.index(l.len()), b.index(l.len()));
            l.swap(i, j);
            *bytes = l.join(&b'\n');
        }
        RawOp::Insert(at, s) => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, s.bytes());
        }
        RawOp::InvalidUtf8(at) => {
            let i = at.index(bytes.len() + 1);
            bytes.insert(i, 0xff);
        }
        RawOp::LongNumber(at) => {
            let start = at.index(bytes.len() + 1);
            if let Some(off) = bytes[start..].iter().position(u8::is_ascii_digit) {
                let i = start + off;
                bytes.splice(i..i, std::iter::repeat_n(b'9', 400));
            }
        }
        RawOp::Nest(depth) => {
            let d = *depth as usize;
            let mut tail = b"\ndeep = ".to_vec();
            tail.extend(std::iter::repeat_n(b'[', d));
            tail.extend(std::iter::repeat_n(b']', d));
            tail.push(b'\n');
            // Before the first table header, so `deep` is a top-level key.
            let at = find(bytes, b"\n[").map_or(bytes.len(), |i| i + 1);
            bytes.splice(at..at, tail);
        }
        RawOp::Bom => {
            bytes.splice(0..0, "\u{feff}".bytes());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
