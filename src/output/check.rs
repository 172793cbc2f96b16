//! Regression check of a run directory against a baseline: summary metrics and timeline
//! series, each within its tolerance (exact, absolute, relative, or ignored), a readable
//! report and JUnit XML for CI systems.
//!
//! Contract:
//! - Metrics: every key of `summary.json` (objects flattened to `key.member`) and every
//!   column of `timeline.csv` as `timeline.<column>`, compared day by day. The machine
//!   measurement `wall_s` is never compared.
//! - A metric present on one side only, a timeline of another length, or a value outside
//!   its tolerance is a regression, named by its metric.
//! - Tolerances come from a TOML file: `default = "exact"` and a `[tolerance]` table whose
//!   keys are metric names or prefixes ending in `*` (the longest match wins), each
//!   `"exact"`, `"ignore"`, or `{ absolute = x }`, `{ relative = r }` (either passing is
//!   enough when both are given).
//! - Before metrics are compared, `domiso check` verifies each directory's integrity
//!   against its manifest (`output::integrity`); JUnit XML carries those verdicts too.
//! - Pure apart from reading the two directories and the tolerance file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::integrity::Integrity;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
}

fn input(path: &Path, message: impl ToString) -> CheckError {
    CheckError::Input { path: path.display().to_string(), message: message.to_string() }
}

/// How close a metric must stay to its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Tolerance {
    Exact,
    Ignore,
    Within { absolute: Option<f64>, relative: Option<f64> },
}

impl Tolerance {
    fn accepts(self, base: f64, run: f64) -> bool {
        match self {
            Tolerance::Ignore => true,
            Tolerance::Exact => base == run || (base.is_nan() && run.is_nan()),
            Tolerance::Within { absolute, relative } => {
                let d = (run - base).abs();
                absolute.is_some_and(|a| d <= a) || relative.is_some_and(|r| d <= r * base.abs())
            }
        }
    }

    fn describe(self) -> String {
        match self {
            Tolerance::Exact => "exact".into(),
            Tolerance::Ignore => "ignored".into(),
            Tolerance::Within { absolute, relative } => {
                let mut parts = Vec::new();
                if let Some(a) = absolute {
                    parts.push(format!("±{a}"));
                }
                if let Some(r) = relative {
                    parts.push(format!("±{}%", r * 100.0));
                }
                parts.join(" or ")
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToleranceFile {
    Word(String),
    Within {
        #[serde(default)]
        absolute: Option<f64>,
        #[serde(default)]
        relative: Option<f64>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TolerancesFile {
    #[serde(default)]
    default: Option<ToleranceFile>,
    #[serde(default)]
    tolerance: BTreeMap<String, ToleranceFile>,
}

/// Tolerances by metric name or prefix.
#[derive(Debug, Clone)]
pub struct Tolerances {
    default: Tolerance,
    rules: Vec<(String, Tolerance)>,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances { default: Tolerance::Exact, rules: Vec::new() }
    }
}

fn tolerance_of(t: ToleranceFile, key: &str) -> Result<Tolerance, String> {
    match t {
        ToleranceFile::Word(w) => match w.as_str() {
            "exact" => Ok(Tolerance::Exact),
            "ignore" => Ok(Tolerance::Ignore),
            _ => Err(format!("{key}: expected \"exact\", \"ignore\" or {{ absolute = x, relative = r }}, found {w:?}")),
        },
        ToleranceFile::Within { absolute, relative } => {
            if absolute.is_none() && relative.is_none() {
                return Err(format!("{key}: give `absolute` or `relative` (or both)"));
            }
            let valid = |x: f64| x.is_finite() && x >= 0.0;
            if absolute.is_some_and(|a| !valid(a)) || relative.is_some_and(|r| !valid(r)) {
                return Err(format!("{key}: tolerances must be >= 0"));
            }
            Ok(Tolerance::Within { absolute, relative })
        }
    }
}

impl Tolerances {
    pub fn load(path: &Path) -> Result<Tolerances, CheckError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| input(path, e))?;
        let raw: TolerancesFile = crate::scenario::diag::from_toml(&shown, &text).map_err(|d| CheckError::Input {
            path: shown.clone(),
            message: d.message.clone() + &format!(" (line {})", d.line),
        })?;
        let default = match raw.default {
            Some(t) => tolerance_of(t, "default").map_err(|m| input(path, m))?,
            None => Tolerance::Exact,
        };
        let mut rules = Vec::new();
        for (k, t) in raw.tolerance {
            rules.push((k.clone(), tolerance_of(t, &format!("tolerance.{k}")).map_err(|m| input(path, m))?));
        }
        Ok(Tolerances { default, rules })
    }

    /// The tolerance of a metric: an exact rule, else the longest matching `prefix*` rule,
    /// else the default.
    pub fn of(&self, metric: &str) -> Tolerance {
        if let Some((_, t)) = self.rules.iter().find(|(k, _)| k == metric) {
            return *t;
        }
        self.rules
            .iter()
            .filter_map(|(k, t)| k.strip_suffix('*').filter(|p| metric.starts_with(p)).map(|p| (p.len(), *t)))
            .max_by_key(|(n, _)| *n)
            .map_or(self.default, |(_, t)| t)
    }
}

/// One compared metric.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub metric: String,
    pub passed: bool,
    /// Baseline and run values as text (the first differing day for a series).
    pub baseline: String,
    pub run: String,
    pub tolerance: String,
    /// What differs, for a failure.
    pub detail: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.findings.iter().filter(|f| !f.passed).count()
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares two cells (numbers within tolerance; anything else exactly).
fn same(t: Tolerance, base: &str, run: &str) -> bool {
    if t == Tolerance::Ignore {
        return true;
    }
    match (base.parse::<f64>(), run.parse::<f64>()) {
        (Ok(b), Ok(r)) => t.accepts(b, r),
        _ => base == run,
    }
}

fn read_summary(dir: &Path) -> Result<BTreeMap<String, serde_json::Value>, CheckError> {
    let path = dir.join("summary.json");
    let bytes = std::fs::read(&path).map_err(|e| input(&path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| input(&path, e))?;
    Ok(super::record::flatten_summary(&v))
}

/// A CSV as (header, rows).
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), CheckError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| input(path, e))?;
    let header = r.headers().map_err(|e| input(path, e))?.iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.map(|x| x.iter().map(String::from).collect()).map_err(|e| input(path, e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((header, rows))
}

/// Checks `run` against `baseline`.
pub fn check(run: &Path, baseline: &Path, tol: &Tolerances) -> Result<Report, CheckError> {
    let mut findings = Vec::new();
    let (b, r) = (read_summary(baseline)?, read_summary(run)?);
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(r.keys()).collect();
    for k in keys {
        let t = tol.of(k);
        if t == Tolerance::Ignore {
            continue;
        }
        let (bv, rv) = (b.get(k), r.get(k));
        let (passed, detail) = match (bv, rv) {
            (Some(x), Some(y)) => {
                let ok = match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => t.accepts(p, q),
                    _ => x == y,
                };
                (ok, if ok { String::new() } else { "outside tolerance".into() })
            }
            (None, Some(_)) => (false, "not in the baseline".into()),
            (Some(_), None) => (false, "missing from the run".into()),
            (None, None) => unreachable!("a key of one side"),
        };
        findings.push(Finding {
            metric: k.clone(),
            passed,
            baseline: bv.map_or("-".into(), text),
            run: rv.map_or("-".into(), text),
            tolerance: t.describe(),
            detail,
        });
    }
    let (bh, brows) = read_csv(&baseline.join("timeline.csv"))?;
    let (rh, rrows) = read_csv(&run.join("timeline.csv"))?;
    if brows.len() != rrows.len() {
        findings.push(Finding {
            metric: "timeline.days".into(),
            passed: false,
            baseline: brows.len().to_string(),
            run: rrows.len().to_string(),
            tolerance: "exact".into(),
            detail: "a different number of days".into(),
        });
    }
    let columns: std::collections::BTreeSet<&String> = bh.iter().chain(rh.iter()).collect();
    for col in columns {
        let metric = format!("timeline.{col}");
        let t = tol.of(&metric);
        if t == Tolerance::Ignore {
            continue;
        }
        let (bi, ri) = (bh.iter().position(|h| h == col), rh.iter().position(|h| h == col));
        let (Some(bi), Some(ri)) = (bi, ri) else {
            findings.push(Finding {
                metric,
                passed: false,
                baseline: if bi.is_some() { "column" } else { "-" }.into(),
                run: if ri.is_some() { "column" } else { "-" }.into(),
                tolerance: t.describe(),
                detail: if bi.is_some() { "column missing from the run" } else { "column not in the baseline" }.into(),
            });
            continue;
        };
        let first_bad = brows.iter().zip(&rrows).enumerate().find(|(_, (x, y))| !same(t, &x[bi], &y[ri]));
        let bad_days = brows.iter().zip(&rrows).filter(|(x, y)| !same(t, &x[bi], &y[ri])).count();
        findings.push(match first_bad {
            None => Finding {
                metric,
                passed: true,
                baseline: String::new(),
                run: String::new(),
                tolerance: t.describe(),
                detail: String::new(),
            },
            Some((day, (x, y))) => Finding {
                metric,
                passed: false,
                baseline: x[bi].clone(),
                run: y[ri].clone(),
                tolerance: t.describe(),
                detail: format!("day {day} first; {bad_days} day(s) outside tolerance"),
            },
        });
    }
    Ok(Report { findings })
}

/// The report for a terminal: the failures (all metrics with `verbose`) and a count.
pub fn render_text(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let shown: Vec<&Finding> = report.findings.iter().filter(|f| verbose || !f.passed).collect();
    if !shown.is_empty() {
        let w = shown.iter().map(|f| f.metric.len()).max().unwrap_or(6).max(6);
        out.push_str(&format!(
            "{:<6}  {:<w$}  {:>16}  {:>16}  {:<14}  detail\n",
            "", "metric", "baseline", "run", "tolerance"
        ));
        for f in shown {
            out.push_str(&format!(
                "{:<6}  {:<w$}  {:>16}  {:>16}  {:<14}  {}\n",
                if f.passed { "ok" } else { "FAIL" },
                f.metric,
                f.baseline,
                f.run,
                f.tolerance,
                f.detail
            ));
        }
    }
    let n = report.findings.len();
    let bad = report.failures();
    if bad == 0 {
        out.push_str(&format!("check passed: {n} metrics within tolerance\n"));
    } else {
        out.push_str(&format!("check FAILED: {bad} of {n} metrics regressed\n"));
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// JUnit XML: one test case per metric, a `<failure>` for each regression.
pub fn render_junit(report: &Report, suite: &str) -> String {
    render_junit_with(&[], Some(report), suite)
}

/// One JUnit test case.
struct Case {
    class: String,
    name: String,
    /// (message, type) of a failure.
    failure: Option<(String, &'static str)>,
}

/// JUnit XML of a whole `domiso check`: a test case per file of each directory's integrity
/// check (class `integrity.<role>`, role `run` or `baseline`), then one per metric when the
/// metrics were compared; a `<failure>` for each problem and regression.
pub fn render_junit_with(integrity: &[(&str, &Integrity)], report: Option<&Report>, suite: &str) -> String {
    let mut cases = Vec::new();
    for (role, i) in integrity {
        for f in &i.files {
            cases.push(Case {
                class: format!("integrity.{role}"),
                name: f.file.clone(),
                failure: f
                    .problem
                    .as_ref()
                    .map(|p| (format!("{}: {}", i.dir.join(&f.file).display(), p.describe()), "integrity")),
            });
        }
    }
    for f in report.map_or(&[][..], |r| &r.findings) {
        let class = if f.metric.starts_with("timeline.") { "timeline" } else { "summary" };
        cases.push(Case {
            class: class.into(),
            name: f.metric.clone(),
            failure: (!f.passed).then(|| {
                (
                    format!("{}: baseline {}, run {} ({}) {}", f.metric, f.baseline, f.run, f.tolerance, f.detail),
                    "regression",
                )
            }),
        });
    }
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<testsuites name=\"domiso check\" tests=\"{}\" failures=\"{failures}\">\n", cases.len()));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        xml_escape(suite),
        cases.len(),
    ));
    for c in &cases {
        out.push_str(&format!("    <testcase classname=\"{}\" name=\"{}\"", xml_escape(&c.class), xml_escape(&c.name)));
        match &c.failure {
            None => out.push_str("/>\n"),
            Some((message, kind)) => out.push_str(&format!(
                ">\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n    </testcase>\n",
                xml_escape(message),
                xml_escape(message)
            )),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_pick_the_exact_rule_then_the_longest_prefix() {
        let t = Tolerances {
            default: Tolerance::Exact,
            rules: vec![
                ("timeline.*".into(), Tolerance::Within { absolute: None, relative: Some(0.01) }),
                ("timeline.calls_*".into(), Tolerance::Within { absolute: Some(5.0), relative: None }),
                ("timeline.calls_total".into(), Tolerance::Ignore),
            ],
        };
        assert_eq!(t.of("timeline.calls_total"), Tolerance::Ignore);
        assert_eq!(t.of("timeline.calls_ipsec"), Tolerance::Within { absolute: Some(5.0), relative: None });
        assert_eq!(t.of("timeline.sessions"), Tolerance::Within { absolute: None, relative: Some(0.01) });
        assert_eq!(t.of("sessions_total"), Tolerance::Exact);
        let within = Tolerance::Within { absolute: Some(1.0), relative: Some(0.1) };
        assert!(within.accepts(100.0, 109.0) && within.accepts(0.0, 1.0) && !within.accepts(100.0, 111.0));
        assert!(Tolerance::Exact.accepts(2.5, 2.5) && !Tolerance::Exact.accepts(2.5, 2.5000001));
    }

    #[test]
    fn junit_escapes_and_counts() {
        let r = Report {
            findings: vec![
                Finding {
                    metric: "a".into(),
                    passed: true,
                    baseline: "1".into(),
                    run: "1".into(),
                    tolerance: "exact".into(),
                    detail: String::new(),
                },
                Finding {
                    metric: "b<&>".into(),
                    passed: false,
                    baseline: "1".into(),
                    run: "2".into(),
                    tolerance: "exact".into(),
                    detail: "outside tolerance".into(),
                },
            ],
        };
        let x = render_junit(&r, "s");
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("name=\"b&lt;&amp;&gt;\""));
        assert_eq!(x.matches("<failure").count(), 1);
    }
}
