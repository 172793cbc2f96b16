//! Parameter sweeps: a sweep file names a base scenario, axes (scenario keys by dotted path
//! with a list or a range of values), seeds and the summary metrics to collect. Every
//! (point, seed) is one run; runs go in parallel over a rayon pool, and their rows make
//! `sweep.csv`.
//!
//! Contract:
//! - Run `i` is point `i / seeds` (axes in file order, the first slowest) with seed
//!   `seeds[i % seeds]`. A run depends on nothing but its scenario and seed, so
//!   `sweep.csv` is byte-identical whatever `--jobs`, and whatever the sharding: shard `K/N`
//!   runs exactly the runs with `i % N == K - 1`, and `merge` of all shards writes the file
//!   one machine would have written.
//! - Each finished run leaves `rows/<i>.json` (written atomically) holding its metrics and
//!   the sha256 of its effective scenario; `--resume` skips runs whose row is there with the
//!   same scenario and seed, so a killed sweep loses only the runs in flight.
//! - Measurement keys (`wall_s`) are not metrics: they would break byte identity.
//! - Errors in the sweep file name the file, line and key (exit 2); an axis value the
//!   scenario rejects names the axis, the value and the scenario's message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::run::{self, Granularity, RunRequest};
use crate::scenario::build::{self, Origin, Override, Scenario};
use crate::scenario::diag::{KeyPath, SourceMap, from_toml, text_from_utf8};
use crate::scenario::source::read_bounded;

/// Upper bounds of a sweep, checked before anything is built or allocated (every point's
/// scenario is built when the sweep loads, and every seed is a run).
pub mod limits {
    /// Points: the product of the axes' value counts.
    pub const MAX_POINTS: usize = 10_000;
    /// Seeds of each point (`seeds` listed or `replications`).
    pub const MAX_SEEDS: usize = 10_000;
    /// Runs: points x seeds.
    pub const MAX_RUNS: usize = 1_000_000;
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run {run} ({point}, seed {seed}): {message}")]
    Run { run: usize, point: String, seed: u64, message: String },
    /// SIGINT or SIGTERM: finished rows are kept; `--resume` runs the rest.
    #[error(
        "interrupted: {done} of {total} runs are complete in {rows} (the runs in progress were dropped); finish with --resume"
    )]
    Interrupted { done: usize, total: usize, rows: String },
}

impl SweepError {
    /// Exit code: 2 for bad input or a file that cannot be read or written (usage), 1 for
    /// a run that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Input(_) | SweepError::Io { .. } => 2,
            SweepError::Run { .. } => 1,
            // The shell's code for a process stopped by SIGINT.
            SweepError::Interrupted { .. } => 130,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io { path: path.display().to_string(), source }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    name: String,
    /// The base scenario: a path relative to the sweep file, or `builtin:whitepaper-2008`.
    base: String,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    /// Seeds 1..=n (when `seeds` is absent).
    #[serde(default)]
    replications: Option<u32>,
    /// Simulated days (default: the scenario's).
    #[serde(default)]
    days: Option<u32>,
    #[serde(default)]
    granularity: Option<String>,
    /// Summary keys to collect (objects expand to one column per member); empty: all.
    #[serde(default)]
    metrics: Vec<String>,
    /// Keep each run's directory under `runs/`.
    #[serde(default)]
    keep_runs: bool,
    #[serde(rename = "axis")]
    axes: Vec<AxisFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AxisFile {
    key: String,
    #[serde(default)]
    values: Option<Vec<toml::Value>>,
    #[serde(default)]
    range: Option<RangeFile>,
    /// Names for the values in `sweep.csv` (for table values such as an OS mix).
    #[serde(default)]
    labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeFile {
    from: f64,
    to: f64,
    step: f64,
}

/// A validated sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The base scenario as the sweep file names it (relative to the sweep file).
    pub base: String,
    /// Where that is from here (not part of the plan's identity: shards may run from
    /// different directories).
    #[serde(skip)]
    pub base_path: PathBuf,
    pub axes: Vec<Axis>,
    pub seeds: Vec<u64>,
    pub days: Option<u32>,
    pub granularity: String,
    pub metrics: Vec<String>,
    pub keep_runs: bool,
    /// Where each axis's values are written in the sweep file (one position per value, or
    /// one for a `range`), so that a value the scenario rejects is reported there. Empty
    /// for a plan not read from a file.
    #[serde(skip)]
    pub value_origins: Vec<Vec<Origin>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<toml::Value>,
    /// Names of the values in `sweep.csv` (default: the values themselves).
    pub labels: Option<Vec<String>>,
}

impl Axis {
    /// How value `k` shows in `sweep.csv`.
    pub fn label(&self, k: usize) -> String {
        match &self.labels {
            Some(l) => l[k].clone(),
            None => display_value(&self.values[k]),
        }
    }
}

/// One finished run: what `rows/<i>.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub run: usize,
    pub point: usize,
    pub seed: u64,
    pub scenario_sha256: String,
    /// Flattened summary: `key` or `key.member` -> value (`null` where the run computes
    /// nothing of the kind).
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub jobs: usize,
    /// (K, N): run only the runs with index % N == K - 1.
    pub shard: Option<(usize, usize)>,
    pub resume: bool,
}

/// Parses "K/N" (1 <= K <= N).
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or_else(|| format!("expected K/N, found {s:?}"))?;
    let (k, n) = (k.trim().parse::<usize>(), n.trim().parse::<usize>());
    match (k, n) {
        (Ok(k), Ok(n)) if n >= 1 && (1..=n).contains(&k) => Ok((k, n)),
        _ => Err(format!("expected K/N with 1 <= K <= N, found {s:?}")),
    }
}

fn display_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Plan {
    /// Reads and validates a sweep file: every point's scenario is built once here, so a
    /// bad axis value fails before anything runs.
    pub fn load(path: &Path) -> Result<Plan, SweepError> {
        let shown = path.display().to_string();
        let bytes = read_bounded(path).map_err(io_err(path))?;
        let text = text_from_utf8(&shown, &bytes).map_err(|d| SweepError::Input(d.to_string()))?;
        let raw: SweepFile = from_toml(&shown, text).map_err(|d| SweepError::Input(d.to_string()))?;
        let map = SourceMap::new(&shown, text);
        let at = |key: &KeyPath, message: String| SweepError::Input(map.error(key, message).to_string());
        let top = |name: &str| KeyPath::root().key(name);
        // Bounded before `replications` becomes a list.
        if let Some(s) = raw.seeds.as_ref().filter(|s| s.len() > limits::MAX_SEEDS) {
            return Err(at(&top("seeds"), format!("{} seeds: at most {}", s.len(), limits::MAX_SEEDS)));
        }
        if let Some(n) = raw.replications.filter(|&n| n as usize > limits::MAX_SEEDS) {
            return Err(at(&top("replications"), format!("{n} replications: at most {}", limits::MAX_SEEDS)));
        }
        let seeds = match (&raw.seeds, raw.replications) {
            (Some(s), None) if !s.is_empty() => s.clone(),
            (None, Some(n)) if n >= 1 => (1..=u64::from(n)).collect(),
            (None, None) => vec![1],
            _ => return Err(at(&top("seeds"), "give either a non-empty `seeds` list or `replications` >= 1".into())),
        };
        if seeds.iter().collect::<BTreeSet<_>>().len() != seeds.len() {
            return Err(at(&top("seeds"), "seeds must be distinct".into()));
        }
        let granularity = raw.granularity.clone().unwrap_or_else(|| "sa".into());
        if !matches!(granularity.as_str(), "sa" | "packet" | "both") {
            return Err(at(&top("granularity"), format!("expected sa, packet or both, found {granularity:?}")));
        }
        if raw.axes.is_empty() {
            return Err(at(&top("axis"), "a sweep needs at least one [[axis]]".into()));
        }
        let mut axes = Vec::new();
        let mut value_origins = Vec::new();
        let origin = |key: &KeyPath| {
            let (line, col) = map.locate(key);
            Origin { file: shown.clone(), line, col }
        };
        for (i, a) in raw.axes.iter().enumerate() {
            let key = top("axis").index(i);
            let values = match (&a.values, &a.range) {
                (Some(v), None) if !v.is_empty() => v.clone(),
                (None, Some(r)) => {
                    if !(r.step > 0.0 && r.to >= r.from && r.from.is_finite() && r.to.is_finite()) {
                        return Err(at(&key.key("range"), "expected from <= to and step > 0".into()));
                    }
                    // Counted in floating point first: a tiny step must not overflow usize
                    // (not NaN: the bounds are finite and the step positive, checked above).
                    let steps = ((r.to - r.from) / r.step + 1e-9).floor();
                    if steps >= limits::MAX_POINTS as f64 {
                        return Err(at(
                            &key.key("range"),
                            format!(
                                "{} to {} by {} makes more than {} values, the most an axis may have",
                                r.from,
                                r.to,
                                r.step,
                                limits::MAX_POINTS
                            ),
                        ));
                    }
                    let n = steps as usize + 1;
                    // Values computed from the index (no accumulated rounding), rounded to
                    // 12 significant digits so 0.1 steps print as 0.1, 0.2, ...
                    (0..n)
                        .map(|k| {
                            let x = r.from + r.step * k as f64;
                            let x: f64 = format!("{x:.12e}").parse().expect("a float prints and parses");
                            if x.fract() == 0.0 && x.abs() < 1e15 && r.step.fract() == 0.0 && r.from.fract() == 0.0 {
                                toml::Value::Integer(x as i64)
                            } else {
                                toml::Value::Float(x)
                            }
                        })
                        .collect()
                }
                _ => return Err(at(&key, "give either a non-empty `values` list or a `range`".into())),
            };
            if a.labels.as_ref().is_some_and(|l| l.len() != values.len()) {
                return Err(at(&key.key("labels"), format!("expected {} labels, one per value", values.len())));
            }
            value_origins.push(match &a.range {
                Some(_) => vec![origin(&key.key("range"))],
                None => (0..values.len()).map(|k| origin(&key.key("values").index(k))).collect(),
            });
            axes.push(Axis { key: a.key.clone(), values, labels: a.labels.clone() });
        }
        // Every point is built below: bound the product before building any.
        let points = axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.values.len()));
        match points {
            Some(p) if p <= limits::MAX_POINTS => {
                if p.saturating_mul(seeds.len()) > limits::MAX_RUNS {
                    let key = if raw.seeds.is_some() { "seeds" } else { "replications" };
                    return Err(at(
                        &top(key),
                        format!("{p} points x {} seeds = more than {} runs", seeds.len(), limits::MAX_RUNS),
                    ));
                }
            }
            _ => {
                let shown_points = points.map_or_else(|| "more than 2^64".to_string(), |p| p.to_string());
                return Err(at(
                    &top("axis"),
                    format!("the axes make {shown_points} points: at most {} per sweep", limits::MAX_POINTS),
                ));
            }
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let base = if raw.base.starts_with("builtin:") { PathBuf::from(&raw.base) } else { dir.join(&raw.base) };
        // The base once, here, so that a missing one is named at `base` rather than at
        // every point.
        match raw.base.strip_prefix("builtin:") {
            Some(name) if name != "whitepaper-2008" => {
                return Err(at(
                    &top("base"),
                    format!("unknown built-in scenario {name:?}: expected builtin:whitepaper-2008"),
                ));
            }
            Some(_) => {}
            None => {
                if let Err(e) = read_bounded(&base) {
                    return Err(at(&top("base"), format!("cannot read the base scenario {}: {e}", base.display())));
                }
            }
        }
        let plan = Plan {
            name: raw.name.clone(),
            base: raw.base.clone(),
            base_path: base.clone(),
            axes,
            seeds,
            days: raw.days,
            granularity,
            metrics: raw.metrics.clone(),
            keep_runs: raw.keep_runs,
            value_origins,
        };
        // Build every point once: bad keys and values fail now, named.
        for p in 0..plan.points() {
            plan.scenario(p).map_err(|e| SweepError::Input(format!("{shown}: {e}")))?;
        }
        Ok(plan)
    }

    pub fn points(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    pub fn runs(&self) -> usize {
        self.points() * self.seeds.len()
    }

    /// The index into each axis's values of a point (first axis slowest).
    pub fn point_indices(&self, point: usize) -> Vec<usize> {
        let mut rest = point;
        let mut out = vec![0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            out[i] = rest % a.values.len();
            rest /= a.values.len();
        }
        out
    }

    /// The axis values of a point as `sweep.csv` shows them.
    pub fn point_labels(&self, point: usize) -> Vec<String> {
        self.axes.iter().zip(self.point_indices(point)).map(|(a, k)| a.label(k)).collect()
    }

    fn point_label(&self, point: usize) -> String {
        self.axes
            .iter()
            .zip(self.point_labels(point))
            .map(|(a, v)| format!("{} = {v}", a.key))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The scenario of a point.
    pub fn scenario(&self, point: usize) -> Result<Scenario, String> {
        let overrides: Vec<Override> = self
            .axes
            .iter()
            .zip(self.point_indices(point))
            .enumerate()
            .map(|(i, (a, k))| Override {
                path: a.key.clone(),
                value: a.values[k].clone(),
                origin: self.value_origins.get(i).and_then(|o| o.get(k).or(o.first())).cloned(),
            })
            .collect();
        let (file, text) = if let Some(name) = self.base.strip_prefix("builtin:") {
            if name != "whitepaper-2008" {
                return Err(format!("unknown built-in scenario {name:?}: expected builtin:whitepaper-2008"));
            }
            ("builtin:whitepaper-2008".to_string(), build::BUILTIN_WHITEPAPER.to_string())
        } else {
            let shown = self.base_path.display().to_string();
            let bytes = read_bounded(&self.base_path).map_err(|e| format!("{shown}: {e}"))?;
            let text = text_from_utf8(&shown, &bytes).map_err(|d| d.to_string())?.to_string();
            (shown, text)
        };
        build::parse_with(&file, &text, &overrides)
            .map_err(|d| format!("{}: {}", self.point_label(point), d.to_string().trim_end().replace('\n', "; ")))
    }

    fn granularity(&self) -> Granularity {
        match self.granularity.as_str() {
            "packet" => Granularity::Packet,
            "both" => Granularity::Both,
            _ => Granularity::Sa,
        }
    }

    /// The runs a shard owns, in index order.
    pub fn shard_runs(&self, shard: Option<(usize, usize)>) -> Vec<usize> {
        (0..self.runs()).filter(|i| shard.is_none_or(|(k, n)| i % n == k - 1)).collect()
    }
}

/// A summary as sweep metrics: flattened, without the identity keys (scenario, seed) that
/// the row carries anyway.
pub fn flatten_summary(summary: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let mut out = crate::output::record::flatten_summary(summary);
    out.remove("scenario");
    out.remove("seed");
    out
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn row_path(out: &Path, run: usize) -> PathBuf {
    out.join("rows").join(format!("{run:06}.json"))
}

/// Runs one (point, seed) and returns its row.
fn run_one(plan: &Plan, run_index: usize, out: &Path) -> Result<Row, SweepError> {
    let point = run_index / plan.seeds.len();
    let seed = plan.seeds[run_index % plan.seeds.len()];
    let fail = |message: String| SweepError::Run { run: run_index, point: plan.point_label(point), seed, message };
    let sc = plan.scenario(point).map_err(fail)?;
    let dir = out.join("runs").join(format!("{run_index:06}"));
    let req = RunRequest {
        scenario: &sc,
        seed,
        days: plan.days.unwrap_or(sc.run.days),
        out: dir.clone(),
        granularity: plan.granularity(),
        pcap: None,
        draw_ahead: false,
    };
    let outcome = run::execute(&req, &mut |_| {}).map_err(|e| fail(e.to_string()))?;
    if !plan.keep_runs {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let summary = serde_json::to_value(&outcome.summary).expect("a summary serialises");
    Ok(Row { run: run_index, point, seed, scenario_sha256: sc.sha256.clone(), metrics: flatten_summary(&summary) })
}

/// Reads a finished row, if it is there and matches what the plan would run now.
fn done_row(plan: &Plan, out: &Path, run_index: usize) -> Option<Row> {
    let text = std::fs::read_to_string(row_path(out, run_index)).ok()?;
    let row: Row = serde_json::from_str(&text).ok()?;
    let point = run_index / plan.seeds.len();
    let sc = plan.scenario(point).ok()?;
    (row.run == run_index && row.seed == plan.seeds[run_index % plan.seeds.len()] && row.scenario_sha256 == sc.sha256)
        .then_some(row)
}

/// What a sweep did.
pub struct SweepOutcome {
    pub ran: usize,
    pub skipped: usize,
    pub rows: Vec<Row>,
    pub csv: PathBuf,
}

/// Runs a sweep (or one shard of it) into `opts.out`. `tick` is called once per finished
/// run (from worker threads).
pub fn sweep(plan: &Plan, opts: &Options, tick: &(dyn Fn(usize) + Sync)) -> Result<SweepOutcome, SweepError> {
    let out = &opts.out;
    std::fs::create_dir_all(out.join("rows")).map_err(io_err(out))?;
    let plan_path = out.join("sweep.json");
    if opts.resume {
        if let Ok(text) = std::fs::read_to_string(&plan_path) {
            let before: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| SweepError::Input(format!("{}: {e}", plan_path.display())))?;
            if before != serde_json::to_value(plan).expect("a plan serialises") {
                return Err(SweepError::Input(format!(
                    "{}: the sweep changed since this directory was written; run without --resume",
                    plan_path.display()
                )));
            }
        }
    } else {
        // A fresh start: forget earlier rows.
        let rows = out.join("rows");
        std::fs::remove_dir_all(&rows).map_err(io_err(&rows))?;
        std::fs::create_dir_all(&rows).map_err(io_err(&rows))?;
    }
    // Temporaries of a sweep killed earlier (SIGKILL leaves them) are not results.
    crate::output::writer::remove_stale_temporaries(&out.join("rows"));
    crate::output::writer::remove_stale_temporaries(&out.join("runs"));
    crate::output::writer::remove_stale_temporaries(out);
    write_atomic(&plan_path, serde_json::to_string_pretty(plan).expect("a plan serialises").as_bytes())?;
    let mine = plan.shard_runs(opts.shard);
    let (done, todo): (Vec<usize>, Vec<usize>) =
        mine.iter().partition(|&&i| opts.resume && done_row(plan, out, i).is_some());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| SweepError::Input(format!("--jobs: {e}")))?;
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(), SweepError>> = pool.install(|| {
        todo.par_iter()
            .map(|&i| {
                if stop.load(Ordering::Relaxed) || crate::interrupt::requested() {
                    return Ok(());
                }
                let r = run_one(plan, i, out).and_then(|row| {
                    let json = serde_json::to_string_pretty(&row).expect("a row serialises");
                    write_atomic(&row_path(out, i), json.as_bytes())
                });
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                tick(i);
                r
            })
            .collect()
    });
    if crate::interrupt::requested() {
        let done = mine.iter().filter(|&&i| done_row(plan, out, i).is_some()).count();
        return Err(SweepError::Interrupted { done, total: mine.len(), rows: out.join("rows").display().to_string() });
    }
    if let Some(e) = results.into_iter().find_map(Result::err) {
        return Err(e);
    }
    // Nothing kept: leave no empty directory behind.
    let _ = std::fs::remove_dir(out.join("runs"));
    let rows = read_rows(std::slice::from_ref(out))?;
    let csv = out.join("sweep.csv");
    write_atomic(&csv, &render_csv(plan, &rows))?;
    Ok(SweepOutcome { ran: todo.len(), skipped: done.len(), rows, csv })
}

/// Every row under the given sweep directories, by run index (a run found twice must
/// agree).
fn read_rows(dirs: &[PathBuf]) -> Result<Vec<Row>, SweepError> {
    let mut rows: BTreeMap<usize, Row> = BTreeMap::new();
    for d in dirs {
        let rd = d.join("rows");
        let Ok(entries) = std::fs::read_dir(&rd) else { continue };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for p in names {
            let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
            let row: Row =
                serde_json::from_str(&text).map_err(|e| SweepError::Input(format!("{}: {e}", p.display())))?;
            if let Some(other) = rows.get(&row.run) {
                if other != &row {
                    return Err(SweepError::Input(format!(
                        "{}: run {} differs from another shard's",
                        p.display(),
                        row.run
                    )));
                }
            }
            rows.insert(row.run, row);
        }
    }
    Ok(rows.into_values().collect())
}

/// The metric columns: the plan's list (objects expanded to the members any row has), or
/// every metric any row has, sorted.
fn metric_columns(plan: &Plan, rows: &[Row]) -> Vec<String> {
    let all: BTreeSet<&String> = rows.iter().flat_map(|r| r.metrics.keys()).collect();
    if plan.metrics.is_empty() {
        return all.into_iter().cloned().collect();
    }
    let mut out = Vec::new();
    for m in &plan.metrics {
        let prefix = format!("{m}.");
        let members: Vec<&String> = all.iter().copied().filter(|k| k.starts_with(&prefix)).collect();
        if members.is_empty() {
            out.push(m.clone());
        } else {
            out.extend(members.into_iter().cloned());
        }
    }
    out
}

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `sweep.csv`: a row per run (index order): run, point, seed, one column per axis (named
/// by its key), one per metric.
pub fn render_csv(plan: &Plan, rows: &[Row]) -> Vec<u8> {
    let metrics = metric_columns(plan, rows);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["run".to_string(), "point".into(), "seed".into()];
    header.extend(plan.axes.iter().map(|a| a.key.clone()));
    header.extend(metrics.iter().cloned());
    w.write_record(&header).expect("writing to memory");
    for r in rows {
        let mut rec = vec![r.run.to_string(), r.point.to_string(), r.seed.to_string()];
        rec.extend(plan.point_labels(r.point));
        rec.extend(metrics.iter().map(|m| cell(r.metrics.get(m))));
        w.write_record(&rec).expect("writing to memory");
    }
    w.into_inner().expect("flushing to memory")
}

/// Joins shard directories into `out/sweep.csv`; every run of the plan must be present.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<PathBuf, SweepError> {
    let mut plan: Option<Plan> = None;
    for d in dirs {
        let p = d.join("sweep.json");
        let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
        let this: Plan = serde_json::from_str(&text).map_err(|e| SweepError::Input(format!("{}: {e}", p.display())))?;
        if let Some(first) = &plan {
            if first != &this {
                return Err(SweepError::Input(format!(
                    "{}: a different sweep than {}",
                    p.display(),
                    dirs[0].display()
                )));
            }
        }
        plan = Some(this);
    }
    let plan = plan.ok_or_else(|| SweepError::Input("merge needs at least one shard directory".into()))?;
    let rows = read_rows(dirs)?;
    let have: BTreeSet<usize> = rows.iter().map(|r| r.run).collect();
    let missing: Vec<usize> = (0..plan.runs()).filter(|i| !have.contains(i)).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(|i| i.to_string()).collect();
        return Err(SweepError::Input(format!(
            "{} of {} runs missing (e.g. {}): a shard has not finished",
            missing.len(),
            plan.runs(),
            shown.join(", ")
        )));
    }
    std::fs::create_dir_all(out.join("rows")).map_err(io_err(out))?;
    for r in &rows {
        write_atomic(&row_path(out, r.run), serde_json::to_string_pretty(r).expect("a row serialises").as_bytes())?;
    }
    write_atomic(&out.join("sweep.json"), serde_json::to_string_pretty(&plan).expect("a plan serialises").as_bytes())?;
    let csv = out.join("sweep.csv");
    write_atomic(&csv, &render_csv(&plan, &rows))?;
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_runs() {
        for n in 1..5 {
            let plan = Plan {
                name: "t".into(),
                base: "x".into(),
                base_path: PathBuf::from("x"),
                axes: vec![Axis { key: "a".into(), values: (0..7).map(toml::Value::Integer).collect(), labels: None }],
                seeds: vec![1, 2],
                days: None,
                granularity: "sa".into(),
                metrics: vec![],
                keep_runs: false,
                value_origins: Vec::new(),
            };
            let mut all: Vec<usize> = (1..=n).flat_map(|k| plan.shard_runs(Some((k, n)))).collect();
            all.sort_unstable();
            assert_eq!(all, (0..14).collect::<Vec<_>>());
        }
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        assert!(parse_shard("0/3").is_err() && parse_shard("4/3").is_err() && parse_shard("x").is_err());
    }

    #[test]
    fn points_enumerate_axes_first_slowest() {
        let plan = Plan {
            name: "t".into(),
            base: "x".into(),
            base_path: PathBuf::from("x"),
            axes: vec![
                Axis { key: "a".into(), values: vec![toml::Value::Integer(1), toml::Value::Integer(2)], labels: None },
                Axis { key: "b".into(), values: vec!["x".into(), "y".into(), "z".into()], labels: None },
            ],
            seeds: vec![1],
            days: None,
            granularity: "sa".into(),
            metrics: vec![],
            keep_runs: false,
            value_origins: Vec::new(),
        };
        assert_eq!(plan.points(), 6);
        let labels: Vec<String> = (0..6).map(|p| plan.point_label(p)).collect();
        assert_eq!(labels[0], "a = 1, b = x");
        assert_eq!(labels[2], "a = 1, b = z");
        assert_eq!(labels[3], "a = 2, b = x");
    }

    #[test]
    fn summaries_flatten_objects_and_drop_measurements() {
        let v = serde_json::json!({"wall_s": 3.2, "seed": 1, "x": 2, "by_os": {"vista": 7.5, "xp": 74.0}, "n": null});
        let f = flatten_summary(&v);
        assert_eq!(f.keys().collect::<Vec<_>>(), vec!["by_os.vista", "by_os.xp", "n", "x"]);
    }
}
