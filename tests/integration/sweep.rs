//! Sweeps and regression checks: `sweep.csv` (and every kept run directory) is
//! byte-identical whatever `--jobs` and however the runs are sharded, `--resume` does not
//! recompute finished runs, bad sweep files are input errors; `domiso check` passes a run against itself, fails naming the
//! metric when a model parameter changes, writes valid JUnit XML, and the committed
//! reference runs still hold.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{domiso, repo, row_mtimes, scenario_path, scratch};

/// A small campus (3,000 clients, one day): a run takes well under a second.
fn tiny_base(dir: &Path) -> PathBuf {
    let file = dir.join("tiny.toml");
    let base = scenario_path("reduced-secure-request-day.toml");
    std::fs::write(
        &file,
        format!(
            "extends = {:?}\nname = \"tiny\"\n[campus]\nclients = 3000\nusers = 1600\nsites = 12\nregions = 2\n[nlb]\nclusters = 4\n",
            base.display().to_string()
        ),
    )
    .unwrap();
    file
}

/// 4 x 3 points, 3 seeds: 36 runs.
fn tiny_sweep(dir: &Path) -> PathBuf {
    tiny_sweep_keeping(dir, false)
}

/// The same sweep, keeping every run's directory under `runs/` when `keep_runs`.
fn tiny_sweep_keeping(dir: &Path, keep_runs: bool) -> PathBuf {
    tiny_base(dir);
    let file = dir.join("sweep.toml");
    std::fs::write(
        &file,
        format!("keep_runs = {keep_runs}\n")
            + r#"name = "tiny-sweep"
base = "tiny.toml"
replications = 3
metrics = ["sa_negotiations_total", "server_sa_memory_peak_bytes", "fallback_wait_s_mean", "failover_stall_p95_s_by_os"]

[[axis]]
key = "ipsec.fallback_delay"
values = ["1 s", "2 s", "3 s", "4 s"]

[[axis]]
key = "ipsec.main_mode_lifetime"
values = ["1 h", "2 h", "8 h"]
"#,
    )
    .unwrap();
    file
}

fn sweep(args: &[&str]) -> std::process::Output {
    let mut all = vec!["sweep"];
    all.extend_from_slice(args);
    all.push("--quiet");
    let o = domiso(&all);
    assert!(o.status.success(), "domiso {all:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn a_sweep_is_the_same_whatever_the_jobs_and_the_shards() {
    let dir = scratch("sweep-determinism");
    let file = tiny_sweep_keeping(&dir, true);
    let f = file.to_str().unwrap();
    let one = dir.join("jobs1");
    let two = dir.join("jobs2");
    sweep(&[f, "--jobs", "1", "--out", one.to_str().unwrap()]);
    sweep(&[f, "--jobs", "2", "--out", two.to_str().unwrap()]);
    let csv = std::fs::read(one.join("sweep.csv")).unwrap();
    assert_eq!(csv, std::fs::read(two.join("sweep.csv")).unwrap(), "--jobs 1 and --jobs 2 differ");
    // Not only the table: every file of every run (charts included) is the same whether the
    // run shared the machine with another or not; measurements aside.
    for run in 0..36 {
        let name = format!("runs/{run:06}");
        crate::run::assert_same_run(&one.join(&name), &two.join(&name));
    }
    for row in std::fs::read_dir(one.join("rows")).unwrap() {
        let row = row.unwrap().path();
        let other = two.join("rows").join(row.file_name().unwrap());
        assert_eq!(std::fs::read(&row).unwrap(), std::fs::read(&other).unwrap(), "{}", row.display());
    }
    let text = String::from_utf8(csv.clone()).unwrap();
    assert_eq!(text.lines().count(), 1 + 36);
    assert!(text.starts_with(
        "run,point,seed,ipsec.fallback_delay,ipsec.main_mode_lifetime,sa_negotiations_total,server_sa_memory_peak_bytes,fallback_wait_s_mean"
    ));
    // The axes act: a longer main-mode lifetime means fewer negotiations (same seed).
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
    let negotiations = |fallback: &str, mm: &str, seed: &str| -> u64 {
        rows.iter().find(|r| r[3] == fallback && r[4] == mm && r[2] == seed).unwrap()[5].parse().unwrap()
    };
    assert!(negotiations("1 s", "8 h", "1") < negotiations("1 s", "1 h", "1"));
    // Three shards, merged.
    let shards: Vec<PathBuf> = (1..=3).map(|k| dir.join(format!("shard-{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        sweep(&[f, "--jobs", "1", "--shard", &format!("{}/3", k + 1), "--out", s.to_str().unwrap()]);
        let part = std::fs::read_to_string(s.join("sweep.csv")).unwrap();
        assert_eq!(part.lines().count(), 1 + 12, "shard {} has its third of the runs", k + 1);
    }
    let merged = dir.join("merged");
    let mut args = vec!["sweep", "merge"];
    args.extend(shards.iter().map(|s| s.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    let o = domiso(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(merged.join("sweep.csv")).unwrap(), csv, "merged shards differ from one machine");
    // Merging an incomplete set is refused.
    let o = domiso(&["sweep", "merge", shards[0].to_str().unwrap(), "--out", dir.join("partial").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("24 of 36 runs missing"));
}

#[test]
fn a_killed_sweep_resumes_without_recomputing_finished_runs() {
    let dir = scratch("sweep-resume");
    let file = tiny_sweep(&dir);
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_domiso"))
        .args(["sweep", file.to_str().unwrap(), "--jobs", "1", "--quiet", "--out", out.to_str().unwrap()])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rows = out.join("rows");
    let started = Instant::now();
    let count = || std::fs::read_dir(&rows).map(|d| d.filter(|e| e.is_ok()).count()).unwrap_or(0);
    while count() < 6 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = row_mtimes(&rows);
    assert!(finished.len() >= 6 && finished.len() < 36, "{} rows when killed", finished.len());
    let o = domiso(&["sweep", file.to_str().unwrap(), "--jobs", "2", "--resume", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains(&format!("{} runs done, {} already done", 36 - finished.len(), finished.len())), "{msg}");
    for (p, t) in &finished {
        assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), *t, "{} was recomputed", p.display());
    }
    // Same file as an uninterrupted sweep.
    let whole = dir.join("whole");
    sweep(&[file.to_str().unwrap(), "--jobs", "2", "--out", whole.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("sweep.csv")).unwrap(), std::fs::read(whole.join("sweep.csv")).unwrap());
}

#[test]
fn bad_sweep_files_are_input_errors_that_name_the_problem() {
    let dir = scratch("sweep-errors");
    tiny_base(&dir);
    let cases = [
        (
            "name = \"x\"\nbase = \"tiny.toml\"\n[[axis]]\nkey = \"ipsec.fallback_delay\"\nvalues = [\"3 parsecs\"]\n",
            "ipsec.fallback_delay = 3 parsecs",
        ),
        (
            "name = \"x\"\nbase = \"tiny.toml\"\n[[axis]]\nkey = \"rollout.wave.99.start\"\nvalues = [1]\n",
            "expected an index below",
        ),
        (
            "name = \"x\"\nbase = \"tiny.toml\"\nreplications = 0\n[[axis]]\nkey = \"run.days\"\nvalues = [1]\n",
            "replications",
        ),
        (
            "name = \"x\"\nbase = \"tiny.toml\"\n[[axis]]\nkey = \"run.days\"\nrange = { from = 3, to = 1, step = 1 }\n",
            "axis[0].range",
        ),
        ("name = \"x\"\nbase = \"tiny.toml\"\nsurprise = 1\n[[axis]]\nkey = \"run.days\"\nvalues = [1]\n", "surprise"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let o = domiso(&["sweep", file.to_str().unwrap(), "--quiet", "--out", dir.join("out").to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(file.to_str().unwrap()) && err.contains(expected), "case {i}: {err}");
        assert!(!dir.join("out").join("sweep.csv").exists(), "case {i} wrote a result");
    }
    // Files that are not there are input errors too.
    let missing = dir.join("no-such-sweep.toml");
    let o = domiso(&["sweep", missing.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-sweep.toml"));
    let o = domiso(&[
        "sweep",
        "merge",
        dir.join("no-such-shard").to_str().unwrap(),
        "--out",
        dir.join("m").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-shard"));
}

#[test]
fn check_passes_a_run_against_itself_and_names_the_metric_a_parameter_change_moves() {
    let dir = scratch("check");
    let base = tiny_base(&dir);
    let a = dir.join("a");
    let b = dir.join("b");
    for out in [&a, &b] {
        let o = domiso(&["run", base.to_str().unwrap(), "--quiet", "--out", out.to_str().unwrap()]);
        assert!(o.status.success());
    }
    let junit = dir.join("ok.xml");
    let o =
        domiso(&["check", b.to_str().unwrap(), "--baseline", a.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("check passed"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    assert!(doc.descendants().filter(|n| n.has_tag_name("testcase")).count() > 50);
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("failure")).count(), 0);

    // A model parameter changes: the 5-minute idle timeout becomes 2 minutes.
    let changed = dir.join("changed.toml");
    std::fs::write(&changed, "extends = \"tiny.toml\"\nname = \"tiny\"\n[ipsec]\nquick_mode_idle = \"2 min\"\n")
        .unwrap();
    let c = dir.join("c");
    let o = domiso(&["run", changed.to_str().unwrap(), "--quiet", "--out", c.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let junit = dir.join("bad.xml");
    let o =
        domiso(&["check", c.to_str().unwrap(), "--baseline", a.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL") && report.contains("sa_negotiations_total") && report.contains("check FAILED"),
        "{report}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let failed: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("failure")).filter_map(|n| n.parent()?.attribute("name")).collect();
    assert!(failed.contains(&"sa_negotiations_total"), "{failed:?}");

    // A tolerance wide enough lets the changed metric pass; a bad tolerance file is an
    // input error.
    let tol = dir.join("tol.toml");
    std::fs::write(&tol, "default = \"ignore\"\n[tolerance]\n\"hosts_total\" = \"exact\"\n").unwrap();
    let check_with_tolerances = || {
        domiso(&[
            "check",
            c.to_str().unwrap(),
            "--baseline",
            a.to_str().unwrap(),
            "--tolerances",
            tol.to_str().unwrap(),
        ])
    };
    let o = check_with_tolerances();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    std::fs::write(&tol, "[tolerance]\n\"x\" = \"roughly\"\n").unwrap();
    let o = check_with_tolerances();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("roughly"));
}

#[test]
fn the_committed_reference_runs_still_hold() {
    // results/reference/README.md says how each was produced; regenerate it when a model
    // change is intended, and the diff shows what moved.
    let dir = scratch("reference");
    let out = dir.join("reduced-campus");
    let o = domiso(&["run", "scenarios/reduced-campus.toml", "--quiet", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = domiso(&[
        "check",
        out.to_str().unwrap(),
        "--baseline",
        "results/reference/reduced-campus",
        "--tolerances",
        "results/reference/tolerances.toml",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let sweep_dir = dir.join("sweep");
    sweep(&["scenarios/sweeps/fallback-x-os-mix.toml", "--out", sweep_dir.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(sweep_dir.join("sweep.csv")).unwrap(),
        std::fs::read(repo().join("results/reference/sweep-fallback-x-os-mix/sweep.csv")).unwrap(),
        "the reference sweep moved"
    );
}
