//! `domiso check` verifies a run directory against its manifest: one changed byte, a
//! truncated file, a deleted file and an unlisted file each fail (exit 1) naming the file;
//! an untouched directory passes; a manifest that cannot be parsed is an input error
//! (exit 2); with `--baseline` both directories are verified before any metric is compared,
//! and JUnit XML carries the verdicts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::{domiso, scratch};

/// A small intact run directory (reduced campus, two days), written once.
fn pristine() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("integrity-pristine").join("run");
        let o =
            domiso(&["run", "scenarios/reduced-campus.toml", "--days", "2", "--quiet", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// A fresh copy of the pristine run, for one test to damage.
fn copy(name: &str) -> PathBuf {
    let dir = scratch(&format!("integrity-{name}")).join("run");
    copy_dir(pristine(), &dir);
    dir
}

/// `domiso check ARGS...`: (exit code, stdout, stderr).
fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let o = domiso(&all);
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn the_manifest_lists_every_file_with_its_size() {
    let dir = pristine();
    let m = manifest(dir);
    let listed: Vec<&String> = m["files"].as_object().unwrap().keys().collect();
    let sized: Vec<&String> = m["sizes"].as_object().unwrap().keys().collect();
    assert_eq!(listed, sized);
    let present = domiso::output::writer::list_files(dir).unwrap();
    let present: Vec<&String> = present.keys().filter(|n| *n != "manifest.json").collect();
    assert_eq!(listed, present);
    for name in listed {
        assert_eq!(m["sizes"][name].as_u64().unwrap(), std::fs::metadata(dir.join(name)).unwrap().len(), "{name}");
    }
}

#[test]
fn an_untouched_run_directory_passes() {
    let dir = pristine();
    let (code, out, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let n = manifest(dir)["files"].as_object().unwrap().len();
    assert!(out.contains(&format!("integrity ok: {}: {n} file(s) match manifest.json", dir.display())), "{out}");
}

#[test]
fn one_changed_byte_in_a_csv_fails_naming_the_file() {
    let dir = copy("tampered");
    let path = dir.join("timeline.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 2;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains(&format!("FAIL    {}: tampered", path.display())), "{out}");
    assert!(out.contains("integrity FAILED") && out.contains("1 problem(s)"), "{out}");
}

#[test]
fn a_truncated_file_fails_naming_the_file_and_sizes() {
    let dir = copy("truncated");
    let path = dir.join("wan_links.csv");
    let size = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(size / 2).unwrap();
    let (code, out, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("{}: truncated: {} bytes, manifest.json lists {size}", path.display(), size / 2)),
        "{out}"
    );
}

#[test]
fn a_deleted_file_and_an_unlisted_file_fail() {
    let dir = copy("deleted");
    std::fs::remove_file(dir.join("plots/helpdesk_calls.png")).unwrap();
    std::fs::write(dir.join("notes.txt"), "added by hand").unwrap();
    let (code, out, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains(&format!("{}: missing", dir.join("plots/helpdesk_calls.png").display())), "{out}");
    assert!(out.contains(&format!("{}: unlisted", dir.join("notes.txt").display())), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");
}

#[test]
fn a_manifest_without_sizes_still_catches_a_truncated_file() {
    // Run directories written before manifests listed sizes (results/reference/) are
    // checked by digest.
    let dir = copy("no-sizes");
    let mut m = manifest(&dir);
    m.as_object_mut().unwrap().remove("sizes");
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let (code, out, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    std::fs::write(dir.join("campus.json"), "{").unwrap();
    let (code, out, _) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("campus.json: tampered"), "{out}");
}

#[test]
fn an_unparseable_or_missing_manifest_is_an_input_error() {
    let dir = copy("garbage");
    let manifest = dir.join("manifest.json");
    for (text, expected) in [("{ not json", "not a valid run manifest"), ("{\"seed\": 1}", "missing field `files`")] {
        std::fs::write(&manifest, text).unwrap();
        let (code, out, err) = check(&[dir.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{out}{err}");
        assert!(err.contains(&manifest.display().to_string()) && err.contains(expected), "{err}");
    }
    std::fs::write(&manifest, "{\"files\": {\"../../etc/passwd\": \"00\"}}").unwrap();
    let (code, _, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a file of the run directory"), "{err}");
    std::fs::remove_file(&manifest).unwrap();
    let (code, _, err) = check(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    // With a baseline too: the baseline's manifest is named.
    let (code, _, err) = check(&[pristine().to_str().unwrap(), "--baseline", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&manifest.display().to_string()), "{err}");
}

#[test]
fn with_a_baseline_both_directories_are_verified_before_comparing_and_junit_has_the_verdicts() {
    let good = pristine();
    let damaged = copy("baseline");
    std::fs::remove_file(damaged.join("summary.json")).unwrap();
    let junit = damaged.parent().unwrap().join("check.xml");
    let j = junit.to_str().unwrap();
    // Intact run, damaged baseline: exit 1 naming the baseline's file; no metric compared.
    let (code, out, err) = check(&[good.to_str().unwrap(), "--baseline", damaged.to_str().unwrap(), "--junit", j]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains(&format!("{}: missing", damaged.join("summary.json").display())), "{out}");
    assert!(out.contains("metrics not compared") && !out.contains("check passed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let cases: Vec<roxmltree::Node> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let files = manifest(good)["files"].as_object().unwrap().len();
    assert_eq!(cases.len(), 2 * files, "a case per file of each directory");
    let failed: Vec<(&str, &str)> = cases
        .iter()
        .filter(|c| c.children().any(|f| f.has_tag_name("failure")))
        .map(|c| (c.attribute("classname").unwrap(), c.attribute("name").unwrap()))
        .collect();
    assert_eq!(failed, vec![("integrity.baseline", "summary.json")]);
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    // Both intact: integrity cases of both, then the metrics.
    let (code, out, err) = check(&[good.to_str().unwrap(), "--baseline", good.to_str().unwrap(), "--junit", j]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("integrity ok").count(), 2, "{out}");
    assert!(out.contains("check passed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let class = |c: &str| doc.descendants().filter(|n| n.attribute("classname") == Some(c)).count();
    assert_eq!((class("integrity.run"), class("integrity.baseline")), (files, files));
    assert!(class("summary") > 10 && class("timeline") > 10);
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("failure")).count(), 0);
    // Without a baseline, JUnit holds the run's integrity alone; tolerances need a baseline.
    let (code, out, _) = check(&[good.to_str().unwrap(), "--junit", j]);
    assert_eq!(code, Some(0), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase").count(), files);
    let (code, _, err) = check(&[good.to_str().unwrap(), "--tolerances", "results/reference/tolerances.toml"]);
    assert_eq!(code, Some(2), "{err}");
}
