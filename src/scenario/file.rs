//! Raw scenario file: serde structs mirroring the TOML text one to one.
//!
//! Contract: every struct denies unknown fields, so a misspelt key is an error that names
//! the key (see `diag`). Quantities with units are unit strings parsed by `units`
//! (`"500 ms"`, `"100000 KB"`, `"1 Gbps"`); counts are unsigned integers, so a negative
//! count is a type error at its own position. Nothing here checks cross-field rules
//! (fractions summing to one, references to names): that is `build`'s job, which turns a
//! [`ScenarioFile`] into a typed `Scenario`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::{Bitrate, ByteSize, Duration};
use crate::model::kinds::{Affinity, ClientCategory, GroupKind, Os, Protocol, Role};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// A scenario this one modifies: a path relative to this file, or
    /// `"builtin:whitepaper-2008"`. Tables merge key by key; other values (arrays included)
    /// replace the base's.
    #[serde(default)]
    pub extends: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub run: RunFile,
    pub campus: CampusFile,
    #[serde(rename = "domain")]
    pub domains: Vec<DomainFile>,
    #[serde(rename = "server_role")]
    pub server_roles: Vec<ServerRoleFile>,
    pub nlb: NlbFile,
    #[serde(rename = "group", default)]
    pub groups: Vec<GroupFile>,
    pub topology: TopologyFile,
    pub traffic: TrafficFile,
    #[serde(rename = "app")]
    pub apps: Vec<AppFile>,
    /// IPsec settings; without them (and without policies) a run is a clear baseline.
    #[serde(default)]
    pub ipsec: Option<IpsecFile>,
    #[serde(rename = "filter_list", default)]
    pub filter_lists: Vec<FilterListFile>,
    #[serde(rename = "filter_action", default)]
    pub filter_actions: Vec<FilterActionFile>,
    #[serde(rename = "ipsec_policy", default)]
    pub ipsec_policies: Vec<IpsecPolicyFile>,
    /// GPOs in precedence order: the first that applies to a host wins.
    #[serde(rename = "gpo", default)]
    pub gpos: Vec<GpoFile>,
    #[serde(rename = "local_policy", default)]
    pub local_policies: Vec<LocalPolicyFile>,
    /// Packet-level settings (needed by `--granularity packet`).
    #[serde(default)]
    pub packet: Option<PacketFile>,
    /// A rollout schedule; without one the policy stays as configured.
    #[serde(default)]
    pub rollout: Option<RolloutFile>,
    /// How the computer population changes (joins, reimages, boundary grants, travel).
    #[serde(default)]
    pub population: Option<PopulationFile>,
    #[serde(default)]
    pub nap: Option<NapFile>,
    #[serde(default)]
    pub firewall: Option<FirewallFile>,
    #[serde(default)]
    pub helpdesk: Option<HelpdeskFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutFile {
    /// Calendar date of day 0, "YYYY-MM-DD" (labels only).
    pub start_date: String,
    /// Group Policy background refresh interval and its random offset.
    pub gp_refresh: Duration,
    pub gp_refresh_jitter: Duration,
    #[serde(rename = "wave", default)]
    pub waves: Vec<WaveFile>,
    #[serde(rename = "announcement", default)]
    pub announcements: Vec<AnnouncementFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveFile {
    pub name: String,
    pub phase: String,
    /// Earliest day the wave starts.
    pub start: u32,
    /// Start only after this (earlier) wave is done, plus `gap` days.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub gap: u32,
    /// Days over which the selected units are applied in equal daily batches.
    #[serde(default = "one_u32")]
    pub duration: u32,
    /// add-filters, set-filters, link-gpo, add-to-group, nap, firewall.
    pub action: String,
    /// The filter list, GPO or group acted on; for nap the mode (reporting, deferred,
    /// enforcement, off); for firewall "on" or "off".
    pub target: String,
    pub select: SelectFile,
    /// For set-filters: the filters.
    #[serde(default)]
    pub filters: Vec<String>,
    #[serde(default)]
    pub gate: Option<GateFile>,
    #[serde(default)]
    pub rollback: Option<RollbackFile>,
}

fn one_u32() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectFile {
    /// subnets, buildings, sites, domains, groups, prefixes, all.
    pub unit: String,
    /// smallest (default), largest, listed.
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Names of domains or groups, or prefixes.
    #[serde(default)]
    pub names: Vec<String>,
    /// Subnet purposes that count: client, server, cluster, vpn-pool (default all).
    #[serde(default)]
    pub purposes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    pub metric: String,
    pub below: f64,
    pub days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackFile {
    pub metric: String,
    pub above: f64,
    pub within: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementFile {
    pub day: u32,
    /// email, user-training, helpdesk-training.
    pub kind: String,
    /// ipsec, nap, firewall.
    pub topic: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationFile {
    /// Daily probability that a joinable test machine joins a managed domain: always, on
    /// top in the days after an IPsec e-mail, and on a day its owner was refused.
    pub join_rate: f64,
    pub join_rate_announced: f64,
    pub announcement_effect_days: u32,
    pub join_rate_refused: f64,
    /// PCs rebuilt per day as a share of all clients (the rebuilds fall on managed PCs);
    /// a rebuilt PC is unmanaged until it rejoins after a lognormal delay.
    pub reimaged_share_per_day: f64,
    pub rejoin_delay: Duration,
    pub rejoin_sigma: f64,
    /// The group business-need boundary grants go to.
    pub boundary_group: String,
    /// Untrusted connections a server refuses in a day before its owners ask for a
    /// boundary exception; the chance they ask; the chance it is granted; days to decide.
    pub boundary_request_threshold: u32,
    pub boundary_request_probability: f64,
    pub boundary_grant_probability: f64,
    pub boundary_grant_days: u32,
    /// Laptops on the road: daily probability, connections to local hosts there, share of
    /// those hosts with an incompatible IPsec policy.
    pub travel_probability: f64,
    pub foreign_connections: f64,
    pub foreign_incompatible: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NapFile {
    /// Daily probability that a healthy NAP client falls out of compliance.
    pub drift_per_day: f64,
    /// Share of lapses the client remediates by itself, how long that takes, and how long
    /// a lapse lasts when the user must fix it (lognormal medians, shared sigma).
    pub auto_remediation: f64,
    pub auto_remediation_time: Duration,
    pub manual_remediation_time: Duration,
    pub remediation_sigma: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallFile {
    /// Applications a firewalled client accepts inbound by its default rules.
    pub inbound_allowed: Vec<String>,
    /// Chance that a local administrator opens an application after it was blocked.
    pub local_exception_probability: f64,
    /// Group whose IPsec-authenticated connections bypass the firewall (scanners).
    #[serde(default)]
    pub bypass_group: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpdeskFile {
    pub agents_weekday: u32,
    pub agents_weekend: u32,
    /// Opening hours, ["HH:MM", "HH:MM"].
    pub open: [String; 2],
    pub mean_service: Duration,
    /// Mean service once the helpdesk has had IPsec training.
    pub trained_service: Duration,
    pub baseline_calls_per_month: f64,
    pub weekend_factor: f64,
    /// When calls come, by hour (24 weights).
    pub hourly: Vec<f64>,
    /// Chance that a user who meets a failure of a cause calls, per cause.
    pub propensity: BTreeMap<String, f64>,
    /// Multipliers: an inconsistent failure, an unannounced change, trained users.
    pub inconsistent_factor: f64,
    pub unannounced_factor: f64,
    pub trained_factor: f64,
    /// Multiplier for a user who met the same kind of failure on an earlier day.
    pub repeat_factor: f64,
    /// A fallback wait this long or longer is noticed.
    pub noticeable_delay: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpsecFile {
    pub main_mode_lifetime: Duration,
    pub quick_mode_lifetime: Duration,
    pub quick_mode_lifetime_bytes: ByteSize,
    pub quick_mode_idle: Duration,
    /// Fallback wait of Windows 2000/XP/2003 without the Simple Policy update.
    pub fallback_delay: Duration,
    /// Fallback wait with the Simple Policy update.
    pub fallback_delay_simple_policy: Duration,
    /// CPU time of one Diffie-Hellman computation, each side of an IKEv1 main mode.
    pub dh_cpu: Duration,
    pub authip_extended_mode: bool,
    /// Probability that an IKE negotiation between willing peers fails anyway.
    pub negotiation_failure_probability: f64,
    /// Managed hosts hold machine certificates (autoenrolment), so certificate rules work.
    pub managed_certificates: bool,
    /// Memory a host spends per main-mode SA and per quick-mode SA pair.
    pub mm_sa_memory: ByteSize,
    pub qm_sa_memory: ByteSize,
    /// Private ranges employees use at home (the lint checks they are exempt).
    pub home_ranges: Vec<String>,
    /// Ranges of networks laptops visit (hotels, partners); the lint flags overlaps with
    /// secure subnets.
    pub foreign_ranges: Vec<String>,
    /// Busiest servers listed in servers.csv.
    pub servers_reported: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterListFile {
    pub name: String,
    /// `"<src> <-> <dst> [protocol] [port]"`, `->` for one-way filters.
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterActionFile {
    pub name: String,
    /// permit, block, or a negotiation mode: request, secure-request, require,
    /// require-encryption.
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpsecPolicyFile {
    pub name: String,
    pub rules: Vec<RuleFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Name of a filter list.
    pub filters: String,
    /// Name of a filter action.
    pub action: String,
    /// kerberos, certificate, psk:<name>; default kerberos.
    #[serde(default)]
    pub auth: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpoFile {
    pub name: String,
    pub policy: String,
    /// Domains the GPO is linked to; absent = every domain, `[]` = none (yet).
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Groups with Apply Group Policy ("Domain Computers" = every joined computer).
    pub apply: Vec<String>,
    /// Groups denied Apply Group Policy.
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicyFile {
    pub clients: Vec<ClientCategory>,
    pub fraction: f64,
    pub policy: String,
    /// certificate, psk:<name>.
    #[serde(default)]
    pub credentials: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// Master seed used when the command line gives none.
    pub seed: u64,
    /// Simulated days.
    pub days: u32,
    /// Weekday of day 0: "mon" .. "sun".
    pub start_weekday: String,
    /// Width of the bins in which link utilisation is measured.
    pub utilisation_bin: Duration,
    /// Share of users (and servers) whose traffic is simulated; counts are scaled up by
    /// its inverse. 1 simulates everyone.
    #[serde(default = "one")]
    pub traffic_sample: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampusFile {
    pub clients: u32,
    pub users: u32,
    pub sites: u32,
    pub regions: u32,
    /// Share of all clients at the headquarters site.
    pub hq_client_share: f64,
    /// Zipf exponent of the other sites' sizes (by rank).
    pub site_size_zipf: f64,
    /// Sites with fewer clients than this have no servers of their own beyond the
    /// site-placed roles' own thresholds; used only to size buildings.
    pub clients_per_building: u32,
    /// Private block that all corporate subnets are carved from, e.g. "10.0.0.0/8".
    pub address_space: String,
    /// Prefix lengths of client subnets and their weights, e.g. { 24 = 0.5, 26 = 0.1 }.
    pub client_subnet_prefixes: BTreeMap<String, f64>,
    /// Range of the share of a subnet's addresses that hosts occupy.
    pub subnet_fill: [f64; 2],
    /// Prefix length of each region's VPN address pool (a large subnet, /18 to /21).
    pub vpn_pool_prefix: u8,
    pub laptop_fraction: f64,
    /// Share of users who are developers or testers and own the extra machines.
    pub multi_machine_user_fraction: f64,
    /// Share of a site's managed computers in the site's own domain (domains are mostly
    /// geographic); the rest are spread over all domains by share.
    pub domain_site_affinity: f64,
    /// Share of Windows XP SP2 / Server 2003 SP1 hosts with the Simple Policy update
    /// (KB914841), which cuts the fallback-to-clear wait from 3 s to 500 ms.
    pub simple_policy_update_fraction: f64,
    pub client_mix: BTreeMap<ClientCategory, f64>,
    pub managed_os: BTreeMap<Os, f64>,
    pub test_domain_os: BTreeMap<Os, f64>,
    pub legacy_os: BTreeMap<Os, f64>,
    pub vpn_guest_os: BTreeMap<Os, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFile {
    pub name: String,
    /// Share of the domain-joined (managed) computers in this domain.
    pub share: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerRoleFile {
    pub role: Role,
    /// Where the servers of this role live: "site", "hub" (regional data centres) or "hq".
    pub placement: String,
    /// One server per this many clients served by the placement unit (rounded up).
    pub per_clients: u32,
    /// For "site" placement: sites with fewer clients get none and use their hub's.
    #[serde(default)]
    pub min_site_clients: u32,
    pub os: BTreeMap<Os, f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NlbFile {
    pub clusters: u32,
    pub nodes_min: u32,
    pub nodes_max: u32,
    pub nodes_mean: f64,
    /// Roles whose service the clusters provide (a cluster's VIP is a target of that role).
    pub services: Vec<Role>,
    pub affinity: BTreeMap<Affinity, f64>,
    pub os: BTreeMap<Os, f64>,
    /// Mean time between failures of one node; absent, or `random_failures = false`: no
    /// random failures.
    #[serde(default)]
    pub mtbf: Option<Duration>,
    #[serde(default = "nlb_defaults::yes")]
    pub random_failures: bool,
    #[serde(default = "nlb_defaults::mttr")]
    pub mttr: Duration,
    #[serde(default = "nlb_defaults::convergence")]
    pub convergence: Duration,
    #[serde(default = "nlb_defaults::idle_legacy")]
    pub idle_legacy: Duration,
    #[serde(default = "nlb_defaults::idle")]
    pub idle: Duration,
    #[serde(default = "nlb_defaults::half")]
    pub xp_sp1_nat_t_update: f64,
    #[serde(default)]
    pub exempt_vips: bool,
    #[serde(default = "nlb_defaults::data_rto")]
    pub tcp_data_rto: Duration,
    #[serde(default = "nlb_defaults::data_retransmissions")]
    pub tcp_data_retransmissions: u32,
    #[serde(default = "nlb_defaults::syn_rto")]
    pub tcp_syn_rto: Duration,
    #[serde(default = "nlb_defaults::syn_retransmissions")]
    pub tcp_syn_retransmissions: u32,
    #[serde(default = "nlb_defaults::app_retry")]
    pub app_retry: Duration,
    #[serde(default = "nlb_defaults::app_timeout")]
    pub app_timeout: Duration,
    /// Failures the scenario names (a controlled experiment).
    #[serde(default, rename = "failure")]
    pub failures: Vec<NlbFailureFile>,
}

/// One scheduled node failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NlbFailureFile {
    /// Cluster index (as listed by `domiso campus --clusters`).
    pub cluster: u32,
    /// Node index within the cluster.
    pub node: u32,
    pub day: u32,
    /// Time of day, "HH:MM".
    pub at: String,
    pub down: Duration,
}

/// Defaults of the failover keys [assumption unless noted; see DOMAIN 5].
mod nlb_defaults {
    use super::Duration;
    use crate::engine::SimDuration;

    pub fn mttr() -> Duration {
        Duration(SimDuration::from_hours(4))
    }
    /// NLB declares a host gone after 5 missed 1-second heartbeats [MS NLB].
    pub fn convergence() -> Duration {
        Duration(SimDuration::from_secs(5))
    }
    /// [WP] Windows 2000 / XP: 5 idle minutes.
    pub fn idle_legacy() -> Duration {
        Duration(SimDuration::from_mins(5))
    }
    /// [WP] XP SP1 with NAT-T, XP SP2, Server 2003: 1 minute.
    pub fn idle() -> Duration {
        Duration(SimDuration::from_mins(1))
    }
    pub fn yes() -> bool {
        true
    }
    pub fn half() -> f64 {
        0.5
    }
    pub fn data_rto() -> Duration {
        Duration(SimDuration::from_millis(500))
    }
    pub fn data_retransmissions() -> u32 {
        5
    }
    pub fn syn_rto() -> Duration {
        Duration(SimDuration::from_secs(3))
    }
    pub fn syn_retransmissions() -> u32 {
        2
    }
    pub fn app_retry() -> Duration {
        Duration(SimDuration::from_secs(10))
    }
    pub fn app_timeout() -> Duration {
        Duration(SimDuration::from_secs(30))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    pub name: String,
    pub kind: GroupKind,
    /// Servers of these roles are members...
    #[serde(default)]
    pub roles: Vec<Role>,
    /// ...and clients of these categories...
    #[serde(default)]
    pub clients: Vec<ClientCategory>,
    /// ...each with this probability.
    #[serde(default = "one")]
    pub fraction: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    pub lan_capacity: Bitrate,
    pub lan_latency: Duration,
    pub wan_latency: [Duration; 2],
    pub backbone_capacity: Bitrate,
    pub backbone_latency: [Duration; 2],
    /// Circuit sizes a site's WAN link is bought in; the smallest that covers the
    /// provisioned demand is chosen.
    pub wan_circuits: Vec<Bitrate>,
    /// Busy-hour bandwidth provisioned per client behind a WAN link.
    pub wan_provisioned_per_client: Bitrate,
    /// Burst allowance per square root of the clients behind the link.
    pub wan_burst_per_sqrt_client: Bitrate,
    /// Range of the random factor applied to the provisioned demand before rounding up
    /// to a circuit (below 1: links bought too small, i.e. near capacity).
    pub wan_headroom: [f64; 2],
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficFile {
    /// Activity on Saturday and Sunday relative to a weekday.
    pub weekend_factor: f64,
    /// Named 24-hour activity profiles (relative weights per hour, 00:00 first).
    pub diurnal: BTreeMap<String, Vec<f64>>,
    /// Popular-server choice: Zipf exponent over the servers of a role.
    pub popularity_zipf: f64,
    /// Popular-server choice: probability of choosing within the client's own region.
    pub popular_local_share: f64,
    /// Peer choice: probability that a peer is in the same building (else same site,
    /// else anywhere, in equal halves of the rest).
    pub peer_building_share: f64,
    /// TCP receive window: a flow moves at most window / RTT.
    pub tcp_window: ByteSize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Host kinds that start sessions: client categories ("managed", "mac", ...) and
    /// server roles ("web", "lob", ...).
    pub from: Vec<String>,
    /// Who they talk to: "home:<role>", "popular:<role>" or "peer".
    pub to: String,
    /// Mean sessions a day per initiating host on a weekday.
    pub sessions_per_day: f64,
    /// Median bytes sent by the initiator / by the responder in one session (lognormal).
    pub bytes_up: ByteSize,
    pub bytes_down: ByteSize,
    /// Lognormal sigma of the session sizes.
    pub size_sigma: f64,
    /// Median session duration (lognormal with `duration_sigma`).
    pub duration: Duration,
    pub duration_sigma: f64,
    /// Name of a `traffic.diurnal` profile.
    pub diurnal: String,
    /// Application message sizes: what the initiator sends per request and the responder
    /// per response (each message is cut into MSS-sized segments, or one datagram for UDP).
    pub message_up: ByteSize,
    pub message_down: ByteSize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketFile {
    /// Path MTU in bytes (IP packet).
    pub mtu: u32,
    /// Above the MTU: "pmtu" (the MSS shrinks) or "fragment".
    pub over_mtu: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Suite of ESP-null SAs and of SAs that require encryption.
    pub suite: String,
    pub suite_encrypted: String,
    /// Clients in VPN address pools reach the campus through NAT and use NAT-T.
    pub nat_t_vpn_pools: bool,
    /// Share of hosts whose sessions are replayed packet by packet (histogram, pcap).
    pub sample_hosts: f64,
    /// Time window of day 0 that `--pcap` captures, ["HH:MM:SS", "HH:MM:SS"].
    pub pcap_window: [String; 2],
    pub pcap_max_packets: u32,
    /// Utilisation above which a WAN link counts as pushed over by IPsec.
    pub wan_threshold: f64,
    /// IPsec CPU cost per packet, and per byte by suite (ns), on either end.
    pub cpu_per_packet: Duration,
    pub cpu_ns_per_byte: BTreeMap<String, f64>,
    /// Share of servers whose NICs offload IPsec encryption.
    pub offload_fraction: f64,
}
