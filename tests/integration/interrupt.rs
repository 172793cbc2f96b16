//! Interrupted runs and sweeps (issue 9): processes killed at random moments (seeded) with
//! SIGKILL, SIGTERM or SIGINT, over and over. After every kill the run directory is either
//! absent or whole (byte-identical to an uninterrupted run), every sweep row that exists
//! is complete, no temporary survives the next start, and a sweep finished by `--resume`
//! writes the same `sweep.csv` as one never interrupted, without recomputing a finished
//! row.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rand::{RngExt, SeedableRng};

use crate::common::{domiso, repo, row_mtimes, scratch};
use crate::run::assert_same_run;

#[derive(Copy, Clone, Debug)]
enum Sig {
    Kill,
    Term,
    Int,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Kill => "KILL",
            Sig::Term => "TERM",
            Sig::Int => "INT",
        }
    }
}

/// Starts `domiso args`, sends `sig` after `after`, and returns its exit code (`None`
/// when killed by the signal) and stderr.
fn interrupt(args: &[String], after: Duration, sig: Sig) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_domiso"))
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = Command::new("kill").arg(format!("-{}", sig.name())).arg(child.id().to_string()).status();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Names in `dir` that are not results: temporaries of some writer.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A small SA-level scenario: two simulated days of a 10,000-client campus (about 2 s).
fn run_args(out: &Path) -> Vec<String> {
    [
        "run",
        "scenarios/reduced-secure-request-day.toml",
        "--days",
        "2",
        "--set",
        "campus.clients=10000",
        "--set",
        "campus.users=5400",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn runs_killed_at_random_moments_leave_a_whole_directory_or_none() {
    let dir = scratch("interrupt-runs");
    let reference = dir.join("reference");
    let started = Instant::now();
    let o = domiso(&run_args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = started.elapsed();
    let out = dir.join("out");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let (mut interrupted, mut completed) = (0, 0);
    for round in 0..12 {
        let sig = [Sig::Kill, Sig::Term, Sig::Int][round % 3];
        let after = whole.mul_f64(rng.random_range(0.05..1.1));
        let (code, stderr) = interrupt(&run_args(&out), after, sig);
        match code {
            Some(0) => completed += 1,
            Some(130) => {
                interrupted += 1;
                assert!(stderr.contains("interrupted on simulated day"), "round {round}: {stderr}");
                assert!(stderr.contains("nothing written"), "round {round}: {stderr}");
            }
            None => interrupted += 1, // SIGKILL
            Some(c) => panic!("round {round}: SIG{} gave exit {c}: {stderr}", sig.name()),
        }
        if out.exists() {
            assert_same_run(&reference, &out);
        }
        for name in temporaries(&dir) {
            // Only a process killed outright leaves one, and the next start removes it.
            assert!(matches!(sig, Sig::Kill), "round {round}: SIG{} left {name}", sig.name());
        }
    }
    assert!(interrupted >= 6, "most rounds interrupted a live run ({interrupted} of 12)");
    // A clean run afterwards: the directory is whole and every temporary is gone.
    let o = domiso(&run_args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success());
    assert_same_run(&reference, &out);
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    eprintln!("runs: {interrupted} interrupted, {completed} completed before the signal");
}

fn tiny_sweep(dir: &Path) -> PathBuf {
    let base = repo().join("scenarios/reduced-secure-request-day.toml");
    std::fs::write(
        dir.join("tiny.toml"),
        format!(
            "extends = {:?}\nname = \"tiny\"\n[campus]\nclients = 3000\nusers = 1600\nsites = 12\nregions = 2\n[nlb]\nclusters = 4\n",
            base.display().to_string()
        ),
    )
    .unwrap();
    let file = dir.join("sweep.toml");
    std::fs::write(
        &file,
        "name = \"tiny-kill\"\nbase = \"tiny.toml\"\nreplications = 2\nmetrics = [\"sa_negotiations_total\", \"fallback_wait_s_mean\"]\n\n[[axis]]\nkey = \"ipsec.fallback_delay\"\nvalues = [\"1 s\", \"2 s\", \"3 s\"]\n\n[[axis]]\nkey = \"ipsec.main_mode_lifetime\"\nvalues = [\"1 h\", \"2 h\", \"4 h\", \"8 h\"]\n",
    )
    .unwrap();
    file
}

#[test]
fn sweeps_killed_again_and_again_resume_to_the_uninterrupted_result() {
    let dir = scratch("interrupt-sweeps");
    let file = tiny_sweep(&dir);
    let whole = dir.join("whole");
    let o = domiso(&["sweep", file.to_str().unwrap(), "--jobs", "2", "--quiet", "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reference = std::fs::read(whole.join("sweep.csv")).unwrap();
    let out = dir.join("out");
    let rows = out.join("rows");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    // Finished rows and when they were written: a resume must never rewrite one.
    let mut seen: Vec<(PathBuf, SystemTime)> = Vec::new();
    let mut finished = false;
    for round in 0..40 {
        let sig = [Sig::Kill, Sig::Int, Sig::Term][round % 3];
        let mut args: Vec<String> = ["sweep", file.to_str().unwrap(), "--jobs", "2", "--out", out.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if round > 0 {
            args.push("--resume".into());
        }
        let (code, stderr) = interrupt(&args, Duration::from_millis(rng.random_range(150..900)), sig);
        match code {
            Some(0) => finished = true,
            Some(130) => {
                assert!(stderr.contains("interrupted:") && stderr.contains("--resume"), "round {round}: {stderr}")
            }
            None => {}
            Some(c) => panic!("round {round}: SIG{} gave exit {c}: {stderr}", sig.name()),
        }
        // Every visible row is a whole JSON document.
        for e in std::fs::read_dir(&rows).into_iter().flatten() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                assert!(matches!(sig, Sig::Kill), "round {round}: SIG{} left {name}", sig.name());
                continue;
            }
            let row: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("round {round}: {name} is not whole: {e}"));
            assert!(row["metrics"].is_object(), "{name}");
        }
        for (p, t) in &seen {
            assert_eq!(std::fs::metadata(p).unwrap().modified().unwrap(), *t, "{} was recomputed", p.display());
        }
        seen = row_mtimes(&rows);
        if finished {
            break;
        }
    }
    if !finished {
        let o = domiso(&["sweep", file.to_str().unwrap(), "--resume", "--quiet", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(out.join("sweep.csv")).unwrap(), reference, "resumed sweep differs");
    assert_eq!(temporaries(&rows), Vec::<String>::new());
}
