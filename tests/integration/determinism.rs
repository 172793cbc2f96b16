//! `domiso run --check-determinism` on every shipped scenario, and the comparison it rests
//! on failing when two real run directories differ by one byte.
//!
//! Sizes: each scenario runs with its own file for one day (thirty for the reduced rollout,
//! so the helpdesk's peak-month figures exist), except the three whole-campus days without
//! a traffic sample (`secure-request-day`, `nlb-failover`, `nlb-failover-exempt`: 70 to
//! 100 s a run here). Those run through an overlay that only sets
//! `run.traffic_sample = 0.01`: the same 260k-host campus, policy, NLB failure schedule and
//! code paths (a sampled run scales its counts, as the default rollout does), about a
//! second a run. Each test takes a few seconds (two runs).

use std::path::{Path, PathBuf};

use domiso::output::determinism;

use crate::common::{domiso, repo, scenario_path, scratch};

/// The scenarios these tests cover; a new file in `scenarios/` must be added here (and get
/// its test), which `every_shipped_scenario_has_a_determinism_test` enforces.
const COVERED: [&str; 8] = [
    "broken-policy.toml",
    "nlb-failover-exempt.toml",
    "nlb-failover.toml",
    "reduced-campus.toml",
    "reduced-secure-request-day.toml",
    "secure-request-by-subnet.toml",
    "secure-request-day.toml",
    "whitepaper-2008.toml",
];

#[test]
fn every_shipped_scenario_has_a_determinism_test() {
    let mut shipped: Vec<String> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    shipped.sort();
    assert_eq!(shipped, COVERED, "scenarios/*.toml and the determinism tests disagree");
}

/// An overlay of a shipped scenario that samples 1% of the traffic (see the module doc).
fn sampled(dir: &Path, name: &str) -> PathBuf {
    let file = dir.join(format!("sampled-{name}"));
    let text = format!("extends = {:?}\n[run]\ntraffic_sample = 0.01\n", scenario_path(name).display().to_string());
    std::fs::write(&file, text).unwrap();
    file
}

/// Runs `domiso run SCENARIO --check-determinism ARGS...` into `dir/run`; asserts it passed,
/// wrote the run directory, and left no temporary behind. Returns the run directory.
fn check(dir: &Path, scenario: &Path, args: &[&str]) -> PathBuf {
    let out = dir.join("run");
    let mut all =
        vec!["run", scenario.to_str().unwrap(), "--check-determinism", "--quiet", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = domiso(&all);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{}: {stdout}{stderr}", scenario.display());
    let files = determinism::read_dir(&out).unwrap();
    let bytes: u64 = files.values().map(|b| b.len() as u64).sum();
    assert!(files.contains_key("manifest.json") && files.contains_key("timeline.csv"), "{:?}", files.keys());
    assert!(
        stdout.contains(&format!("determinism verified: {} file(s)", files.len() + args.contains(&"--pcap") as usize)),
        "{stdout}"
    );
    if !args.contains(&"--pcap") {
        let shown = stdout.split(" file(s), ").nth(1).and_then(|s| s.split(" bytes").next()).unwrap();
        assert_eq!(shown.replace(',', ""), bytes.to_string(), "every byte of the directory compared: {stdout}");
    }
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
    out
}

#[test]
fn determinism_whitepaper_2008_both_granularities_and_pcap() {
    let dir = scratch("determinism-whitepaper");
    let pcap = dir.join("capture.pcap");
    check(
        &dir,
        &scenario_path("whitepaper-2008.toml"),
        &["--days", "1", "--granularity", "both", "--pcap", pcap.to_str().unwrap()],
    );
    let bytes = std::fs::read(&pcap).expect("the first run's capture is committed to --pcap");
    assert!(bytes.len() > 24, "a capture with packets: {} bytes", bytes.len());
}

#[test]
fn determinism_reduced_campus_30_days_replaces_the_old_directory() {
    let dir = scratch("determinism-reduced-campus");
    // Thirty days: the first helpdesk peak-month window exists.
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/stale.csv"), "from an earlier run").unwrap();
    let out = check(&dir, &scenario_path("reduced-campus.toml"), &["--days", "30"]);
    assert!(!out.join("stale.csv").exists(), "the run directory is replaced as a whole");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["helpdesk_total_calls_peak_month"].is_number(), "{}", summary["helpdesk_total_calls_peak_month"]);
}

/// As shipped: the only one of these runs that simulates every host's traffic under IPsec
/// (no sample), so the busy-link peaks are computed rather than left empty.
#[test]
fn determinism_reduced_secure_request_day() {
    let dir = scratch("determinism-reduced-srd");
    check(&dir, &scenario_path("reduced-secure-request-day.toml"), &[]);
}

#[test]
fn determinism_secure_request_by_subnet() {
    let dir = scratch("determinism-by-subnet");
    check(&dir, &scenario_path("secure-request-by-subnet.toml"), &["--days", "1"]);
}

#[test]
fn determinism_broken_policy() {
    let dir = scratch("determinism-broken-policy");
    check(&dir, &scenario_path("broken-policy.toml"), &["--days", "1"]);
}

#[test]
fn determinism_secure_request_day_sampled_packets_and_pcap() {
    let dir = scratch("determinism-srd");
    let file = sampled(&dir, "secure-request-day.toml");
    let pcap = dir.join("srd.pcap");
    check(&dir, &file, &["--granularity", "packet", "--pcap", pcap.to_str().unwrap()]);
    assert!(pcap.is_file());
}

#[test]
fn determinism_nlb_failover_sampled() {
    let dir = scratch("determinism-nlb");
    let file = sampled(&dir, "nlb-failover.toml");
    let out = check(&dir, &file, &[]);
    let stalls = std::fs::read_to_string(out.join("failover_stalls.csv")).unwrap();
    assert!(stalls.lines().count() > 1, "the scheduled failures stall some connections: {stalls}");
}

#[test]
fn determinism_nlb_failover_exempt_sampled() {
    let dir = scratch("determinism-nlb-exempt");
    let file = sampled(&dir, "nlb-failover-exempt.toml");
    check(&dir, &file, &[]);
}

/// The comparison behind the flag, on two real run directories of which one differs in one
/// byte: it fails, naming the file and the line; the measurements alone never fail it.
#[test]
fn the_comparison_fails_on_one_changed_byte_of_a_real_run() {
    let dir = scratch("determinism-one-byte");
    let (a, b) = (dir.join("a"), dir.join("elsewhere").join("b"));
    for out in [&a, &b] {
        let o =
            domiso(&["run", "scenarios/reduced-campus.toml", "--days", "2", "--quiet", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let fa = determinism::read_dir(&a).unwrap();
    let mut fb = determinism::read_dir(&b).unwrap();
    let same = determinism::compare(&fa, &fb);
    assert!(same.identical(), "{:?}", same.differences);
    assert_eq!(same.files, fa.len());
    // Day 1's row of timeline.csv (line 3) says day 7.
    let timeline = fb.get_mut("timeline.csv").unwrap();
    let row = timeline.iter().enumerate().filter(|(_, c)| **c == b'\n').nth(1).unwrap().0 + 1;
    assert_eq!(&timeline[row..row + 2], b"1,");
    timeline[row] = b'7';
    let c = determinism::compare(&fa, &fb);
    assert_eq!(c.differences.len(), 1, "{:?}", c.differences);
    assert_eq!(c.differences[0].file, "timeline.csv");
    let detail = &c.differences[0].detail;
    assert!(detail.starts_with("line 3: \"1,") && detail.contains(" vs \"7,"), "{detail}");
    // A model figure in the summary is not a measurement.
    let mut fc = determinism::read_dir(&b).unwrap();
    let summary = String::from_utf8(fc["summary.json"].clone()).unwrap();
    let changed = summary.replacen("\"hosts_total\": 27281", "\"hosts_total\": 27282", 1);
    assert_ne!(summary, changed);
    fc.insert("summary.json".into(), changed.into_bytes());
    let c = determinism::compare(&fa, &fc);
    assert_eq!(c.differences.len(), 1, "{:?}", c.differences);
    assert!(c.differences[0].detail.contains("hosts_total: 27281 vs 27282"), "{:?}", c.differences);
}

/// When the two runs differ, nothing is written: not the run directory (an older one stays
/// as it was) and no temporary is left. The second run's output is damaged by hand here,
/// as nothing in the model can be made to differ.
#[test]
fn a_difference_between_the_two_runs_writes_nothing() {
    use domiso::determinism_check::run_twice;
    use domiso::run::{Granularity, RunRequest};
    let dir = scratch("determinism-differs");
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("timeline.csv"), "an older run").unwrap();
    let sc = crate::common::load("reduced-campus.toml");
    let req = RunRequest {
        scenario: &sc,
        seed: 1,
        days: 2,
        out: out.clone(),
        granularity: Granularity::Sa,
        pcap: None,
        draw_ahead: false,
    };
    let runs = run_twice(&req, &mut |_| {}).unwrap();
    let (first, second) = runs.dirs();
    assert!(first.parent() == Some(&dir) && second.parent() == Some(&dir), "temporaries are siblings of the output");
    assert_ne!(first, second);
    let path = second.join("plots/helpdesk_calls.svg");
    let mut svg = std::fs::read(&path).unwrap();
    svg[100] ^= 0x20;
    std::fs::write(&path, svg).unwrap();
    let checked = runs.finish().unwrap();
    assert!(checked.outcome.is_none(), "nothing committed");
    let files: Vec<&str> = checked.comparison.differences.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files, ["plots/helpdesk_calls.svg"]);
    assert!(checked.comparison.differences[0].detail.contains("first difference at byte 100"));
    assert_eq!(std::fs::read_to_string(out.join("timeline.csv")).unwrap(), "an older run", "the old run stays");
    let entries: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries, ["run"], "no temporaries left");
}
