//! Scenario files as a user meets them: every shipped scenario validates, and every kind of
//! bad input exits 2 with `file:line:col: key.path: message`, never a panic.

use crate::common::{domiso, repo, scenario_path, scratch};
use domiso::scenario::build::{self, BUILTIN_WHITEPAPER};

fn shipped_scenarios() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join("scenarios")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml")
                && !path.starts_with(repo().join("scenarios/sweeps"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_shipped_scenario_validates() {
    let all = shipped_scenarios();
    assert!(all.len() >= 2, "expected the shipped scenarios, found {all:?}");
    for path in all {
        build::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn builtin_default_is_the_shipped_white_paper_file() {
    let on_disk = std::fs::read_to_string(scenario_path("whitepaper-2008.toml")).unwrap();
    assert_eq!(on_disk, BUILTIN_WHITEPAPER, "the embedded default must be the shipped file");
    let sc = build::builtin();
    assert_eq!(sc.name, "whitepaper-2008");
    assert_eq!(sc.campus.clients, 260_000);
    assert!(sc.campus.sites > 500);
}

#[test]
fn validate_cli_accepts_shipped_scenarios() {
    let out = domiso(&["validate", "scenarios/whitepaper-2008.toml", "scenarios/reduced-campus.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Writes `text` as a scenario extending the white paper and validates it with the CLI.
fn validate_child(name: &str, body: &str) -> (i32, String) {
    let dir = scratch(&format!("bad-input-{name}"));
    let base = dir.join("base.toml");
    std::fs::write(&base, BUILTIN_WHITEPAPER).unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, format!("extends = \"base.toml\"\nname = \"{name}\"\n{body}")).unwrap();
    let out = domiso(&["validate", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Validates a standalone document (no `extends`).
fn validate_text(name: &str, text: &str) -> (i32, String, String) {
    let dir = scratch(&format!("bad-text-{name}"));
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let out = domiso(&["validate", file.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), file.display().to_string())
}

fn assert_input_error(code: i32, stderr: &str, expect: &str) {
    assert_eq!(code, 2, "exit code 2 expected; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
}

#[test]
fn toml_syntax_error_names_line_and_column() {
    let text = BUILTIN_WHITEPAPER.replacen("clients = 260_000", "clients = 260_000 000", 1);
    let line = text.lines().position(|l| l.contains("260_000 000")).unwrap() + 1;
    let (code, stderr, file) = validate_text("syntax", &text);
    assert_input_error(code, &stderr, &format!("{file}:{line}:"));
}

#[test]
fn unknown_key_is_named_with_its_path() {
    let (code, stderr) = validate_child("unknown", "[campus]\nclientz = 5\n");
    assert_input_error(code, &stderr, "unknown.toml:4:1: campus.clientz: unknown field `clientz`");
}

#[test]
fn unknown_key_in_an_array_of_tables() {
    let text = BUILTIN_WHITEPAPER.replacen(
        "port = 445\nfrom = [\"managed\", \"test-domain\", \"legacy-windows\"",
        "prot = 445\nfrom = [\"managed\", \"test-domain\", \"legacy-windows\"",
        1,
    );
    let line = text.lines().position(|l| l.starts_with("prot = 445")).unwrap() + 1;
    let (code, stderr, file) = validate_text("unknown-app-key", &text);
    assert_input_error(code, &stderr, &format!("{file}:{line}:1: app[2].prot: unknown field `prot`"));
}

#[test]
fn bad_unit_names_the_key() {
    let (code, stderr) = validate_child("unit", "[run]\nutilisation_bin = \"5 parsecs\"\n");
    assert_input_error(code, &stderr, "unit.toml:4:19: run.utilisation_bin: expected a duration");
}

#[test]
fn negative_count_is_an_input_error() {
    let (code, stderr) = validate_child("negative", "[campus]\nclients = -5\n");
    assert_input_error(code, &stderr, "negative.toml:4:11: campus.clients:");
}

#[test]
fn wrong_type_is_an_input_error() {
    let (code, stderr) = validate_child("wrongtype", "[campus]\nsites = \"many\"\n");
    assert_input_error(code, &stderr, "wrongtype.toml:4:9: campus.sites:");
}

#[test]
fn absurd_sizes_are_refused_before_allocation() {
    let (code, stderr) = validate_child("huge", "[campus]\nclients = 4_000_000_000\n");
    assert_input_error(code, &stderr, "huge.toml:4:11: campus.clients: expected a count from 1 to 5000000");
}

#[test]
fn mixes_must_sum_to_one() {
    let (code, stderr) = validate_child("mix", "[campus.client_mix]\nmac = 0.5\n");
    assert_input_error(code, &stderr, "mix.toml:3:1: campus.client_mix: shares must sum to 1");
}

#[test]
fn several_problems_are_all_reported() {
    let (code, stderr) = validate_child("several", "[campus]\nlaptop_fraction = 1.5\n[nlb]\nnodes_min = 40\n");
    assert_input_error(code, &stderr, "several.toml:4:19: campus.laptop_fraction:");
    assert!(stderr.contains("several.toml:6:13: nlb.nodes_min:"), "{stderr}");
}

#[test]
fn references_to_unknown_names_are_errors() {
    let text = BUILTIN_WHITEPAPER.replacen("to = \"home:dc\"", "to = \"home:dcx\"", 1);
    let (code, stderr, _) = validate_text("badref", &text);
    assert_input_error(code, &stderr, "app[0].to: unknown role \"dcx\"");
    let text = BUILTIN_WHITEPAPER.replacen("diurnal = \"night\"", "diurnal = \"nightly\"", 1);
    let (code, stderr, _) = validate_text("badprofile", &text);
    assert_input_error(code, &stderr, "diurnal: unknown profile \"nightly\"");
}

#[test]
fn missing_base_and_cycles_are_errors() {
    let (code, stderr) = validate_child("missingbase", "");
    assert_eq!(code, 0, "control: a plain child validates: {stderr}");
    let dir = scratch("cycle");
    std::fs::write(dir.join("a.toml"), "extends = \"b.toml\"\nname = \"a\"\n").unwrap();
    std::fs::write(dir.join("b.toml"), "extends = \"a.toml\"\nname = \"b\"\n").unwrap();
    let out = domiso(&["validate", dir.join("a.toml").to_str().unwrap()]);
    assert_input_error(out.status.code().unwrap(), &String::from_utf8_lossy(&out.stderr), "extends:");
    std::fs::write(dir.join("c.toml"), "extends = \"nowhere.toml\"\nname = \"c\"\n").unwrap();
    let out = domiso(&["validate", dir.join("c.toml").to_str().unwrap()]);
    assert_input_error(
        out.status.code().unwrap(),
        &String::from_utf8_lossy(&out.stderr),
        "cannot read the base scenario",
    );
}

#[test]
fn unreadable_and_non_utf8_files_are_input_errors() {
    let out = domiso(&["validate", "no/such/file.toml"]);
    assert_input_error(
        out.status.code().unwrap(),
        &String::from_utf8_lossy(&out.stderr),
        "no/such/file.toml: cannot read scenario",
    );
    let dir = scratch("nonutf8");
    let file = dir.join("bin.toml");
    std::fs::write(&file, b"name = \"x\xff\"\n").unwrap();
    let out = domiso(&["validate", file.to_str().unwrap()]);
    assert_input_error(out.status.code().unwrap(), &String::from_utf8_lossy(&out.stderr), "bin.toml:1:");
}

#[test]
fn run_with_a_bad_scenario_writes_nothing() {
    let dir = scratch("bad-run");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "extends = \"builtin:whitepaper-2008\"\nname = \"bad\"\n[campus]\nclients = 0\n").unwrap();
    let out_dir = dir.join("out");
    let out = domiso(&["run", file.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--quiet"]);
    assert_input_error(
        out.status.code().unwrap(),
        &String::from_utf8_lossy(&out.stderr),
        "campus.clients: expected a count from 1",
    );
    assert!(!out_dir.exists(), "no partial run directory");
}
