//! `domiso bench scaling`: how a scenario's cost grows with the campus, and how much the
//! model costs per event against the bare event queue.
//!
//! The scenario is run at several sizes (its `campus.clients`, `campus.users` and
//! `campus.sites` multiplied by each factor, everything else as written), each in a child
//! `domiso run --set ...` process so that every size has its own peak RSS. From the
//! children's manifests it reports, per size: hosts, events, the event loop's time and rate,
//! wall time, peak RSS and RSS per host, and the SA table's bytes per live SA; then the
//! scaling exponents (least-squares slope of log cost over log hosts: 1.0 is linear) of the
//! loop time, the wall time and the peak RSS. With `repeat` above 1 every size runs that
//! many times, in rounds over all the sizes (so that a change in the machine's load falls
//! on each size alike), and each size's fastest run by loop time is the one reported (its
//! wall time, CPU time and RSS with it): another load on
//! the machine only ever slows a run, so the fastest is the one least disturbed, and the
//! exponents of a busy machine move less. Last, in this process, the hold benchmark of
//! the bare [`EventQueue`](crate::engine::queue::EventQueue) at each size's mean number of
//! pending events (the fastest of `repeat` runs), the model's event rate as a share of it,
//! and the exponent of the bare queue's time for each size's events: what a loop costing
//! the same multiple of the queue's time at every size would show. The loop's exponent
//! above it is how much faster than the queue's the model's own cost per event grows (the
//! shares of the queue falling with the size).
//!
//! This module is a tool, not model code: it spawns processes, reads files and times things.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::bench;

/// Scenario keys scaled together: clients, users, sites (campus density stays the same).
const SCALED_KEYS: [&str; 3] = ["campus.clients", "campus.users", "campus.sites"];

#[derive(Debug, thiserror::Error)]
pub enum ScalingError {
    #[error("{0}")]
    Input(String),
    #[error("bench scaling: {0}")]
    Failed(String),
}

/// One size's run.
#[derive(Clone, Debug, Serialize)]
pub struct SizeRow {
    pub factor: f64,
    /// Runs made of this size; the figures are those of the fastest.
    pub runs: u32,
    pub hosts: u64,
    pub events: u64,
    pub sim_s: f64,
    pub sim_events_per_s: f64,
    /// CPU time of the loop's thread (manifest `sim_cpu_s`), when the platform tells.
    pub sim_cpu_s: Option<f64>,
    pub wall_s: f64,
    pub peak_rss_bytes: u64,
    pub rss_bytes_per_host: u64,
    pub pending_mean: u64,
    pub sa_bytes_per_live_sa: Option<u64>,
    /// The bare queue's rate at this size's mean pending count (the fastest of `repeat`
    /// hold benchmarks).
    pub engine_events_per_s: f64,
    /// The loop's event rate as a share of `engine_events_per_s`.
    pub model_to_engine_rate: f64,
}

impl SizeRow {
    /// The pending count the bare queue is measured at (at least one).
    fn pending(&self) -> usize {
        (self.pending_mean as usize).max(1)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScalingReport {
    pub scenario: String,
    pub days: Option<u32>,
    /// Runs of each size; `sizes` holds the fastest of each.
    pub repeat: u32,
    pub sizes: Vec<SizeRow>,
    /// Slopes of ln(cost) against ln(hosts).
    pub exponent_sim_s: f64,
    /// The loop thread's CPU time (`None` unless every size has it): what the loop costs
    /// with less of the machine's load in it than the loop's wall time.
    pub exponent_sim_cpu_s: Option<f64>,
    pub exponent_wall_s: f64,
    pub exponent_peak_rss: f64,
    /// Slope of ln(each size's events / the bare queue's rate at its pending count): the
    /// exponent of a loop costing the same multiple of the queue's time at every size
    /// (`exponent_sim_s` above it: the model's cost per event grows faster than the
    /// queue's).
    pub exponent_engine_s: f64,
    /// The bare queue at the factor-1 run's mean pending count, and the model's loop rate
    /// as a share of it.
    pub engine_pending: usize,
    pub engine_events_per_s: f64,
    pub model_to_engine_rate: f64,
}

/// The scenario's value of each scaled key, read from its campus.
fn base_values(sc: &crate::scenario::build::Scenario) -> [f64; 3] {
    [f64::from(sc.campus.clients), f64::from(sc.campus.users), f64::from(sc.campus.sites)]
}

/// Runs the scenario `repeat` times at every factor and measures the bare queue;
/// `scenario` is a file, or `None` for the built-in campus.
pub fn run(
    scenario: Option<&Path>,
    factors: &[f64],
    days: Option<u32>,
    repeat: u32,
    engine_events: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<ScalingReport, ScalingError> {
    if factors.is_empty() || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(ScalingError::Input("bench scaling: --factors must be positive numbers".into()));
    }
    if factors.iter().enumerate().any(|(i, f)| factors[..i].contains(f)) {
        return Err(ScalingError::Input(
            "bench scaling: --factors must differ (use --repeat to run a size again)".into(),
        ));
    }
    if engine_events == 0 || days == Some(0) || repeat == 0 {
        return Err(ScalingError::Input("bench scaling: --engine-events, --days and --repeat must be positive".into()));
    }
    if !factors.contains(&1.0) {
        return Err(ScalingError::Input(
            "bench scaling: --factors must include 1 (the size the summary quotes)".into(),
        ));
    }
    let sc = match scenario {
        Some(p) => crate::scenario::build::load(p).map_err(|e| ScalingError::Input(e.to_string()))?,
        None => crate::scenario::build::builtin(),
    };
    let exe = std::env::current_exe().map_err(|e| ScalingError::Failed(format!("own executable: {e}")))?;
    let scratch = std::env::temp_dir().join(format!("domiso-scaling-{}", std::process::id()));
    let base = base_values(&sc);
    let mut sizes: Vec<SizeRow> = Vec::new();
    let result = (|| {
        for (round, &f) in (1..=repeat).flat_map(|r| factors.iter().map(move |f| (r, f))) {
            progress(&if repeat > 1 {
                format!("factor {f}: run {round} of {repeat}")
            } else {
                format!("factor {f}: running")
            });
            let out = scratch.join(format!("x{f}-{round}"));
            let mut cmd = Command::new(&exe);
            cmd.arg("run");
            if let Some(p) = scenario {
                cmd.arg(p);
            }
            for (key, v) in SCALED_KEYS.iter().zip(base) {
                cmd.arg("--set").arg(format!("{key}={}", ((v * f).round() as u64).max(1)));
            }
            if let Some(d) = days {
                cmd.arg("--days").arg(d.to_string());
            }
            cmd.arg("--quiet").arg("--out").arg(&out);
            let status = cmd.output().map_err(|e| ScalingError::Failed(format!("starting {}: {e}", exe.display())))?;
            if !status.status.success() {
                return Err(ScalingError::Failed(format!(
                    "factor {f}: domiso run failed ({}): {}",
                    status.status,
                    String::from_utf8_lossy(&status.stderr).trim()
                )));
            }
            keep_fastest(&mut sizes, read_row(f, &out.join("manifest.json"))?);
            let _ = std::fs::remove_dir_all(&out);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    // In rounds over the sizes too, for the same reason as the runs.
    for round in 1..=repeat {
        for row in &mut sizes {
            let pending = row.pending();
            progress(&format!("bare queue at {pending} pending (factor {}, run {round} of {repeat})", row.factor));
            row.engine_events_per_s = row.engine_events_per_s.max(bench::queue_rate(pending, engine_events, 1));
        }
    }
    for row in &mut sizes {
        row.model_to_engine_rate = row.sim_events_per_s / row.engine_events_per_s;
    }
    let at_one = sizes.iter().find(|r| r.factor == 1.0).expect("factor 1 is required above");
    Ok(ScalingReport {
        scenario: sc.name.clone(),
        days,
        repeat,
        exponent_sim_s: exponent_of(&sizes, |r| r.sim_s),
        exponent_sim_cpu_s: sizes
            .iter()
            .all(|r| r.sim_cpu_s.is_some())
            .then(|| exponent_of(&sizes, |r| r.sim_cpu_s.unwrap_or_default())),
        exponent_wall_s: exponent_of(&sizes, |r| r.wall_s),
        exponent_peak_rss: exponent_of(&sizes, |r| r.peak_rss_bytes as f64),
        exponent_engine_s: exponent_of(&sizes, |r| r.events as f64 / r.engine_events_per_s),
        engine_pending: at_one.pending(),
        engine_events_per_s: at_one.engine_events_per_s,
        model_to_engine_rate: at_one.model_to_engine_rate,
        sizes,
    })
}

/// Files a size's run: a size's first, or faster (by loop time) than the one kept.
fn keep_fastest(sizes: &mut Vec<SizeRow>, row: SizeRow) {
    match sizes.iter_mut().find(|r| r.factor == row.factor) {
        Some(kept) => {
            let runs = kept.runs + 1;
            if row.sim_s < kept.sim_s {
                *kept = row;
            }
            kept.runs = runs;
        }
        None => sizes.push(SizeRow { runs: 1, ..row }),
    }
}

fn read_row(factor: f64, manifest: &Path) -> Result<SizeRow, ScalingError> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| ScalingError::Failed(format!("{}: {e}", manifest.display())))?;
    let m: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ScalingError::Failed(format!("{}: {e}", manifest.display())))?;
    let num = |k: &str| m.get(k).and_then(serde_json::Value::as_f64);
    let need = |k: &str| num(k).ok_or_else(|| ScalingError::Failed(format!("{}: no {k}", manifest.display())));
    Ok(SizeRow {
        factor,
        runs: 1,
        hosts: need("hosts")? as u64,
        events: need("events_processed")? as u64,
        sim_s: need("sim_s")?,
        sim_events_per_s: need("sim_events_per_s")?,
        sim_cpu_s: num("sim_cpu_s"),
        wall_s: need("wall_s")?,
        peak_rss_bytes: num("peak_rss_bytes").unwrap_or(0.0) as u64,
        rss_bytes_per_host: num("rss_bytes_per_host").unwrap_or(0.0) as u64,
        pending_mean: need("pending_mean")? as u64,
        sa_bytes_per_live_sa: num("sa_bytes_per_live_sa").map(|v| v as u64),
        // Measured once every size has run (see `run`).
        engine_events_per_s: 0.0,
        model_to_engine_rate: 0.0,
    })
}

/// The exponent of `cost` in the sizes' host counts (see [`log_log_slope`]).
fn exponent_of(sizes: &[SizeRow], cost: impl Fn(&SizeRow) -> f64) -> f64 {
    log_log_slope(&sizes.iter().map(|r| (r.hosts as f64, cost(r))).collect::<Vec<_>>())
}

/// An exponent as the report prints it: `-` where there is none (NaN).
fn exponent_text(e: f64) -> String {
    if e.is_nan() { "-".into() } else { format!("{e:.3}") }
}

/// Least-squares slope of ln(y) on ln(x); NaN with fewer than two distinct sizes.
pub fn log_log_slope(points: &[(f64, f64)]) -> f64 {
    let pts: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if pts.len() < 2 || sxx == 0.0 { f64::NAN } else { sxy / sxx }
}

pub fn render_text(r: &ScalingReport) -> String {
    let mut s = String::new();
    let days = r.days.map_or("its days".to_string(), |d| format!("{d} day(s)"));
    let runs =
        if r.repeat > 1 { format!("the fastest of {} runs per size", r.repeat) } else { "one run per size".into() };
    let _ = writeln!(s, "scaling of {} ({days}), {runs}, each a child process:", r.scenario);
    let _ = writeln!(
        s,
        "{:>6} {:>9} {:>12} {:>9} {:>10} {:>12} {:>9} {:>10} {:>10} {:>9} {:>9} {:>12} {:>9}",
        "factor",
        "hosts",
        "events",
        "loop s",
        "loop cpu",
        "events/s",
        "wall s",
        "peak RSS",
        "B/host",
        "B/SA",
        "pending",
        "queue ev/s",
        "of queue"
    );
    for x in &r.sizes {
        let _ = writeln!(
            s,
            "{:>6} {:>9} {:>12} {:>9.2} {:>10} {:>12.0} {:>9.2} {:>9.0}M {:>10} {:>9} {:>9} {:>12.0} {:>9.3}",
            x.factor,
            x.hosts,
            x.events,
            x.sim_s,
            x.sim_cpu_s.map_or("-".to_string(), |c| format!("{c:.2}")),
            x.sim_events_per_s,
            x.wall_s,
            x.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            x.rss_bytes_per_host,
            x.sa_bytes_per_live_sa.map_or("-".to_string(), |b| b.to_string()),
            x.pending_mean,
            x.engine_events_per_s,
            x.model_to_engine_rate
        );
    }
    if r.exponent_sim_s.is_nan() {
        let _ = writeln!(s, "exponents: none (fewer than two distinct campus sizes: give --factors two or more)");
    } else {
        let _ = writeln!(
            s,
            "exponents (1.0 = linear in hosts): loop time {}, loop CPU {}, wall time {}, peak RSS {}",
            exponent_text(r.exponent_sim_s),
            exponent_text(r.exponent_sim_cpu_s.unwrap_or(f64::NAN)),
            exponent_text(r.exponent_wall_s),
            exponent_text(r.exponent_peak_rss)
        );
        let _ = writeln!(
            s,
            "the bare queue's time for each size's events at its pending count: exponent {} (a loop costing the same multiple of it at every size would show this)",
            exponent_text(r.exponent_engine_s)
        );
    }
    let _ = writeln!(
        s,
        "bare queue at {} pending: {:.0} events/s; the model at factor 1 runs at {:.3} of it",
        r.engine_pending, r.engine_events_per_s, r.model_to_engine_rate
    );
    s
}

/// Where a report goes when asked for (`--json FILE`): written whole or not at all.
pub fn write_json(r: &ScalingReport, path: &PathBuf) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_log_slope_recovers_power_laws() {
        let linear: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0].iter().map(|&x| (x, 3.0 * x)).collect();
        assert!((log_log_slope(&linear) - 1.0).abs() < 1e-12);
        let square: Vec<(f64, f64)> = [1.0, 2.0, 4.0].iter().map(|&x| (x, x * x)).collect();
        assert!((log_log_slope(&square) - 2.0).abs() < 1e-12);
        let flat = [(1.0, 5.0), (10.0, 5.0)];
        assert!(log_log_slope(&flat).abs() < 1e-12);
        assert!(log_log_slope(&[(2.0, 1.0)]).is_nan());
    }

    fn row(factor: f64, sim_s: f64) -> SizeRow {
        SizeRow {
            factor,
            runs: 1,
            hosts: (factor * 1000.0) as u64,
            events: 1,
            sim_s,
            sim_events_per_s: 1.0 / sim_s,
            sim_cpu_s: Some(sim_s),
            wall_s: sim_s + 1.0,
            peak_rss_bytes: 1,
            rss_bytes_per_host: 1,
            pending_mean: 1,
            sa_bytes_per_live_sa: None,
            engine_events_per_s: 0.0,
            model_to_engine_rate: 0.0,
        }
    }

    #[test]
    fn each_size_keeps_its_fastest_run_in_factor_order() {
        let mut sizes = Vec::new();
        for (f, t) in [(0.5, 3.0), (1.0, 7.0), (0.5, 2.0), (1.0, 9.0), (0.5, 2.5), (1.0, 6.5)] {
            keep_fastest(&mut sizes, row(f, t));
        }
        let kept: Vec<(f64, f64, u32)> = sizes.iter().map(|r| (r.factor, r.sim_s, r.runs)).collect();
        assert_eq!(kept, [(0.5, 2.0, 3), (1.0, 6.5, 3)]);
    }

    fn report(sizes: Vec<SizeRow>) -> ScalingReport {
        ScalingReport {
            scenario: "s".into(),
            days: Some(1),
            repeat: 1,
            exponent_sim_s: exponent_of(&sizes, |r| r.sim_s),
            exponent_sim_cpu_s: None,
            exponent_wall_s: exponent_of(&sizes, |r| r.wall_s),
            // Peak RSS unknown (0) at every size: no exponent of its own.
            exponent_peak_rss: exponent_of(&sizes, |_| 0.0),
            exponent_engine_s: 0.0,
            engine_pending: 1,
            engine_events_per_s: 1.0,
            model_to_engine_rate: 1.0,
            sizes,
        }
    }

    #[test]
    fn a_single_size_reports_no_exponents_rather_than_nan() {
        let one = render_text(&report(vec![row(1.0, 4.0)]));
        assert!(one.contains("exponents: none (fewer than two distinct campus sizes"), "{one}");
        assert!(!one.contains("NaN"), "{one}");
        let two = render_text(&report(vec![row(1.0, 4.0), row(2.0, 8.0)]));
        assert!(two.contains("loop time 1.000, loop CPU -, wall time 0.848, peak RSS -"), "{two}");
        assert!(!two.contains("NaN"), "{two}");
    }
}
