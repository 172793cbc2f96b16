//! The regression corpus: every input the fuzzer found breaking the property, one file per
//! case under `tests/corpus/hostile/` (scenarios) and `tests/corpus/hostile/sweeps/`, run
//! through the real `domiso` binary as a user would: `domiso validate FILE`, and
//! `domiso sweep FILE --dry-run` for sweeps.
//!
//! Each file's first line states what the fixed binary does with it:
//! `# expect: exit=2 key=campus.clients` (refused, naming that key path; `key=` empty for a
//! file that is not TOML at all) or `# expect: exit=0` (accepted). An accepted scenario
//! that broke a later stage also names it: `lint` (`domiso lint` exits 0 or 1, its
//! findings) and `run=sa` or `run=packet` (`domiso run --days 1` at that granularity exits
//! 0). The binary runs under a 4 GiB address-space limit (`ulimit -v`) and a 60 s timeout,
//! so a regression to a memory blow-up or a hang fails the test instead of the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::oracle;
use crate::common::{repo, scratch};

struct Expect {
    exit: i32,
    /// Key path the refusal must name; `Some("")`: a syntax error, no key to name.
    key: Option<String>,
    lint: bool,
    /// `domiso run --granularity` of an accepted scenario.
    run: Option<String>,
}

fn expectation(path: &Path) -> Expect {
    let bytes = std::fs::read(path).unwrap();
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let first = String::from_utf8_lossy(first);
    let spec = first
        .strip_prefix("# expect:")
        .unwrap_or_else(|| panic!("{}: the first line must be `# expect: exit=N [key=PATH]`", path.display()));
    let mut e = Expect { exit: -1, key: None, lint: false, run: None };
    for word in spec.split_whitespace() {
        if let Some(n) = word.strip_prefix("exit=") {
            e.exit = n.parse().unwrap();
        } else if let Some(k) = word.strip_prefix("key=") {
            e.key = Some(k.to_string());
        } else if let Some(g) = word.strip_prefix("run=") {
            e.run = Some(g.to_string());
        } else if word == "lint" {
            e.lint = true;
        } else {
            panic!("{}: unknown expectation {word:?}", path.display());
        }
    }
    assert!(e.exit == 0 || e.exit == 2, "{}: exit must be 0 or 2", path.display());
    assert!(
        e.exit == 0 || (!e.lint && e.run.is_none()),
        "{}: only an accepted scenario is linted or run",
        path.display()
    );
    e
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    out
}

/// Runs the binary under `ulimit -v` and a timeout; (exit code, stderr).
fn domiso_limited(args: &[&str]) -> (i32, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_domiso"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run domiso");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("domiso {args:?} hung (killed after 60 s)");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

fn check(rel: &str, args: &[&str]) {
    let path = repo().join(rel);
    let expect = expectation(&path);
    if expect.lint {
        let (code, stderr) = domiso_limited(&["lint", rel]);
        assert!(!stderr.contains("panicked"), "{rel}: domiso lint panicked:\n{stderr}");
        assert!(code == 0 || code == 1, "{rel}: domiso lint exits 0 or 1 (findings), not {code}:\n{stderr}");
    }
    if let Some(granularity) = &expect.run {
        let out = scratch(&format!("corpus-run-{}", rel.replace('/', "-")));
        let out = out.join("run");
        let out = out.to_str().unwrap();
        let (code, stderr) =
            domiso_limited(&["run", rel, "--days", "1", "--granularity", granularity, "--out", out, "--quiet"]);
        assert!(!stderr.contains("panicked"), "{rel}: domiso run panicked:\n{stderr}");
        assert_eq!(code, 0, "{rel}: domiso run; stderr:\n{stderr}");
    }
    let (code, stderr) = domiso_limited(args);
    assert!(!stderr.contains("panicked"), "{rel}: domiso panicked:\n{stderr}");
    assert_eq!(code, expect.exit, "{rel}: exit code; stderr:\n{stderr}");
    if expect.exit == 2 {
        assert!(stderr.contains(&format!("{rel}:")), "{rel}: the error names the file:\n{stderr}");
        oracle::rendered(&stderr, &path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        if let Some(key) = expect.key.filter(|k| !k.is_empty()) {
            let named = oracle::located(&stderr).iter().any(|l| l.rest.starts_with(&format!("{key}: ")));
            assert!(named, "{rel}: expected a diagnostic naming `{key}`:\n{stderr}");
        }
    }
}

#[test]
fn corpus_scenarios_through_domiso_validate() {
    let dir = repo().join("tests/corpus/hostile");
    let all = files(&dir);
    assert!(!all.is_empty(), "the corpus is in {}", dir.display());
    for p in all {
        let rel = p.strip_prefix(repo()).unwrap().to_string_lossy().into_owned();
        check(&rel, &["validate", &rel]);
    }
}

#[test]
fn corpus_sweeps_through_domiso_sweep_dry_run() {
    let dir = repo().join("tests/corpus/hostile/sweeps");
    for p in files(&dir) {
        let rel = p.strip_prefix(repo()).unwrap().to_string_lossy().into_owned();
        check(&rel, &["sweep", &rel, "--dry-run"]);
    }
}
