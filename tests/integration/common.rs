//! Helpers shared by the integration-test modules: paths, the binary, cached campuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use domiso::model::campus::Campus;
use domiso::scenario::build::{self, Scenario};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario_path(name: &str) -> PathBuf {
    repo().join("scenarios").join(name)
}

pub fn load(name: &str) -> Scenario {
    build::load(&scenario_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs the `domiso` binary.
pub fn domiso(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_domiso")).args(args).current_dir(repo()).output().expect("run domiso")
}

/// A fresh empty directory under the target dir, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `domiso run ARGS --out <scratch NAME>/run --quiet`, which must succeed; the run directory.
pub fn run_into(name: &str, args: &[&str]) -> PathBuf {
    let dir = scratch(name).join("run");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", dir.to_str().unwrap(), "--quiet"]);
    let out = domiso(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// The reduced campus in the IPsec end state (seed 1), generated once per test binary.
pub fn reduced() -> &'static (Scenario, Campus) {
    static CELL: OnceLock<(Scenario, Campus)> = OnceLock::new();
    CELL.get_or_init(|| {
        let sc = load("reduced-secure-request-day.toml");
        let campus = Campus::generate(&sc, 1).expect("reduced campus generates");
        (sc, campus)
    })
}

/// The reduced campus with the white paper's rollout (seed 1), generated once.
pub fn reduced_rollout() -> &'static (Scenario, Campus) {
    static CELL: OnceLock<(Scenario, Campus)> = OnceLock::new();
    CELL.get_or_init(|| {
        let sc = load("reduced-campus.toml");
        let campus = Campus::generate(&sc, 1).expect("reduced campus generates");
        (sc, campus)
    })
}

/// The full white-paper campus (seed 1), generated once per test binary.
pub fn full() -> &'static (Scenario, Campus) {
    static CELL: OnceLock<(Scenario, Campus)> = OnceLock::new();
    CELL.get_or_init(|| {
        let sc = build::builtin();
        let campus = Campus::generate(&sc, 1).expect("white-paper campus generates");
        (sc, campus)
    })
}

/// Whether tshark is on PATH; with `DOMISO_REQUIRE_TSHARK` set (as `.ci/run` does), its
/// absence is a failure, not a skip.
pub fn tshark_available() -> bool {
    let found = Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !found {
        if std::env::var_os("DOMISO_REQUIRE_TSHARK").is_some() {
            panic!("DOMISO_REQUIRE_TSHARK is set but tshark is not on PATH");
        }
        eprintln!("notice: tshark not on PATH; skipping the Wireshark dissection check");
    }
    found
}

/// Runs tshark over `file` with extra options, returning one row of fields per frame.
pub fn tshark_fields(file: &Path, opts: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(file);
    for o in opts {
        cmd.arg("-o").arg(o);
    }
    cmd.args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]);
    for f in fields {
        cmd.arg("-e").arg(f);
    }
    let out = cmd.output().expect("run tshark");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

/// The finished rows of a sweep's `rows/` directory with their modification times (none
/// if the directory does not exist yet), to show which rows a resumed sweep left alone.
pub fn row_mtimes(rows: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    std::fs::read_dir(rows)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect()
}
