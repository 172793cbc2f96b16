//! Charts: what `domiso run` writes under plots/, `domiso plot` redrawing the same bytes, and
//! the charts of the committed reference rollout and sweep.

use std::collections::BTreeMap;
use std::path::Path;

use domiso::output::plot::{self, PlotError};
use domiso::output::writer::sha256_hex;

use crate::common::{domiso, repo, run_into, scratch};

/// The files of `dir/plots/`, by name.
fn plots(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("plots")).unwrap() {
        let p = e.unwrap().path();
        out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
    }
    out
}

/// (file name under the directory, bytes) of each chart.
type Charts = Vec<(String, Vec<u8>)>;

/// Charts drawn from a directory on disk, as `domiso plot` reads it.
fn draw(dir: &Path, f: fn(plot::Read<'_>) -> Result<Charts, PlotError>) -> Charts {
    f(&|name| std::fs::read(dir.join(name)).ok()).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn names(charts: &[(String, Vec<u8>)]) -> Vec<&str> {
    charts.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn run_writes_every_chart_and_plot_redraws_the_same_bytes() {
    let dir =
        run_into("plot-run", &["scenarios/reduced-secure-request-day.toml", "--granularity", "packet", "--days", "1"]);
    // Each chart whose input the run wrote; this run writes all four inputs.
    let inputs = [
        ("timeline.csv", "rollout_timeline"),
        ("overhead_by_app.csv", "overhead_by_app"),
        ("failover_stalls.csv", "failover_stalls"),
        ("helpdesk.csv", "helpdesk_calls"),
    ];
    let mut expected = Vec::new();
    for (file, chart) in inputs {
        assert!(dir.join(file).exists(), "{file} written by this run");
        expected.push(format!("{chart}.png"));
        expected.push(format!("{chart}.svg"));
    }
    expected.sort();
    let written = plots(&dir);
    assert_eq!(written.keys().collect::<Vec<_>>(), expected.iter().collect::<Vec<_>>());
    for (name, bytes) in &written {
        let magic: &[u8] = if name.ends_with(".png") { b"\x89PNG\r\n\x1a\n" } else { b"<svg" };
        assert!(bytes.starts_with(magic), "{name} is what its name says");
    }

    // The manifest covers the charts: they are part of the atomic run directory.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for (name, bytes) in &written {
        let digest = &manifest["files"][format!("plots/{name}")];
        assert_eq!(digest.as_str(), Some(sha256_hex(bytes).as_str()), "manifest digest of plots/{name}");
    }

    // Redrawn from the files alone, byte for byte.
    std::fs::remove_dir_all(dir.join("plots")).unwrap();
    let o = domiso(&["plot", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(plots(&dir) == written, "domiso plot draws the bytes domiso run wrote");
    // Over existing charts too, leaving no temporary file behind.
    let o = domiso(&["plot", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(plots(&dir) == written, "a second plot changes nothing");
}

#[test]
fn plot_refuses_a_directory_that_is_neither_a_run_nor_a_sweep() {
    let dir = scratch("plot-neither");
    std::fs::write(dir.join("timeline.csv"), "day\n0\n").unwrap();
    let o = domiso(&["plot", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a run directory") && err.contains("sweep"), "{err}");
    assert!(!dir.join("plots").exists(), "nothing written");
    let o = domiso(&["plot", dir.join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn plot_reports_a_malformed_file_by_name() {
    let dir = scratch("plot-malformed");
    std::fs::write(dir.join("manifest.json"), "{}\n").unwrap();
    std::fs::write(dir.join("helpdesk.csv"), "day,calls_other\nmonday,3\n").unwrap();
    let o = domiso(&["plot", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("helpdesk.csv: "), "{err}");
}

#[test]
fn the_reference_rollout_draws_its_timeline_and_helpdesk_calls() {
    let dir = repo().join("results/reference/reduced-campus");
    let a = draw(&dir, plot::draw_run);
    for chart in ["rollout_timeline", "helpdesk_calls", "failover_stalls"] {
        for ext in ["svg", "png"] {
            assert!(names(&a).contains(&format!("plots/{chart}.{ext}").as_str()), "{chart}.{ext} in {:?}", names(&a));
        }
    }
    assert!(!names(&a).iter().any(|n| n.contains("overhead")), "an SA-granularity run has no overhead chart");
    assert!(a == draw(&dir, plot::draw_run), "same files, same bytes");
    let svg = |n: &str| String::from_utf8(a.iter().find(|(name, _)| name == n).unwrap().1.clone()).unwrap();
    let timeline = svg("plots/rollout_timeline.svg");
    // Wave markers from rollout_events.csv, and the weekly helpdesk panels of a 32-week run.
    for s in ["Request pilot", "Secure Request: corp", "IPsec-related helpdesk calls per week", "2007-01-08"] {
        assert!(timeline.contains(s), "timeline lacks {s:?}");
    }
    let helpdesk = svg("plots/helpdesk_calls.svg");
    for s in ["Helpdesk calls per week by cause", "NAP: blocked", "Windows Firewall", "other causes"] {
        assert!(helpdesk.contains(s), "helpdesk chart lacks {s:?}");
    }
}

#[test]
fn the_reference_sweep_draws_one_chart_per_metric() {
    let dir = repo().join("results/reference/sweep-fallback-x-os-mix");
    let a = draw(&dir, plot::draw_sweep);
    let mut expected = Vec::new();
    for m in ["blocked_connections_total", "fallback_wait_s_mean", "fallback_waits_total", "sa_negotiations_total"] {
        expected.push(format!("plots/sweep_{m}.png"));
        expected.push(format!("plots/sweep_{m}.svg"));
    }
    assert_eq!(names(&a), expected.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(a == draw(&dir, plot::draw_sweep), "same files, same bytes");
    let svg = String::from_utf8(a[3].1.clone()).unwrap();
    for s in ["fallback_wait_s_mean by ipsec.fallback_delay", "campus.managed_os", "vista-heavy", "mean over 2 seed(s)"]
    {
        assert!(svg.contains(s), "sweep chart lacks {s:?}");
    }
    // A run directory's charts are not a sweep's, and the other way round.
    assert!(draw(&dir, plot::draw_run).is_empty());
    assert!(draw(&repo().join("results/reference/reduced-campus"), plot::draw_sweep).is_empty());
}

#[test]
fn plot_draws_a_sweep_directory_into_its_plots() {
    let dir = scratch("plot-sweep");
    let reference = repo().join("results/reference/sweep-fallback-x-os-mix");
    for f in ["sweep.json", "sweep.csv"] {
        std::fs::copy(reference.join(f), dir.join(f)).unwrap();
    }
    let o = domiso(&["plot", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let drawn: BTreeMap<String, Vec<u8>> = draw(&reference, plot::draw_sweep)
        .into_iter()
        .map(|(n, b)| (n.trim_start_matches("plots/").to_string(), b))
        .collect();
    assert!(plots(&dir) == drawn, "domiso plot writes what draw_sweep draws");
}
