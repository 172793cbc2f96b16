//! One run, end to end: scenario -> campus -> traffic -> engine -> records -> run
//! directory. This is the glue between the model (pure) and `output` (files).
//!
//! Contract: the files of a run are a function of (scenario, seed) only, except the
//! machine measurements: [`MANIFEST_MEASUREMENT_KEYS`](crate::output::record::MANIFEST_MEASUREMENT_KEYS)
//! of the manifest, `wall_s` of the summary, and the manifest's digest and size of
//! summary.json that includes it. `domiso run --check-determinism`
//! ([`crate::determinism_check`]) verifies this.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::queue::EventQueue;
use crate::engine::rng::RngStreams;
use crate::engine::sim::{self, Progress, Stop};
use crate::engine::{SimDuration, SimTime};
use crate::model::campaign::Campaign;
use crate::model::campus::{Campus, CampusError};
use crate::model::census::{Census, round4};
use crate::model::day_plan::{self, DayPlan, PlanDrawer};
use crate::model::helpdesk::{Cause, DayReport};
use crate::model::host_draws::{Draws, HostDrawer, is_workday};
use crate::model::ids::HostId;
use crate::model::kinds::Os;
use crate::model::packet_layer::{PacketLayer, SIZE_BUCKETS};
use crate::model::population::Population;
use crate::model::secnet::{SecNet, StallEvent};
use crate::model::streams::{entity, purpose};
use crate::model::traffic::TrafficModel;
use crate::model::world::{DayRecord, Layers, LinkDayRecord, Observer, World};
use crate::output::record::{
    AppDayRow, HelpdeskRow, Manifest, OsOutcomeRow, OverheadRow, PacketSizeRow, RolloutEventRow, ServerRow, StallRow,
    Summary, TimelineIpsec, TimelinePackets, TimelineRollout, TimelineRow, WanLinkRow,
};
use crate::output::writer::{RunFiles, peak_rss_bytes, thread_cpu_s};
use crate::scenario::build::Scenario;
use crate::scenario::diag::{Diagnostic, KeyPath};

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The campus does not fit its address space (`campus.address_space`).
    #[error("{at}")]
    Campus {
        at: Diagnostic,
        #[source]
        error: CampusError,
    },
    /// `--granularity packet` without a `[packet]` table; `at` names the missing key.
    #[error("{at}")]
    NoPacketSettings { at: Diagnostic },
    #[error("--pcap needs --granularity packet (or both): packets exist only at packet granularity")]
    PcapNeedsPackets,
    #[error("{path}: cannot write the capture: {source}")]
    Pcap {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read the run back: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw a chart: {0}")]
    Chart(String),
    #[error("{path}: cannot write the run directory: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM during the simulation: nothing was written.
    #[error("interrupted on simulated day {day} of {days}: nothing written, {out} is as it was")]
    Interrupted { day: u32, days: u32, out: String },
}

/// Which layers a run simulates.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Every connection through policy and SA logic (a clear baseline when the scenario has
    /// no IPsec); byte figures at the application level.
    Sa,
    /// As `Sa`, plus every packet of every session sized in clear and on the wire, and a
    /// host sample replayed packet by packet. Packets need their flow's SA state, so this
    /// level always includes the SA level.
    Packet,
    /// The SA level and the packet level: the same run as `Packet`, named for scripts that
    /// ask for both.
    Both,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Sa => "sa",
            Granularity::Packet => "packet",
            Granularity::Both => "both",
        }
    }
    pub fn packets(self) -> bool {
        !matches!(self, Granularity::Sa)
    }
}

/// What to run.
pub struct RunRequest<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub days: u32,
    pub out: PathBuf,
    pub granularity: Granularity,
    /// Write the packets of the scenario's capture window here (packet granularity).
    pub pcap: Option<PathBuf>,
    /// Draw the sessions ahead on a second thread, a window of a day at a time (the
    /// outputs are the same either way). Worth it for a run on its own; a sweep already
    /// keeps every core busy.
    pub draw_ahead: bool,
}

/// What a finished run reports back.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub pcap: Option<(PathBuf, crate::output::capture::CaptureStats)>,
    pub summary: Summary,
    pub manifest: Manifest,
}

/// Collects the records the world emits.
#[derive(Default)]
struct Collector {
    days: Vec<DayRecord>,
    links: Vec<LinkDayRecord>,
    stalls: Vec<StallEvent>,
}

impl Observer for Collector {
    fn day(&mut self, r: &DayRecord) {
        self.days.push(r.clone());
    }
    fn link_day(&mut self, r: &LinkDayRecord) {
        self.links.push(r.clone());
    }
    fn stall(&mut self, s: &StallEvent) {
        self.stalls.push(*s);
    }
}

/// The default run directory: `results/<scenario>/seed-<N>/`.
pub fn default_out_dir(scenario: &Scenario, seed: u64) -> PathBuf {
    Path::new("results").join(&scenario.name).join(format!("seed-{seed}"))
}

/// Generates the campus of a scenario, mapping failure to an input error that names it.
pub fn generate_campus(scenario: &Scenario, seed: u64) -> Result<Campus, RunError> {
    Campus::generate(scenario, seed).map_err(|error| RunError::Campus {
        at: scenario.error(&KeyPath::root().key("campus").key("address_space"), error.to_string()),
        error,
    })
}

/// The IPsec layer of a campus: policies assigned, credentials and Kerberos reachability
/// resolved, and NLB failover when the campus has clusters. Local-policy membership and
/// the NAT-T update of XP SP1 machines are drawn from each host's streams.
pub fn build_secnet<'a>(sc: &'a Scenario, campus: &'a Campus, seed: u64, pop: &Population) -> Option<SecNet<'a>> {
    use rand::RngExt;
    let streams = crate::engine::rng::RngStreams::new(seed);
    sc.ipsec.as_ref().map(|params| {
        let mut net = SecNet::new(campus, sc.policy.clone(), params, pop, |h: HostId| {
            let mut rng = streams.stream(crate::engine::rng::StreamKey::new(entity::HOST, h.0, purpose::POLICY, 0));
            rng.random::<f64>()
        });
        if !campus.clusters.is_empty() {
            let f = &sc.nlb.failover;
            let nat_t = (0..campus.hosts.len())
                .map(|i| {
                    let h = HostId::from_index(i);
                    campus.host(h).os == crate::model::kinds::Os::XpSp1 && {
                        let key = crate::engine::rng::StreamKey::new(entity::HOST, h.0, purpose::NLB, 0);
                        streams.stream(key).random::<f64>() < f.xp_sp1_nat_t
                    }
                })
                .collect();
            let sizes = cluster_sizes(campus);
            let nlb = crate::model::nlb::Nlb::new(sizes.iter().copied(), f.convergence);
            net.enable_failover(crate::model::secnet::Failover::new(nlb, f.clone(), nat_t, &sizes));
        }
        net
    })
}

fn cluster_sizes(campus: &Campus) -> Vec<u32> {
    campus.clusters.iter().map(|c| c.nodes.len() as u32).collect()
}

/// The NLB node outages of a run of `days`: random failures from each node's stream and
/// the scenario's scheduled ones.
pub fn node_outages(sc: &Scenario, campus: &Campus, seed: u64, days: u32) -> Vec<crate::model::nlb::Outage> {
    let streams = crate::engine::rng::RngStreams::new(seed);
    let sizes = cluster_sizes(campus);
    crate::model::nlb::failure_schedule(&sc.nlb.failover, &sizes, SimTime::start_of_day(days), |c, n| {
        streams.stream(crate::engine::rng::StreamKey::new(entity::CLUSTER, c, purpose::NLB, n as u16))
    })
}

/// The rows of `failover_stalls.csv`, in event order.
fn stall_rows(campus: &Campus, traffic: &TrafficModel, stalls: &[StallEvent], scale: f64) -> Vec<StallRow> {
    stalls
        .iter()
        .map(|s| {
            let cl = &campus.clusters[s.cluster.index()];
            let tod = s.at.time_of_day().as_nanos() / 1_000_000;
            StallRow {
                day: s.at.day(),
                time: format!(
                    "{:02}:{:02}:{:02}.{:03}",
                    tod / 3_600_000,
                    tod / 60_000 % 60,
                    tod / 1000 % 60,
                    tod % 1000
                ),
                cluster: s.cluster.0,
                service: cl.service.name().into(),
                node: s.node.0 - cl.nodes.start,
                client: s.client.0,
                client_os: campus.host(s.client).os.name().into(),
                app: traffic.apps[usize::from(s.app)].name.clone(),
                in_progress: s.in_progress,
                cluster_down: s.cluster_down,
                ipsec: s.ipsec,
                detection: s.detection.name().into(),
                stall_s: round4(s.stall.stall.as_secs_f64()),
                app_failed: s.stall.app_failed,
                weight: scale,
            }
        })
        .collect()
}

/// Per client OS family (`win2000`, `xp`, `server2003`, `vista`, ...), the `q` quantile of failover stall seconds (nearest rank, weighted: rows
/// carry their sample weight). Connections that met a cluster with no node serving waited
/// for a repair, not a failover: they are in the CSV, not in these figures.
fn stall_quantile_by_os(rows: &[StallRow], q: f64) -> BTreeMap<String, f64> {
    let mut by_os: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.cluster_down) {
        let family = Os::from_name(&r.client_os).map_or_else(|| r.client_os.clone(), |o| o.family().to_string());
        by_os.entry(family).or_default().push((r.stall_s, r.weight));
    }
    by_os
        .into_iter()
        .map(|(os, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: f64 = v.iter().map(|x| x.1).sum();
            let mut acc = 0.0;
            let at = v
                .iter()
                .find(|x| {
                    acc += x.1;
                    acc >= q * total - 1e-9
                })
                .map_or(v[v.len() - 1].0, |x| x.0);
            (os, at)
        })
        .collect()
}

/// Lints a scenario's IPsec policy on its campus.
pub fn lint_scenario(sc: &Scenario, seed: u64) -> Result<Vec<crate::model::lint::Finding>, RunError> {
    let campus = generate_campus(sc, seed)?;
    let pop = Population::new(&campus);
    Ok(match build_secnet(sc, &campus, seed, &pop) {
        Some(mut net) => crate::model::lint::lint(sc, &campus, &mut net),
        None => Vec::new(),
    })
}

/// Refuses a capture path that cannot be written before the run starts, not after it:
/// its directory must exist and the path must not be a directory.
fn check_pcap_target(path: &Path) -> Result<(), RunError> {
    let refuse = |kind: std::io::ErrorKind, why: String| RunError::Pcap {
        path: path.display().to_string(),
        source: std::io::Error::new(kind, why),
    };
    if path.is_dir() {
        return Err(refuse(std::io::ErrorKind::IsADirectory, "it is a directory".into()));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(refuse(std::io::ErrorKind::NotFound, format!("the directory {} does not exist", parent.display())));
    }
    Ok(())
}

/// Runs a scenario and writes its run directory. `progress` gets the fraction done.
pub fn execute(req: &RunRequest, progress: &mut dyn FnMut(f64)) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let sc = req.scenario;
    if req.pcap.is_some() && !req.granularity.packets() {
        return Err(RunError::PcapNeedsPackets);
    }
    if let Some(path) = &req.pcap {
        check_pcap_target(path)?;
    }
    let campus = generate_campus(sc, req.seed)?;
    let census = Census::of(&campus);
    let traffic = TrafficModel::new(sc);
    let population = Population::new(&campus);
    let secnet = build_secnet(sc, &campus, req.seed, &population);
    let packets = if req.granularity.packets() {
        let params = sc.packet.as_ref().ok_or_else(|| RunError::NoPacketSettings {
            at: sc.error(
                &KeyPath::root().key("packet"),
                format!(
                    "--granularity {} needs the scenario's [packet] table (MTU, suites, sample, CPU costs)",
                    req.granularity.name()
                ),
            ),
        })?;
        let streams = crate::engine::rng::RngStreams::new(req.seed);
        Some(PacketLayer::new(params, &sc.traffic.apps, &campus, |h: HostId| {
            use rand::RngExt;
            let mut rng = streams.stream(crate::engine::rng::StreamKey::new(entity::HOST, h.0, purpose::PACKETS, 0));
            (rng.random::<f64>(), rng.random::<f64>())
        }))
    } else {
        None
    };
    let mut world = World::new(
        &campus,
        &traffic,
        Layers {
            population,
            campaign: Campaign::new(sc, &campus, req.seed),
            secnet,
            packets,
            outages: node_outages(sc, &campus, req.seed, req.days),
        },
        req.seed,
        req.days,
        sc.run.utilisation_bin,
        Collector::default(),
    );
    let mut queue = EventQueue::with_capacity(campus.hosts.len() + 16);
    world.prime(&mut queue);
    let horizon = SimTime::start_of_day(req.days).as_nanos() as f64;
    let sim_started = Instant::now();
    // Queue length sampled every few thousand events: the engine's load for `domiso bench`.
    let (mut pending_sum, mut pending_samples, mut pending_max) = (0u64, 0u64, 0usize);
    let stop = Stop { until: None, max_events: None, cancel: Some(&crate::interrupt::REQUESTED) };
    // Sessions are drawn ahead on a thread of their own, a window of the day at a time,
    // while the loop replays the window before (model::day_plan): the same draws, so the
    // same outputs, on any thread count.
    let sampled = req.draw_ahead.then(|| world.campaign.sampled.clone());
    let mut sim_cpu_s = None;
    let stats = std::thread::scope(|s| {
        let (campus, traffic, days) = (&campus, &traffic, req.days);
        if let Some(sampled) = sampled {
            let streams = RngStreams::new(req.seed);
            let mut drawer = PlanDrawer::new(campus, traffic, streams, &sampled, days, day_plan::DEFAULT_BUDGET);
            let source = spawn_ahead(s, move |done: Option<DayPlan>| {
                if let Some(plan) = done {
                    drawer.recycle(plan);
                }
                drawer.next_piece()
            });
            if let Some(source) = source {
                world.draw_ahead(source);
            }
        }
        // The campaign's draws of every host, an epoch (a workday, a refresh round) ahead
        // (model::host_draws). A one-day run draws them all in the loop: the day's would be
        // waited for at its start anyway.
        if req.draw_ahead && days > 1 {
            let (streams, hosts) = (RngStreams::new(req.seed), campus.hosts.len());
            if sc.population.is_some() {
                let workdays = (1..days).filter(|&d| is_workday(sc.run.start_weekday, d));
                let mut drawer = HostDrawer::new(streams.clone(), Draws::DailyDeciding, hosts, workdays);
                if let Some(source) = spawn_ahead(s, move |spare| drawer.next(spare)) {
                    world.campaign.draw_ahead(Draws::DailyDeciding, source, 1);
                }
            }
            if sc.rollout.is_some() {
                let mut drawer = HostDrawer::new(streams, Draws::Refresh, hosts, 1..);
                if let Some(source) = spawn_ahead(s, move |spare| drawer.next(spare)) {
                    world.campaign.draw_ahead(Draws::Refresh, source, 1);
                }
            }
        }
        let cpu_started = thread_cpu_s();
        let stats = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sim::run(&mut queue, &mut world, &stop, &mut |p: &Progress| {
                pending_sum += p.pending as u64;
                pending_samples += 1;
                pending_max = pending_max.max(p.pending);
                progress(p.now.as_nanos() as f64 / horizon)
            })
        }));
        sim_cpu_s = cpu_started.zip(thread_cpu_s()).map(|(a, b)| b - a);
        // Closing the channels lets the drawing threads end, so the scope can join them
        // (also when the loop panicked).
        world.stop_drawing_ahead();
        world.campaign.stop_drawing_ahead();
        stats.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    let sim_s = sim_started.elapsed().as_secs_f64();
    if stats.stopped_by == sim::StopReason::Cancelled {
        return Err(RunError::Interrupted {
            day: stats.end_time.day() + 1,
            days: req.days,
            out: req.out.display().to_string(),
        });
    }
    let sa_memory = world.secnet.as_ref().map(|net| (net.sa_table_bytes(), net.live_peak));
    let scale = world.campaign.scale;
    let server_rows = world
        .secnet
        .as_ref()
        .map(|net| server_rows(sc, &campus, net, world.packets.as_ref(), scale))
        .unwrap_or_default();
    // A server's peaks under a traffic sample are the peaks of its sampled clients only.
    let server_peaks = world.secnet.as_ref().filter(|_| scale == 1.0).map(|net| {
        let qm = net.servers.iter().map(|s| u64::from(s.1.peak_qm)).max().unwrap_or(0);
        let mem = net.servers.iter().map(|s| s.1.peak_memory_bytes).max().unwrap_or(0);
        (qm, mem)
    });
    let packet_layer = world.packets.take();
    let campaign_days = std::mem::take(&mut world.campaign.days);
    let rollout_log = std::mem::take(&mut world.campaign.log);
    // Peaks of a traffic sample say nothing about the peaks of the whole: busy-link
    // figures are only reported when every host's traffic is simulated.
    let peaks = scale == 1.0;
    let mut collected = world.observer;
    if scale != 1.0 {
        for d in &mut collected.days {
            scale_day(d, scale);
        }
        for l in &mut collected.links {
            scale_link(l, scale);
        }
    }
    let wall_s = started.elapsed().as_secs_f64();

    let app_names: Vec<String> = traffic.apps.iter().map(|a| a.name.clone()).collect();
    let link_name = |l: crate::model::ids::LinkId| {
        let link = campus.topology.link(l);
        format!("{}-{}", link.kind.name(), campus.sites[link.site.index()].name)
    };
    let weekday = |d: u32| WEEKDAYS[((u32::from(sc.run.start_weekday) + d) % 7) as usize];
    let has_campaign = sc.rollout.is_some() || sc.helpdesk.is_some() || sc.population.is_some();
    // With a traffic sample, the day's busiest links follow from the scaled link records.
    for d in &mut collected.days {
        let links: Vec<&LinkDayRecord> = collected.links.iter().filter(|l| l.day == d.day).collect();
        d.wan_links_over_80 = links.iter().filter(|l| l.peak_util > 0.8).count() as u32;
        d.wan_links_over_100 = links.iter().filter(|l| l.peak_util > 1.0).count() as u32;
        if let Some(top) = links.iter().max_by(|a, b| a.peak_util.total_cmp(&b.peak_util).then(b.link.cmp(&a.link))) {
            d.peak_wan_util = top.peak_util;
            d.peak_wan_link = Some(top.link);
        }
        if let (Some(p), Some(l)) = (d.packets.as_mut(), sc.packet.as_ref()) {
            let thr = l.wan_threshold;
            p.links_pushed_over = links
                .iter()
                .filter(|x| x.clear.as_ref().is_some_and(|c| c.peak_util <= thr) && x.peak_util > thr)
                .count() as u32;
        }
    }
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
            peak_wan_util_pct: peaks.then(|| round4(100.0 * d.peak_wan_util)),
            peak_wan_link: d.peak_wan_link.filter(|_| peaks).map(link_name),
            wan_links_over_80pct: peaks.then_some(d.wan_links_over_80),
            wan_links_over_100pct: peaks.then_some(d.wan_links_over_100),
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
            rollout: campaign_days.iter().find(|c| c.day == d.day).filter(|_| has_campaign).map(|c| TimelineRollout {
                date: date_label(sc, c.day),
                hosts_joined: c.joined,
                domain_joined_pct: round4(100.0 * c.joined as f64 / census.hosts_total.max(1) as f64),
                boundary_machines: c.boundary,
                boundary_pct_of_joined: round4(100.0 * c.boundary as f64 / c.joined.max(1) as f64),
                reimaging: c.reimaging,
                joins: c.joins,
                reimages: c.reimages,
                boundary_grants: c.boundary_grants,
                nap_reporting: c.nap_reporting,
                nap_deferred: c.nap_deferred,
                nap_enforcement: c.nap_enforcement,
                nap_unhealthy: c.nap_unhealthy,
                firewall_on: c.firewall_on,
                users_affected: c.users_affected.round(),
                calls_ipsec: c.helpdesk.as_ref().map(|h| h.ipsec_calls()),
                calls_total: c.helpdesk.as_ref().map(|h| h.total_calls()),
                policy_versions: c.policy_versions,
                roaming_waits: c.foreign_waits.round(),
                roaming_failures: c.foreign_failures.round(),
            }),
            packets: d.packets.as_ref().map(|p| TimelinePackets {
                ip_bytes_clear: p.clear_bytes,
                ip_bytes_wire: p.wire_bytes,
                wire_packets: p.wire_packets,
                overhead_pct_protected: overhead_pct(p.protected_clear_bytes, p.protected_wire_bytes),
                peak_wan_util_clear_pct: peaks.then(|| round4(100.0 * p.peak_wan_util_clear)),
                wan_links_pushed_over: peaks.then_some(p.links_pushed_over),
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
                peak_util_pct: peaks.then(|| round4(100.0 * r.peak_util)),
                peak_bin_start: peaks.then(|| format!("{:02}:{:02}", mins / 60, mins % 60)),
                bytes_up_clear: r.clear.as_ref().map(|c| c.bytes_up),
                bytes_down_clear: r.clear.as_ref().map(|c| c.bytes_down),
                peak_util_clear_pct: r.clear.as_ref().filter(|_| peaks).map(|c| round4(100.0 * c.peak_util)),
                pushed_over_threshold: r
                    .clear
                    .as_ref()
                    .filter(|_| peaks)
                    .zip(packet_layer.as_ref())
                    .map(|(c, l)| c.peak_util <= l.params.wan_threshold && r.peak_util > l.params.wan_threshold),
            }
        })
        .collect();

    let overhead_rows: Vec<OverheadRow> = packet_layer
        .as_ref()
        .map(|l| {
            l.by_app
                .iter()
                .enumerate()
                .map(|(i, a)| OverheadRow {
                    app: app_names[i].clone(),
                    packets: a.packets,
                    clear_bytes: a.clear_bytes,
                    wire_bytes: a.wire_bytes,
                    overhead_pct: overhead_pct(a.clear_bytes, a.wire_bytes),
                    sessions: a.sessions,
                    sessions_protected: a.sessions_protected,
                    protected_share_pct: pct(a.clear_bytes, a.clear_bytes_all),
                })
                .collect()
        })
        .unwrap_or_default();
    let size_rows: Vec<PacketSizeRow> = packet_layer
        .as_ref()
        .map(|l| {
            let mut rows = Vec::new();
            for (i, buckets) in l.sizes.iter().enumerate() {
                for (b, bucket) in buckets.iter().enumerate() {
                    if bucket.packets == 0 {
                        continue;
                    }
                    rows.push(PacketSizeRow {
                        app: app_names[i].clone(),
                        ip_len_min: if b == 0 { 0 } else { SIZE_BUCKETS[b - 1] + 1 },
                        ip_len_max: SIZE_BUCKETS[b],
                        packets: bucket.packets,
                        pure_acks: bucket.pure_acks,
                        clear_bytes: bucket.clear_bytes,
                        wire_bytes: bucket.wire_bytes,
                    });
                }
            }
            rows
        })
        .unwrap_or_default();
    let helpdesk_rows: Vec<HelpdeskRow> = campaign_days
        .iter()
        .filter_map(|c| c.helpdesk.as_ref().map(|h| (c, h)))
        .map(|(c, h)| {
            let secs = |d: Option<SimDuration>| d.map(|x| round4(x.as_secs_f64()));
            HelpdeskRow {
                day: c.day,
                date: date_label(sc, c.day),
                weekday: weekday(c.day),
                agents: h.agents,
                calls_total: h.total_calls(),
                calls_ipsec: h.ipsec_calls(),
                calls_ipsec_blocked: h.calls[Cause::IpsecBlocked],
                calls_ipsec_delay: h.calls[Cause::IpsecDelay],
                calls_failover_stall: h.calls[Cause::FailoverStall],
                calls_nap_notice: h.calls[Cause::NapNotice],
                calls_nap_blocked: h.calls[Cause::NapBlocked],
                calls_firewall: h.calls[Cause::Firewall],
                calls_other: h.calls[Cause::Other],
                answered: h.answered,
                waiting_at_close: h.waiting_at_close,
                mean_wait_s: secs(h.mean_wait),
                p90_wait_s: secs(h.p90_wait),
                max_wait_s: secs(h.max_wait),
                occupancy_pct: h.occupancy().map(|o| round4(100.0 * o)),
                users_affected: c.users_affected.round(),
                users_ipsec_blocked: c.users_by_cause[Cause::IpsecBlocked].round(),
                users_ipsec_delay: c.users_by_cause[Cause::IpsecDelay].round(),
            }
        })
        .collect();
    let event_rows: Vec<RolloutEventRow> = rollout_log
        .iter()
        .map(|e| RolloutEventRow {
            day: e.day,
            date: date_label(sc, e.day),
            phase: e.phase.clone(),
            wave: e.wave.clone(),
            event: e.event,
            detail: e.detail.clone(),
        })
        .collect();
    // The highest 30-day window of a daily series (null for runs shorter than 30 days).
    let peak_month = |f: &dyn Fn(&DayReport) -> u32| -> Option<f64> {
        let daily: Vec<f64> =
            campaign_days.iter().filter_map(|c| c.helpdesk.as_ref()).map(|h| f64::from(f(h))).collect();
        (daily.len() >= 30).then(|| daily.windows(30).map(|w| w.iter().sum::<f64>()).fold(0.0, f64::max))
    };
    let sessions_total: u64 = collected.days.iter().map(|d| d.sessions).sum();
    let bytes_total: u64 = timeline.iter().map(|t| t.bytes_total).sum();
    let wan_total: u64 = collected.days.iter().map(|d| d.wan_session_bytes).sum();
    let peak_day =
        collected.days.iter().max_by(|a, b| a.peak_wan_util.total_cmp(&b.peak_wan_util).then(b.day.cmp(&a.day)));
    let failover = sc.ipsec.is_some() && !campus.clusters.is_empty();
    let fallback = collected
        .days
        .iter()
        .filter_map(|d| d.ipsec.as_ref())
        .flat_map(|i| &i.by_os)
        .fold((0.0f64, 0.0f64), |(n, s), o| (n + o.fallback_waits as f64, s + o.fallback_wait_s));
    let stall_rows = stall_rows(&campus, &traffic, &collected.stalls, scale);
    let summary = Summary {
        failover_stall_p95_s_by_os: failover.then(|| stall_quantile_by_os(&stall_rows, 0.95)),
        failover_stall_max_s_by_os: failover.then(|| stall_quantile_by_os(&stall_rows, 1.0)),
        scenario: sc.name.clone(),
        seed: req.seed,
        days: req.days,
        hosts_total: census.hosts_total,
        clients_total: census.clients_total,
        servers_total: census.servers_total,
        domain_joined_pct_start: Some(census.domain_joined_pct),
        domain_joined_pct_end: Some(
            campaign_days.last().filter(|_| has_campaign).map_or(census.domain_joined_pct, |c| {
                round4(100.0 * c.joined as f64 / census.hosts_total.max(1) as f64)
            }),
        ),
        helpdesk_ipsec_calls_peak_month: peak_month(&|h| h.ipsec_calls()),
        helpdesk_total_calls_peak_month: peak_month(&|h| h.total_calls()),
        boundary_pct_of_joined: Some(
            campaign_days
                .last()
                .filter(|_| has_campaign)
                .map_or(census.boundary_pct_of_joined, |c| round4(100.0 * c.boundary as f64 / c.joined.max(1) as f64)),
        ),
        sessions_total,
        traffic_bytes_total: bytes_total,
        wan_session_bytes_total: wan_total,
        wan_session_bytes_pct: if bytes_total == 0 {
            0.0
        } else {
            round4(100.0 * wan_total as f64 / bytes_total as f64)
        },
        peak_wan_link_util_pct: peak_day.filter(|_| peaks).map(|d| round4(100.0 * d.peak_wan_util)),
        peak_wan_link: peak_day.filter(|_| peaks).and_then(|d| d.peak_wan_link).map(link_name),
        wan_links_over_80pct_peak_day: peaks
            .then(|| collected.days.iter().map(|d| d.wan_links_over_80).max().unwrap_or(0)),
        bandwidth_overhead_mean_pct: packet_layer.as_ref().and_then(|l| {
            let clear: u64 = l.by_app.iter().map(|a| a.clear_bytes).sum();
            let wire: u64 = l.by_app.iter().map(|a| a.wire_bytes).sum();
            overhead_pct(clear, wire)
        }),
        bandwidth_overhead_app_min_pct: overhead_rows
            .iter()
            .filter(|r| r.sessions_protected >= MIN_PROTECTED_SESSIONS)
            .filter_map(|r| r.overhead_pct)
            .reduce(f64::min),
        bandwidth_overhead_app_max_pct: overhead_rows
            .iter()
            .filter(|r| r.sessions_protected >= MIN_PROTECTED_SESSIONS)
            .filter_map(|r| r.overhead_pct)
            .reduce(f64::max),
        wan_links_pushed_over_threshold: packet_layer.as_ref().filter(|_| peaks).map(|_| {
            collected.days.iter().filter_map(|d| d.packets.as_ref()).map(|p| p.links_pushed_over).max().unwrap_or(0)
        }),
        server_ipsec_cpu_pct_max: packet_layer
            .as_ref()
            .map(|l| round4(l.server_peak_cpu_pct.iter().copied().fold(0.0, f64::max))),
        client_ipsec_cpu_pct_mean: packet_layer.as_ref().map(|l| {
            // Over an 8-hour working day per simulated day.
            let busy_ns = census.clients_total as f64 * f64::from(req.days) * 8.0 * SimDuration::HOUR.as_nanos() as f64;
            round4(100.0 * l.client_cpu_ns / busy_ns.max(1.0))
        }),
        packet_sample_hosts: packet_layer.as_ref().map(|l| l.sampled_hosts() as u64),
        packet_sample_packets: packet_layer.as_ref().map(|l| l.sample_packets),
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
        server_qm_sas_peak: server_peaks.map(|p| p.0),
        server_sa_memory_peak_bytes: server_peaks.map(|p| p.1),
        fallback_waits_total: sc.ipsec.as_ref().map(|_| fallback.0.round() as u64),
        fallback_wait_s_mean: sc
            .ipsec
            .as_ref()
            .and_then(|_| (fallback.0 > 0.0).then(|| round4(fallback.1 / fallback.0))),
        events_processed: stats.events,
        wall_s: round4(wall_s),
    };

    let write_err = |source| RunError::Write { path: req.out.display().to_string(), source };
    let mut files = RunFiles::new();
    if failover {
        files.add_csv("failover_stalls.csv", &stall_rows).map_err(write_err)?;
    }
    files
        .add_csv_records("timeline.csv", &TimelineRow::header(&app_names), timeline.iter().map(TimelineRow::fields))
        .map_err(write_err)?;
    files.add_csv("traffic_by_app.csv", &by_app).map_err(write_err)?;
    files.add_csv("wan_links.csv", &links).map_err(write_err)?;
    if sc.helpdesk.is_some() {
        files.add_csv("helpdesk.csv", &helpdesk_rows).map_err(write_err)?;
    }
    if sc.rollout.is_some() {
        files.add_csv("rollout_events.csv", &event_rows).map_err(write_err)?;
    }
    if packet_layer.is_some() {
        files.add_csv("overhead_by_app.csv", &overhead_rows).map_err(write_err)?;
        files.add_csv("packet_sizes.csv", &size_rows).map_err(write_err)?;
    }
    if sc.ipsec.is_some() {
        files.add_csv("servers.csv", &server_rows).map_err(write_err)?;
        files.add_csv("outcomes_by_os.csv", &os_rows).map_err(write_err)?;
    }
    files.add_json("campus.json", &census).map_err(write_err)?;
    files.add_json("summary.json", &summary).map_err(write_err)?;
    // Charts read the files just assembled, never model state, so `domiso plot` redraws the
    // same bytes; they go in before the manifest so its digests cover them.
    let charts = crate::output::plot::draw_run(&|name| files.get(name).map(<[u8]>::to_vec))
        .map_err(|e| RunError::Chart(e.to_string()))?;
    for (name, bytes) in charts {
        files.add_bytes(&name, bytes);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_bytes();
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
        peak_rss_bytes: peak_rss,
        sim_s: round4(sim_s),
        sim_events_per_s: (stats.events as f64 / sim_s.max(1e-9)).round(),
        sim_cpu_s: sim_cpu_s.map(round4),
        pending_mean: pending_sum.checked_div(pending_samples).unwrap_or(0),
        pending_max: pending_max as u64,
        rss_bytes_per_host: peak_rss.map(|b| b / census.hosts_total.max(1)),
        sa_table_bytes: sa_memory.map(|m| m.0),
        sa_live_peak: sa_memory.map(|m| m.1),
        sa_bytes_per_live_sa: sa_memory.and_then(|(bytes, live)| bytes.checked_div(live)),
        files: files.digests(),
        sizes: files.sizes(),
    };
    files.add_json("manifest.json", &manifest).map_err(write_err)?;
    let pcap = match (&req.pcap, &packet_layer) {
        (Some(path), Some(layer)) => {
            let stats = crate::output::capture::write(
                path,
                &layer.captured,
                &campus,
                &sc.traffic.apps,
                &layer.params.model,
                req.seed,
            )
            .map_err(|source| RunError::Pcap { path: path.display().to_string(), source })?;
            Some((path.clone(), stats))
        }
        _ => None,
    };
    files.commit(&req.out).map_err(write_err)?;
    Ok(RunOutcome { dir: req.out.clone(), pcap, summary, manifest })
}

/// The calendar date of a simulated day, "YYYY-MM-DD" (empty without a rollout date).
pub fn date_label(sc: &Scenario, day: u32) -> String {
    sc.rollout.as_ref().map(|r| r.start_date.plus_days(day).to_string()).unwrap_or_default()
}

/// Scales a day's sampled counts to the population (see `run.traffic_sample`).
fn scale_day(d: &mut DayRecord, f: f64) {
    let up = |x: &mut u64| *x = (*x as f64 * f).round() as u64;
    up(&mut d.sessions);
    d.app_sessions.iter_mut().for_each(up);
    d.app_bytes.iter_mut().for_each(up);
    up(&mut d.wan_session_bytes);
    up(&mut d.wan_link_bytes);
    d.peak_wan_util *= f;
    if let Some(i) = d.ipsec.as_mut() {
        for x in [
            &mut i.bytes_protected,
            &mut i.bytes_clear,
            &mut i.bytes_blocked,
            &mut i.bytes_managed_pairs,
            &mut i.bytes_managed_pairs_protected,
            &mut i.main_modes,
            &mut i.quick_modes,
            &mut i.rekeys,
            &mut i.negotiation_failures,
            &mut i.fallbacks,
            &mut i.blocked,
            &mut i.peak_live_mm,
            &mut i.peak_live_qm,
            &mut i.end_live_mm,
            &mut i.end_live_qm,
        ] {
            up(x);
        }
        i.blocked_by_reason.iter_mut().for_each(up);
        i.app_protected.iter_mut().for_each(up);
        i.app_clear.iter_mut().for_each(up);
        for o in &mut i.by_os {
            for x in [
                &mut o.sessions,
                &mut o.protected,
                &mut o.clear_exempt,
                &mut o.clear_fallback,
                &mut o.clear_soft,
                &mut o.blocked,
                &mut o.fallback_waits,
                &mut o.ike_waits,
            ] {
                up(x);
            }
            o.fallback_wait_s *= f;
            o.ike_wait_s *= f;
        }
    }
    if let Some(p) = d.packets.as_mut() {
        for x in [
            &mut p.clear_bytes,
            &mut p.wire_bytes,
            &mut p.wire_packets,
            &mut p.protected_clear_bytes,
            &mut p.protected_wire_bytes,
        ] {
            up(x);
        }
        p.peak_wan_util_clear *= f;
    }
    d.wan_links_over_80 = 0;
    d.wan_links_over_100 = 0;
}

/// Scales a link's sampled day; the day's counts of busy links follow from the scaled
/// utilisations.
fn scale_link(l: &mut LinkDayRecord, f: f64) {
    l.bytes_up = (l.bytes_up as f64 * f).round() as u64;
    l.bytes_down = (l.bytes_down as f64 * f).round() as u64;
    l.peak_util *= f;
    if let Some(c) = l.clear.as_mut() {
        c.bytes_up = (c.bytes_up as f64 * f).round() as u64;
        c.bytes_down = (c.bytes_down as f64 * f).round() as u64;
        c.peak_util *= f;
    }
}

/// (wire - clear) / clear in percent.
fn overhead_pct(clear: u64, wire: u64) -> Option<f64> {
    (clear > 0).then(|| round4(100.0 * (wire as f64 - clear as f64) / clear as f64))
}

/// Sessions an application needs under IPsec before its overhead enters the min/max.
const MIN_PROTECTED_SESSIONS: u64 = 100;

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round4(100.0 * part as f64 / whole as f64))
}

/// What [`spawn_ahead`] returns: the shape of `world::PlanSource` and
/// `host_draws::DrawSource`.
type AheadSource<T> = Box<dyn FnMut(Option<T>) -> Option<T> + 'static>;

/// Runs `produce` on a thread of `scope`, one item ahead of the source it returns: each
/// call of the source hands back the item its caller is done with, if any (the thread
/// makes the next items into it), and takes the next one, `None` when `produce` has no
/// more. The thread ends when the source is dropped or `produce` runs out. `None` when no
/// thread can be started: the caller then does without.
fn spawn_ahead<'scope, T: Send + 'static>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut produce: impl FnMut(Option<T>) -> Option<T> + Send + 'scope,
) -> Option<AheadSource<T>> {
    use std::sync::mpsc::TryRecvError;
    let (tx, rx) = std::sync::mpsc::sync_channel::<T>(0);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<T>();
    std::thread::Builder::new()
        .spawn_scoped(scope, move || {
            loop {
                let spare = match back_rx.try_recv() {
                    Ok(item) => Some(item),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break, // the source is gone
                };
                let Some(item) = produce(spare) else { break };
                if tx.send(item).is_err() {
                    break; // the loop stopped early
                }
            }
        })
        .ok()?;
    Some(Box::new(move |done| {
        if let Some(item) = done {
            let _ = back_tx.send(item); // the thread may have finished: then it is dropped
        }
        rx.recv().ok()
    }))
}

/// The busiest servers by peak quick-mode SAs (ties: memory, then host order). Under a
/// traffic sample (`scale` > 1) peaks are left empty and servers ranked by quick modes,
/// whose totals scale.
fn server_rows(
    sc: &Scenario,
    campus: &Campus,
    net: &SecNet,
    packets: Option<&PacketLayer>,
    scale: f64,
) -> Vec<ServerRow> {
    let Some(params) = &sc.ipsec else { return Vec::new() };
    let whole = scale == 1.0;
    let mut all: Vec<_> = net.servers.iter().filter(|(_, s)| s.peak_qm > 0 || s.peak_mm > 0).collect();
    all.sort_by(|a, b| {
        let load = if whole {
            b.1.peak_qm.cmp(&a.1.peak_qm).then(b.1.peak_memory_bytes.cmp(&a.1.peak_memory_bytes))
        } else {
            b.1.quick_modes.cmp(&a.1.quick_modes).then(b.1.main_modes.cmp(&a.1.main_modes))
        };
        load.then(a.0.cmp(&b.0))
    });
    let scaled = |n: u64| if whole { n } else { (n as f64 * scale).round() as u64 };
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
                peak_qm_sas: whole.then_some(s.peak_qm),
                peak_mm_sas: whole.then_some(s.peak_mm),
                main_modes: scaled(s.main_modes),
                quick_modes: scaled(s.quick_modes),
                peak_main_modes_per_s: whole.then(|| round4(per_s)),
                peak_dh_cpu_pct: whole.then(|| round4(100.0 * per_s * params.sa.dh_cpu.as_secs_f64())),
                peak_sa_memory_bytes: whole.then_some(s.peak_memory_bytes),
                peak_hour_ipsec_cpu_pct: packets.and_then(|p| p.server_cpu_pct(*h)).map(round4),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Items come in order, handed-back ones are made into again, and the source says
    /// `None` once the producer is done.
    #[test]
    fn spawn_ahead_hands_items_over_in_order_and_reuses_the_returned_ones() {
        let reused = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let mut next = 0u32;
            let reused = &reused;
            let mut source = super::spawn_ahead(s, move |spare: Option<Vec<u32>>| {
                (next < 5).then(|| {
                    let mut v = spare.inspect(|_| _ = reused.fetch_add(1, Ordering::Relaxed)).unwrap_or_default();
                    v.clear();
                    v.push(next);
                    next += 1;
                    v
                })
            })
            .expect("a thread");
            let mut got = Vec::new();
            let mut done = None;
            while let Some(v) = source(done.take()) {
                got.push(v[0]);
                done = Some(v);
            }
            assert_eq!(got, [0, 1, 2, 3, 4]);
        });
        // The producer is an item ahead: item k + 2 is made once item k is back (the source
        // sends it back before it takes k + 1, which the producer must have handed over
        // first), so items 2 to 4 reuse a buffer; item 1 does if item 0 came back in time.
        let n = reused.load(Ordering::Relaxed);
        assert!((3..=4).contains(&n), "{n} buffers reused");
    }

    /// A producer without end stops when its source is dropped: the scope can join it.
    #[test]
    fn spawn_ahead_ends_when_its_source_is_dropped() {
        std::thread::scope(|s| {
            let mut k = 0u64;
            let mut source = super::spawn_ahead(s, move |_: Option<u64>| {
                k += 1;
                Some(k)
            })
            .expect("a thread");
            assert_eq!(source(None), Some(1));
            assert_eq!(source(Some(1)), Some(2));
            drop(source);
        });
    }
}
