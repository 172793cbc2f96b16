//! Hostile inputs (issue 9): a fuzzer that mutates the shipped scenarios and sweep files and
//! feeds them to what users run, and the regression corpus of what it found.
//!
//! Property: every input is either accepted or refused with `file:line:col: key.path:
//! message` diagnostics ([`oracle`]) — never a panic, never a hang, never a memory blow-up.
//! Scenario cases go through `build::load` (what `domiso validate` does); a case that
//! validates also has its campus generated (`domiso campus`) and, when its campus is small,
//! is linted and run for one day (`domiso run`). Sweep cases go through `Plan::load` (what
//! `domiso sweep --dry-run` does: every point's scenario is built). Panics are caught per
//! case, memory is capped per case by the test binary's allocator ([`budget`]), and a
//! watchdog aborts on a hang, naming the input file.
//!
//! Budget: `DOMISO_FUZZ_CASES` (cases per target; default small, for CI) or
//! `DOMISO_FUZZ_SECS` (run each target that long, report every failure found, then fail).
//! README "Testing" has the long-campaign command. Failures are shrunk by proptest; in a
//! timed campaign each shrunk input is kept under `target/hostile-findings/`.

mod budget;
mod corpus;
mod mutate;
mod oracle;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use domiso::run::{self, Granularity, RunRequest};
use domiso::runner::{Plan, SweepError};
use domiso::scenario::build::{self, ScenarioError};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use toml::Value;

use crate::common::{repo, scratch};
use mutate::Case;

#[global_allocator]
static ALLOC: budget::Counting = budget::Counting;

/// A case that holds more than this at once is a memory blow-up (the white-paper campus
/// with a run of one day needs a small fraction of it).
const SOFT_CAP: usize = 1 << 30;
/// Beyond this an allocation is refused outright, which aborts the test process, rather
/// than letting a hostile case take the machine's memory.
const HARD_CAP: usize = 3 << 30;
/// A case that runs longer than this is a hang.
const ALLOWANCE: Duration = Duration::from_secs(120);
/// Campus sizes up to which a valid case also generates its campus / runs a day, and the
/// most sessions per host and day (summed over the applications; the shipped scenarios
/// have about 1,500) it runs: only to keep cases cheap, since a day's work grows with
/// both (65,536 SMB sessions per host and day, which is valid, take minutes).
const GENERATE_UP_TO: u32 = 300_000;
const RUN_UP_TO: u32 = 5_000;
const RUN_SESSIONS_UP_TO: f64 = 10_000.0;

/// The shipped files, copied into one directory where cases are written next to them (so
/// `extends = "whitepaper-2008.toml"` and `base = "../reduced-campus.toml"` resolve).
struct Workspace {
    dir: PathBuf,
    scenarios: Vec<Seed>,
    sweeps: Vec<Seed>,
}

struct Seed {
    name: String,
    tree: Value,
    /// The merged tree of the files it extends (`None` without `extends`).
    bases: Option<Value>,
}

fn workspace() -> &'static Workspace {
    static WS: OnceLock<Workspace> = OnceLock::new();
    WS.get_or_init(|| {
        let dir = scratch("hostile-seeds");
        std::fs::create_dir_all(dir.join("sweeps")).unwrap();
        let mut scenarios = Vec::new();
        let mut sweeps = Vec::new();
        for (sub, out) in [("", &mut scenarios), ("sweeps", &mut sweeps)] {
            let from = repo().join("scenarios").join(sub);
            let mut names: Vec<String> = std::fs::read_dir(&from)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect();
            names.sort();
            for name in names {
                let text = std::fs::read_to_string(from.join(&name)).unwrap();
                std::fs::write(dir.join(sub).join(&name), &text).unwrap();
                out.push((name, text));
            }
        }
        let read =
            |name: &str| -> Value { Value::Table(std::fs::read_to_string(dir.join(name)).unwrap().parse().unwrap()) };
        let scenarios = scenarios
            .into_iter()
            .map(|(name, text)| {
                let tree = Value::Table(text.parse().unwrap());
                let mut bases: Option<Value> = None;
                let mut next = tree.get("extends").and_then(Value::as_str).map(str::to_string);
                while let Some(base) = next {
                    let t = read(&base);
                    next = t.get("extends").and_then(Value::as_str).map(str::to_string);
                    bases = Some(match bases {
                        None => t,
                        Some(over) => mutate::merge(&t, &over),
                    });
                }
                Seed { name, tree, bases }
            })
            .collect();
        let sweeps = sweeps
            .into_iter()
            .map(|(name, text)| Seed { name, tree: Value::Table(text.parse().unwrap()), bases: None })
            .collect();
        Workspace { dir, scenarios, sweeps }
    })
}

fn watchdog() -> &'static budget::Watchdog {
    static DOG: OnceLock<&'static budget::Watchdog> = OnceLock::new();
    DOG.get_or_init(budget::Watchdog::start)
}

/// The campus of a case that validates is shrunk to the one the sweep tests use (3,000
/// clients), when the case asks for it.
fn shrink(root: &mut Value, keep_clusters: bool) {
    let Value::Table(t) = root else { return };
    fn section<'t>(t: &'t mut toml::Table, name: &str) -> Option<&'t mut toml::Table> {
        t.entry(name.to_string()).or_insert_with(|| Value::Table(toml::Table::new())).as_table_mut()
    }
    if let Some(c) = section(t, "campus") {
        for (k, v) in [("clients", 3000), ("users", 1600), ("sites", 12), ("regions", 2)] {
            c.insert(k.into(), Value::Integer(v));
        }
    }
    if !keep_clusters {
        if let Some(n) = section(t, "nlb") {
            n.insert("clusters".into(), Value::Integer(4));
        }
    }
}

/// Duplicating stops growing a case beyond this many nodes (the harness's own memory).
const MAX_NODES: usize = 60_000;

/// The mutated tree and what each op did.
fn apply_ops(mut root: Value, case: &Case, bases: Option<&Value>) -> (Value, Vec<String>) {
    let mut did = Vec::new();
    for op in &case.ops {
        if matches!(op.kind, mutate::OpKind::Duplicate(n) if n > 1) && mutate::nodes(&root).len() > MAX_NODES {
            continue;
        }
        did.push(mutate::apply(&mut root, op, bases));
    }
    (root, did)
}

/// A case as a file: its bytes (`None` when the mutated tree cannot be written as TOML)
/// and what was done to the shipped file.
struct Rendered {
    bytes: Option<Vec<u8>>,
    what: String,
}

fn serialise((root, mut did): (Value, Vec<String>), case: &Case, seed: &str) -> Rendered {
    let mut bytes = toml::to_string(&root).ok().map(String::into_bytes);
    for r in &case.raw {
        if let Some(b) = bytes.as_mut() {
            mutate::apply_raw(b, r);
        }
        did.push(format!("{r:?}"));
    }
    let layout = match (case.flatten, case.shrink) {
        (true, true) => " (flattened, shrunk)",
        (true, false) => " (flattened)",
        (false, true) => " (shrunk)",
        (false, false) => "",
    };
    Rendered { bytes, what: format!("{seed}{layout}: {}", did.join("; ")) }
}

/// A scenario case.
fn render_scenario(case: &Case) -> Rendered {
    let seed = case.seed.get(&workspace().scenarios);
    let (mut root, bases) = match (&seed.bases, case.flatten) {
        (Some(b), true) => {
            let mut flat = mutate::merge(b, &seed.tree);
            if let Some(t) = flat.as_table_mut() {
                t.remove("extends");
            }
            (flat, None)
        }
        (b, _) => (seed.tree.clone(), b.as_ref()),
    };
    if case.shrink {
        let merged = bases.map_or_else(|| root.clone(), |b| mutate::merge(b, &root));
        let failures = merged.get("nlb").and_then(|n| n.get("failure")).is_some();
        shrink(&mut root, failures);
    }
    serialise(apply_ops(root, case, bases), case, &seed.name)
}

fn render_sweep(case: &Case) -> Rendered {
    let seed = case.seed.get(&workspace().sweeps);
    serialise(apply_ops(seed.tree.clone(), case, None), case, &seed.name)
}

/// What the cases of a target did.
#[derive(Default)]
struct Stats {
    /// The name of this target's case file (and run directory) in the workspace: targets
    /// run in parallel and must not write each other's.
    slot: &'static str,
    /// Where the input of the slowest case so far is copied (none: not kept).
    slowest_copy: Option<PathBuf>,
    executed: Cell<u64>,
    skipped: Cell<u64>,
    refused: Cell<u64>,
    accepted: Cell<u64>,
    campuses: Cell<u64>,
    runs: Cell<u64>,
    run_errors: Cell<u64>,
    peak: Cell<usize>,
    slowest: Cell<Duration>,
    /// `executed` when a case first failed in the current batch (what follows is
    /// shrinking).
    first_failure: Cell<Option<u64>>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Runs `work` on the case file `input` under the memory cap, the watchdog and a panic
/// guard; `Err` describes a broken property.
fn guarded<T>(input: &Path, stats: &Stats, work: impl FnOnce() -> Result<T, String>) -> Result<T, TestCaseError> {
    let dog = watchdog();
    budget::quiet_panics_in_cases();
    let started = Instant::now();
    dog.begin(input.to_path_buf(), ALLOWANCE);
    budget::arm(HARD_CAP);
    let outcome = catch_unwind(AssertUnwindSafe(work));
    let peak = budget::disarm();
    dog.end();
    let took = started.elapsed();
    stats.peak.set(stats.peak.get().max(peak));
    if took > stats.slowest.get() {
        stats.slowest.set(took);
        if let Some(copy) = &stats.slowest_copy {
            let _ = std::fs::create_dir_all(copy.parent().unwrap());
            let _ = std::fs::copy(input, copy);
        }
    }
    bump(&stats.executed);
    let outcome = match outcome {
        Err(p) => Err(format!("panicked: {}", panic_text(p.as_ref()))),
        Ok(_) if peak > SOFT_CAP => Err(format!("memory blow-up: held {} MiB at once", peak >> 20)),
        Ok(result) => result,
    };
    if outcome.is_err() && stats.first_failure.get().is_none() {
        stats.first_failure.set(Some(stats.executed.get()));
    }
    outcome.map_err(TestCaseError::fail)
}

fn check_scenario(case: &Case, stats: &Stats) -> Result<(), TestCaseError> {
    let Some(bytes) = render_scenario(case).bytes else {
        bump(&stats.skipped);
        return Ok(());
    };
    let ws = workspace();
    let path = ws.dir.join(format!("{}.toml", stats.slot));
    std::fs::write(&path, &bytes).unwrap();
    guarded(&path, stats, || {
        let sc = match build::load(&path) {
            Ok(sc) => sc,
            Err(ScenarioError::Invalid(diags)) => {
                if diags.is_empty() {
                    return Err("refused with no diagnostic".into());
                }
                for d in &diags {
                    oracle::diagnostic(d)?;
                }
                bump(&stats.refused);
                return Ok(());
            }
            Err(e @ ScenarioError::Io { .. }) => return Err(format!("the case file was written but: {e}")),
        };
        bump(&stats.accepted);
        let clients = sc.campus.clients;
        if case.depth >= 1 && clients <= GENERATE_UP_TO {
            match run::generate_campus(&sc, sc.run.seed) {
                Ok(_) => bump(&stats.campuses),
                Err(e) => oracle::rendered(&e.to_string(), &path)?,
            }
        }
        let sessions: f64 = sc.traffic.apps.iter().map(|a| a.sessions_per_day).sum();
        if case.depth >= 2 && clients <= RUN_UP_TO && sessions <= RUN_SESSIONS_UP_TO {
            run::lint_scenario(&sc, sc.run.seed)
                .map_err(|e| e.to_string())
                .or_else(|e| oracle::rendered(&e, &path).map(|_| Vec::new()))?;
            let out = ws.dir.join(format!("run-{}", stats.slot));
            let _ = std::fs::remove_dir_all(&out);
            let granularity =
                if case.depth == 3 && sc.packet.is_some() { Granularity::Packet } else { Granularity::Sa };
            let req = RunRequest {
                scenario: &sc,
                seed: sc.run.seed,
                days: 1,
                out: out.clone(),
                granularity,
                pcap: None,
                draw_ahead: false,
            };
            match run::execute(&req, &mut |_| {}) {
                Ok(_) => bump(&stats.runs),
                Err(e) => {
                    bump(&stats.run_errors);
                    oracle::rendered(&e.to_string(), &path)?;
                }
            }
            let _ = std::fs::remove_dir_all(&out);
        }
        Ok(())
    })
}

fn check_sweep(case: &Case, stats: &Stats) -> Result<(), TestCaseError> {
    let Some(bytes) = render_sweep(case).bytes else {
        bump(&stats.skipped);
        return Ok(());
    };
    let path = workspace().dir.join("sweeps").join(format!("{}.toml", stats.slot));
    std::fs::write(&path, &bytes).unwrap();
    guarded(&path, stats, || match Plan::load(&path) {
        Ok(_) => {
            bump(&stats.accepted);
            Ok(())
        }
        Err(SweepError::Input(msg)) => {
            bump(&stats.refused);
            oracle::rendered(&msg, &path)
        }
        Err(e) => Err(format!("not an input error with a position: {e}")),
    })
}

/// How long a target runs: `DOMISO_FUZZ_SECS` (timed campaign) or `DOMISO_FUZZ_CASES`.
fn budget_from_env(default_cases: u32) -> (u32, Option<Duration>) {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
    match num("DOMISO_FUZZ_SECS") {
        Some(s) => (u32::MAX, Some(Duration::from_secs(s))),
        None => (num("DOMISO_FUZZ_CASES").map_or(default_cases, |n| n.min(u64::from(u32::MAX)) as u32), None),
    }
}

/// Runs `check` over cases until the budget is spent. A CI run stops at the first failure
/// (shrunk); a timed campaign keeps every shrunk failure under `target/hostile-findings/`
/// and goes on, then fails listing them.
fn campaign(
    name: &'static str,
    default_cases: u32,
    check: impl Fn(&Case, &Stats) -> Result<(), TestCaseError>,
    render: impl Fn(&Case) -> Rendered,
) {
    let (cases, secs) = budget_from_env(default_cases);
    let findings_dir = repo().join("target").join("hostile-findings");
    let stats =
        Stats { slot: name, slowest_copy: Some(findings_dir.join(format!("slowest-{name}.toml"))), ..Stats::default() };
    let started = Instant::now();
    // Cases generated, not counting the re-runs of shrinking.
    let mut generated: u64 = 0;
    let mut findings: Vec<String> = Vec::new();
    loop {
        // One runner in CI (stop at the first failure); batches until time is up in a
        // timed campaign, each with a fresh random seed.
        let batch = if secs.is_some() { 200 } else { cases };
        let config = Config {
            cases: batch,
            failure_persistence: None,
            max_shrink_iters: 2_000,
            max_shrink_time: 120_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let before = stats.executed.get();
        stats.first_failure.set(None);
        let result = runner.run(&mutate::case(), |c| check(&c, &stats));
        match result {
            Ok(()) => generated += u64::from(batch),
            Err(TestError::Fail(why, case)) => {
                generated += stats.first_failure.get().unwrap_or(stats.executed.get()) - before;
                std::fs::create_dir_all(&findings_dir).unwrap();
                let n = findings.len();
                let input = findings_dir.join(format!("{name}-{n:03}.toml"));
                let rendered = render(&case);
                if let Some(bytes) = &rendered.bytes {
                    std::fs::write(&input, bytes).unwrap();
                }
                let report = format!(
                    "{name}: {why}\nmutation: {}\nminimal case: {case:?}\ninput: {}",
                    rendered.what,
                    input.display()
                );
                std::fs::write(input.with_extension("txt"), &report).unwrap();
                if secs.is_none() {
                    panic!("{report}");
                }
                eprintln!("hostile: FINDING {name}-{n:03}: {why}");
                findings.push(report);
            }
            Err(TestError::Abort(why)) => panic!("{name}: proptest aborted: {why}"),
        }
        if secs.is_none_or(|s| started.elapsed() >= s) {
            break;
        }
    }
    eprintln!(
        "hostile {name}: {generated} cases ({} executions with shrinking) in {:.0} s: {} refused with diagnostics, {} accepted ({} campuses generated, {} one-day runs, {} run input errors), {} not writable as TOML; {} findings; peak {} MiB, slowest case {:.2} s",
        stats.executed.get(),
        started.elapsed().as_secs_f64(),
        stats.refused.get(),
        stats.accepted.get(),
        stats.campuses.get(),
        stats.runs.get(),
        stats.run_errors.get(),
        stats.skipped.get(),
        findings.len(),
        stats.peak.get() >> 20,
        stats.slowest.get().as_secs_f64(),
    );
    assert!(
        findings.is_empty(),
        "{} findings (inputs in {}):\n{}",
        findings.len(),
        findings_dir.display(),
        findings.join("\n\n")
    );
}

#[test]
fn hostile_scenarios_are_accepted_or_refused_with_positions() {
    campaign("scenario", 500, check_scenario, render_scenario);
}

#[test]
fn hostile_sweep_files_are_accepted_or_refused_with_positions() {
    campaign("sweep", 150, check_sweep, render_sweep);
}

/// The `Pick` that selects element `i` of `n`.
fn pick_of(i: usize, n: usize) -> mutate::Pick {
    let p = mutate::Pick(((i as u128) << 64).div_ceil(n as u128) as u64);
    assert_eq!(p.index(n), i);
    p
}

/// The harness's own control: with no mutation every shipped file is accepted in every
/// layout (flattened, shrunk), so refusals are the mutations' doing.
#[test]
fn unmutated_seeds_are_accepted() {
    let ws = workspace();
    let none = |seed: usize, flatten: bool, shrink: bool| Case {
        seed: pick_of(seed, ws.scenarios.len()),
        flatten,
        shrink,
        ops: Vec::new(),
        raw: Vec::new(),
        depth: 0,
    };
    let stats = Stats { slot: "control", ..Stats::default() };
    for i in 0..ws.scenarios.len() {
        for (flatten, shrink) in [(false, false), (true, false), (false, true), (true, true)] {
            let case = none(i, flatten, shrink);
            check_scenario(&case, &stats).unwrap();
        }
    }
    assert_eq!(stats.refused.get(), 0, "every unmutated seed validates");
    for i in 0..ws.sweeps.len() {
        let case = Case { seed: pick_of(i, ws.sweeps.len()), ..none(0, false, false) };
        check_sweep(&case, &stats).unwrap();
    }
    assert_eq!(stats.refused.get(), 0, "every shipped sweep loads");
}

/// Every key of the schema at every edge value of its kind ([`mutate::extremes`]), one at
/// a time, on the shrunk shipped scenarios, each case run for a day at packet granularity
/// when it validates: the systematic complement of the random cases, which meet any one
/// key only rarely. `DOMISO_FUZZ_EDGES=1` runs all of them (about 10,000 cases, 25 minutes
/// on 2 cores), a timed campaign as many as fit in `DOMISO_FUZZ_SECS`, otherwise an evenly
/// spread sample of `DOMISO_FUZZ_CASES` (default 250).
#[test]
fn edge_values_of_every_key_are_accepted_or_refused_with_positions() {
    let ws = workspace();
    let full = std::env::var_os("DOMISO_FUZZ_EDGES").is_some() || std::env::var_os("DOMISO_FUZZ_SECS").is_some();
    let mut cases = Vec::new();
    for name in ["whitepaper-2008.toml", "secure-request-day.toml", "nlb-failover.toml", "broken-policy.toml"] {
        let i = ws.scenarios.iter().position(|s| s.name == name).expect("a shipped scenario");
        let base = Case {
            seed: pick_of(i, ws.scenarios.len()),
            flatten: true,
            shrink: true,
            ops: Vec::new(),
            raw: Vec::new(),
            depth: 3,
        };
        // The schema keys of the shrunk, flattened file, in the order `mutate::apply` sees them.
        let root = {
            let seed = &ws.scenarios[i];
            let mut flat = seed.bases.as_ref().map_or_else(|| seed.tree.clone(), |b| mutate::merge(b, &seed.tree));
            flat.as_table_mut().unwrap().remove("extends");
            let failures = flat.get("nlb").and_then(|n| n.get("failure")).is_some();
            shrink(&mut flat, failures);
            flat
        };
        let all = mutate::nodes(&root);
        let mut groups: std::collections::BTreeMap<Vec<Option<String>>, &mutate::Path> = Default::default();
        for p in &all {
            let schema = p
                .iter()
                .map(|s| match s {
                    mutate::Seg::Key(k) => Some(k.clone()),
                    mutate::Seg::Idx(_) => None,
                })
                .collect();
            groups.entry(schema).or_insert(p);
        }
        let n = groups.len();
        for (g, first) in groups.values().enumerate() {
            let Some(value) = root_get(&root, first) else { continue };
            let values = mutate::extremes(value).len();
            for v in 0..values {
                let op = mutate::Op {
                    at: pick_of(g, n),
                    occurrence: mutate::Pick(0),
                    kind: mutate::OpKind::Extreme(pick_of(v, values)),
                };
                cases.push(Case { ops: vec![op], ..base.clone() });
            }
        }
    }
    let (budget, secs) = budget_from_env(250);
    let take = if full { cases.len() } else { cases.len().min(budget as usize) };
    // Visited in a fixed scattered order (a stride coprime to the count), so that a sample
    // or a timed campaign cut short covers every scenario and key evenly.
    let n = cases.len();
    let stride = (n * 3 / 5..n).chain(1..n).find(|k| gcd(*k, n) == 1).unwrap_or(1);
    let findings_dir = repo().join("target").join("hostile-findings");
    let stats =
        Stats { slot: "edges", slowest_copy: Some(findings_dir.join("slowest-edges.toml")), ..Stats::default() };
    let started = Instant::now();
    let mut failures = Vec::new();
    for k in 0..take {
        if secs.is_some_and(|s| started.elapsed() >= s) {
            break;
        }
        let case = &cases[k * stride % n];
        if let Err(why) = check_scenario(case, &stats) {
            let rendered = render_scenario(case);
            let n = failures.len();
            let input = findings_dir.join(format!("edges-{n:03}.toml"));
            std::fs::create_dir_all(&findings_dir).unwrap();
            if let Some(bytes) = &rendered.bytes {
                std::fs::write(&input, bytes).unwrap();
            }
            let report = format!("edges: {why}\nmutation: {}\ninput: {}", rendered.what, input.display());
            eprintln!("hostile: FINDING edges-{n:03}: {why}: {}", rendered.what);
            failures.push(report);
        }
    }
    eprintln!(
        "hostile edges: {} of {} cases in {:.0} s: {} refused with diagnostics, {} accepted ({} one-day runs, {} run input errors); {} findings; peak {} MiB, slowest case {:.2} s",
        stats.executed.get(),
        cases.len(),
        started.elapsed().as_secs_f64(),
        stats.refused.get(),
        stats.accepted.get(),
        stats.runs.get(),
        stats.run_errors.get(),
        failures.len(),
        stats.peak.get() >> 20,
        stats.slowest.get().as_secs_f64(),
    );
    assert!(failures.is_empty(), "{} findings:\n{}", failures.len(), failures.join("\n\n"));
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn root_get<'a>(root: &'a Value, path: &[mutate::Seg]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, s| match (s, v) {
        (mutate::Seg::Key(k), Value::Table(t)) => t.get(k),
        (mutate::Seg::Idx(i), Value::Array(a)) => a.get(*i),
        _ => None,
    })
}
