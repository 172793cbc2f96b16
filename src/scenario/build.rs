//! Validation of a raw [`ScenarioFile`] into the typed [`Scenario`] the model runs on.
//!
//! Contract: `Scenario` values are internally consistent: fractions in range, mixes that
//! sum to one, names that resolve, sizes under the stated limits (checked here, before any
//! allocation). Every problem becomes a [`Diagnostic`] naming `file:line:col`, the key path
//! and what was expected; all problems of a file are reported at once, not just the first.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::date::CivilDate;
use super::diag::{
    Diagnostic, Diagnostics, KeyPath, LayeredMap, SourceMap, from_table, from_toml, merge_tables, text_from_utf8,
};
use super::file::*;
use super::source::read_bounded;
use super::units::{ByteSize, Duration};
use crate::engine::{SimDuration, SimTime};
use crate::model::campus::SubnetPurpose;
use crate::model::helpdesk::{Cause, HelpdeskParams, PerCause, Propensity};
use crate::model::ids::{DomainId, GroupId};
use crate::model::kinds::{Affinity, ClientCategory, GroupKind, HostKind, Os, Protocol, Role};
use crate::model::nlb::{FailoverParams, ScheduledFailure, TcpTimers};
use crate::model::packets::{OverMtu, PacketModel, Shape};
use crate::model::policy::{
    ActionKind, AuthMethod, Fallback, FilterAction, FilterList, FilterSpec, Gpo, IpsecPolicy, LocalPolicy, Mode,
    PolicySet, Principal, Rule,
};
use crate::model::population::NapMode;
use crate::model::rollout::{
    Announcement, AnnouncementKind, Gate, Metric, Order, Rollback, Schedule, Selector, Topic, Unit, UnitKind, Wave,
    WaveAction,
};
use crate::model::sa::SaParams;
use crate::model::wire::{IpVersion, Mtu, Suite};

/// Upper bounds checked before anything is allocated, so that a hostile or mistyped
/// scenario (10^12 clients) is an input error, not an out-of-memory crash.
pub mod limits {
    pub const MAX_CLIENTS: u32 = 5_000_000;
    pub const MAX_SITES: u32 = 100_000;
    pub const MAX_REGIONS: u32 = 256;
    pub const MAX_DAYS: u32 = 3_650;
    pub const MAX_DOMAINS: usize = 64;
    pub const MAX_GROUPS: usize = 64;
    pub const MAX_APPS: usize = 64;
    pub const MAX_NLB_CLUSTERS: u32 = 10_000;
    pub const MAX_NLB_NODES: u32 = 32;
    pub const MAX_SESSIONS_PER_DAY: f64 = 100_000.0;
    pub const MAX_SERVERS: u64 = 1_000_000;
    /// Any duration, and any day number or count of days (wave starts, gaps, announcement
    /// and failure days, gate and rollback windows): at most the longest run, so that every
    /// instant the model computes (a day plus a few durations) stays far inside `SimTime`'s
    /// u64 nanoseconds (584 years) and day arithmetic inside u32.
    pub const MAX_DURATION_DAYS: u32 = MAX_DAYS;
    /// Memory of one SA (`ipsec.mm_sa_memory`, `ipsec.qm_sa_memory`): the model multiplies it
    /// by SA counts in u64.
    pub const MAX_SA_MEMORY_BYTES: u64 = 1 << 30;
    /// Median bytes of a session each way (`app.bytes_up`, `app.bytes_down`; the largest
    /// shipped is 30 MB): daily byte totals are summed in u64.
    pub const MAX_SESSION_BYTES: u64 = 1 << 30;
    /// `traffic.tcp_window`.
    pub const MAX_TCP_WINDOW_BYTES: u64 = 1 << 30;
    /// `ipsec.quick_mode_lifetime_bytes` (72 PB; Windows allows about 2 TB): the SA table
    /// keeps the bytes carried under a key, which stay below it, in 56 bits.
    pub const MAX_QM_LIFETIME_BYTES: u64 = 1 << 56;
    /// `packet.pcap_max_packets`: a capture's packets are built in memory before writing.
    pub const MAX_PCAP_PACKETS: u32 = 10_000_000;
}

/// A probability mix over a small vocabulary, normalised to sum to exactly one.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix<T> {
    entries: Vec<(T, f64)>,
}

impl<T: Copy> Mix<T> {
    pub fn new(entries: Vec<(T, f64)>) -> Self {
        let total: f64 = entries.iter().map(|e| e.1).sum();
        let entries = entries.into_iter().map(|(t, w)| (t, w / total)).collect();
        Mix { entries }
    }
    pub fn entries(&self) -> &[(T, f64)] {
        &self.entries
    }
    /// The value whose cumulative interval holds `u` in [0, 1).
    pub fn sample(&self, u: f64) -> T {
        let mut acc = 0.0;
        for &(t, w) in &self.entries {
            acc += w;
            if u < acc {
                return t;
            }
        }
        self.entries.last().expect("a Mix is never empty").0
    }
    pub fn share(&self, t: T) -> f64
    where
        T: PartialEq,
    {
        self.entries.iter().filter(|e| e.0 == t).map(|e| e.1).sum()
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where the text came from (a path, or `builtin:<name>`) and its sha256.
    pub source: String,
    pub sha256: String,
    pub run: RunParams,
    pub campus: CampusParams,
    pub domains: Vec<DomainParams>,
    pub server_roles: Vec<ServerRoleParams>,
    pub nlb: NlbParams,
    pub groups: Vec<GroupParams>,
    pub topology: TopologyParams,
    pub traffic: TrafficParams,
    /// IPsec parameters; `None` when the scenario has no IPsec at all.
    pub ipsec: Option<IpsecParams>,
    pub policy: PolicySet,
    pub packet: Option<PacketParams>,
    pub rollout: Option<RolloutParams>,
    pub population: Option<PopulationParams>,
    pub nap: Option<NapParams>,
    pub firewall: Option<FirewallParams>,
    pub helpdesk: Option<HelpdeskSettings>,
    /// Positions of the keys in the scenario's files, for input errors found after
    /// validation (a campus that does not fit its address space): see [`Scenario::error`].
    pub sources: LayeredMap,
}

impl Scenario {
    /// An input error about the key at `path`, positioned in the file that decides it
    /// (`file:line:col: key.path: message`), like validation's own.
    pub fn error(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.sources.error(path, message)
    }
}

#[derive(Debug, Clone)]
pub struct HelpdeskSettings {
    pub params: HelpdeskParams,
    /// Mean service after helpdesk training.
    pub trained_service: SimDuration,
    pub propensity: Propensity,
    /// Fallback waits at least this long are noticed.
    pub noticeable_delay: SimDuration,
}

#[derive(Debug, Clone)]
pub struct RolloutParams {
    /// Calendar date of day 0.
    pub start_date: CivilDate,
    pub gp_refresh: SimDuration,
    pub gp_refresh_jitter: SimDuration,
    pub schedule: Schedule,
}

#[derive(Debug, Clone)]
pub struct PopulationParams {
    pub join_rate: f64,
    pub join_rate_announced: f64,
    pub announcement_effect_days: u32,
    pub join_rate_refused: f64,
    pub reimaged_share_per_day: f64,
    pub rejoin_delay: SimDuration,
    pub rejoin_sigma: f64,
    pub boundary_group: GroupId,
    pub boundary_request_threshold: u32,
    pub boundary_request_probability: f64,
    pub boundary_grant_probability: f64,
    pub boundary_grant_days: u32,
    pub travel_probability: f64,
    pub foreign_connections: f64,
    pub foreign_incompatible: f64,
}

#[derive(Debug, Clone)]
pub struct NapParams {
    pub drift_per_day: f64,
    pub auto_remediation: f64,
    pub auto_remediation_time: SimDuration,
    pub manual_remediation_time: SimDuration,
    pub remediation_sigma: f64,
}

#[derive(Debug, Clone)]
pub struct FirewallParams {
    /// Applications (bit per app index) clients accept inbound by default.
    pub inbound_allowed: u64,
    pub local_exception_probability: f64,
    pub bypass_group: Option<GroupId>,
}

#[derive(Debug, Clone)]
pub struct PacketParams {
    pub model: PacketModel,
    pub suite: Suite,
    pub suite_encrypted: Suite,
    pub nat_t_vpn_pools: bool,
    pub sample_hosts: f64,
    /// Time of day 0 the pcap window covers: [start, end).
    pub pcap_window: (SimDuration, SimDuration),
    pub pcap_max_packets: u32,
    pub wan_threshold: f64,
    pub cpu_per_packet: SimDuration,
    /// ns per byte, indexed like [`Suite::ALL`].
    pub cpu_ns_per_byte: Vec<f64>,
    pub offload_fraction: f64,
}

#[derive(Debug, Clone)]
pub struct IpsecParams {
    pub sa: SaParams,
    pub fallback: Fallback,
    pub negotiation_failure_probability: f64,
    pub managed_certificates: bool,
    pub mm_sa_bytes: u64,
    pub qm_sa_bytes: u64,
    pub home_ranges: Vec<Ipv4Net>,
    pub foreign_ranges: Vec<Ipv4Net>,
    pub servers_reported: u32,
}

#[derive(Debug, Clone)]
pub struct RunParams {
    pub seed: u64,
    pub days: u32,
    /// 0 = Monday .. 6 = Sunday.
    pub start_weekday: u8,
    pub utilisation_bin: SimDuration,
    /// Share of users and servers whose traffic is simulated (1 = all).
    pub traffic_sample: f64,
}

#[derive(Debug, Clone)]
pub struct CampusParams {
    pub clients: u32,
    pub users: u32,
    pub sites: u32,
    pub regions: u32,
    pub hq_client_share: f64,
    pub site_size_zipf: f64,
    pub clients_per_building: u32,
    pub address_space: Ipv4Net,
    pub client_subnet_prefixes: Mix<u8>,
    pub subnet_fill: (f64, f64),
    pub vpn_pool_prefix: u8,
    pub laptop_fraction: f64,
    pub multi_machine_user_fraction: f64,
    pub domain_site_affinity: f64,
    pub simple_policy_update_fraction: f64,
    pub client_mix: Mix<ClientCategory>,
    pub managed_os: Mix<Os>,
    pub test_domain_os: Mix<Os>,
    pub legacy_os: Mix<Os>,
    pub vpn_guest_os: Mix<Os>,
}

#[derive(Debug, Clone)]
pub struct DomainParams {
    pub name: String,
    pub share: f64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    Site,
    Hub,
    Hq,
}

#[derive(Debug, Clone)]
pub struct ServerRoleParams {
    pub role: Role,
    pub placement: Placement,
    pub per_clients: u32,
    pub min_site_clients: u32,
    pub os: Mix<Os>,
}

#[derive(Debug, Clone)]
pub struct NlbParams {
    pub clusters: u32,
    pub nodes_min: u32,
    pub nodes_max: u32,
    pub nodes_mean: f64,
    pub services: Vec<Role>,
    pub affinity: Mix<Affinity>,
    pub os: Mix<Os>,
    /// Node failures and the timers behind failover stalls.
    pub failover: FailoverParams,
}

#[derive(Debug, Clone)]
pub struct GroupParams {
    pub name: String,
    pub kind: GroupKind,
    pub roles: Vec<Role>,
    pub clients: Vec<ClientCategory>,
    pub fraction: f64,
}

#[derive(Debug, Clone)]
pub struct TopologyParams {
    pub lan_capacity_bps: u64,
    pub lan_latency: SimDuration,
    pub wan_latency: (SimDuration, SimDuration),
    pub backbone_capacity_bps: u64,
    pub backbone_latency: (SimDuration, SimDuration),
    /// Ascending.
    pub wan_circuits_bps: Vec<u64>,
    pub wan_provisioned_per_client_bps: u64,
    pub wan_burst_per_sqrt_client_bps: u64,
    pub wan_headroom: (f64, f64),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The initiator's own assigned server of the role (nearest first).
    Home(Role),
    /// Any server (or NLB VIP) of the role, by popularity, preferring the own region.
    Popular(Role),
    /// Another client, preferring the same building, then site.
    Peer,
}

#[derive(Debug, Clone)]
pub struct AppParams {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub from: Vec<HostKind>,
    pub to: Target,
    pub sessions_per_day: f64,
    pub bytes_up_median: u64,
    pub bytes_down_median: u64,
    pub size_sigma: f64,
    pub duration_median: SimDuration,
    pub duration_sigma: f64,
    /// Index into `TrafficParams::profiles`.
    pub profile: usize,
    pub shape: Shape,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// Relative activity per hour of day, normalised to a mean of one.
    pub hourly: [f64; 24],
}

#[derive(Debug, Clone)]
pub struct TrafficParams {
    pub weekend_factor: f64,
    pub popularity_zipf: f64,
    pub popular_local_share: f64,
    pub peer_building_share: f64,
    pub tcp_window_bytes: u64,
    pub profiles: Vec<Profile>,
    pub apps: Vec<AppParams>,
}

/// Why a scenario could not be loaded. Both variants are input errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read scenario: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

/// The white-paper campus, embedded so `domiso run` works with no file at hand.
pub const BUILTIN_WHITEPAPER: &str = include_str!("../../scenarios/whitepaper-2008.toml");
pub const BUILTIN_WHITEPAPER_NAME: &str = "scenarios/whitepaper-2008.toml";

/// The name `extends` uses for the embedded white-paper scenario.
pub const BUILTIN_WHITEPAPER_REF: &str = "builtin:whitepaper-2008";

/// How many `extends` links a scenario may chain (a longer chain is taken for a cycle).
const MAX_EXTENDS_DEPTH: usize = 8;

/// Loads and validates a scenario file.
pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    let bytes = read_bounded(path).map_err(|source| ScenarioError::Io { path: shown.clone(), source })?;
    let text = text_from_utf8(&shown, &bytes).map_err(|d| Diagnostics(vec![d]))?;
    Ok(parse(&shown, text)?)
}

/// The built-in default scenario.
pub fn builtin() -> Scenario {
    parse(BUILTIN_WHITEPAPER_NAME, BUILTIN_WHITEPAPER)
        .expect("the embedded white-paper scenario is valid (checked by tests)")
}

/// The built-in scenario on a small campus: `clients`, `users` and `sites`, and `regions`
/// when given (else the scenario's). What the model's unit tests build their campuses from.
#[cfg(test)]
pub fn builtin_small(clients: u32, users: u32, sites: u32, regions: Option<u32>) -> Scenario {
    let mut sc = builtin();
    sc.campus.clients = clients;
    sc.campus.users = users;
    sc.campus.sites = sites;
    sc.campus.regions = regions.unwrap_or(sc.campus.regions);
    sc
}

/// One file of a scenario and the files it extends.
struct Layer {
    file: String,
    text: String,
    table: toml::Table,
}

/// Reads `file` and, following `extends`, its bases: most specific first.
fn read_layers(file: &str, text: &str) -> Result<Vec<Layer>, Diagnostic> {
    let mut layers: Vec<Layer> = Vec::new();
    let mut current = (file.to_string(), text.to_string());
    loop {
        let (file, text) = current;
        let mut table: toml::Table = from_toml(&file, &text)?;
        let extends = table.remove("extends");
        let map = SourceMap::new(&file, &text);
        let at = KeyPath::root().key("extends");
        let next = match extends {
            None => None,
            Some(toml::Value::String(base)) => {
                if layers.len() + 1 >= MAX_EXTENDS_DEPTH {
                    return Err(map.error(
                        &at,
                        format!("more than {MAX_EXTENDS_DEPTH} scenarios chained by `extends` (a cycle?)"),
                    ));
                }
                if base == BUILTIN_WHITEPAPER_REF {
                    Some((BUILTIN_WHITEPAPER_NAME.to_string(), BUILTIN_WHITEPAPER.to_string()))
                } else {
                    let dir = std::path::Path::new(&file).parent().unwrap_or(std::path::Path::new(""));
                    let path = dir.join(&base);
                    let bytes = read_bounded(&path).map_err(|e| {
                        map.error(&at, format!("cannot read the base scenario {}: {e}", path.display()))
                    })?;
                    let shown = path.display().to_string();
                    let base_text = text_from_utf8(&shown, &bytes)?.to_string();
                    Some((shown, base_text))
                }
            }
            Some(other) => {
                return Err(map.error(
                    &at,
                    format!("expected a scenario path or \"{BUILTIN_WHITEPAPER_REF}\", found a {}", other.type_str()),
                ));
            }
        };
        layers.push(Layer { file, text, table });
        match next {
            Some(n) => current = n,
            None => return Ok(layers),
        }
    }
}

/// Parses and validates scenario text; `file` is the name used in diagnostics and the
/// place `extends` paths are resolved from.
pub fn parse(file: &str, text: &str) -> Result<Scenario, Diagnostics> {
    parse_with(file, text, &[])
}

/// One key of a scenario set from outside its files (a sweep axis): `path` is dotted, with
/// numeric segments indexing arrays (`ipsec.main_mode_lifetime`, `wave.7.select.order`).
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub path: String,
    pub value: toml::Value,
    /// Where the value is written when that is a file (a sweep's axis values): a problem
    /// with the key or its value is reported there, not at the scenario's own text.
    pub origin: Option<Origin>,
}

/// A position in a file other than the scenario's (see [`Override::origin`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in chars.
    pub col: usize,
}

/// The key path that a dotted override `path` names in `table` (a numeric segment is an
/// array index where the value there is an array, else a key), as diagnostics show it.
fn override_key_path(table: &toml::Table, path: &str) -> KeyPath {
    let mut here = Some(table);
    let mut array: Option<&Vec<toml::Value>> = None;
    let mut out = KeyPath::root();
    for seg in path.split('.') {
        let index = seg.parse::<usize>().ok().filter(|_| array.is_some());
        let next = match (index, here, array) {
            (Some(i), _, Some(a)) => {
                out = out.index(i);
                a.get(i)
            }
            (_, Some(t), _) => {
                out = out.key(seg);
                t.get(seg)
            }
            _ => {
                out = out.key(seg);
                None
            }
        };
        here = next.and_then(toml::Value::as_table);
        array = next.and_then(toml::Value::as_array);
    }
    out
}

/// Moves diagnostics about an overridden key (or anything under it) to the override's
/// origin, the most specific override winning; and those about a table the override
/// created on its way (a key on its path that no file spells out), which only the
/// override's text can explain.
fn reposition(problems: &mut [Diagnostic], origins: &[(KeyPath, &Origin)], map: &LayeredMap) {
    for d in problems {
        let under = |k: &KeyPath| {
            let k = k.to_string();
            d.key_path == k || d.key_path.starts_with(&format!("{k}.")) || d.key_path.starts_with(&format!("{k}["))
        };
        let created_by = |k: &KeyPath| {
            std::iter::successors(k.parent(), KeyPath::parent)
                .any(|a| !a.is_root() && a.to_string() == d.key_path && !map.contains(&a))
        };
        let by_key = origins.iter().filter(|(k, _)| under(k)).max_by_key(|(k, _)| k.segments().len());
        if let Some((_, o)) = by_key.or_else(|| origins.iter().find(|(k, _)| created_by(k))) {
            d.file = o.file.clone();
            d.line = o.line;
            d.col = o.col;
        }
    }
}

/// Sets `value` at a dotted `path` of `table`. Tables along the way are created; an array
/// segment must index an existing element.
pub fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    fn set_in(
        here: &mut toml::Value,
        segs: &[&str],
        walked: usize,
        path: &str,
        value: toml::Value,
    ) -> Result<(), String> {
        let Some((seg, rest)) = segs.split_first() else {
            *here = value;
            return Ok(());
        };
        let at = || path.split('.').take(walked).collect::<Vec<_>>().join(".");
        let child = match here {
            toml::Value::Table(t) => t.entry(seg.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())),
            toml::Value::Array(a) => {
                let len = a.len();
                match seg.parse::<usize>() {
                    Ok(k) if k < len => &mut a[k],
                    _ => return Err(format!("expected an index below {len} into the array {:?}, found {seg:?}", at())),
                }
            }
            other => return Err(format!("{:?} is a {}, not a table or an array", at(), other.type_str())),
        };
        set_in(child, rest, walked + 1, path, value)
    }
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("{path:?} is not a key path (empty segment)"));
    }
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_in(&mut root, &segs, 0, path, value);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

/// [`parse`] with keys set from outside the files (applied to the merged scenario, before
/// validation; they count in the scenario's sha256).
pub fn parse_with(file: &str, text: &str, overrides: &[Override]) -> Result<Scenario, Diagnostics> {
    let layers = read_layers(file, text).map_err(|d| Diagnostics(vec![d]))?;
    let map = LayeredMap::new(layers.iter().map(|l| SourceMap::new(&l.file, &l.text)).collect());
    let mut origins: Vec<(KeyPath, &Origin)> = Vec::new();
    let one = |mut d: Diagnostic, origins: &[(KeyPath, &Origin)]| {
        reposition(std::slice::from_mut(&mut d), origins, &map);
        Diagnostics(vec![d])
    };
    let raw: ScenarioFile = if layers.len() == 1 && overrides.is_empty() {
        // A single file: deserialise from the text itself for exact spans.
        from_toml(file, text).map_err(|d| one(d, &[]))?
    } else {
        let mut merged = toml::Table::new();
        for layer in layers.iter().rev() {
            merge_tables(&mut merged, layer.table.clone());
        }
        for o in overrides {
            let key = override_key_path(&merged, &o.path);
            if let Some(origin) = &o.origin {
                origins.push((key.clone(), origin));
            }
            set_path(&mut merged, &o.path, o.value.clone())
                .map_err(|message| one(map.error(&key, message), &origins))?;
        }
        from_table(merged, &map).map_err(|d| one(d, &origins))?
    };
    let mut hasher = Sha256::new();
    for layer in &layers {
        hasher.update(layer.text.as_bytes());
    }
    for o in overrides {
        hasher.update(format!("\n{} = {}", o.path, o.value).as_bytes());
    }
    let mut v = Validator { map: &map, problems: Vec::new() };
    let scenario = v.scenario(raw, hex(&hasher.finalize()));
    if v.problems.is_empty() {
        Ok(scenario)
    } else {
        reposition(&mut v.problems, &origins, &map);
        v.problems.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        Err(Diagnostics(v.problems))
    }
}

struct Validator<'a> {
    map: &'a LayeredMap,
    problems: Vec<Diagnostic>,
}

fn p(segs: &[&str]) -> KeyPath {
    segs.iter().fold(KeyPath::root(), |k, s| k.key(*s))
}

impl Validator<'_> {
    fn fail(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.problems.push(self.map.error(path, message));
    }

    fn fraction(&mut self, path: KeyPath, x: f64) -> f64 {
        if !(0.0..=1.0).contains(&x) {
            self.fail(&path, format!("expected a fraction between 0 and 1, found {x}"));
        }
        x
    }

    fn count(&mut self, path: KeyPath, x: u32, min: u32, max: u32) -> u32 {
        if x < min || x > max {
            self.fail(&path, format!("expected a count from {min} to {max}, found {x}"));
        }
        x
    }

    fn range<T: PartialOrd + Copy + std::fmt::Display>(&mut self, path: KeyPath, r: [T; 2]) -> (T, T) {
        if r[0] > r[1] {
            self.fail(&path, format!("expected [min, max] with min <= max, found [{}, {}]", r[0], r[1]));
        }
        (r[0], r[1])
    }

    /// A mix must be non-empty, non-negative, sum to one (within 0.1%), and each key must
    /// pass `allowed`.
    fn mix<T: Copy + Ord + std::fmt::Display>(
        &mut self,
        path: KeyPath,
        raw: &BTreeMap<T, f64>,
        allowed: impl Fn(T) -> bool,
        what: &str,
    ) -> Mix<T> {
        let mut entries = Vec::new();
        for (&k, &w) in raw {
            if !allowed(k) {
                self.fail(&path.key(k.to_string()), format!("`{k}` is not allowed here: expected {what}"));
            }
            if !(w.is_finite() && w >= 0.0) {
                self.fail(&path.key(k.to_string()), format!("expected a non-negative share, found {w}"));
            }
            entries.push((k, w.max(0.0)));
        }
        let total: f64 = entries.iter().map(|e| e.1).sum();
        if entries.is_empty() || total.is_nan() || total <= 0.0 {
            self.fail(&path, format!("expected at least one positive share of {what}"));
            return Mix { entries: vec![] };
        }
        if (total - 1.0).abs() > 1e-3 {
            self.fail(&path, format!("shares must sum to 1, they sum to {total:.6}"));
        }
        Mix::new(entries)
    }

    fn scenario(&mut self, raw: ScenarioFile, sha256: String) -> Scenario {
        if raw.name.is_empty()
            || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            self.fail(
                &p(&["name"]),
                format!(
                    "expected a name of letters, digits, '-', '_' or '.' (it names the output directory), found {:?}",
                    raw.name
                ),
            );
        }
        self.bounds(&raw);
        let run = self.run(&raw.run);
        let campus = self.campus(&raw.campus);
        let domains = self.domains(&raw.domains);
        let server_roles = self.server_roles(&raw.server_roles, campus.clients);
        let nlb = self.nlb(&raw.nlb);
        let groups = self.groups(&raw.groups);
        let topology = self.topology(&raw.topology);
        let traffic = self.traffic(&raw.traffic, &raw.apps, &server_roles, &nlb);
        let ipsec = raw.ipsec.as_ref().map(|i| self.ipsec(i));
        let packet = raw.packet.as_ref().map(|p| self.packet(p));
        let group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let population = raw.population.as_ref().map(|x| self.population(x, &group_names));
        let nap = raw.nap.as_ref().map(|x| self.nap(x));
        let firewall = raw.firewall.as_ref().map(|x| self.firewall(x, &raw.apps, &group_names));
        let helpdesk = raw.helpdesk.as_ref().map(|x| self.helpdesk(x));
        let mut policy = self.policy_set(&raw, &domains, &groups);
        if nlb.failover.exempt_vips {
            policy.exempt_vips();
        }
        let rollout = raw.rollout.as_ref().map(|r| self.rollout(r, run.start_weekday, &domains, &group_names, &policy));
        if ipsec.is_none() && !policy.is_empty() {
            self.fail(
                &p(&["ipsec"]),
                "IPsec policies are defined but the [ipsec] table (lifetimes, fallback delays) is missing",
            );
        }
        Scenario {
            name: raw.name,
            description: raw.description,
            source: self.map.file().to_string(),
            sha256,
            run,
            campus,
            domains,
            server_roles,
            nlb,
            groups,
            topology,
            traffic,
            ipsec,
            policy,
            packet,
            rollout,
            population,
            nap,
            firewall,
            helpdesk,
            sources: self.map.clone(),
        }
    }

    /// The limits every duration, day number and byte size of the file must keep (see
    /// [`limits`]), checked in one place so that no field is forgotten.
    fn bounds(&mut self, raw: &ScenarioFile) {
        let mut durations: Vec<(KeyPath, SimDuration)> = Vec::new();
        let mut days: Vec<(KeyPath, u32)> = Vec::new();
        let mut dur = |at: KeyPath, v: &Duration| durations.push((at, v.0));
        dur(p(&["run", "utilisation_bin"]), &raw.run.utilisation_bin);
        let t = &raw.topology;
        dur(p(&["topology", "lan_latency"]), &t.lan_latency);
        for (i, v) in t.wan_latency.iter().enumerate() {
            dur(p(&["topology", "wan_latency"]).index(i), v);
        }
        for (i, v) in t.backbone_latency.iter().enumerate() {
            dur(p(&["topology", "backbone_latency"]).index(i), v);
        }
        for (i, a) in raw.apps.iter().enumerate() {
            dur(KeyPath::root().key("app").index(i).key("duration"), &a.duration);
        }
        let n = &raw.nlb;
        if let Some(mtbf) = &n.mtbf {
            dur(p(&["nlb", "mtbf"]), mtbf);
        }
        for (name, v) in [
            ("mttr", &n.mttr),
            ("convergence", &n.convergence),
            ("idle_legacy", &n.idle_legacy),
            ("idle", &n.idle),
            ("tcp_data_rto", &n.tcp_data_rto),
            ("tcp_syn_rto", &n.tcp_syn_rto),
            ("app_retry", &n.app_retry),
            ("app_timeout", &n.app_timeout),
        ] {
            dur(p(&["nlb", name]), v);
        }
        if let Some(i) = &raw.ipsec {
            for (name, v) in [
                ("main_mode_lifetime", &i.main_mode_lifetime),
                ("quick_mode_lifetime", &i.quick_mode_lifetime),
                ("quick_mode_idle", &i.quick_mode_idle),
                ("fallback_delay", &i.fallback_delay),
                ("fallback_delay_simple_policy", &i.fallback_delay_simple_policy),
                ("dh_cpu", &i.dh_cpu),
            ] {
                dur(p(&["ipsec", name]), v);
            }
        }
        if let Some(x) = &raw.packet {
            dur(p(&["packet", "cpu_per_packet"]), &x.cpu_per_packet);
        }
        if let Some(r) = &raw.rollout {
            dur(p(&["rollout", "gp_refresh"]), &r.gp_refresh);
            dur(p(&["rollout", "gp_refresh_jitter"]), &r.gp_refresh_jitter);
        }
        if let Some(x) = &raw.population {
            dur(p(&["population", "rejoin_delay"]), &x.rejoin_delay);
        }
        if let Some(x) = &raw.nap {
            dur(p(&["nap", "auto_remediation_time"]), &x.auto_remediation_time);
            dur(p(&["nap", "manual_remediation_time"]), &x.manual_remediation_time);
        }
        if let Some(h) = &raw.helpdesk {
            dur(p(&["helpdesk", "mean_service"]), &h.mean_service);
            dur(p(&["helpdesk", "trained_service"]), &h.trained_service);
            dur(p(&["helpdesk", "noticeable_delay"]), &h.noticeable_delay);
        }
        for (i, f) in n.failures.iter().enumerate() {
            let at = KeyPath::root().key("nlb").key("failure").index(i);
            dur(at.key("down"), &f.down);
            days.push((at.key("day"), f.day));
        }
        if let Some(r) = &raw.rollout {
            for (i, w) in r.waves.iter().enumerate() {
                let at = KeyPath::root().key("rollout").key("wave").index(i);
                days.push((at.key("start"), w.start));
                days.push((at.key("gap"), w.gap));
                if let Some(g) = &w.gate {
                    days.push((at.key("gate").key("days"), g.days));
                }
                if let Some(b) = &w.rollback {
                    days.push((at.key("rollback").key("within"), b.within));
                }
            }
            for (i, a) in r.announcements.iter().enumerate() {
                days.push((KeyPath::root().key("rollout").key("announcement").index(i).key("day"), a.day));
            }
        }
        if let Some(x) = &raw.population {
            days.push((p(&["population", "announcement_effect_days"]), x.announcement_effect_days));
            days.push((p(&["population", "boundary_grant_days"]), x.boundary_grant_days));
        }
        let max = SimDuration::from_days(u64::from(limits::MAX_DURATION_DAYS));
        for (path, v) in durations {
            if v > max {
                self.fail(&path, format!("expected at most {max}, the longest run; found {v}"));
            }
        }
        for (path, v) in days {
            if v > limits::MAX_DURATION_DAYS {
                self.fail(
                    &path,
                    format!("expected at most {} days, the longest run; found {v}", limits::MAX_DURATION_DAYS),
                );
            }
        }
        let mut bytes: Vec<(KeyPath, u64, u64)> = Vec::new();
        if let Some(i) = &raw.ipsec {
            bytes.push((p(&["ipsec", "mm_sa_memory"]), i.mm_sa_memory.0, limits::MAX_SA_MEMORY_BYTES));
            bytes.push((p(&["ipsec", "qm_sa_memory"]), i.qm_sa_memory.0, limits::MAX_SA_MEMORY_BYTES));
            let lifetime_bytes = i.quick_mode_lifetime_bytes.0;
            bytes.push((p(&["ipsec", "quick_mode_lifetime_bytes"]), lifetime_bytes, limits::MAX_QM_LIFETIME_BYTES));
        }
        bytes.push((p(&["traffic", "tcp_window"]), raw.traffic.tcp_window.0, limits::MAX_TCP_WINDOW_BYTES));
        for (i, a) in raw.apps.iter().enumerate() {
            let at = KeyPath::root().key("app").index(i);
            bytes.push((at.key("bytes_up"), a.bytes_up.0, limits::MAX_SESSION_BYTES));
            bytes.push((at.key("bytes_down"), a.bytes_down.0, limits::MAX_SESSION_BYTES));
        }
        for (path, v, max) in bytes {
            if v > max {
                self.fail(&path, format!("expected at most {}, found {}", ByteSize(max), ByteSize(v)));
            }
        }
    }

    fn helpdesk(&mut self, f: &HelpdeskFile) -> HelpdeskSettings {
        let k = |s: &str| p(&["helpdesk", s]);
        let open = self.time_of_day(k("open").index(0), &f.open[0]);
        let close = self.time_of_day(k("open").index(1), &f.open[1]);
        if open >= close {
            self.fail(&k("open"), "the desk must open before it closes");
        }
        let hourly = self.hourly_weights(&k("hourly"), &f.hourly).unwrap_or([0.0; 24]);
        let mut base = PerCause::splat(0.0);
        for (name, &v) in &f.propensity {
            match Cause::from_name(name) {
                Some(c) if c != Cause::Other => base[c] = self.fraction(k("propensity").key(name.clone()), v),
                _ => self.fail(
                    &k("propensity").key(name.clone()),
                    "expected a cause: ipsec-blocked, ipsec-delay, failover-stall, nap-notice, nap-blocked, firewall",
                ),
            }
        }
        for (name, v) in [
            ("inconsistent_factor", f.inconsistent_factor),
            ("unannounced_factor", f.unannounced_factor),
            ("trained_factor", f.trained_factor),
            ("repeat_factor", f.repeat_factor),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                self.fail(&k(name), format!("expected a factor from 0 to 100, found {v}"));
            }
        }
        if !(f.baseline_calls_per_month.is_finite() && (0.0..=1e7).contains(&f.baseline_calls_per_month)) {
            self.fail(
                &k("baseline_calls_per_month"),
                format!("expected 0 to 10000000, found {}", f.baseline_calls_per_month),
            );
        }
        if f.agents_weekday > 100_000 || f.agents_weekend > 100_000 {
            self.fail(&k("agents_weekday"), "at most 100000 agents");
        }
        if f.mean_service.0.is_zero() || f.trained_service.0.is_zero() {
            self.fail(&k("mean_service"), "service times must be positive");
        }
        HelpdeskSettings {
            params: HelpdeskParams {
                agents_weekday: f.agents_weekday,
                agents_weekend: f.agents_weekend,
                open,
                close,
                mean_service: f.mean_service.0,
                baseline_calls_per_month: f.baseline_calls_per_month,
                weekend_factor: f.weekend_factor.max(0.0),
                hourly_profile: hourly,
            },
            trained_service: f.trained_service.0,
            propensity: Propensity {
                base,
                inconsistent: f.inconsistent_factor,
                unannounced: f.unannounced_factor,
                trained: f.trained_factor,
                repeat: f.repeat_factor,
            },
            noticeable_delay: f.noticeable_delay.0,
        }
    }

    fn rollout(
        &mut self,
        r: &RolloutFile,
        run_weekday: u8,
        domains: &[DomainParams],
        group_names: &[String],
        policy: &PolicySet,
    ) -> RolloutParams {
        let k = |s: &str| p(&["rollout", s]);
        let date = CivilDate::parse(&r.start_date);
        match date {
            None => self.fail(&k("start_date"), format!("expected a date \"YYYY-MM-DD\", found {:?}", r.start_date)),
            // Weekends and weekday labels must agree with the calendar.
            Some(d) if d.weekday() != run_weekday => self.fail(
                &k("start_date"),
                format!(
                    "{} is a {}, but run.start_weekday says {}",
                    r.start_date,
                    WEEKDAYS[d.weekday() as usize],
                    WEEKDAYS[run_weekday as usize]
                ),
            ),
            Some(_) => {}
        }
        let mut waves: Vec<Wave> = Vec::new();
        for (i, w) in r.waves.iter().enumerate() {
            let path = KeyPath::root().key("rollout").key("wave").index(i);
            if r.waves[..i].iter().any(|x| x.name == w.name) {
                self.fail(&path.key("name"), format!("duplicate wave name {:?}", w.name));
            }
            let after = match &w.after {
                None => None,
                Some(a) => match r.waves[..i].iter().position(|x| &x.name == a) {
                    Some(j) => Some(j),
                    None => {
                        self.fail(
                            &path.key("after"),
                            format!("no earlier wave is named {a:?} (waves may only follow waves listed before them)"),
                        );
                        None
                    }
                },
            };
            if w.duration == 0 || w.duration > 3650 {
                self.fail(&path.key("duration"), format!("expected 1 to 3650 days, found {}", w.duration));
            }
            let target = w.target.as_str();
            fn find_in<'s>(mut list: impl Iterator<Item = &'s String>, name: &str) -> Option<usize> {
                list.position(|n| n == name)
            }
            let action = match w.action.as_str() {
                "add-filters" | "set-filters" => match find_in(policy.filter_lists.iter().map(|f| &f.name), target) {
                    Some(list) if w.action == "add-filters" => Some(WaveAction::AddFilters { list }),
                    Some(list) => {
                        let mut filters = Vec::new();
                        for (j, f) in w.filters.iter().enumerate() {
                            match FilterSpec::parse(f, group_names) {
                                Ok(spec) => filters.push(spec),
                                Err(msg) => self.fail(&path.key("filters").index(j), msg),
                            }
                        }
                        Some(WaveAction::SetFilters { list, filters })
                    }
                    None => {
                        self.fail(&path.key("target"), format!("no [[filter_list]] is named {target:?}"));
                        None
                    }
                },
                "link-gpo" => match find_in(policy.gpos.iter().map(|g| &g.name), target) {
                    Some(gpo) => Some(WaveAction::LinkGpo { gpo }),
                    None => {
                        self.fail(&path.key("target"), format!("no [[gpo]] is named {target:?}"));
                        None
                    }
                },
                "add-to-group" => match group_names.iter().position(|g| g == target) {
                    Some(g) => Some(WaveAction::AddToGroup { group: GroupId::from_index(g) }),
                    None => {
                        self.fail(&path.key("target"), format!("no [[group]] is named {target:?}"));
                        None
                    }
                },
                "nap" => match NapMode::from_name(target) {
                    Some(m) => Some(WaveAction::Nap(m)),
                    None => {
                        self.fail(
                            &path.key("target"),
                            format!("expected a NAP mode (off, reporting, deferred, enforcement), found {target:?}"),
                        );
                        None
                    }
                },
                "firewall" => match target {
                    "on" => Some(WaveAction::Firewall(true)),
                    "off" => Some(WaveAction::Firewall(false)),
                    _ => {
                        self.fail(&path.key("target"), format!("expected \"on\" or \"off\", found {target:?}"));
                        None
                    }
                },
                other => {
                    self.fail(
                        &path.key("action"),
                        format!("expected add-filters, set-filters, link-gpo, add-to-group, nap or firewall, found {other:?}"),
                    );
                    None
                }
            };
            if w.action != "set-filters" && !w.filters.is_empty() {
                self.fail(&path.key("filters"), "filters only go with the set-filters action");
            }
            let select = self.selector(&w.select, path.key("select"), domains, group_names);
            let gate = w.gate.as_ref().and_then(|g| {
                let m = Metric::from_name(&g.metric);
                if m.is_none() {
                    self.fail(
                        &path.key("gate").key("metric"),
                        format!("unknown metric {:?}: expected one of {}", g.metric, metric_names()),
                    );
                }
                m.map(|metric| Gate { metric, below: g.below, days: g.days.max(1) })
            });
            let rollback = w.rollback.as_ref().and_then(|b| {
                let m = Metric::from_name(&b.metric);
                if m.is_none() {
                    self.fail(
                        &path.key("rollback").key("metric"),
                        format!("unknown metric {:?}: expected one of {}", b.metric, metric_names()),
                    );
                }
                m.map(|metric| Rollback { metric, above: b.above, within: b.within })
            });
            if let Some(action) = action {
                waves.push(Wave {
                    name: w.name.clone(),
                    phase: w.phase.clone(),
                    start: w.start,
                    after,
                    gap: w.gap,
                    duration: w.duration.max(1),
                    action,
                    select,
                    gate,
                    rollback,
                });
            }
        }
        let mut announcements = Vec::new();
        for (i, a) in r.announcements.iter().enumerate() {
            let path = KeyPath::root().key("rollout").key("announcement").index(i);
            let kind = match a.kind.as_str() {
                "email" => Some(AnnouncementKind::Email),
                "user-training" => Some(AnnouncementKind::UserTraining),
                "helpdesk-training" => Some(AnnouncementKind::HelpdeskTraining),
                other => {
                    self.fail(
                        &path.key("kind"),
                        format!("expected email, user-training or helpdesk-training, found {other:?}"),
                    );
                    None
                }
            };
            let topic = match a.topic.as_str() {
                "ipsec" => Some(Topic::Ipsec),
                "nap" => Some(Topic::Nap),
                "firewall" => Some(Topic::Firewall),
                other => {
                    self.fail(&path.key("topic"), format!("expected ipsec, nap or firewall, found {other:?}"));
                    None
                }
            };
            if let (Some(kind), Some(topic)) = (kind, topic) {
                announcements.push(Announcement { day: a.day, kind, topic, text: a.text.clone() });
            }
        }
        RolloutParams {
            start_date: date.unwrap_or(CivilDate::parse("2007-01-08").expect("a real date")),
            gp_refresh: r.gp_refresh.0.max(SimDuration::MINUTE),
            gp_refresh_jitter: r.gp_refresh_jitter.0,
            schedule: Schedule { waves, announcements },
        }
    }

    fn selector(
        &mut self,
        s: &SelectFile,
        path: KeyPath,
        domains: &[DomainParams],
        group_names: &[String],
    ) -> Selector {
        let kind = match s.unit.as_str() {
            "subnets" => UnitKind::Subnets,
            "buildings" => UnitKind::Buildings,
            "sites" => UnitKind::Sites,
            "domains" => UnitKind::Domains,
            "groups" => UnitKind::Groups,
            "prefixes" => UnitKind::Prefixes,
            "all" => UnitKind::All,
            other => {
                self.fail(
                    &path.key("unit"),
                    format!("expected subnets, buildings, sites, domains, groups, prefixes or all, found {other:?}"),
                );
                UnitKind::All
            }
        };
        let order = match s.order.as_deref() {
            None if !s.names.is_empty() => Order::Listed,
            None | Some("smallest") => Order::Smallest,
            Some("largest") => Order::Largest,
            Some("listed") => Order::Listed,
            Some(other) => {
                self.fail(&path.key("order"), format!("expected smallest, largest or listed, found {other:?}"));
                Order::Smallest
            }
        };
        let mut named = Vec::new();
        for (j, n) in s.names.iter().enumerate() {
            let unit = match kind {
                UnitKind::Domains => {
                    domains.iter().position(|d| &d.name == n).map(|d| Unit::Domain(DomainId::from_index(d)))
                }
                UnitKind::Groups => {
                    group_names.iter().position(|g| g == n).map(|g| Unit::Group(GroupId::from_index(g)))
                }
                UnitKind::Prefixes => n.parse::<Ipv4Net>().ok().map(|p| Unit::Prefix(p.trunc())),
                _ => {
                    self.fail(&path.key("names").index(j), "names select domains, groups or prefixes only");
                    continue;
                }
            };
            match unit {
                Some(u) => named.push(u),
                None => {
                    self.fail(&path.key("names").index(j), format!("unknown {} {n:?}", s.unit.trim_end_matches('s')))
                }
            }
        }
        if matches!(kind, UnitKind::Groups | UnitKind::Prefixes) && named.is_empty() {
            self.fail(&path.key("names"), format!("selecting {} needs names", s.unit));
        }
        if let Some(f) = s.fraction {
            if !(f > 0.0 && f <= 1.0) {
                self.fail(&path.key("fraction"), format!("expected a share in (0, 1], found {f}"));
            }
        }
        let mut purposes = Vec::new();
        for (j, x) in s.purposes.iter().enumerate() {
            match x.as_str() {
                "client" => purposes.push(SubnetPurpose::Client),
                "server" => purposes.push(SubnetPurpose::Server),
                "cluster" => purposes.push(SubnetPurpose::Cluster),
                "vpn-pool" => purposes.push(SubnetPurpose::VpnPool),
                other => self.fail(
                    &path.key("purposes").index(j),
                    format!("expected client, server, cluster or vpn-pool, found {other:?}"),
                ),
            }
        }
        Selector { kind, order, count: s.count, fraction: s.fraction, named, purposes }
    }

    fn population(&mut self, f: &PopulationFile, group_names: &[String]) -> PopulationParams {
        let k = |s: &str| p(&["population", s]);
        let boundary_group = match group_names.iter().position(|g| g == &f.boundary_group) {
            Some(g) => GroupId::from_index(g),
            None => {
                self.fail(&k("boundary_group"), format!("no [[group]] is named {:?}", f.boundary_group));
                GroupId(0)
            }
        };
        if !(f.foreign_connections.is_finite() && (0.0..=10_000.0).contains(&f.foreign_connections)) {
            self.fail(&k("foreign_connections"), format!("expected 0 to 10000 a day, found {}", f.foreign_connections));
        }
        for (name, s) in [("rejoin_sigma", f.rejoin_sigma)] {
            if !(s.is_finite() && (0.0..=4.0).contains(&s)) {
                self.fail(&k(name), format!("expected a lognormal sigma from 0 to 4, found {s}"));
            }
        }
        PopulationParams {
            join_rate: self.fraction(k("join_rate"), f.join_rate),
            join_rate_announced: self.fraction(k("join_rate_announced"), f.join_rate_announced),
            announcement_effect_days: f.announcement_effect_days,
            join_rate_refused: self.fraction(k("join_rate_refused"), f.join_rate_refused),
            reimaged_share_per_day: self.fraction(k("reimaged_share_per_day"), f.reimaged_share_per_day),
            rejoin_delay: f.rejoin_delay.0,
            rejoin_sigma: f.rejoin_sigma,
            boundary_group,
            boundary_request_threshold: f.boundary_request_threshold.max(1),
            boundary_request_probability: self
                .fraction(k("boundary_request_probability"), f.boundary_request_probability),
            boundary_grant_probability: self.fraction(k("boundary_grant_probability"), f.boundary_grant_probability),
            boundary_grant_days: f.boundary_grant_days,
            travel_probability: self.fraction(k("travel_probability"), f.travel_probability),
            foreign_connections: f.foreign_connections,
            foreign_incompatible: self.fraction(k("foreign_incompatible"), f.foreign_incompatible),
        }
    }

    fn nap(&mut self, f: &NapFile) -> NapParams {
        let k = |s: &str| p(&["nap", s]);
        if !(f.remediation_sigma.is_finite() && (0.0..=4.0).contains(&f.remediation_sigma)) {
            self.fail(
                &k("remediation_sigma"),
                format!("expected a lognormal sigma from 0 to 4, found {}", f.remediation_sigma),
            );
        }
        NapParams {
            drift_per_day: self.fraction(k("drift_per_day"), f.drift_per_day),
            auto_remediation: self.fraction(k("auto_remediation"), f.auto_remediation),
            auto_remediation_time: f.auto_remediation_time.0,
            manual_remediation_time: f.manual_remediation_time.0,
            remediation_sigma: f.remediation_sigma,
        }
    }

    fn firewall(&mut self, f: &FirewallFile, apps: &[AppFile], group_names: &[String]) -> FirewallParams {
        let k = |s: &str| p(&["firewall", s]);
        let mut inbound_allowed = 0u64;
        for (j, name) in f.inbound_allowed.iter().enumerate() {
            match apps.iter().position(|a| &a.name == name) {
                Some(i) if i < 64 => inbound_allowed |= 1 << i,
                _ => self.fail(&k("inbound_allowed").index(j), format!("no [[app]] is named {name:?}")),
            }
        }
        let bypass_group = f.bypass_group.as_ref().and_then(|g| match group_names.iter().position(|x| x == g) {
            Some(i) => Some(GroupId::from_index(i)),
            None => {
                self.fail(&k("bypass_group"), format!("no [[group]] is named {g:?}"));
                None
            }
        });
        FirewallParams {
            inbound_allowed,
            local_exception_probability: self.fraction(k("local_exception_probability"), f.local_exception_probability),
            bypass_group,
        }
    }

    fn packet(&mut self, f: &PacketFile) -> PacketParams {
        let k = |s: &str| p(&["packet", s]);
        let mtu = match Mtu::new(f.mtu) {
            Ok(m) if (576..=9216).contains(&f.mtu) => m,
            _ => {
                self.fail(&k("mtu"), format!("expected an MTU from 576 to 9216 bytes, found {}", f.mtu));
                Mtu::ETHERNET
            }
        };
        let over_mtu = match f.over_mtu.as_str() {
            "pmtu" => OverMtu::PathMtu,
            "fragment" => OverMtu::Fragment,
            other => {
                self.fail(&k("over_mtu"), format!("expected \"pmtu\" or \"fragment\", found {other:?}"));
                OverMtu::PathMtu
            }
        };
        let ip = match f.ip_version {
            4 => IpVersion::V4,
            6 => IpVersion::V6,
            v => {
                self.fail(&k("ip_version"), format!("expected 4 or 6, found {v}"));
                IpVersion::V4
            }
        };
        let suite = |this: &mut Self, name: &str, v: &str| match v.parse::<Suite>() {
            Ok(s) => s,
            Err(e) => {
                this.fail(&k(name), e.to_string());
                Suite::EspNullSha1
            }
        };
        let s_null = suite(self, "suite", &f.suite);
        let s_enc = suite(self, "suite_encrypted", &f.suite_encrypted);
        let parse_tod = |s: &str| -> Option<SimDuration> {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() != 3 {
                return None;
            }
            let n: Vec<u64> = parts.iter().map(|x| x.parse::<u64>().ok()).collect::<Option<_>>()?;
            (n[0] <= 24 && n[1] < 60 && n[2] < 60)
                .then(|| SimDuration::from_hours(n[0]) + SimDuration::from_mins(n[1]) + SimDuration::from_secs(n[2]))
                .filter(|d| *d <= SimDuration::DAY)
        };
        let mut window = (SimDuration::ZERO, SimDuration::ZERO);
        for (j, s) in f.pcap_window.iter().enumerate() {
            match parse_tod(s) {
                Some(d) if j == 0 => window.0 = d,
                Some(d) => window.1 = d,
                None => {
                    self.fail(&k("pcap_window").index(j), format!("expected a time of day \"HH:MM:SS\", found {s:?}"))
                }
            }
        }
        if window.0 > window.1 {
            self.fail(&k("pcap_window"), "the window must not end before it starts");
        }
        let mut cpu = vec![0.0; Suite::ALL.len()];
        for (name, &v) in &f.cpu_ns_per_byte {
            match name.parse::<Suite>() {
                Ok(s) if v.is_finite() && v >= 0.0 => cpu[s as usize] = v,
                Ok(_) => self.fail(&k("cpu_ns_per_byte").key(name), format!("expected a non-negative cost, found {v}")),
                Err(e) => self.fail(&k("cpu_ns_per_byte").key(name), e.to_string()),
            }
        }
        PacketParams {
            model: PacketModel { mtu, over_mtu, ip },
            suite: s_null,
            suite_encrypted: s_enc,
            nat_t_vpn_pools: f.nat_t_vpn_pools,
            sample_hosts: self.fraction(k("sample_hosts"), f.sample_hosts),
            pcap_window: window,
            pcap_max_packets: self.count(k("pcap_max_packets"), f.pcap_max_packets, 0, limits::MAX_PCAP_PACKETS),
            wan_threshold: {
                if !(f.wan_threshold > 0.0 && f.wan_threshold <= 10.0) {
                    self.fail(
                        &k("wan_threshold"),
                        format!("expected a utilisation in (0, 10], found {}", f.wan_threshold),
                    );
                }
                f.wan_threshold
            },
            cpu_per_packet: f.cpu_per_packet.0,
            cpu_ns_per_byte: cpu,
            offload_fraction: self.fraction(k("offload_fraction"), f.offload_fraction),
        }
    }

    fn ipsec(&mut self, i: &IpsecFile) -> IpsecParams {
        let k = |s: &str| p(&["ipsec", s]);
        for (name, d) in [
            ("main_mode_lifetime", i.main_mode_lifetime.0),
            ("quick_mode_lifetime", i.quick_mode_lifetime.0),
            ("quick_mode_idle", i.quick_mode_idle.0),
        ] {
            if d < SimDuration::SECOND || d > SimDuration::from_days(30) {
                self.fail(&k(name), format!("expected a duration from 1 s to 30 d, found {d}"));
            }
        }
        for (name, d) in [
            ("fallback_delay", i.fallback_delay.0),
            ("fallback_delay_simple_policy", i.fallback_delay_simple_policy.0),
            ("dh_cpu", i.dh_cpu.0),
        ] {
            if d > SimDuration::from_mins(10) {
                self.fail(&k(name), format!("expected at most 10 min, found {d}"));
            }
        }
        let mut ranges = |name: &str, v: &[String]| -> Vec<Ipv4Net> {
            v.iter()
                .enumerate()
                .filter_map(|(j, r)| match r.parse::<Ipv4Net>() {
                    Ok(n) => Some(n.trunc()),
                    Err(_) => {
                        self.fail(
                            &k(name).index(j),
                            format!("expected an IPv4 prefix like \"192.168.0.0/24\", found {r:?}"),
                        );
                        None
                    }
                })
                .collect()
        };
        let home_ranges = ranges("home_ranges", &i.home_ranges);
        let foreign_ranges = ranges("foreign_ranges", &i.foreign_ranges);
        IpsecParams {
            sa: SaParams {
                main_mode_lifetime: i.main_mode_lifetime.0,
                quick_mode_lifetime: i.quick_mode_lifetime.0,
                quick_mode_lifetime_bytes: i.quick_mode_lifetime_bytes.0,
                quick_mode_idle: i.quick_mode_idle.0,
                dh_cpu: i.dh_cpu.0,
                authip_extended_mode: i.authip_extended_mode,
            },
            fallback: Fallback { legacy: i.fallback_delay.0, simple_policy: i.fallback_delay_simple_policy.0 },
            negotiation_failure_probability: self
                .fraction(k("negotiation_failure_probability"), i.negotiation_failure_probability),
            managed_certificates: i.managed_certificates,
            mm_sa_bytes: i.mm_sa_memory.0,
            qm_sa_bytes: i.qm_sa_memory.0,
            home_ranges,
            foreign_ranges,
            servers_reported: self.count(k("servers_reported"), i.servers_reported, 0, 100_000),
        }
    }

    /// Filter lists, actions, policies, GPOs and local policies, names resolved.
    fn policy_set(&mut self, raw: &ScenarioFile, domains: &[DomainParams], groups: &[GroupParams]) -> PolicySet {
        let group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let mut set = PolicySet::default();
        let unique = |this: &mut Self, table: &str, names: Vec<&str>| {
            let mut seen = BTreeSet::new();
            for (i, n) in names.into_iter().enumerate() {
                if !seen.insert(n.to_string()) {
                    this.fail(&KeyPath::root().key(table).index(i).key("name"), format!("duplicate name {n:?}"));
                }
            }
        };
        unique(self, "filter_list", raw.filter_lists.iter().map(|f| f.name.as_str()).collect());
        unique(self, "filter_action", raw.filter_actions.iter().map(|f| f.name.as_str()).collect());
        unique(self, "ipsec_policy", raw.ipsec_policies.iter().map(|f| f.name.as_str()).collect());
        unique(self, "gpo", raw.gpos.iter().map(|f| f.name.as_str()).collect());
        for (i, fl) in raw.filter_lists.iter().enumerate() {
            let path = KeyPath::root().key("filter_list").index(i);
            let mut filters = Vec::new();
            for (j, text) in fl.filters.iter().enumerate() {
                match FilterSpec::parse(text, &group_names) {
                    Ok(f) => filters.push(f),
                    Err(msg) => self.fail(&path.key("filters").index(j), msg),
                }
            }
            set.filter_lists.push(FilterList { name: fl.name.clone(), filters });
        }
        for (i, a) in raw.filter_actions.iter().enumerate() {
            let kind = match a.action.as_str() {
                "permit" => ActionKind::Permit,
                "block" => ActionKind::Block,
                m => match Mode::from_name(m) {
                    Some(mode) => ActionKind::Negotiate(mode),
                    None => {
                        self.fail(
                            &KeyPath::root().key("filter_action").index(i).key("action"),
                            format!("expected permit, block, request, secure-request, require or require-encryption, found {m:?}"),
                        );
                        ActionKind::Permit
                    }
                },
            };
            set.actions.push(FilterAction { name: a.name.clone(), kind });
        }
        fn find<'s>(mut names: impl Iterator<Item = &'s String>, want: &str) -> Option<usize> {
            names.position(|n| n == want)
        }
        for (i, pol) in raw.ipsec_policies.iter().enumerate() {
            let path = KeyPath::root().key("ipsec_policy").index(i);
            let mut rules = Vec::new();
            for (j, r) in pol.rules.iter().enumerate() {
                let rp = path.key("rules").index(j);
                let fl = find(raw.filter_lists.iter().map(|f| &f.name), &r.filters);
                let act = find(raw.filter_actions.iter().map(|f| &f.name), &r.action);
                if fl.is_none() {
                    self.fail(&rp.key("filters"), format!("no [[filter_list]] is named {:?}", r.filters));
                }
                if act.is_none() {
                    self.fail(&rp.key("action"), format!("no [[filter_action]] is named {:?}", r.action));
                }
                let mut auth = Vec::new();
                for (m, a) in r.auth.iter().enumerate() {
                    match AuthMethod::parse(a) {
                        Some(method) => auth.push(method),
                        None => self.fail(
                            &rp.key("auth").index(m),
                            format!("expected kerberos, certificate or psk:<name>, found {a:?}"),
                        ),
                    }
                }
                if r.auth.is_empty() {
                    auth.push(AuthMethod::Kerberos);
                }
                if let (Some(filter_list), Some(action)) = (fl, act) {
                    rules.push(Rule { filter_list, action, auth });
                }
            }
            set.policies.push(IpsecPolicy { name: pol.name.clone(), rules });
        }
        let principal = |this: &mut Self, path: KeyPath, name: &str| -> Option<Principal> {
            if name == "Domain Computers" {
                return Some(Principal::DomainComputers);
            }
            match group_names.iter().position(|g| g == name) {
                Some(g) => Some(Principal::Group(GroupId::from_index(g))),
                None => {
                    this.fail(
                        &path,
                        format!("unknown group {name:?}: expected \"Domain Computers\" or a [[group]] name"),
                    );
                    None
                }
            }
        };
        for (i, g) in raw.gpos.iter().enumerate() {
            let path = KeyPath::root().key("gpo").index(i);
            let policy = find(raw.ipsec_policies.iter().map(|f| &f.name), &g.policy);
            if policy.is_none() {
                self.fail(&path.key("policy"), format!("no [[ipsec_policy]] is named {:?}", g.policy));
            }
            let mut ds = Vec::new();
            for (j, d) in g.domains.iter().flatten().enumerate() {
                match domains.iter().position(|x| &x.name == d) {
                    Some(di) => ds.push(DomainId::from_index(di)),
                    None => self.fail(&path.key("domains").index(j), format!("unknown domain {d:?}")),
                }
            }
            let apply = g
                .apply
                .iter()
                .enumerate()
                .filter_map(|(j, n)| principal(self, path.key("apply").index(j), n))
                .collect();
            let deny =
                g.deny.iter().enumerate().filter_map(|(j, n)| principal(self, path.key("deny").index(j), n)).collect();
            if let Some(policy) = policy {
                set.gpos.push(Gpo {
                    name: g.name.clone(),
                    policy,
                    domains: g.domains.as_ref().map(|_| ds),
                    apply,
                    deny,
                });
            }
        }
        for (i, lp) in raw.local_policies.iter().enumerate() {
            let path = KeyPath::root().key("local_policy").index(i);
            let policy = find(raw.ipsec_policies.iter().map(|f| &f.name), &lp.policy);
            if policy.is_none() {
                self.fail(&path.key("policy"), format!("no [[ipsec_policy]] is named {:?}", lp.policy));
            }
            let fraction = self.fraction(path.key("fraction"), lp.fraction);
            let mut credentials = Vec::new();
            for (j, c) in lp.credentials.iter().enumerate() {
                match AuthMethod::parse(c) {
                    Some(AuthMethod::Kerberos) | None => self.fail(
                        &path.key("credentials").index(j),
                        format!("expected certificate or psk:<name>, found {c:?}"),
                    ),
                    Some(m) => credentials.push(m),
                }
            }
            if let Some(policy) = policy {
                set.local_policies.push(LocalPolicy { clients: lp.clients.clone(), fraction, policy, credentials });
            }
        }
        set
    }

    fn run(&mut self, r: &RunFile) -> RunParams {
        let days = self.count(p(&["run", "days"]), r.days, 1, limits::MAX_DAYS);
        let start_weekday = match WEEKDAYS.iter().position(|d| *d == r.start_weekday) {
            Some(i) => i as u8,
            None => {
                self.fail(
                    &p(&["run", "start_weekday"]),
                    format!("expected one of {}, found {:?}", WEEKDAYS.join(", "), r.start_weekday),
                );
                0
            }
        };
        let bin = r.utilisation_bin.0;
        if bin < SimDuration::SECOND || SimDuration::DAY.as_nanos() % bin.as_nanos() != 0 {
            self.fail(
                &p(&["run", "utilisation_bin"]),
                format!("expected at least 1 s and a whole fraction of a day (e.g. \"5 min\"), found {bin}"),
            );
        }
        if !(r.traffic_sample > 0.0 && r.traffic_sample <= 1.0) {
            self.fail(
                &p(&["run", "traffic_sample"]),
                format!("expected a share in (0, 1], found {}", r.traffic_sample),
            );
        }
        RunParams { seed: r.seed, days, start_weekday, utilisation_bin: bin, traffic_sample: r.traffic_sample }
    }

    fn campus(&mut self, c: &CampusFile) -> CampusParams {
        let k = |s: &str| p(&["campus", s]);
        let clients = self.count(k("clients"), c.clients, 1, limits::MAX_CLIENTS);
        let users = self.count(k("users"), c.users, 1, clients.max(1));
        let sites = self.count(k("sites"), c.sites, 1, limits::MAX_SITES.min(clients.max(1)));
        let regions = self.count(k("regions"), c.regions, 1, limits::MAX_REGIONS.min(sites.max(1)));
        let hq_client_share = self.fraction(k("hq_client_share"), c.hq_client_share);
        if c.site_size_zipf < 0.0 || c.site_size_zipf > 4.0 || !c.site_size_zipf.is_finite() {
            self.fail(&k("site_size_zipf"), format!("expected an exponent from 0 to 4, found {}", c.site_size_zipf));
        }
        let clients_per_building = self.count(k("clients_per_building"), c.clients_per_building, 1, 1_000_000);
        let address_space = match c.address_space.parse::<Ipv4Net>() {
            Ok(net) if net.prefix_len() <= 16 => net.trunc(),
            Ok(net) => {
                self.fail(
                    &k("address_space"),
                    format!("expected a block of /16 or larger, found /{}", net.prefix_len()),
                );
                net
            }
            Err(_) => {
                self.fail(
                    &k("address_space"),
                    format!("expected an IPv4 prefix like \"10.0.0.0/8\", found {:?}", c.address_space),
                );
                Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 8).expect("valid")
            }
        };
        let mut prefixes = BTreeMap::new();
        for (key, &w) in &c.client_subnet_prefixes {
            let len = key.trim_start_matches('/').parse::<u8>().ok().filter(|l| (18..=26).contains(l));
            match len {
                Some(l) => {
                    prefixes.insert(l, w);
                }
                None => self.fail(
                    &k("client_subnet_prefixes").key(key),
                    format!("expected a prefix length from 18 to 26 (\"24\" or \"/24\"), found {key:?}"),
                ),
            }
        }
        let client_subnet_prefixes = self.mix(k("client_subnet_prefixes"), &prefixes, |_| true, "prefix lengths");
        let subnet_fill = self.range(k("subnet_fill"), c.subnet_fill);
        if !(subnet_fill.0 > 0.0 && subnet_fill.1 <= 1.0) {
            self.fail(&k("subnet_fill"), "expected shares in (0, 1]");
        }
        if !(18..=21).contains(&c.vpn_pool_prefix) {
            self.fail(
                &k("vpn_pool_prefix"),
                format!("expected a prefix length from 18 to 21, found {}", c.vpn_pool_prefix),
            );
        }
        let windows = |o: Os| o.ipsec_capable();
        CampusParams {
            clients,
            users,
            sites,
            regions,
            hq_client_share,
            site_size_zipf: c.site_size_zipf,
            clients_per_building,
            address_space,
            client_subnet_prefixes,
            subnet_fill,
            vpn_pool_prefix: c.vpn_pool_prefix,
            laptop_fraction: self.fraction(k("laptop_fraction"), c.laptop_fraction),
            multi_machine_user_fraction: self.fraction(k("multi_machine_user_fraction"), c.multi_machine_user_fraction),
            domain_site_affinity: self.fraction(k("domain_site_affinity"), c.domain_site_affinity),
            simple_policy_update_fraction: self
                .fraction(k("simple_policy_update_fraction"), c.simple_policy_update_fraction),
            client_mix: self.mix(k("client_mix"), &c.client_mix, |_| true, "client categories"),
            managed_os: self.mix(k("managed_os"), &c.managed_os, windows, "Windows 2000 or later"),
            test_domain_os: self.mix(k("test_domain_os"), &c.test_domain_os, windows, "Windows 2000 or later"),
            legacy_os: self.mix(k("legacy_os"), &c.legacy_os, |o| matches!(o, Os::Nt4 | Os::Win9x), "nt4 or win9x"),
            vpn_guest_os: self.mix(k("vpn_guest_os"), &c.vpn_guest_os, windows, "Windows 2000 or later"),
        }
    }

    fn domains(&mut self, raw: &[DomainFile]) -> Vec<DomainParams> {
        if raw.is_empty() {
            self.fail(&p(&["domain"]), "expected at least one [[domain]]");
        }
        if raw.len() > limits::MAX_DOMAINS {
            self.fail(&p(&["domain"]), format!("at most {} domains are supported", limits::MAX_DOMAINS));
        }
        let mut seen = BTreeSet::new();
        let mut total = 0.0;
        let out: Vec<DomainParams> = raw
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let path = KeyPath::root().key("domain").index(i);
                if !seen.insert(d.name.as_str()) {
                    self.fail(&path.key("name"), format!("duplicate domain name {:?}", d.name));
                }
                let share = self.fraction(path.key("share"), d.share);
                total += share;
                DomainParams { name: d.name.clone(), share }
            })
            .collect();
        if !raw.is_empty() && (total - 1.0).abs() > 1e-3 {
            self.fail(&p(&["domain"]), format!("domain shares must sum to 1, they sum to {total:.6}"));
        }
        out
    }

    fn server_roles(&mut self, raw: &[ServerRoleFile], clients: u32) -> Vec<ServerRoleParams> {
        let mut seen = BTreeSet::new();
        let mut total_servers: u64 = 0;
        let out = raw
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let path = KeyPath::root().key("server_role").index(i);
                if !seen.insert(r.role) {
                    self.fail(&path.key("role"), format!("role `{}` is defined twice", r.role));
                }
                let placement = match r.placement.as_str() {
                    "site" => Placement::Site,
                    "hub" => Placement::Hub,
                    "hq" => Placement::Hq,
                    other => {
                        self.fail(&path.key("placement"), format!("expected one of site, hub, hq, found {other:?}"));
                        Placement::Hq
                    }
                };
                let per_clients = self.count(path.key("per_clients"), r.per_clients, 1, u32::MAX);
                total_servers += u64::from(clients) / u64::from(per_clients.max(1)) + 1;
                let os = self.mix(path.key("os"), &r.os, |_| true, "operating systems");
                ServerRoleParams { role: r.role, placement, per_clients, min_site_clients: r.min_site_clients, os }
            })
            .collect();
        if total_servers > limits::MAX_SERVERS {
            self.fail(
                &p(&["server_role"]),
                format!(
                    "these ratios give about {total_servers} servers, more than the limit of {}",
                    limits::MAX_SERVERS
                ),
            );
        }
        out
    }

    fn nlb(&mut self, n: &NlbFile) -> NlbParams {
        let k = |s: &str| p(&["nlb", s]);
        let clusters = self.count(k("clusters"), n.clusters, 0, limits::MAX_NLB_CLUSTERS);
        let nodes_min = self.count(k("nodes_min"), n.nodes_min, 2, limits::MAX_NLB_NODES);
        let nodes_max = self.count(k("nodes_max"), n.nodes_max, 2, limits::MAX_NLB_NODES);
        if nodes_min > nodes_max {
            self.fail(&k("nodes_max"), format!("expected nodes_max >= nodes_min ({nodes_min}), found {nodes_max}"));
        }
        if !(n.nodes_mean >= f64::from(nodes_min) && n.nodes_mean <= f64::from(nodes_max)) {
            self.fail(
                &k("nodes_mean"),
                format!("expected a mean between nodes_min and nodes_max, found {}", n.nodes_mean),
            );
        }
        if clusters > 0 && n.services.is_empty() {
            self.fail(&k("services"), "expected at least one service role for the clusters");
        }
        NlbParams {
            clusters,
            nodes_min,
            nodes_max,
            nodes_mean: n.nodes_mean,
            services: n.services.clone(),
            affinity: self.mix(k("affinity"), &n.affinity, |_| true, "affinities"),
            os: self.mix(k("os"), &n.os, |o| o.is_server_os() || o == Os::Win2000, "a Windows server OS"),
            failover: self.failover(n, clusters, nodes_min),
        }
    }

    fn failover(&mut self, n: &NlbFile, clusters: u32, nodes_min: u32) -> FailoverParams {
        let k = |s: &str| p(&["nlb", s]);
        for (name, d) in [
            ("mttr", n.mttr),
            ("convergence", n.convergence),
            ("idle_legacy", n.idle_legacy),
            ("idle", n.idle),
            ("tcp_data_rto", n.tcp_data_rto),
            ("tcp_syn_rto", n.tcp_syn_rto),
            ("app_timeout", n.app_timeout),
        ] {
            if d.0.is_zero() {
                self.fail(&k(name), "expected a positive duration");
            }
        }
        if n.mtbf.is_some_and(|d| d.0 < SimDuration::MINUTE) {
            self.fail(&k("mtbf"), "expected at least 1 min between failures of a node");
        }
        for (name, x) in [
            ("tcp_data_retransmissions", n.tcp_data_retransmissions),
            ("tcp_syn_retransmissions", n.tcp_syn_retransmissions),
        ] {
            if x > 20 {
                self.fail(&k(name), format!("expected at most 20 retransmissions, found {x}"));
            }
        }
        let mut scheduled = Vec::new();
        for (i, f) in n.failures.iter().enumerate() {
            let path = KeyPath::root().key("nlb").key("failure").index(i);
            if f.cluster >= clusters {
                self.fail(
                    &path.key("cluster"),
                    format!("expected a cluster index below {clusters}, found {}", f.cluster),
                );
            }
            // Node counts are drawn per cluster; every cluster has at least `nodes_min`.
            if f.node >= nodes_min {
                self.fail(
                    &path.key("node"),
                    format!(
                        "expected a node index below nodes_min ({nodes_min}), which every cluster has, found {}",
                        f.node
                    ),
                );
            }
            if f.down.0.is_zero() {
                self.fail(&path.key("down"), "expected a positive duration");
            }
            let at = self.time_of_day(path.key("at"), &f.at);
            // Checked: a day beyond the limit is reported by `bounds`, and must not overflow
            // here first.
            let at = SimTime::checked_start_of_day(f.day).and_then(|d| d.checked_add(at)).unwrap_or(SimTime::MAX);
            scheduled.push(ScheduledFailure { cluster: f.cluster, node: f.node, at, down_for: f.down.0 });
        }
        FailoverParams {
            mtbf: n.mtbf.filter(|_| n.random_failures).map(|d| d.0),
            mttr: n.mttr.0,
            convergence: n.convergence.0,
            idle_legacy: n.idle_legacy.0,
            idle: n.idle.0,
            xp_sp1_nat_t: self.fraction(k("xp_sp1_nat_t_update"), n.xp_sp1_nat_t_update),
            exempt_vips: n.exempt_vips,
            tcp: TcpTimers {
                data_rto: n.tcp_data_rto.0,
                data_retransmissions: n.tcp_data_retransmissions,
                syn_rto: n.tcp_syn_rto.0,
                syn_retransmissions: n.tcp_syn_retransmissions,
                app_retry: n.app_retry.0,
                app_timeout: n.app_timeout.0,
            },
            scheduled,
        }
    }

    /// 24 relative hourly weights: non-negative, not all zero, and with a sum small enough
    /// to scale (a weight near the largest float made `w * 24` infinite: an infinite
    /// session rate, a day of one session per nanosecond). `None` once reported.
    fn hourly_weights(&mut self, path: &KeyPath, weights: &[f64]) -> Option<[f64; 24]> {
        let total: f64 = weights.iter().sum();
        let ok = weights.len() == 24 && weights.iter().all(|w| w.is_finite() && *w >= 0.0);
        if !ok || total <= 0.0 {
            self.fail(
                path,
                format!("expected 24 non-negative hourly weights, not all zero (found {} values)", weights.len()),
            );
            return None;
        }
        if total > f64::MAX / 24.0 {
            self.fail(path, format!("hourly weights are relative: their sum must be below {:e}", f64::MAX / 24.0));
            return None;
        }
        let mut out = [0.0; 24];
        out.copy_from_slice(weights);
        Some(out)
    }

    /// A time of day `"HH:MM"` (24:00 allowed).
    fn time_of_day(&mut self, path: KeyPath, s: &str) -> SimDuration {
        let ok = s.split_once(':').and_then(|(h, m)| Some((h.parse::<u64>().ok()?, m.parse::<u64>().ok()?)));
        match ok {
            Some((h, m)) if h <= 24 && m < 60 && (h < 24 || m == 0) => {
                SimDuration::from_hours(h) + SimDuration::from_mins(m)
            }
            _ => {
                self.fail(&path, format!("expected a time of day \"HH:MM\", found {s:?}"));
                SimDuration::ZERO
            }
        }
    }

    fn groups(&mut self, raw: &[GroupFile]) -> Vec<GroupParams> {
        if raw.len() > limits::MAX_GROUPS {
            self.fail(&p(&["group"]), format!("at most {} groups are supported", limits::MAX_GROUPS));
        }
        let mut seen = BTreeSet::new();
        raw.iter()
            .enumerate()
            .map(|(i, g)| {
                let path = KeyPath::root().key("group").index(i);
                if !seen.insert(g.name.as_str()) {
                    self.fail(&path.key("name"), format!("duplicate group name {:?}", g.name));
                }
                GroupParams {
                    name: g.name.clone(),
                    kind: g.kind,
                    roles: g.roles.clone(),
                    clients: g.clients.clone(),
                    fraction: self.fraction(path.key("fraction"), g.fraction),
                }
            })
            .collect()
    }

    fn topology(&mut self, t: &TopologyFile) -> TopologyParams {
        let k = |s: &str| p(&["topology", s]);
        let wan_latency = self.range(k("wan_latency"), [t.wan_latency[0].0, t.wan_latency[1].0]);
        let backbone_latency = self.range(k("backbone_latency"), [t.backbone_latency[0].0, t.backbone_latency[1].0]);
        let mut circuits: Vec<u64> = t.wan_circuits.iter().map(|b| b.0).collect();
        if circuits.is_empty() || circuits.contains(&0) {
            self.fail(&k("wan_circuits"), "expected a non-empty list of non-zero bitrates");
        }
        circuits.sort_unstable();
        for (name, bps) in [
            ("lan_capacity", t.lan_capacity.0),
            ("backbone_capacity", t.backbone_capacity.0),
            ("wan_provisioned_per_client", t.wan_provisioned_per_client.0),
        ] {
            if bps == 0 {
                self.fail(&k(name), "expected a non-zero bitrate");
            }
        }
        let headroom = self.range(k("wan_headroom"), t.wan_headroom);
        if !(headroom.0 > 0.0 && headroom.1 <= 100.0) {
            self.fail(&k("wan_headroom"), "expected factors in (0, 100]");
        }
        TopologyParams {
            lan_capacity_bps: t.lan_capacity.0,
            lan_latency: t.lan_latency.0,
            wan_latency,
            backbone_capacity_bps: t.backbone_capacity.0,
            backbone_latency,
            wan_circuits_bps: circuits,
            wan_provisioned_per_client_bps: t.wan_provisioned_per_client.0,
            wan_burst_per_sqrt_client_bps: t.wan_burst_per_sqrt_client.0,
            wan_headroom: headroom,
        }
    }

    fn traffic(
        &mut self,
        t: &TrafficFile,
        apps: &[AppFile],
        roles: &[ServerRoleParams],
        nlb: &NlbParams,
    ) -> TrafficParams {
        let k = |s: &str| p(&["traffic", s]);
        if !(t.popularity_zipf.is_finite() && (0.0..=4.0).contains(&t.popularity_zipf)) {
            self.fail(&k("popularity_zipf"), format!("expected an exponent from 0 to 4, found {}", t.popularity_zipf));
        }
        let mut profiles = Vec::new();
        for (name, weights) in &t.diurnal {
            let Some(weights) = self.hourly_weights(&k("diurnal").key(name), weights) else { continue };
            let total: f64 = weights.iter().sum();
            let mut hourly = [0.0; 24];
            for (h, w) in weights.iter().enumerate() {
                hourly[h] = w * 24.0 / total;
            }
            profiles.push(Profile { name: name.clone(), hourly });
        }
        if apps.is_empty() {
            self.fail(&p(&["app"]), "expected at least one [[app]]");
        }
        if apps.len() > limits::MAX_APPS {
            self.fail(&p(&["app"]), format!("at most {} applications are supported", limits::MAX_APPS));
        }
        let mut seen = BTreeSet::new();
        let has_servers =
            |r: Role| roles.iter().any(|s| s.role == r) || (nlb.clusters > 0 && nlb.services.contains(&r));
        let apps = apps
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let path = KeyPath::root().key("app").index(i);
                if !seen.insert(a.name.as_str()) {
                    self.fail(&path.key("name"), format!("duplicate application name {:?}", a.name));
                }
                let mut from = Vec::new();
                for (j, f) in a.from.iter().enumerate() {
                    match HostKind::from_name(f) {
                        Some(kind) => from.push(kind),
                        None => self.fail(
                            &path.key("from").index(j),
                            format!("unknown host kind {f:?}: expected one of {}", HostKind::expected()),
                        ),
                    }
                }
                if a.from.is_empty() {
                    self.fail(&path.key("from"), "expected at least one initiating host kind");
                }
                let to = match parse_target(&a.to) {
                    Ok(Target::Home(r) | Target::Popular(r)) if !has_servers(r) => {
                        self.fail(
                            &path.key("to"),
                            format!("no servers of role `{r}` exist: add a [[server_role]] for it"),
                        );
                        Target::Peer
                    }
                    Ok(t) => t,
                    Err(msg) => {
                        self.fail(&path.key("to"), msg);
                        Target::Peer
                    }
                };
                if !(a.sessions_per_day.is_finite()
                    && (0.0..=limits::MAX_SESSIONS_PER_DAY).contains(&a.sessions_per_day))
                {
                    self.fail(
                        &path.key("sessions_per_day"),
                        format!(
                            "expected a rate from 0 to {}, found {}",
                            limits::MAX_SESSIONS_PER_DAY,
                            a.sessions_per_day
                        ),
                    );
                }
                for (name, s) in [("size_sigma", a.size_sigma), ("duration_sigma", a.duration_sigma)] {
                    if !(s.is_finite() && (0.0..=4.0).contains(&s)) {
                        self.fail(&path.key(name), format!("expected a lognormal sigma from 0 to 4, found {s}"));
                    }
                }
                let profile = match profiles.iter().position(|pr| pr.name == a.diurnal) {
                    Some(i) => i,
                    // A profile that failed its own check is reported there already.
                    None if t.diurnal.contains_key(&a.diurnal) => 0,
                    None => {
                        let names: Vec<&str> = t.diurnal.keys().map(String::as_str).collect();
                        self.fail(
                            &path.key("diurnal"),
                            format!("unknown profile {:?}: expected one of {}", a.diurnal, names.join(", ")),
                        );
                        0
                    }
                };
                AppParams {
                    name: a.name.clone(),
                    protocol: a.protocol,
                    port: a.port,
                    from,
                    to,
                    sessions_per_day: a.sessions_per_day,
                    bytes_up_median: a.bytes_up.0,
                    bytes_down_median: a.bytes_down.0,
                    size_sigma: a.size_sigma,
                    duration_median: a.duration.0,
                    duration_sigma: a.duration_sigma,
                    profile,
                    shape: {
                        for (name, v) in [("message_up", a.message_up.0), ("message_down", a.message_down.0)] {
                            if v == 0 || v > 1 << 30 {
                                self.fail(
                                    &path.key(name),
                                    format!("expected a message size from 1 B to 1 GiB, found {v} B"),
                                );
                            }
                        }
                        if a.protocol == Protocol::Udp && a.message_up.0.max(a.message_down.0) > 65_507 {
                            self.fail(&path.key("message_up"), "a UDP message is one datagram: at most 65507 bytes");
                        }
                        Shape {
                            protocol: a.protocol,
                            message_up: a.message_up.0.max(1),
                            message_down: a.message_down.0.max(1),
                        }
                    },
                }
            })
            .collect();
        TrafficParams {
            weekend_factor: {
                if !(t.weekend_factor.is_finite() && (0.0..=10.0).contains(&t.weekend_factor)) {
                    self.fail(
                        &k("weekend_factor"),
                        format!("expected a factor from 0 to 10, found {}", t.weekend_factor),
                    );
                }
                t.weekend_factor
            },
            popularity_zipf: t.popularity_zipf,
            popular_local_share: self.fraction(k("popular_local_share"), t.popular_local_share),
            peer_building_share: self.fraction(k("peer_building_share"), t.peer_building_share),
            tcp_window_bytes: {
                if t.tcp_window.0 < 1024 {
                    self.fail(&k("tcp_window"), format!("expected a window of at least 1 KiB, found {}", t.tcp_window));
                }
                t.tcp_window.0
            },
            profiles,
            apps,
        }
    }
}

fn metric_names() -> String {
    Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// Weekday names of `run.start_weekday`, Monday first.
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_target(s: &str) -> Result<Target, String> {
    let bad = || format!("expected \"home:<role>\", \"popular:<role>\" or \"peer\", found {s:?}");
    if s == "peer" {
        return Ok(Target::Peer);
    }
    let (kind, role) = s.split_once(':').ok_or_else(bad)?;
    let role =
        Role::from_name(role).ok_or_else(|| format!("unknown role {role:?}: expected one of {}", Role::expected()))?;
    match kind {
        "home" => Ok(Target::Home(role)),
        "popular" => Ok(Target::Popular(role)),
        _ => Err(bad()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
