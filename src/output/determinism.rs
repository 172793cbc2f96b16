//! Byte comparison of the outputs of two runs, for `domiso run --check-determinism`: every
//! file of two run directories (and the two captures), equal byte for byte, except the
//! fields that measure the machine.
//!
//! Contract:
//! - A file set is every regular file under a directory, by its path relative to it with
//!   `/` separators (so `plots/timeline.svg`), read whole.
//! - `summary.json` and `manifest.json` (at the top of the set) are compared as parsed JSON
//!   without their measurement keys ([`MEASUREMENT_KEYS`], [`MANIFEST_MEASUREMENT_KEYS`])
//!   and without the manifest's digest and size of the files that hold a measurement
//!   ([`FILES_WITH_MEASUREMENTS`]). Every other file, and either of those two when it does
//!   not parse, is compared byte for byte.
//! - A file present in one set only is a difference; each difference names its file and
//!   says where it starts (the first differing line of a CSV, the first differing byte of
//!   anything else, the differing keys of a JSON file compared parsed).
//! - Pure apart from [`read_dir`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use serde_json::Value;

use super::record::{FILES_WITH_MEASUREMENTS, MANIFEST_MEASUREMENT_KEYS, MEASUREMENT_KEYS};
use super::writer::list_files;

/// Files by path relative to their directory.
pub type FileSet = BTreeMap<String, Vec<u8>>;

/// Every regular file under `dir`, recursively, named as [`list_files`] names them.
pub fn read_dir(dir: &Path) -> io::Result<FileSet> {
    list_files(dir)?.into_iter().map(|(name, path)| Ok((name, std::fs::read(path)?))).collect()
}

/// One file that is not the same in both runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub file: String,
    /// Where it starts, e.g. `line 3: "2,tue,..." vs "2,tue,..."`.
    pub detail: String,
}

/// The outcome of comparing two file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Files compared (those of the first set).
    pub files: usize,
    /// Bytes of the first set's files.
    pub bytes: u64,
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }

    /// Adds one more pair of files (e.g. the captures, which live outside the run directory).
    pub fn add_file(&mut self, name: &str, a: &[u8], b: &[u8]) {
        self.files += 1;
        self.bytes += a.len() as u64;
        if let Some(detail) = compare_file(name, a, b) {
            self.differences.push(Difference { file: name.to_string(), detail });
        }
    }
}

/// Compares two file sets (the outputs of a first and a second run).
pub fn compare(a: &FileSet, b: &FileSet) -> Comparison {
    let mut c = Comparison::default();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) => c.add_file(name, x, y),
            (Some(x), None) => {
                c.files += 1;
                c.bytes += x.len() as u64;
                c.differences.push(Difference { file: name.clone(), detail: "only in the first run".into() });
            }
            (None, Some(_)) => {
                c.differences.push(Difference { file: name.clone(), detail: "only in the second run".into() })
            }
            (None, None) => unreachable!("a name of one of the sets"),
        }
    }
    c
}

/// Why two versions of the file `name` differ, or `None` when they are the same (modulo
/// measurements).
pub fn compare_file(name: &str, a: &[u8], b: &[u8]) -> Option<String> {
    if let (Some(x), Some(y)) = (without_measurements(name, a), without_measurements(name, b)) {
        return (x != y).then(|| json_difference(&x, &y));
    }
    if a == b {
        return None;
    }
    Some(if name.ends_with(".csv") { line_difference(a, b) } else { byte_difference(a, b) })
}

/// The parsed JSON of a file that holds measurements, without them; `None` for any other
/// file, or one that does not parse (it is then compared byte for byte).
fn without_measurements(name: &str, bytes: &[u8]) -> Option<Value> {
    let keys: &[&str] = match name {
        "summary.json" => &MEASUREMENT_KEYS,
        "manifest.json" => &MANIFEST_MEASUREMENT_KEYS,
        _ => return None,
    };
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    let obj = value.as_object_mut()?;
    for k in keys {
        obj.remove(*k);
    }
    if name == "manifest.json" {
        // The digest and size of summary.json cover its wall_s.
        for table in ["files", "sizes"] {
            if let Some(t) = obj.get_mut(table).and_then(Value::as_object_mut) {
                for f in FILES_WITH_MEASUREMENTS {
                    t.remove(f);
                }
            }
        }
    }
    Some(value)
}

fn json_difference(a: &Value, b: &Value) -> String {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
        return "the JSON differs".into();
    };
    let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| x.get(*k) != y.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("-".to_string(), |v| shorten(&v.to_string()));
            format!("{k}: {} vs {}", show(x.get(k)), show(y.get(k)))
        })
        .collect();
    format!("key {}", differing.join("; key "))
}

fn line_difference(a: &[u8], b: &[u8]) -> String {
    let la: Vec<&[u8]> = a.split(|&c| c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
    let at = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i)).unwrap_or(0);
    let show = |l: Option<&&[u8]>| {
        l.map_or("(no such line)".to_string(), |l| format!("{:?}", shorten(&String::from_utf8_lossy(l))))
    };
    format!("line {}: {} vs {}", at + 1, show(la.get(at)), show(lb.get(at)))
}

fn byte_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!("first difference at byte {at} ({} and {} bytes)", a.len(), b.len())
}

/// At most 120 characters of `s`.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX { s.to_string() } else { s.chars().take(MAX).collect::<String>() + "..." }
}

/// One line per difference, `  FILE: DETAIL`.
pub fn render_differences(c: &Comparison) -> String {
    c.differences.iter().map(|d| format!("  {}: {}\n", d.file, d.detail)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &[u8])]) -> FileSet {
        files.iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect()
    }

    const SUMMARY_A: &[u8] = b"{\n  \"hosts_total\": 10,\n  \"wall_s\": 1.25\n}\n";
    const SUMMARY_B: &[u8] = b"{\n  \"hosts_total\": 10,\n  \"wall_s\": 17.5\n}\n";
    const MANIFEST_A: &[u8] = br#"{"seed": 1, "wall_s": 1.25, "events_per_s": 10.0, "peak_rss_bytes": 100,
        "files": {"summary.json": "aa", "timeline.csv": "cc"}, "sizes": {"summary.json": 40, "timeline.csv": 8}}"#;
    const MANIFEST_B: &[u8] = br#"{"seed": 1, "wall_s": 17.5, "events_per_s": 2.0, "peak_rss_bytes": null,
        "files": {"summary.json": "bb", "timeline.csv": "cc"}, "sizes": {"summary.json": 41, "timeline.csv": 8}}"#;

    #[test]
    fn measurements_are_the_only_differences_allowed() {
        let a = set(&[
            ("summary.json", SUMMARY_A),
            ("manifest.json", MANIFEST_A),
            ("timeline.csv", b"day\n0\n"),
            ("plots/x.png", &[0, 1, 2]),
        ]);
        let b = set(&[
            ("summary.json", SUMMARY_B),
            ("manifest.json", MANIFEST_B),
            ("timeline.csv", b"day\n0\n"),
            ("plots/x.png", &[0, 1, 2]),
        ]);
        let c = compare(&a, &b);
        assert!(c.identical(), "{:?}", c.differences);
        assert_eq!(c.files, 4);
        assert_eq!(c.bytes, a.values().map(|v| v.len() as u64).sum::<u64>());
    }

    #[test]
    fn one_byte_differs_in_one_file_and_the_check_names_it() {
        let png = [137u8, 80, 78, 71, 0, 0];
        let mut png2 = png;
        png2[4] = 1;
        let a = set(&[("timeline.csv", b"day,x\n0,1\n1,2\n"), ("plots/x.png", &png), ("campus.json", b"{}")]);
        let b = set(&[("timeline.csv", b"day,x\n0,1\n1,3\n"), ("plots/x.png", &png2), ("campus.json", b"{}")]);
        let c = compare(&a, &b);
        assert_eq!(
            c.differences,
            vec![
                Difference { file: "plots/x.png".into(), detail: "first difference at byte 4 (6 and 6 bytes)".into() },
                Difference { file: "timeline.csv".into(), detail: "line 3: \"1,2\" vs \"1,3\"".into() },
            ]
        );
        assert_eq!(c.files, 3);
        let text = render_differences(&c);
        assert!(text.contains("  timeline.csv: line 3") && text.contains("  plots/x.png: first difference"), "{text}");
    }

    #[test]
    fn a_model_key_of_the_summary_or_manifest_is_not_a_measurement() {
        let summary = b"{\n  \"hosts_total\": 11,\n  \"wall_s\": 1.25\n}\n";
        let d = compare_file("summary.json", SUMMARY_A, summary).expect("hosts_total differs");
        assert_eq!(d, "key hosts_total: 10 vs 11");
        // The digest of a file without measurements is compared.
        let manifest = String::from_utf8(MANIFEST_B.to_vec()).unwrap().replace("\"cc\"", "\"cd\"");
        let d = compare_file("manifest.json", MANIFEST_A, manifest.as_bytes()).expect("a digest differs");
        assert!(d.starts_with("key files:"), "{d}");
        // Measurement names mean nothing in other files.
        assert!(compare_file("campus.json", SUMMARY_A, SUMMARY_B).is_some());
        // A file that does not parse is compared as bytes.
        assert!(compare_file("summary.json", b"{", b"{").is_none());
        assert!(compare_file("summary.json", b"{", b"[").is_some());
    }

    #[test]
    fn files_missing_on_one_side_and_csv_of_another_length_differ() {
        let a = set(&[("a.csv", b"h\n1\n"), ("only-a.svg", b"<svg/>")]);
        let b = set(&[("a.csv", b"h\n1\n2\n"), ("plots/only-b.png", b"x")]);
        let c = compare(&a, &b);
        let got: Vec<(&str, &str)> = c.differences.iter().map(|d| (d.file.as_str(), d.detail.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("a.csv", "line 3: \"\" vs \"2\""),
                ("only-a.svg", "only in the first run"),
                ("plots/only-b.png", "only in the second run"),
            ]
        );
    }

    #[test]
    fn read_dir_names_files_relative_with_slashes() {
        let dir = std::env::temp_dir().join(format!("domiso-determinism-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plots")).unwrap();
        std::fs::write(dir.join("a.csv"), b"1").unwrap();
        std::fs::write(dir.join("plots/b.svg"), b"22").unwrap();
        let s = read_dir(&dir).unwrap();
        assert_eq!(s, set(&[("a.csv", b"1"), ("plots/b.svg", b"22")]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
