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
use crate::model::ids::HostId;
use crate::model::kinds::Os;
use crate::model::secnet::SecNet;
use crate::model::streams::{entity, purpose};
use crate::model::traffic::TrafficModel;
use crate::model::world::{DayRecord, LinkDayRecord, Observer, World};
use crate::output::record::{
    AppDayRow, Manifest, OsOutcomeRow, ServerRow, Summary, TimelineIpsec, TimelineRow, WanLinkRow,
};
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

/// Which layers a run simulates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Every connection through policy and SA logic (a clear baseline when the scenario has
    /// no IPsec).
    Sa,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Sa => "sa",
        }
    }
}

/// What to run.
pub struct RunRequest<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub days: u32,
    pub out: PathBuf,
    pub granularity: Granularity,
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
    Path::new("results").join(&scenario.name).join(format!("seed-{seed}"))
}

/// Generates the campus of a scenario, mapping failure to an input error that names it.
pub fn generate_campus(scenario: &Scenario, seed: u64) -> Result<Campus, RunError> {
    Campus::generate(scenario, seed).map_err(|error| RunError::Campus { source_name: scenario.source.clone(), error })
}

/// The IPsec layer of a campus: policies assigned, credentials and Kerberos reachability
/// resolved. Local-policy membership is drawn from each host's policy stream.
pub fn build_secnet<'a>(sc: &'a Scenario, campus: &'a Campus, seed: u64) -> Option<SecNet<'a>> {
    let streams = crate::engine::rng::RngStreams::new(seed);
    sc.ipsec.as_ref().map(|params| {
        SecNet::new(campus, &sc.policy, params, |h: HostId| {
            use rand::RngExt;
            let mut rng = streams.stream(crate::engine::rng::StreamKey::new(entity::HOST, h.0, purpose::POLICY, 0));
            rng.random::<f64>()
        })
    })
}

/// Lints a scenario's IPsec policy on its campus.
pub fn lint_scenario(sc: &Scenario, seed: u64) -> Result<Vec<crate::model::lint::Finding>, RunError> {
    let campus = generate_campus(sc, seed)?;
    Ok(match build_secnet(sc, &campus, seed) {
        Some(mut net) => crate::model::lint::lint(sc, &campus, &mut net),
        None => Vec::new(),
    })
}

/// Runs a scenario and writes its run directory. `progress` gets the fraction done.
pub fn execute(req: &RunRequest, progress: &mut dyn FnMut(f64)) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let sc = req.scenario;
    let campus = generate_campus(sc, req.seed)?;
    let census = Census::of(&campus);
    let traffic = TrafficModel::new(sc);
    let secnet = build_secnet(sc, &campus, req.seed);
    let mut world =
        World::new(&campus, &traffic, secnet, req.seed, req.days, sc.run.utilisation_bin, Collector::default());
    let mut queue = EventQueue::with_capacity(campus.hosts.len() + 16);
    world.prime(&mut queue);
    let horizon = SimTime::start_of_day(req.days).as_nanos() as f64;
    let stats = sim::run(&mut queue, &mut world, &Stop { until: None, max_events: None }, &mut |p: &Progress| {
        progress(p.now.as_nanos() as f64 / horizon)
    });
    let server_rows = world.secnet.as_ref().map(|net| server_rows(sc, &campus, net)).unwrap_or_default();
    let collected = world.observer;
    let wall_s = started.elapsed().as_secs_f64();

    let app_names: Vec<String> = traffic.apps.iter().map(|a| a.name.clone()).collect();
    let link_name = |l: crate::model::ids::LinkId| {
        let link = campus.topology.link(l);
        format!("{}-{}", link.kind.name(), campus.sites[link.site.index()].name)
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
            ipsec: d.ipsec.as_ref().map(|i| TimelineIpsec {
                hosts_no_policy: i.policy_states[0],
                hosts_permit_only: i.policy_states[1],
                hosts_request: i.policy_states[2],
                hosts_secure_request: i.policy_states[3],
                hosts_require: i.policy_states[4],
                hosts_require_encryption: i.policy_states[5],
                active_mm_sas_peak: i.peak_live_mm,
                active_qm_sas_peak: i.peak_live_qm,
                main_mode_negotiations: i.main_modes,
                quick_mode_negotiations: i.quick_modes,
                rekeys: i.rekeys,
                negotiation_failures: i.negotiation_failures,
                fallbacks_to_clear: i.fallbacks,
                blocked_connections: i.blocked,
                bytes_protected: i.bytes_protected,
                bytes_clear: i.bytes_clear,
                bytes_blocked: i.bytes_blocked,
                protected_pct_managed: pct(i.bytes_managed_pairs_protected, i.bytes_managed_pairs),
            }),
        })
        .collect();
    let os_rows: Vec<OsOutcomeRow> = collected
        .days
        .iter()
        .filter_map(|d| d.ipsec.as_ref().map(|i| (d.day, i)))
        .flat_map(|(day, i)| {
            i.by_os.iter().enumerate().filter(|(_, o)| o.sessions > 0).map(move |(k, o)| OsOutcomeRow {
                day,
                initiator: crate::model::world::INITIATOR_GROUPS[k / Os::ALL.len()],
                initiator_os: Os::ALL[k % Os::ALL.len()].name(),
                sessions: o.sessions,
                protected: o.protected,
                clear_exempt: o.clear_exempt,
                clear_fallback: o.clear_fallback,
                clear_soft_sa: o.clear_soft,
                blocked: o.blocked,
                fallback_waits: o.fallback_waits,
                mean_fallback_wait_ms: (o.fallback_waits > 0)
                    .then(|| round4(1000.0 * o.fallback_wait_s / o.fallback_waits as f64)),
                ike_waits: o.ike_waits,
                mean_ike_wait_ms: (o.ike_waits > 0).then(|| round4(1000.0 * o.ike_wait_s / o.ike_waits as f64)),
            })
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
    let peak_day =
        collected.days.iter().max_by(|a, b| a.peak_wan_util.total_cmp(&b.peak_wan_util).then(b.day.cmp(&a.day)));
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
        peak_wan_link_util_pct: peak_day.map(|d| round4(100.0 * d.peak_wan_util)).unwrap_or(0.0),
        peak_wan_link: peak_day.and_then(|d| d.peak_wan_link).map(link_name).unwrap_or_default(),
        wan_links_over_80pct_peak_day: collected.days.iter().map(|d| d.wan_links_over_80).max().unwrap_or(0),
        protected_traffic_pct_end: {
            // The last simulated week (or all of a shorter run).
            let last: Vec<_> = collected.days.iter().rev().take(7).filter_map(|d| d.ipsec.as_ref()).collect();
            let managed: u64 = last.iter().map(|i| i.bytes_managed_pairs).sum();
            let protected: u64 = last.iter().map(|i| i.bytes_managed_pairs_protected).sum();
            if last.is_empty() { None } else { pct(protected, managed) }
        },
        sa_negotiations_total: sc.ipsec.as_ref().map(|_| {
            collected.days.iter().filter_map(|d| d.ipsec.as_ref()).map(|i| i.main_modes + i.quick_modes).sum()
        }),
        blocked_connections_total: sc
            .ipsec
            .as_ref()
            .map(|_| collected.days.iter().filter_map(|d| d.ipsec.as_ref()).map(|i| i.blocked).sum()),
        events_processed: stats.events,
        wall_s: round4(wall_s),
        ..Summary::default()
    };

    let write_err = |source| RunError::Write { path: req.out.display().to_string(), source };
    let mut files = RunFiles::new();
    files
        .add_csv_records("timeline.csv", &TimelineRow::header(&app_names), timeline.iter().map(TimelineRow::fields))
        .map_err(write_err)?;
    files.add_csv("traffic_by_app.csv", &by_app).map_err(write_err)?;
    files.add_csv("wan_links.csv", &links).map_err(write_err)?;
    if sc.ipsec.is_some() {
        files.add_csv("servers.csv", &server_rows).map_err(write_err)?;
        files.add_csv("outcomes_by_os.csv", &os_rows).map_err(write_err)?;
    }
    files.add_json("campus.json", &census).map_err(write_err)?;
    files.add_json("summary.json", &summary).map_err(write_err)?;
    let wall_s = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        tool: "domiso",
        version: env!("CARGO_PKG_VERSION"),
        scenario: sc.name.clone(),
        scenario_source: sc.source.clone(),
        scenario_sha256: sc.sha256.clone(),
        seed: req.seed,
        granularity: req.granularity.name().into(),
        days: req.days,
        hosts: census.hosts_total,
        events_processed: stats.events,
        wall_s: round4(wall_s),
        events_per_s: (stats.events as f64 / wall_s).round(),
        peak_rss_bytes: peak_rss_bytes(),
        files: files.digests(),
    };
    files.add_json("manifest.json", &manifest).map_err(write_err)?;
    files.commit(&req.out).map_err(write_err)?;
    Ok(RunOutcome { dir: req.out.clone(), summary, manifest })
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round4(100.0 * part as f64 / whole as f64))
}

/// The busiest servers by peak quick-mode SAs (ties: memory, then host order).
fn server_rows(sc: &Scenario, campus: &Campus, net: &SecNet) -> Vec<ServerRow> {
    let Some(params) = &sc.ipsec else { return Vec::new() };
    let mut all: Vec<_> = net.servers.iter().filter(|(_, s)| s.peak_qm > 0 || s.peak_mm > 0).collect();
    all.sort_by(|a, b| {
        b.1.peak_qm.cmp(&a.1.peak_qm).then(b.1.peak_memory_bytes.cmp(&a.1.peak_memory_bytes)).then(a.0.cmp(&b.0))
    });
    all.into_iter()
        .take(params.servers_reported as usize)
        .map(|(h, s)| {
            let host = campus.host(*h);
            let site = &campus.sites[host.site.index()].name;
            let per_s = f64::from(s.peak_main_modes_per_minute) / 60.0;
            ServerRow {
                server: format!("{}-{}-h{}", host.kind.name(), site, h.0),
                role: host.kind.name(),
                os: host.os.name(),
                site: site.clone(),
                policy: net
                    .policy_of(*h)
                    .map(|p| sc.policy.policies[p as usize].name.clone())
                    .unwrap_or_else(|| "none".into()),
                peak_qm_sas: s.peak_qm,
                peak_mm_sas: s.peak_mm,
                main_modes: s.main_modes,
                quick_modes: s.quick_modes,
                peak_main_modes_per_s: round4(per_s),
                peak_dh_cpu_pct: round4(100.0 * per_s * params.sa.dh_cpu.as_secs_f64()),
                peak_sa_memory_bytes: s.peak_memory_bytes,
            }
        })
        .collect()
}
