//! One run, end to end: scenario -> campus -> traffic -> engine -> records -> run
//! directory. This is the glue between the model (pure) and `output` (files).
//!
//! Contract: the files of a run are a function of (scenario, seed) only, except the
//! machine measurements `wall_s`, `events_per_s` and `peak_rss_bytes` (manifest) and
//! `wall_s` (summary), and the manifest's digest of summary.json that includes it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::SimTime;
use crate::engine::queue::EventQueue;
use crate::engine::sim::{self, Progress, Stop};
use crate::model::campus::{Campus, CampusError};
use crate::model::census::{Census, round4};
use crate::model::traffic::TrafficModel;
use crate::model::world::{DayRecord, LinkDayRecord, Observer, World};
use crate::output::record::{AppDayRow, Manifest, Summary, TimelineRow, WanLinkRow};
use crate::output::writer::{RunFiles, peak_rss_bytes};
use crate::scenario::build::Scenario;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{source_name}: campus.address_space: {error}")]
    Campus {
        source_name: String,
        #[source]
        error: CampusError,
    },
    #[error("{path}: cannot write the run directory: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What to run.
pub struct RunRequest<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub days: u32,
    pub out: PathBuf,
}

/// What a finished run reports back.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
    pub manifest: Manifest,
}

/// Collects the records the world emits.
#[derive(Default)]
struct Collector {
    days: Vec<DayRecord>,
    links: Vec<LinkDayRecord>,
}

impl Observer for Collector {
    fn day(&mut self, r: &DayRecord) {
        self.days.push(r.clone());
    }
    fn link_day(&mut self, r: &LinkDayRecord) {
        self.links.push(r.clone());
    }
}

/// The default run directory: `results/<scenario>/seed-<N>/`.
pub fn default_out_dir(scenario: &Scenario, seed: u64) -> PathBuf {
    Path::new("results")
        .join(&scenario.name)
        .join(format!("seed-{seed}"))
}

/// Generates the campus of a scenario, mapping failure to an input error that names it.
pub fn generate_campus(scenario: &Scenario, seed: u64) -> Result<Campus, RunError> {
    Campus::generate(scenario, seed).map_err(|error| RunError::Campus {
        source_name: scenario.source.clone(),
        error,
    })
}

/// Runs a scenario and writes its run directory. `progress` gets the fraction done.
pub fn execute(req: &RunRequest, progress: &mut dyn FnMut(f64)) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let sc = req.scenario;
    let campus = generate_campus(sc, req.seed)?;
    let census = Census::of(&campus);
    let traffic = TrafficModel::new(sc);
    let mut world = World::new(
        &campus,
        &traffic,
        req.seed,
        req.days,
        sc.run.utilisation_bin,
        Collector::default(),
    );
    let mut queue = EventQueue::with_capacity(campus.hosts.len() + 16);
    world.prime(&mut queue);
    let horizon = SimTime::start_of_day(req.days).as_nanos() as f64;
    let stats = sim::run(
        &mut queue,
        &mut world,
        &Stop {
            until: None,
            max_events: None,
        },
        &mut |p: &Progress| progress(p.now.as_nanos() as f64 / horizon),
    );
    let collected = world.observer;
    let wall_s = started.elapsed().as_secs_f64();

    let app_names: Vec<String> = traffic.apps.iter().map(|a| a.name.clone()).collect();
    let link_name = |l: crate::model::ids::LinkId| {
        let link = campus.topology.link(l);
        format!(
            "{}-{}",
            link.kind.name(),
            campus.sites[link.site.index()].name
        )
    };
    let weekday = |d: u32| WEEKDAYS[((u32::from(sc.run.start_weekday) + d) % 7) as usize];
    let timeline: Vec<TimelineRow> = collected
        .days
        .iter()
        .map(|d| TimelineRow {
            day: d.day,
            weekday: weekday(d.day),
            sessions: d.sessions,
            bytes_total: d.app_bytes.iter().sum(),
            wan_session_bytes: d.wan_session_bytes,
            wan_link_bytes: d.wan_link_bytes,
            peak_wan_util_pct: round4(100.0 * d.peak_wan_util),
            peak_wan_link: d.peak_wan_link.map(link_name).unwrap_or_default(),
            wan_links_over_80pct: d.wan_links_over_80,
            wan_links_over_100pct: d.wan_links_over_100,
            app_bytes: d.app_bytes.clone(),
        })
        .collect();
    let by_app: Vec<AppDayRow> = collected
        .days
        .iter()
        .flat_map(|d| {
            app_names.iter().enumerate().map(move |(i, a)| AppDayRow {
                day: d.day,
                app: a.clone(),
                sessions: d.app_sessions[i],
                bytes: d.app_bytes[i],
            })
        })
        .collect();
    let links: Vec<WanLinkRow> = collected
        .links
        .iter()
        .map(|r| {
            let link = campus.topology.link(r.link);
            let site = &campus.sites[link.site.index()];
            let mins = r.peak_bin_start.as_nanos() / 60_000_000_000;
            WanLinkRow {
                day: r.day,
                link: link_name(r.link),
                kind: link.kind.name(),
                site: site.name.clone(),
                region: campus.regions[site.region.index()].name.clone(),
                site_clients: site.clients,
                capacity_mbps: link.capacity_bps as f64 / 1e6,
                bytes_up: r.bytes_up,
                bytes_down: r.bytes_down,
                peak_util_pct: round4(100.0 * r.peak_util),
                peak_bin_start: format!("{:02}:{:02}", mins / 60, mins % 60),
            }
        })
        .collect();

    let sessions_total: u64 = collected.days.iter().map(|d| d.sessions).sum();
    let bytes_total: u64 = timeline.iter().map(|t| t.bytes_total).sum();
    let wan_total: u64 = collected.days.iter().map(|d| d.wan_session_bytes).sum();
    let peak_day = collected.days.iter().max_by(|a, b| {
        a.peak_wan_util
            .total_cmp(&b.peak_wan_util)
            .then(b.day.cmp(&a.day))
    });
    let summary = Summary {
        scenario: sc.name.clone(),
        seed: req.seed,
        days: req.days,
        hosts_total: census.hosts_total,
        clients_total: census.clients_total,
        servers_total: census.servers_total,
        // No population dynamics yet: the joined share is the campus's own at both ends.
        domain_joined_pct_start: Some(census.domain_joined_pct),
        domain_joined_pct_end: Some(census.domain_joined_pct),
        boundary_pct_of_joined: Some(census.boundary_pct_of_joined),
        sessions_total,
        traffic_bytes_total: bytes_total,
        wan_session_bytes_total: wan_total,
        wan_session_bytes_pct: if bytes_total == 0 {
            0.0
        } else {
            round4(100.0 * wan_total as f64 / bytes_total as f64)
        },
        peak_wan_link_util_pct: peak_day
            .map(|d| round4(100.0 * d.peak_wan_util))
            .unwrap_or(0.0),
        peak_wan_link: peak_day
            .and_then(|d| d.peak_wan_link)
            .map(link_name)
            .unwrap_or_default(),
        wan_links_over_80pct_peak_day: collected
            .days
            .iter()
            .map(|d| d.wan_links_over_80)
            .max()
            .unwrap_or(0),
        events_processed: stats.events,
        wall_s: round4(wall_s),
        ..Summary::default()
    };

    let write_err = |source| RunError::Write {
        path: req.out.display().to_string(),
        source,
    };
    let mut files = RunFiles::new();
    files
        .add_csv_records(
            "timeline.csv",
            &TimelineRow::header(&app_names),
            timeline.iter().map(TimelineRow::fields),
        )
        .map_err(write_err)?;
    files
        .add_csv("traffic_by_app.csv", &by_app)
        .map_err(write_err)?;
    files.add_csv("wan_links.csv", &links).map_err(write_err)?;
    files.add_json("campus.json", &census).map_err(write_err)?;
    files
        .add_json("summary.json", &summary)
        .map_err(write_err)?;
    let wall_s = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        tool: "domiso",
        version: env!("CARGO_PKG_VERSION"),
        scenario: sc.name.clone(),
        scenario_source: sc.source.clone(),
        scenario_sha256: sc.sha256.clone(),
        seed: req.seed,
        granularity: "traffic".into(),
        days: req.days,
        hosts: census.hosts_total,
        events_processed: stats.events,
        wall_s: round4(wall_s),
        events_per_s: (stats.events as f64 / wall_s).round(),
        peak_rss_bytes: peak_rss_bytes(),
        files: files.digests(),
    };
    files
        .add_json("manifest.json", &manifest)
        .map_err(write_err)?;
    files.commit(&req.out).map_err(write_err)?;
    Ok(RunOutcome {
        dir: req.out.clone(),
        summary,
        manifest,
    })
}
