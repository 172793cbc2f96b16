//! `domiso compare`: two run directories side by side. It reads what `domiso run` wrote
//! (`summary.json`, `helpdesk.csv`, `timeline.csv`) and reports every numeric summary key of
//! either run (A, B, B - A) plus totals over the run and a per-week table of helpdesk calls,
//! users affected (at all, and cut off by IPsec) and blocked connections.
//!
//! Contract:
//! - Reads only; never writes. A missing or unreadable `summary.json` is an error naming the
//!   file; `helpdesk.csv` and `timeline.csv` are optional (a run without a helpdesk has no
//!   weekly calls) but a malformed one is an error naming the file and line.
//! - Summary keys are reported in alphabetical order, then totals over the run; a key that is
//!   null (or absent) in one run shows as null, and its difference is null.
//! - Weeks are 7-day blocks from day 0; the last one may be shorter (`days` says how long).
//!   Runs of different lengths compare over the weeks either has; a week one run lacks is
//!   null for that run.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
}

fn read_err(path: &Path, message: impl ToString) -> CompareError {
    CompareError::Read { path: path.display().to_string(), message: message.to_string() }
}

/// One summary key of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRow {
    pub key: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
}

/// One week of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekRow {
    pub week: u32,
    pub first_day: u32,
    /// Date of the week's first day (from either run's helpdesk or timeline), if known.
    pub date: Option<String>,
    pub days: u32,
    pub a_calls_ipsec: Option<f64>,
    pub b_calls_ipsec: Option<f64>,
    pub a_calls_total: Option<f64>,
    pub b_calls_total: Option<f64>,
    pub a_users_affected: Option<f64>,
    pub b_users_affected: Option<f64>,
    pub a_users_ipsec_blocked: Option<f64>,
    pub b_users_ipsec_blocked: Option<f64>,
    pub a_blocked_connections: Option<f64>,
    pub b_blocked_connections: Option<f64>,
}

/// What a run directory says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub dir: String,
    pub scenario: String,
    pub seed: Option<u64>,
    pub days: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub a: RunInfo,
    pub b: RunInfo,
    pub summary: Vec<KeyRow>,
    pub weeks: Vec<WeekRow>,
}

/// Per-day series of one run: column -> day -> value.
type Daily = BTreeMap<String, BTreeMap<u32, f64>>;

struct Run {
    info: RunInfo,
    summary: serde_json::Map<String, Value>,
    daily: Daily,
    dates: BTreeMap<u32, String>,
}

/// Reads the columns wanted from a CSV with a `day` column; absent file = empty.
fn read_daily(
    path: &Path,
    wanted: &[&str],
    daily: &mut Daily,
    dates: &mut BTreeMap<u32, String>,
) -> Result<(), CompareError> {
    if !path.exists() {
        return Ok(());
    }
    let mut r = csv::Reader::from_path(path).map_err(|e| read_err(path, e))?;
    let headers = r.headers().map_err(|e| read_err(path, e))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let day_col = col("day").ok_or_else(|| read_err(path, "no `day` column"))?;
    let date_col = col("date");
    let cols: Vec<(&str, usize)> = wanted.iter().filter_map(|w| col(w).map(|c| (*w, c))).collect();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| read_err(path, format!("line {line}: {e}")))?;
        let day: u32 = rec[day_col]
            .parse()
            .map_err(|_| read_err(path, format!("line {line}: day {:?} is not a day number", &rec[day_col])))?;
        if let Some(d) = date_col.map(|c| &rec[c]).filter(|d| !d.is_empty()) {
            dates.entry(day).or_insert_with(|| d.to_string());
        }
        for (name, c) in &cols {
            let cell = &rec[*c];
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell
                .parse()
                .map_err(|_| read_err(path, format!("line {line}: column {name}: {cell:?} is not a number")))?;
            daily.entry(name.to_string()).or_default().insert(day, v);
        }
    }
    Ok(())
}

fn read_run(dir: &Path) -> Result<Run, CompareError> {
    let path = dir.join("summary.json");
    let text =
        std::fs::read(&path).map_err(|e| read_err(&path, format!("cannot read ({e}); is this a run directory?")))?;
    let summary = match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(read_err(&path, "expected a JSON object")),
        Err(e) => return Err(read_err(&path, format!("line {}: {e}", e.line()))),
    };
    let mut daily = Daily::new();
    let mut dates = BTreeMap::new();
    read_daily(
        &dir.join("helpdesk.csv"),
        &["calls_ipsec", "calls_total", "users_affected", "users_ipsec_blocked"],
        &mut daily,
        &mut dates,
    )?;
    read_daily(&dir.join("timeline.csv"), &["blocked_connections"], &mut daily, &mut dates)?;
    let info = RunInfo {
        dir: dir.display().to_string(),
        scenario: summary.get("scenario").and_then(Value::as_str).unwrap_or_default().to_string(),
        seed: summary.get("seed").and_then(Value::as_u64),
        days: summary.get("days").and_then(Value::as_u64),
    };
    Ok(Run { info, summary, daily, dates })
}

/// Numeric keys of a summary, in file order (objects such as per-OS maps are skipped).
fn numeric_keys(s: &serde_json::Map<String, Value>) -> Vec<String> {
    s.iter()
        .filter(|(k, v)| (v.is_number() || v.is_null()) && !matches!(k.as_str(), "seed" | "wall_s"))
        .map(|(k, _)| k.clone())
        .collect()
}

fn total(run: &Run, column: &str) -> Option<f64> {
    run.daily.get(column).map(|d| d.values().sum())
}

/// Compares the run directories `a` and `b`.
pub fn compare(a: &Path, b: &Path) -> Result<Comparison, CompareError> {
    let (ra, rb) = (read_run(a)?, read_run(b)?);
    let mut keys = numeric_keys(&ra.summary);
    for k in numeric_keys(&rb.summary) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let num = |r: &Run, k: &str| r.summary.get(k).and_then(Value::as_f64);
    let row = |key: String, a: Option<f64>, b: Option<f64>| KeyRow { key, a, b, delta: a.zip(b).map(|(x, y)| y - x) };
    let mut summary: Vec<KeyRow> = keys.into_iter().map(|k| row(k.clone(), num(&ra, &k), num(&rb, &k))).collect();
    // Totals over the run that the summary does not carry.
    for (key, column) in [
        ("helpdesk_ipsec_calls_total", "calls_ipsec"),
        ("helpdesk_calls_total", "calls_total"),
        ("users_affected_user_days", "users_affected"),
        ("users_ipsec_blocked_user_days", "users_ipsec_blocked"),
    ] {
        let (x, y) = (total(&ra, column), total(&rb, column));
        if x.is_some() || y.is_some() {
            summary.push(row(key.to_string(), x, y));
        }
    }
    let last_day = [&ra, &rb].iter().flat_map(|r| r.daily.values().filter_map(|d| d.keys().next_back().copied())).max();
    let mut weeks = Vec::new();
    if let Some(last) = last_day {
        for w in 0..=last / 7 {
            let days = w * 7..(w * 7 + 7).min(last + 1);
            let sum = |r: &Run, column: &str| -> Option<f64> {
                let d = r.daily.get(column)?;
                let mut it = days.clone().filter_map(|day| d.get(&day)).peekable();
                it.peek()?;
                Some(it.sum())
            };
            weeks.push(WeekRow {
                week: w,
                first_day: w * 7,
                date: ra.dates.get(&(w * 7)).or_else(|| rb.dates.get(&(w * 7))).cloned(),
                days: days.len() as u32,
                a_calls_ipsec: sum(&ra, "calls_ipsec"),
                b_calls_ipsec: sum(&rb, "calls_ipsec"),
                a_calls_total: sum(&ra, "calls_total"),
                b_calls_total: sum(&rb, "calls_total"),
                a_users_affected: sum(&ra, "users_affected"),
                b_users_affected: sum(&rb, "users_affected"),
                a_users_ipsec_blocked: sum(&ra, "users_ipsec_blocked"),
                b_users_ipsec_blocked: sum(&rb, "users_ipsec_blocked"),
                a_blocked_connections: sum(&ra, "blocked_connections"),
                b_blocked_connections: sum(&rb, "blocked_connections"),
            });
        }
    }
    Ok(Comparison { a: ra.info, b: rb.info, summary, weeks })
}

fn cell(x: Option<f64>) -> String {
    match x {
        None => "null".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// The comparison as a text table.
pub fn render_text(c: &Comparison) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let describe = |r: &RunInfo| {
        format!(
            "{} ({}, seed {}, {} days)",
            r.dir,
            r.scenario,
            r.seed.map_or("?".into(), |s| s.to_string()),
            r.days.map_or("?".into(), |d| d.to_string())
        )
    };
    let _ = writeln!(t, "A = {}", describe(&c.a));
    let _ = writeln!(t, "B = {}", describe(&c.b));
    let _ = writeln!(t);
    let width = c.summary.iter().map(|r| r.key.len()).max().unwrap_or(3).max(3);
    let _ = writeln!(t, "{:<width$}  {:>18}  {:>18}  {:>18}", "key", "A", "B", "B - A");
    for r in &c.summary {
        let _ = writeln!(t, "{:<width$}  {:>18}  {:>18}  {:>18}", r.key, cell(r.a), cell(r.b), cell(r.delta));
    }
    if !c.weeks.is_empty() {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:>4}  {:<10}  {:>9} {:>9}  {:>9} {:>9}  {:>11} {:>11}  {:>11} {:>11}  {:>11} {:>11}",
            "week",
            "from",
            "IPsec A",
            "IPsec B",
            "calls A",
            "calls B",
            "affected A",
            "affected B",
            "cut off A",
            "cut off B",
            "blocked A",
            "blocked B"
        );
        for w in &c.weeks {
            let _ = writeln!(
                t,
                "{:>4}  {:<10}  {:>9} {:>9}  {:>9} {:>9}  {:>11} {:>11}  {:>11} {:>11}  {:>11} {:>11}",
                w.week,
                w.date.clone().unwrap_or_else(|| format!("day {}", w.first_day)),
                cell(w.a_calls_ipsec),
                cell(w.b_calls_ipsec),
                cell(w.a_calls_total),
                cell(w.b_calls_total),
                cell(w.a_users_affected),
                cell(w.b_users_affected),
                cell(w.a_users_ipsec_blocked),
                cell(w.b_users_ipsec_blocked),
                cell(w.a_blocked_connections),
                cell(w.b_blocked_connections),
            );
        }
    }
    t
}
