//! One row struct per output file, serialised with serde (CSV via the csv crate, JSON via
//! serde_json). Column and key names are the stable output contract of DESIGN.md.
//!
//! Contract: numbers are written as produced (Rust's shortest round-trip float format, so
//! the text is deterministic); percentages are 0-100; byte counts are integers; a value a
//! run cannot compute is `null` in JSON, never 0.

use std::collections::BTreeMap;

use serde::Serialize;

/// An optional cell: empty when absent.
fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// One row of `timeline.csv`: a simulated day. Per-application byte columns follow the
/// fixed ones, named `bytes_<app>`; because their number depends on the scenario's
/// catalogue, the header is built by [`TimelineRow::header`].
#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub day: u32,
    pub weekday: &'static str,
    pub sessions: u64,
    pub bytes_total: u64,
    pub wan_session_bytes: u64,
    pub wan_link_bytes: u64,
    /// Busy-link figures are empty when traffic is sampled (`run.traffic_sample` < 1): the
    /// peaks of a sample do not scale to the peaks of the whole.
    pub peak_wan_util_pct: Option<f64>,
    pub peak_wan_link: Option<String>,
    pub wan_links_over_80pct: Option<u32>,
    pub wan_links_over_100pct: Option<u32>,
    pub app_bytes: Vec<u64>,
    /// IPsec columns; empty cells (NaN in pandas) for a run without IPsec.
    pub ipsec: Option<TimelineIpsec>,
    /// Packet columns; empty below packet granularity.
    pub packets: Option<TimelinePackets>,
    /// Rollout columns; empty for a run without a campaign.
    pub rollout: Option<TimelineRollout>,
}

/// The IPsec columns of a timeline row.
#[derive(Debug, Clone)]
pub struct TimelineIpsec {
    pub hosts_no_policy: u64,
    pub hosts_permit_only: u64,
    pub hosts_request: u64,
    pub hosts_secure_request: u64,
    pub hosts_require: u64,
    pub hosts_require_encryption: u64,
    pub active_mm_sas_peak: u64,
    pub active_qm_sas_peak: u64,
    pub main_mode_negotiations: u64,
    pub quick_mode_negotiations: u64,
    pub rekeys: u64,
    pub negotiation_failures: u64,
    pub fallbacks_to_clear: u64,
    pub blocked_connections: u64,
    pub bytes_protected: u64,
    pub bytes_clear: u64,
    pub bytes_blocked: u64,
    pub protected_pct_managed: Option<f64>,
}

/// The rollout columns of a timeline row (a run with a campaign).
#[derive(Debug, Clone)]
pub struct TimelineRollout {
    pub date: String,
    pub hosts_joined: u64,
    pub domain_joined_pct: f64,
    pub boundary_machines: u64,
    pub boundary_pct_of_joined: f64,
    pub reimaging: u64,
    pub joins: u64,
    pub reimages: u64,
    pub boundary_grants: u64,
    pub nap_reporting: u64,
    pub nap_deferred: u64,
    pub nap_enforcement: u64,
    pub nap_unhealthy: u64,
    pub firewall_on: u64,
    pub users_affected: f64,
    pub calls_ipsec: Option<u32>,
    pub calls_total: Option<u32>,
    pub policy_versions: u64,
    pub roaming_waits: f64,
    pub roaming_failures: f64,
}

impl TimelineRollout {
    const NAMES: [&'static str; 20] = [
        "date",
        "hosts_joined",
        "domain_joined_pct",
        "boundary_machines",
        "boundary_pct_of_joined",
        "reimaging",
        "joins",
        "reimages",
        "boundary_grants",
        "nap_reporting",
        "nap_deferred",
        "nap_enforcement",
        "nap_unhealthy",
        "firewall_on",
        "users_affected",
        "calls_ipsec",
        "calls_total",
        "policy_versions",
        "roaming_waits",
        "roaming_failures",
    ];

    fn fields(&self) -> Vec<String> {
        let opt = |x: Option<u32>| x.map(|v| v.to_string()).unwrap_or_default();
        vec![
            self.date.clone(),
            self.hosts_joined.to_string(),
            self.domain_joined_pct.to_string(),
            self.boundary_machines.to_string(),
            self.boundary_pct_of_joined.to_string(),
            self.reimaging.to_string(),
            self.joins.to_string(),
            self.reimages.to_string(),
            self.boundary_grants.to_string(),
            self.nap_reporting.to_string(),
            self.nap_deferred.to_string(),
            self.nap_enforcement.to_string(),
            self.nap_unhealthy.to_string(),
            self.firewall_on.to_string(),
            self.users_affected.to_string(),
            opt(self.calls_ipsec),
            opt(self.calls_total),
            self.policy_versions.to_string(),
            self.roaming_waits.to_string(),
            self.roaming_failures.to_string(),
        ]
    }
}

/// One row of `failover_stalls.csv`: a sampled connection that met a failed NLB node.
#[derive(Debug, Clone, Serialize)]
pub struct StallRow {
    pub day: u32,
    /// Time of day of the failure (in progress) or of the connection's start, "HH:MM:SS.mmm".
    pub time: String,
    /// Cluster index (as in scheduled failures) and the service behind it.
    pub cluster: u32,
    pub service: String,
    /// Node index within the cluster.
    pub node: u32,
    pub client: u32,
    pub client_os: String,
    pub app: String,
    /// Open on the node when it failed (rather than opened afterwards).
    pub in_progress: bool,
    /// Every node of the cluster was down: the wait was for a repair.
    pub cluster_down: bool,
    pub ipsec: bool,
    /// How the client noticed: none (clear, or the cluster had not converged),
    /// idle-timer, tcp-retransmit.
    pub detection: String,
    pub stall_s: f64,
    pub app_failed: bool,
    /// Connections of the whole population this sampled one stands for.
    pub weight: f64,
}

/// One row of `helpdesk.csv`: a day at the helpdesk.
#[derive(Debug, Clone, Serialize)]
pub struct HelpdeskRow {
    pub day: u32,
    pub date: String,
    pub weekday: &'static str,
    pub agents: u32,
    pub calls_total: u32,
    pub calls_ipsec: u32,
    pub calls_ipsec_blocked: u32,
    pub calls_ipsec_delay: u32,
    pub calls_failover_stall: u32,
    pub calls_nap_notice: u32,
    pub calls_nap_blocked: u32,
    pub calls_firewall: u32,
    pub calls_other: u32,
    pub answered: u32,
    pub waiting_at_close: u32,
    pub mean_wait_s: Option<f64>,
    pub p90_wait_s: Option<f64>,
    pub max_wait_s: Option<f64>,
    pub occupancy_pct: Option<f64>,
    /// Users who met at least one failure that day (scaled from the traffic sample), and
    /// those whose connections IPsec blocked or delayed noticeably.
    pub users_affected: f64,
    pub users_ipsec_blocked: f64,
    pub users_ipsec_delay: f64,
}

/// One row of `rollout_events.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutEventRow {
    pub day: u32,
    pub date: String,
    pub phase: String,
    pub wave: String,
    pub event: &'static str,
    pub detail: String,
}

/// The packet columns of a timeline row.
#[derive(Debug, Clone)]
pub struct TimelinePackets {
    pub ip_bytes_clear: u64,
    pub ip_bytes_wire: u64,
    pub wire_packets: u64,
    pub overhead_pct_protected: Option<f64>,
    pub peak_wan_util_clear_pct: Option<f64>,
    pub wan_links_pushed_over: Option<u32>,
}

impl TimelinePackets {
    const NAMES: [&'static str; 6] = [
        "ip_bytes_clear",
        "ip_bytes_wire",
        "wire_packets",
        "overhead_pct_protected",
        "peak_wan_util_clear_pct",
        "wan_links_pushed_over_threshold",
    ];

    fn fields(&self) -> Vec<String> {
        vec![
            self.ip_bytes_clear.to_string(),
            self.ip_bytes_wire.to_string(),
            self.wire_packets.to_string(),
            self.overhead_pct_protected.map(|x| x.to_string()).unwrap_or_default(),
            opt(self.peak_wan_util_clear_pct),
            opt(self.wan_links_pushed_over),
        ]
    }
}

impl TimelineIpsec {
    const NAMES: [&'static str; 18] = [
        "hosts_no_policy",
        "hosts_permit_only",
        "hosts_request",
        "hosts_secure_request",
        "hosts_require",
        "hosts_require_encryption",
        "active_mm_sas_peak",
        "active_qm_sas_peak",
        "main_mode_negotiations",
        "quick_mode_negotiations",
        "rekeys",
        "negotiation_failures",
        "fallbacks_to_clear",
        "blocked_connections",
        "bytes_protected",
        "bytes_clear",
        "bytes_blocked",
        "protected_pct_managed",
    ];

    fn fields(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            self.hosts_no_policy,
            self.hosts_permit_only,
            self.hosts_request,
            self.hosts_secure_request,
            self.hosts_require,
            self.hosts_require_encryption,
            self.active_mm_sas_peak,
            self.active_qm_sas_peak,
            self.main_mode_negotiations,
            self.quick_mode_negotiations,
            self.rekeys,
            self.negotiation_failures,
            self.fallbacks_to_clear,
            self.blocked_connections,
            self.bytes_protected,
            self.bytes_clear,
            self.bytes_blocked,
        ]
        .iter()
        .map(u64::to_string)
        .collect();
        v.push(self.protected_pct_managed.map(|x| x.to_string()).unwrap_or_default());
        v
    }
}

impl TimelineRow {
    const FIXED: [&'static str; 10] = [
        "day",
        "weekday",
        "sessions",
        "bytes_total",
        "wan_session_bytes",
        "wan_link_bytes",
        "peak_wan_util_pct",
        "peak_wan_link",
        "wan_links_over_80pct",
        "wan_links_over_100pct",
    ];

    pub fn header(app_names: &[String]) -> Vec<String> {
        Self::FIXED
            .iter()
            .chain(TimelineIpsec::NAMES.iter())
            .chain(TimelinePackets::NAMES.iter())
            .chain(TimelineRollout::NAMES.iter())
            .map(|s| s.to_string())
            .chain(app_names.iter().map(|a| format!("bytes_{a}")))
            .collect()
    }

    pub fn fields(&self) -> Vec<String> {
        let mut v = vec![
            self.day.to_string(),
            self.weekday.to_string(),
            self.sessions.to_string(),
            self.bytes_total.to_string(),
            self.wan_session_bytes.to_string(),
            self.wan_link_bytes.to_string(),
            opt(self.peak_wan_util_pct),
            self.peak_wan_link.clone().unwrap_or_default(),
            opt(self.wan_links_over_80pct),
            opt(self.wan_links_over_100pct),
        ];
        match &self.ipsec {
            Some(i) => v.extend(i.fields()),
            None => v.extend(std::iter::repeat_n(String::new(), TimelineIpsec::NAMES.len())),
        }
        match &self.packets {
            Some(p) => v.extend(p.fields()),
            None => v.extend(std::iter::repeat_n(String::new(), TimelinePackets::NAMES.len())),
        }
        match &self.rollout {
            Some(r) => v.extend(r.fields()),
            None => v.extend(std::iter::repeat_n(String::new(), TimelineRollout::NAMES.len())),
        }
        v.extend(self.app_bytes.iter().map(u64::to_string));
        v
    }
}

/// One row of `traffic_by_app.csv`: an application's day.
#[derive(Debug, Clone, Serialize)]
pub struct AppDayRow {
    pub day: u32,
    pub app: String,
    pub sessions: u64,
    pub bytes: u64,
}

/// One row of `outcomes_by_os.csv`: what the connections of one kind of initiator (group
/// and OS) met in a day.
#[derive(Debug, Clone, Serialize)]
pub struct OsOutcomeRow {
    pub day: u32,
    /// Client category of the initiator, or "server".
    pub initiator: &'static str,
    pub initiator_os: &'static str,
    pub sessions: u64,
    pub protected: u64,
    pub clear_exempt: u64,
    pub clear_fallback: u64,
    pub clear_soft_sa: u64,
    pub blocked: u64,
    /// Connections that waited for the fallback to clear, and their mean wait.
    pub fallback_waits: u64,
    pub mean_fallback_wait_ms: Option<f64>,
    /// Connections that waited for IKE (main and quick mode) to finish, and their mean wait.
    pub ike_waits: u64,
    pub mean_ike_wait_ms: Option<f64>,
}

/// One row of `servers.csv`: one of the busiest servers, by peak quick-mode SAs.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRow {
    pub server: String,
    pub role: &'static str,
    pub os: &'static str,
    pub site: String,
    pub policy: String,
    /// Peaks are empty when traffic is sampled (`run.traffic_sample` < 1): a server then
    /// meets only the sampled share of its clients, and the peak of a share does not
    /// scale to the peak of the whole. Main and quick modes are then scaled totals.
    pub peak_qm_sas: Option<u32>,
    pub peak_mm_sas: Option<u32>,
    pub main_modes: u64,
    pub quick_modes: u64,
    /// Busiest minute's main modes, per second.
    pub peak_main_modes_per_s: Option<f64>,
    /// Diffie-Hellman CPU in the busiest minute, percent of one core.
    pub peak_dh_cpu_pct: Option<f64>,
    pub peak_sa_memory_bytes: Option<u64>,
    /// Packet granularity: ESP processing CPU in the busiest hour, percent of one core.
    pub peak_hour_ipsec_cpu_pct: Option<f64>,
}

/// One row of `wan_links.csv`: a wide-area link's day.
#[derive(Debug, Clone, Serialize)]
pub struct WanLinkRow {
    pub day: u32,
    pub link: String,
    pub kind: &'static str,
    pub site: String,
    pub region: String,
    pub site_clients: u32,
    pub capacity_mbps: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// The busiest bin's utilisation and start (`HH:MM`); empty when traffic is sampled.
    pub peak_util_pct: Option<f64>,
    pub peak_bin_start: Option<String>,
    /// Packet granularity: the same packets without IPsec, the busiest bin's utilisation
    /// then, and whether IPsec pushed the link over the scenario's threshold.
    pub bytes_up_clear: Option<u64>,
    pub bytes_down_clear: Option<u64>,
    pub peak_util_clear_pct: Option<f64>,
    pub pushed_over_threshold: Option<bool>,
}

/// One row of `overhead_by_app.csv`: an application's IPsec bandwidth overhead over the
/// run. `packets`, `clear_bytes` and `wire_bytes` count the traffic carried under IPsec
/// (IP bytes; clear = the same sessions' packets without IPsec).
#[derive(Debug, Clone, Serialize)]
pub struct OverheadRow {
    pub app: String,
    pub packets: u64,
    pub clear_bytes: u64,
    pub wire_bytes: u64,
    pub overhead_pct: Option<f64>,
    pub sessions: u64,
    pub sessions_protected: u64,
    /// Share of the application's IP bytes carried under IPsec.
    pub protected_share_pct: Option<f64>,
}

/// One row of `packet_sizes.csv`: the sample's packets of one application in one size
/// bucket (inner IP length in clear).
#[derive(Debug, Clone, Serialize)]
pub struct PacketSizeRow {
    pub app: String,
    pub ip_len_min: u32,
    pub ip_len_max: u32,
    pub packets: u64,
    pub pure_acks: u64,
    pub clear_bytes: u64,
    pub wire_bytes: u64,
}

/// `summary.json`: the headline metrics of DESIGN.md (null where this run computes
/// nothing of the kind) plus the traffic totals of the baseline.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub days: u32,
    pub hosts_total: u64,
    pub clients_total: u64,
    pub servers_total: u64,
    pub domain_joined_pct_start: Option<f64>,
    pub domain_joined_pct_end: Option<f64>,
    pub boundary_pct_of_joined: Option<f64>,
    pub bandwidth_overhead_mean_pct: Option<f64>,
    pub bandwidth_overhead_app_min_pct: Option<f64>,
    pub bandwidth_overhead_app_max_pct: Option<f64>,
    pub failover_stall_p95_s_by_os: Option<BTreeMap<String, f64>>,
    pub failover_stall_max_s_by_os: Option<BTreeMap<String, f64>>,
    pub helpdesk_ipsec_calls_peak_month: Option<f64>,
    pub helpdesk_total_calls_peak_month: Option<f64>,
    pub protected_traffic_pct_end: Option<f64>,
    pub sa_negotiations_total: Option<u64>,
    pub blocked_connections_total: Option<u64>,
    /// Highest live quick-mode SAs and SA memory of any one server over the run; null
    /// when traffic is sampled (see `ServerRow`).
    pub server_qm_sas_peak: Option<u64>,
    pub server_sa_memory_peak_bytes: Option<u64>,
    /// Connections that waited for a fallback to clear, and their mean wait.
    pub fallback_waits_total: Option<u64>,
    pub fallback_wait_s_mean: Option<f64>,
    pub sessions_total: u64,
    pub traffic_bytes_total: u64,
    pub wan_session_bytes_total: u64,
    pub wan_session_bytes_pct: f64,
    /// Null when traffic is sampled (see `TimelineRow`).
    pub peak_wan_link_util_pct: Option<f64>,
    pub peak_wan_link: Option<String>,
    pub wan_links_over_80pct_peak_day: Option<u32>,
    /// Packet granularity: links IPsec pushed over the threshold on their worst day, and
    /// the sample replayed packet by packet.
    pub wan_links_pushed_over_threshold: Option<u32>,
    pub server_ipsec_cpu_pct_max: Option<f64>,
    pub client_ipsec_cpu_pct_mean: Option<f64>,
    pub packet_sample_hosts: Option<u64>,
    pub packet_sample_packets: Option<u64>,
    pub events_processed: u64,
    /// Wall-clock seconds of the run: a measurement of the machine, not of the model, so
    /// it is the one key that differs between two runs of the same scenario and seed.
    pub wall_s: f64,
}

/// `manifest.json`: what produced the run directory, and a sha256 and the size of every
/// other file (what `domiso check` verifies).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub tool: &'static str,
    pub version: &'static str,
    pub scenario: String,
    pub scenario_source: String,
    pub scenario_sha256: String,
    pub seed: u64,
    pub granularity: String,
    pub days: u32,
    pub hosts: u64,
    pub events_processed: u64,
    /// Measurements of the machine (vary between runs): wall time, event rate, memory.
    pub wall_s: f64,
    pub events_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
    /// The event loop alone (no campus build, no output): its time and event rate.
    pub sim_s: f64,
    pub sim_events_per_s: f64,
    /// CPU time of the loop's own thread (without the threads drawing ahead for it), if
    /// the platform tells: on a shared machine it moves less with the load than `sim_s`.
    pub sim_cpu_s: Option<f64>,
    /// Events queued, sampled every 65,536 events: mean and most.
    pub pending_mean: u64,
    pub pending_max: u64,
    /// Peak RSS over the number of hosts.
    pub rss_bytes_per_host: Option<u64>,
    /// The SA table at its largest (its slots' keys and entries), the most SAs alive at once
    /// (main mode, quick mode and soft: what the table holds), and the table's bytes per
    /// live SA (`null` without an IPsec layer).
    pub sa_table_bytes: Option<u64>,
    pub sa_live_peak: Option<u64>,
    pub sa_bytes_per_live_sa: Option<u64>,
    /// sha256 (hex) of every other file of the directory, by path relative to it.
    pub files: BTreeMap<String, String>,
    /// Size in bytes of every file of `files`, so a check can tell a truncated file from a
    /// tampered one. (Manifests written before it lack this key.)
    pub sizes: BTreeMap<String, u64>,
}

/// Files of a run directory whose bytes hold a measurement (a [`MEASUREMENT_KEYS`] key), so
/// their digest and size in the manifest differ between two runs too.
pub const FILES_WITH_MEASUREMENTS: [&str; 1] = ["summary.json"];

/// Summary keys that measure the machine, not the model: never compared, never a metric.
pub const MEASUREMENT_KEYS: [&str; 1] = ["wall_s"];

/// Manifest keys that measure the machine (times, rates, memory): they differ between two
/// runs of the same scenario and seed. Everything else in the manifest is the model's.
pub const MANIFEST_MEASUREMENT_KEYS: [&str; 7] =
    ["wall_s", "events_per_s", "peak_rss_bytes", "sim_s", "sim_events_per_s", "sim_cpu_s", "rss_bytes_per_host"];

/// A summary as metric columns: objects become `key.member`; the measurement keys are left
/// out. Sweeps and regression checks read summaries through this.
pub fn flatten_summary(summary: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    if let Some(obj) = summary.as_object() {
        for (k, v) in obj.iter().filter(|(k, _)| !MEASUREMENT_KEYS.contains(&k.as_str())) {
            match v {
                serde_json::Value::Object(m) => {
                    for (mk, mv) in m {
                        out.insert(format!("{k}.{mk}"), mv.clone());
                    }
                }
                other => {
                    out.insert(k.clone(), other.clone());
                }
            }
        }
    }
    out
}
