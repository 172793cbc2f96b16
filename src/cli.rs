//! The command line: clap definitions and the commands they run. Names of commands and
//! flags are the stable contract of DESIGN.md ("add more, don't rename").
//!
//! Exit codes: 0 ok, 1 a check found a problem, 2 usage or input error (bad scenario, bad
//! flag, unwritable output). Errors print as one `file:line:col: key.path: message` per
//! problem where a position is known.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench;
use crate::model::census::Census;
use crate::model::lint::Severity;
use crate::run::{self, RunRequest};
use crate::scenario::build::{self, Scenario, ScenarioError};

#[derive(Debug, Parser)]
#[command(name = "domiso", version, about = "Discrete-event simulator of IPsec domain-isolation rollouts")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (default: the built-in white-paper campus) and write a run directory.
    Run(RunArgs),
    /// Check scenario files; exit 2 with file:line:col: key: message per problem.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Statistics of the generated campus.
    Campus {
        scenario: Option<PathBuf>,
        /// Master seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// List the NLB clusters (index, service, affinity, VIP, nodes): the indices that
        /// `[[nlb.failure]]` names.
        #[arg(long)]
        clusters: bool,
    },
    /// Policy findings with severity; exit 1 if any error.
    Lint {
        scenario: Option<PathBuf>,
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Encapsulated size and overhead of one packet.
    Wire {
        /// esp-null-sha1, esp-null-sha256, esp-null-gmac128, esp-aes128gcm,
        /// esp-aes128cbc-sha1, ah-sha1.
        #[arg(long, default_value = "esp-null-sha1")]
        suite: String,
        /// transport or tunnel.
        #[arg(long, default_value = "transport")]
        mode: String,
        /// UDP encapsulation for NAT traversal (RFC 3948).
        #[arg(long)]
        nat_t: bool,
        /// IPv6 instead of IPv4.
        #[arg(long)]
        ipv6: bool,
        /// Length of the inner IP packet (IP header included).
        #[arg(long)]
        ip_len: u32,
        /// Path MTU.
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
        #[arg(long)]
        json: bool,
    },
    /// Two run directories side by side: summary keys (A, B, B - A) and calls, users
    /// affected and blocked connections per week.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Parameter sweep: every point of the axes x every seed, in parallel; writes
    /// `DIR/sweep.csv` (a row per run). `domiso sweep merge SHARD_DIR... --out DIR` joins
    /// shards.
    Sweep(SweepArgs),
    /// Integrity of a run directory (every file as its manifest.json lists it: size and
    /// sha256, nothing missing, nothing unlisted) and, with --baseline, of the baseline too,
    /// then a regression check against it: summary metrics and timeline series within
    /// tolerances. Exit 1 on a damaged directory or a regression.
    Check {
        run: PathBuf,
        /// Baseline run directory to compare with (without it, only integrity is checked).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// TOML tolerances (default: every metric exact).
        #[arg(long, requires = "baseline")]
        tolerances: Option<PathBuf>,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// List every metric, not only the regressions.
        #[arg(long)]
        verbose: bool,
    },
    /// (Re)draw the charts of a run directory, or of a sweep directory (one with
    /// `sweep.json`), into DIR/plots/ as SVG and PNG.
    Plot { dir: PathBuf },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    merge: Option<SweepCommand>,
    /// The sweep file.
    #[arg(required = true)]
    sweep: Option<PathBuf>,
    /// Output directory (default: results/sweeps/<name>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs in parallel (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard K of N (runs whose index % N == K - 1), e.g. --shard 2/3.
    #[arg(long, value_parser = crate::runner::parse_shard)]
    shard: Option<(usize, usize)>,
    /// Skip runs already finished in DIR (same scenario and seed).
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Check the sweep file (every point's scenario is built) and print the plan; run
    /// nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SweepCommand {
    /// Joins shard directories into the sweep.csv one machine would have written.
    Merge {
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario file (default: the built-in white-paper campus).
    pub scenario: Option<PathBuf>,
    /// Run directory (default: results/<scenario>/seed-<N>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Master seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated days (default: the scenario's).
    #[arg(long)]
    pub days: Option<u32>,
    /// sa: every connection through policy and SA logic; packet (or both): also every
    /// packet sized in clear and on the wire.
    #[arg(long, value_enum, default_value_t = GranularityArg::Sa)]
    pub granularity: GranularityArg,
    /// Write the packets of the scenario's capture window to this libpcap file (needs
    /// --granularity packet or both).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// No progress bar and no summary table.
    #[arg(long)]
    pub quiet: bool,
    /// Override one scenario key, as a sweep axis does (repeatable): a dotted key path and a
    /// TOML value, e.g. `--set campus.clients=65000 --set 'run.utilisation_bin="1 min"'`.
    /// Overrides count in the scenario's sha256 in the manifest.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run twice (the second run on one thread) into temporary directories and compare
    /// every output file byte for byte, machine measurements aside; write the run directory
    /// only when both runs agree, else name each differing file and exit 1.
    #[arg(long)]
    pub check_determinism: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GranularityArg {
    Sa,
    Packet,
    Both,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Event-queue throughput (hold model) against std BinaryHeap and the radix-heap crate,
    /// in the same run.
    Engine {
        /// Pending events held in the queue.
        #[arg(long, default_value_t = 1_000_000)]
        pending: usize,
        /// Hold operations (pop + push) timed per queue.
        #[arg(long, default_value_t = 5_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// A scenario run at several campus sizes (clients, users and sites times each
    /// factor), one child process each: loop time, wall time, peak RSS, RSS per host, SA
    /// table bytes per live SA, scaling exponents; then the bare queue at each size's load
    /// (its mean pending count).
    Scaling {
        /// Scenario file (default: the built-in white-paper campus). An SA day such as
        /// scenarios/secure-request-day.toml measures the model at full traffic; the default
        /// rollout takes about four minutes over the four default sizes.
        scenario: Option<PathBuf>,
        /// Size factors; must include 1.
        #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,1,2")]
        factors: Vec<f64>,
        /// Simulated days per size (default: the scenario's).
        #[arg(long)]
        days: Option<u32>,
        /// Runs of each size, in rounds over the sizes; each size's fastest by loop time is
        /// reported, its other figures with it (steadier exponents on a busy machine).
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Hold operations timed on the bare queue, per size and repeat.
        #[arg(long, default_value_t = 3_000_000)]
        engine_events: u64,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Failures, by exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Usage or input error: exit 2.
    #[error("{0}")]
    Input(String),
    /// Stopped by SIGINT or SIGTERM: exit 130, as a shell reports an interrupted command.
    #[error("{0}")]
    Interrupted(String),
}

impl From<ScenarioError> for CliError {
    fn from(e: ScenarioError) -> Self {
        CliError::Input(e.to_string())
    }
}

impl From<run::RunError> for CliError {
    fn from(e: run::RunError) -> Self {
        match e {
            run::RunError::Interrupted { .. } => CliError::Interrupted(e.to_string()),
            _ => CliError::Input(e.to_string()),
        }
    }
}

/// Parses the process arguments and runs; the process exit code.
pub fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`domiso campus | head`) would
    // panic; a command-line tool should just stop, as `cat` does.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(CliError::Input(msg)) => {
            eprintln!("{}", msg.trim_end());
            ExitCode::from(2)
        }
        Err(CliError::Interrupted(msg)) => {
            eprintln!("{}", msg.trim_end());
            ExitCode::from(130)
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<Scenario, CliError> {
    match path {
        Some(p) => Ok(build::load(p)?),
        None => Ok(build::builtin()),
    }
}

/// A scenario with `--set KEY=VALUE` overrides applied (the plain scenario without any).
fn load_with(path: Option<&PathBuf>, sets: &[String]) -> Result<Scenario, CliError> {
    if sets.is_empty() {
        return load(path);
    }
    let overrides = sets.iter().map(|s| parse_set(s)).collect::<Result<Vec<_>, _>>()?;
    let (file, text) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?;
            (p.display().to_string(), text)
        }
        None => (build::BUILTIN_WHITEPAPER_NAME.to_string(), build::BUILTIN_WHITEPAPER.to_string()),
    };
    Ok(build::parse_with(&file, &text, &overrides).map_err(ScenarioError::from)?)
}

/// `KEY=VALUE`: the value is read as TOML (`65000`, `0.5`, `true`, `"5 min"`, `[1, 2]`), or
/// taken as a string when it is not TOML (`5 min`).
fn parse_set(s: &str) -> Result<build::Override, CliError> {
    let (key, value) = s
        .split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| CliError::Input(format!("--set {s:?}: expected KEY=VALUE, e.g. campus.clients=65000")))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok(build::Override { path: key.trim().to_string(), value, origin: None })
}

fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Validate { scenarios } => {
            let mut failed = false;
            for p in &scenarios {
                match build::load(p) {
                    Ok(_) => println!("{}: ok", p.display()),
                    Err(e) => {
                        eprintln!("{}", e.to_string().trim_end());
                        failed = true;
                    }
                }
            }
            Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Campus { scenario, seed, json, clusters } => {
            let sc = load(scenario.as_ref())?;
            let campus = run::generate_campus(&sc, seed.unwrap_or(sc.run.seed))?;
            if clusters {
                let rows = crate::model::census::cluster_rows(&campus);
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows).expect("clusters serialise"));
                } else {
                    print!("{}", crate::model::census::render_clusters(&rows));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let census = Census::of(&campus);
            if json {
                println!("{}", serde_json::to_string_pretty(&census).expect("census serialises"));
            } else {
                print!("{}", census.render_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wire { suite, mode, nat_t, ipv6, ip_len, mtu, json } => {
            use crate::model::wire::{self, Encap, IpVersion, Mtu};
            let bad = |what: &str, e: String| CliError::Input(format!("--{what}: {e}"));
            let encap = Encap {
                suite: suite.parse().map_err(|e: wire::WireError| bad("suite", e.to_string()))?,
                mode: mode.parse().map_err(|e: wire::WireError| bad("mode", e.to_string()))?,
                ip: if ipv6 { IpVersion::V6 } else { IpVersion::V4 },
                nat_t,
            };
            let mtu = Mtu::new(mtu).map_err(|e| bad("mtu", e.to_string()))?;
            let report = wire::report(&encap, ip_len, mtu).map_err(|e| bad("ip-len", e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
            } else {
                print!("{}", wire::render_text(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint { scenario, seed, json } => {
            let sc = load(scenario.as_ref())?;
            let findings = run::lint_scenario(&sc, seed.unwrap_or(sc.run.seed))?;
            let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
            let (errors, warnings, infos) = (count(Severity::Error), count(Severity::Warning), count(Severity::Info));
            if json {
                let doc = serde_json::json!({
                    "scenario": sc.name,
                    "errors": errors,
                    "warnings": warnings,
                    "infos": infos,
                    "findings": findings,
                });
                println!("{}", serde_json::to_string_pretty(&doc).expect("findings serialise"));
            } else {
                for f in &findings {
                    let severity = match f.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                        Severity::Info => "info",
                    };
                    println!(
                        "{severity}: {}{}",
                        f.kind.name(),
                        f.policy.as_ref().map(|p| format!(" [{p}]")).unwrap_or_default()
                    );
                    println!("  {}", f.message);
                    if !f.filters.is_empty() {
                        println!("  filters: {}", f.filters.join(" | "));
                    }
                    println!("  fix: {}", f.fix);
                }
                println!("{}: {errors} error(s), {warnings} warning(s), {infos} info", sc.name);
            }
            Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Compare { a, b, json } => {
            let c = crate::output::compare::compare(&a, &b).map_err(|e| CliError::Input(e.to_string()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c).expect("comparison serialises"));
            } else {
                print!("{}", crate::output::compare::render_text(&c));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep(args) => cmd_sweep(args),
        Command::Plot { dir } => cmd_plot(&dir),
        Command::Check { run, baseline, tolerances, junit, verbose } => {
            cmd_check(&run, baseline.as_deref(), tolerances.as_deref(), junit.as_deref(), verbose)
        }
        Command::Bench { what: BenchCommand::Engine { pending, events, seed, json } } => {
            if pending == 0 || events == 0 {
                return Err(CliError::Input("bench engine: --pending and --events must be positive".into()));
            }
            let report = bench::hold_benchmark(pending, events, seed);
            if json {
                println!("{}", serde_json::to_string_pretty(&report).expect("report serialises"));
            } else {
                print!("{}", bench::render_text(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what: BenchCommand::Scaling { scenario, factors, days, repeat, engine_events, json } } => {
            let quiet = !std::io::stderr().is_terminal();
            let report = crate::scaling::run(scenario.as_deref(), &factors, days, repeat, engine_events, &mut |msg| {
                if !quiet {
                    eprintln!("{msg}");
                }
            })
            .map_err(|e| CliError::Input(e.to_string()))?;
            print!("{}", crate::scaling::render_text(&report));
            if let Some(path) = json {
                crate::scaling::write_json(&report, &path)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cmd_sweep(args: SweepArgs) -> Result<ExitCode, CliError> {
    use crate::runner::{self, SweepError};
    let report = |e: SweepError| {
        eprintln!("{}", e.to_string().trim_end());
        Ok(ExitCode::from(e.exit_code()))
    };
    if let Some(SweepCommand::Merge { shards, out }) = args.merge {
        return match runner::merge(&shards, &out) {
            Ok(csv) => {
                eprintln!("merged {} shard(s) into {}", shards.len(), csv.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => report(e),
        };
    }
    let file = args.sweep.expect("clap requires the sweep file");
    let plan = match runner::Plan::load(&file) {
        Ok(p) => p,
        Err(e) => return report(e),
    };
    if args.dry_run {
        println!(
            "{}: {} point(s) x {} seed(s) = {} runs; base {}",
            plan.name,
            plan.points(),
            plan.seeds.len(),
            plan.runs(),
            plan.base_path.display()
        );
        for a in &plan.axes {
            let labels: Vec<String> = (0..a.values.len()).map(|k| a.label(k)).collect();
            println!("  {}: {}", a.key, labels.join(", "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err(CliError::Input("--jobs: expected at least 1".into()));
    }
    let out = args.out.unwrap_or_else(|| PathBuf::from("results").join("sweeps").join(&plan.name));
    let opts = runner::Options { out, jobs, shard: args.shard, resume: args.resume };
    let total = plan.shard_runs(opts.shard).len() as u64;
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} runs {elapsed_precise} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_message(plan.name.clone());
        b
    });
    let tick = |_: usize| {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    crate::interrupt::install();
    let result = runner::sweep(&plan, &opts, &tick);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match result {
        Ok(o) => {
            if !args.quiet {
                eprintln!(
                    "{}: {} runs done, {} already done (resumed); {}",
                    plan.name,
                    o.ran,
                    o.skipped,
                    o.csv.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report(e),
    }
}

/// `domiso plot DIR`: charts from the directory's files (a sweep directory when it has
/// `sweep.json`, a run directory when it has `manifest.json`), each written to a temporary
/// name in DIR/plots/ and renamed, so a reader never sees half a chart.
fn cmd_plot(dir: &std::path::Path) -> Result<ExitCode, CliError> {
    use crate::output::plot;
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let charts = if dir.join("sweep.json").is_file() {
        plot::draw_sweep(&read)
    } else if dir.join("manifest.json").is_file() {
        plot::draw_run(&read)
    } else {
        return Err(CliError::Input(format!(
            "{}: not a run directory (no manifest.json) nor a sweep directory (no sweep.json)",
            dir.display()
        )));
    }
    .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    for (name, bytes) in &charts {
        write(name, bytes).map_err(|e| CliError::Input(format!("{}: {e}", dir.join(name).display())))?;
    }
    eprintln!("{}: {} chart file(s) in {}", dir.display(), charts.len(), dir.join("plots").display());
    Ok(ExitCode::SUCCESS)
}

/// `domiso check RUN_DIR [--baseline DIR]`: integrity of each directory first (a damaged
/// directory's metrics are not worth comparing: exit 1 without comparing them), then the
/// regression check when there is a baseline.
fn cmd_check(
    run: &Path,
    baseline: Option<&Path>,
    tolerances: Option<&Path>,
    junit: Option<&Path>,
    verbose: bool,
) -> Result<ExitCode, CliError> {
    use crate::output::{check, integrity};
    let input = |e: check::CheckError| CliError::Input(e.to_string());
    let damaged = |e: integrity::IntegrityError| CliError::Input(e.to_string());
    let tol = match tolerances {
        Some(p) => check::Tolerances::load(p).map_err(input)?,
        None => check::Tolerances::default(),
    };
    let mut verified = vec![("run", integrity::verify(run).map_err(damaged)?)];
    if let Some(b) = baseline {
        verified.push(("baseline", integrity::verify(b).map_err(damaged)?));
    }
    for (_, i) in &verified {
        print!("{}", integrity::render_text(i, verbose));
    }
    let intact = verified.iter().all(|(_, i)| i.failures() == 0);
    let report = match baseline {
        Some(b) if intact => {
            let report = check::check(run, b, &tol).map_err(input)?;
            print!("{}", check::render_text(&report, verbose));
            Some(report)
        }
        Some(_) => {
            println!("metrics not compared: fix or regenerate the damaged run directory first");
            None
        }
        None => None,
    };
    if let Some(j) = junit {
        let suite = match baseline {
            Some(b) => format!("{} vs {}", run.display(), b.display()),
            None => run.display().to_string(),
        };
        let roles: Vec<(&str, &integrity::Integrity)> = verified.iter().map(|(r, i)| (*r, i)).collect();
        std::fs::write(j, check::render_junit_with(&roles, report.as_ref(), &suite))
            .map_err(|e| CliError::Input(format!("{}: {e}", j.display())))?;
    }
    let regressed = report.is_some_and(|r| r.failures() > 0);
    Ok(if !intact || regressed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn cmd_run(args: RunArgs) -> Result<ExitCode, CliError> {
    crate::interrupt::install();
    let sc = load_with(args.scenario.as_ref(), &args.set)?;
    let seed = args.seed.unwrap_or(sc.run.seed);
    let days = args.days.unwrap_or(sc.run.days);
    if days == 0 || days > build::limits::MAX_DAYS {
        return Err(CliError::Input(format!("--days: expected 1 to {}, found {days}", build::limits::MAX_DAYS)));
    }
    let out = args.out.clone().unwrap_or_else(|| run::default_out_dir(&sc, seed));
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show {
        let b = indicatif::ProgressBar::new(1000);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {percent:>3}% {elapsed_precise} (eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(format!("{} seed {seed}", sc.name));
        Some(b)
    } else {
        None
    };
    let req = RunRequest {
        scenario: &sc,
        seed,
        days,
        out,
        granularity: match args.granularity {
            GranularityArg::Sa => run::Granularity::Sa,
            GranularityArg::Packet => run::Granularity::Packet,
            GranularityArg::Both => run::Granularity::Both,
        },
        pcap: args.pcap.clone(),
        draw_ahead: true,
    };
    let mut progress = |f: f64| {
        if let Some(b) = &bar {
            b.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        }
    };
    let (outcome, verified) = if args.check_determinism {
        let checked = crate::determinism_check::execute_twice(&req, &mut progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let checked = checked?;
        let c = &checked.comparison;
        match checked.outcome {
            Some(outcome) => (outcome, Some(c.clone())),
            None => {
                use crate::output::determinism::render_differences;
                eprint!(
                    "determinism check FAILED: {} of {} file(s) differ between two runs of {} seed {seed} ({} day(s)); {} not written\n{}",
                    c.differences.len(),
                    c.files,
                    sc.name,
                    days,
                    req.out.display(),
                    render_differences(c)
                );
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        let outcome = run::execute(&req, &mut progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        (outcome?, None)
    };
    if !args.quiet {
        print!("{}", render_summary(&outcome));
    }
    if let Some(c) = verified {
        // The result of a check: printed even with --quiet (which silences the table).
        println!(
            "determinism verified: {} file(s), {} bytes identical in two runs (machine measurements aside) -> {}",
            c.files,
            thousands(c.bytes),
            outcome.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn render_summary(o: &run::RunOutcome) -> String {
    use std::fmt::Write;
    let s = &o.summary;
    let m = &o.manifest;
    let mut t = String::new();
    let _ = writeln!(t, "domiso run: {} seed {}, {} day(s) -> {}", s.scenario, s.seed, s.days, o.dir.display());
    let _ = writeln!(
        t,
        "  hosts           {:>14}   clients {}, servers {}",
        thousands(s.hosts_total),
        thousands(s.clients_total),
        thousands(s.servers_total)
    );
    if let (Some(j), Some(e), Some(b)) = (s.domain_joined_pct_start, s.domain_joined_pct_end, s.boundary_pct_of_joined)
    {
        if s.days > 1 {
            let _ = writeln!(
                t,
                "  domain-joined   {j:>13.1}%   -> {e:.1}% at the end; boundary machines {b:.2}% of joined"
            );
        } else {
            let _ = writeln!(t, "  domain-joined   {j:>13.1}%   boundary machines {b:.2}% of joined");
        }
    }
    if let (Some(i), Some(a)) = (s.helpdesk_ipsec_calls_peak_month, s.helpdesk_total_calls_peak_month) {
        let _ = writeln!(
            t,
            "  helpdesk        {:>14}   IPsec calls in the busiest 30 days; {} calls in the busiest 30 days",
            thousands(i.round() as u64),
            thousands(a.round() as u64)
        );
    }
    if let (Some(p), Some(n), Some(b)) =
        (s.protected_traffic_pct_end, s.sa_negotiations_total, s.blocked_connections_total)
    {
        let _ = writeln!(t, "  protected       {p:>13.1}%   of bytes between managed hosts");
        let _ =
            writeln!(t, "  IKE             {:>14}   negotiations; {} connections blocked", thousands(n), thousands(b));
    }
    let _ = writeln!(t, "  sessions        {:>14}", thousands(s.sessions_total));
    let _ = writeln!(
        t,
        "  traffic         {:>11.2} TB   {:.1}% of it crosses the WAN",
        s.traffic_bytes_total as f64 / 1e12,
        s.wan_session_bytes_pct
    );
    match (s.peak_wan_link_util_pct, &s.peak_wan_link, s.wan_links_over_80pct_peak_day) {
        (Some(u), Some(l), Some(n)) => {
            let _ = writeln!(t, "  peak WAN link   {u:>13.1}%   {l} ({n} links above 80%)");
        }
        _ => {
            let _ = writeln!(t, "  peak WAN link   {:>14}   traffic sampled; see wan_links.csv for bytes", "n/a");
        }
    }
    let _ = writeln!(
        t,
        "  events          {:>14}   in {:.1} s ({:.1} M events/s), peak RSS {}",
        thousands(m.events_processed),
        m.wall_s,
        m.events_per_s / 1e6,
        m.peak_rss_bytes.map(|b| format!("{} MiB", b / (1 << 20))).unwrap_or_else(|| "n/a".into())
    );
    if let Some((path, c)) = &o.pcap {
        let _ = writeln!(
            t,
            "  pcap            {:>14}   packets ({} ESP/AH on {} SAs) of {} flows -> {}",
            thousands(c.packets as u64),
            thousands(c.esp_packets as u64),
            c.security_associations,
            c.flows,
            path.display()
        );
    }
    t
}
