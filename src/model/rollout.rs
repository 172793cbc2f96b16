//! Rollout schedules: phases of waves, each a selector (subnets, buildings, sites or domains
//! by size order, security groups, explicit names, everything) and an action (grow a filter
//! list, link a GPO to domains, put hosts in a group, set NAP or Windows Firewall mode), with
//! a start day, a duration, gates that hold a wave until a condition holds, rollback triggers
//! that revert it, and announcements.
//!
//! Contract:
//! - [`Rollout::day`] is called once at the start of every simulated day with the metrics of
//!   the days before; it returns the day's changes: a new policy configuration when the
//!   IPsec policy changed, the new host settings (NAP, firewall) when they changed, group
//!   membership changes, and a log. Changes reach hosts at their next Group Policy refresh;
//!   this module only decides what changes when.
//! - Deterministic: units are ordered by size with ties broken by id; no randomness.
//! - A wave's units are spread evenly over its duration (unit k of n on day
//!   `floor(k * duration / n)` after the start); a rollback reverts every change the wave
//!   made, in one step, and waves that follow a rolled-back wave never start.

use ipnet::Ipv4Net;

use super::campus::{Campus, SubnetPurpose};
use super::ids::{BuildingId, DomainId, GroupId, HostId, SiteId, SubnetId};
use super::policy::{AddrSpec, FilterSpec, PolicySet};
use super::population::{NapMode, Population};

/// What a wave does.
#[derive(Clone, Debug, PartialEq)]
pub enum WaveAction {
    /// Add the selected units' prefixes to a filter list (`any <-> prefix`).
    AddFilters { list: usize },
    /// Replace a filter list's filters.
    SetFilters { list: usize, filters: Vec<FilterSpec> },
    /// Link a GPO to the selected domains (or to every domain).
    LinkGpo { gpo: usize },
    /// Put the selected hosts in a security group.
    AddToGroup { group: GroupId },
    /// Put the selected hosts under a NAP mode.
    Nap(NapMode),
    /// Turn Windows Firewall on (or off) for the selected hosts.
    Firewall(bool),
}

/// Kinds of unit a selector picks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Subnets,
    Buildings,
    Sites,
    Domains,
    Groups,
    Prefixes,
    All,
}

/// One selectable unit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Subnet(SubnetId),
    Building(BuildingId),
    Site(SiteId),
    Domain(DomainId),
    Group(GroupId),
    Prefix(Ipv4Net),
    /// Every managed host / every domain.
    All,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// Fewest hosts first.
    Smallest,
    Largest,
    /// As listed by name.
    Listed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    pub kind: UnitKind,
    pub order: Order,
    /// How many of the remaining units: a count, a share, or all.
    pub count: Option<u32>,
    pub fraction: Option<f64>,
    /// Named units (domains, groups, prefixes), in order.
    pub named: Vec<Unit>,
    /// Subnet purposes that count (empty: all).
    pub purposes: Vec<SubnetPurpose>,
}

/// A daily metric gates and rollbacks look at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Metric {
    /// IPsec-related helpdesk calls in the last 7 days.
    IpsecCallsWeek,
    /// All helpdesk calls in the last 7 days.
    CallsWeek,
    FirewallCallsWeek,
    NapCallsWeek,
    /// Connections blocked yesterday.
    BlockedDay,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::IpsecCallsWeek,
        Metric::CallsWeek,
        Metric::FirewallCallsWeek,
        Metric::NapCallsWeek,
        Metric::BlockedDay,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Metric::IpsecCallsWeek => "ipsec_calls_week",
            Metric::CallsWeek => "calls_week",
            Metric::FirewallCallsWeek => "firewall_calls_week",
            Metric::NapCallsWeek => "nap_calls_week",
            Metric::BlockedDay => "blocked_connections_day",
        }
    }
    pub fn from_name(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Hold a wave until `metric` stays below `below` for `days` consecutive days.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Gate {
    pub metric: Metric,
    pub below: f64,
    pub days: u32,
}

/// Revert a wave if `metric` exceeds `above` on any day within `within` days of its start.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Rollback {
    pub metric: Metric,
    pub above: f64,
    pub within: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Wave {
    pub name: String,
    pub phase: String,
    /// Earliest day it starts.
    pub start: u32,
    /// Starts only `gap` days after this wave finished.
    pub after: Option<usize>,
    pub gap: u32,
    /// Days over which its units are applied.
    pub duration: u32,
    pub action: WaveAction,
    pub select: Selector,
    pub gate: Option<Gate>,
    pub rollback: Option<Rollback>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnnouncementKind {
    /// E-mail to every employee [WP].
    Email,
    /// Training sessions, brown bags, newsletter stories for users [WP].
    UserTraining,
    /// Flowcharts and training for the helpdesk [WP].
    HelpdeskTraining,
}

/// What an announcement is about.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Topic {
    Ipsec,
    Nap,
    Firewall,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    pub day: u32,
    pub kind: AnnouncementKind,
    pub topic: Topic,
    pub text: String,
}

/// The whole schedule.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Schedule {
    pub waves: Vec<Wave>,
    pub announcements: Vec<Announcement>,
}

/// NAP and firewall settings as Group Policy carries them: (unit, mode) links, the last
/// matching one wins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSettings {
    pub nap: Vec<(Unit, NapMode)>,
    pub firewall: Vec<(Unit, bool)>,
}

/// Whether a host belongs to a unit now.
pub fn unit_contains(unit: &Unit, campus: &Campus, pop: &Population, host: HostId) -> bool {
    let h = campus.host(host);
    match *unit {
        Unit::Subnet(s) => h.subnet == s,
        Unit::Building(b) => h.building == b,
        Unit::Site(s) => h.site == s,
        Unit::Domain(d) => pop.domain(host) == Some(d),
        Unit::Group(g) => pop.groups(host).contains(g),
        Unit::Prefix(p) => p.contains(&std::net::Ipv4Addr::from(h.addr)),
        Unit::All => pop.is_managed(host),
    }
}

impl HostSettings {
    /// The NAP mode and firewall state Group Policy gives a host now (managed hosts only;
    /// the firewall policy only takes on systems with the advanced firewall).
    pub fn for_host(&self, campus: &Campus, pop: &Population, host: HostId) -> (NapMode, bool) {
        if !pop.is_managed(host) {
            return (NapMode::Off, false);
        }
        let nap =
            self.nap.iter().rev().find(|(u, _)| unit_contains(u, campus, pop, host)).map_or(NapMode::Off, |x| x.1);
        let fw = campus.host(host).os.advanced_firewall()
            && self.firewall.iter().rev().find(|(u, _)| unit_contains(u, campus, pop, host)).is_some_and(|x| x.1);
        (nap, fw)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Waiting,
    Held,
    Running { started: u32, units: Vec<Unit>, done: usize },
    Done { started: u32, finished: u32 },
    RolledBack,
}

/// What a wave changed, so a rollback can undo it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Undo {
    filters_added: Vec<(usize, FilterSpec)>,
    filters_before: Option<(usize, Vec<FilterSpec>)>,
    gpo_before: Option<(usize, Option<Vec<DomainId>>)>,
    group_members: Vec<(GroupId, HostId)>,
    nap_links: Vec<(Unit, NapMode)>,
    firewall_links: Vec<(Unit, bool)>,
}

/// A line of the rollout log (`rollout_events.csv`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub day: u32,
    pub wave: String,
    pub phase: String,
    pub event: &'static str,
    pub detail: String,
}

/// The day's changes.
#[derive(Clone, Debug, Default)]
pub struct DayChanges {
    /// The IPsec configuration after today's changes, if it changed.
    pub policy: Option<PolicySet>,
    /// The NAP/firewall settings after today's changes, if they changed.
    pub settings: Option<HostSettings>,
    /// Hosts added to (true) or removed from (false) groups.
    pub groups: Vec<(HostId, GroupId, bool)>,
    pub announcements: Vec<Announcement>,
    pub log: Vec<LogEntry>,
}

pub struct Rollout {
    schedule: Schedule,
    pub set: PolicySet,
    pub settings: HostSettings,
    status: Vec<Status>,
    undo: Vec<Undo>,
    /// Consecutive days each wave's gate condition has held.
    gate_streak: Vec<u32>,
}

impl Rollout {
    pub fn new(schedule: Schedule, initial: PolicySet) -> Rollout {
        let n = schedule.waves.len();
        Rollout {
            schedule,
            set: initial,
            settings: HostSettings::default(),
            status: vec![Status::Waiting; n],
            undo: vec![Undo::default(); n],
            gate_streak: vec![0; n],
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Whether every wave is done or rolled back.
    pub fn finished(&self) -> bool {
        self.status.iter().all(|s| matches!(s, Status::Done { .. } | Status::RolledBack))
    }

    /// The day's changes; `metric` reads the metrics of the days before `day`.
    pub fn day(&mut self, day: u32, campus: &Campus, pop: &Population, metric: &dyn Fn(Metric) -> f64) -> DayChanges {
        let mut out = DayChanges::default();
        let mut policy_changed = false;
        let mut settings_changed = false;
        for a in self.schedule.announcements.iter().filter(|a| a.day == day) {
            out.announcements.push(a.clone());
            out.log.push(LogEntry {
                day,
                wave: String::new(),
                phase: String::new(),
                event: "announcement",
                detail: a.text.clone(),
            });
        }
        for w in 0..self.schedule.waves.len() {
            let wave = self.schedule.waves[w].clone();
            let log = |event: &'static str, detail: String| LogEntry {
                day,
                wave: wave.name.clone(),
                phase: wave.phase.clone(),
                event,
                detail,
            };
            // Rollback triggers of running or finished waves.
            if let (Some(rb), Status::Running { started, .. } | Status::Done { started, .. }) =
                (wave.rollback, &self.status[w])
            {
                let v = metric(rb.metric);
                if day > *started && day - started <= rb.within && v > rb.above {
                    let (p, s) = self.revert(w, &mut out);
                    policy_changed |= p;
                    settings_changed |= s;
                    self.status[w] = Status::RolledBack;
                    out.log.push(log("rolled-back", format!("{} = {v} > {}", rb.metric.name(), rb.above)));
                    continue;
                }
            }
            // Start waiting waves whose day, predecessor and gate allow.
            if matches!(self.status[w], Status::Waiting | Status::Held) {
                let ready = day >= wave.start
                    && wave.after.is_none_or(|a| match self.status[a] {
                        Status::Done { finished, .. } => day >= finished + wave.gap,
                        _ => false,
                    });
                if !ready {
                    continue;
                }
                if let Some(g) = wave.gate {
                    let v = metric(g.metric);
                    self.gate_streak[w] = if v < g.below { self.gate_streak[w] + 1 } else { 0 };
                    if self.gate_streak[w] < g.days {
                        if self.status[w] == Status::Waiting {
                            out.log.push(log(
                                "held",
                                format!("{} = {v}, needs < {} for {} days", g.metric.name(), g.below, g.days),
                            ));
                        }
                        self.status[w] = Status::Held;
                        continue;
                    }
                    if self.status[w] == Status::Held {
                        out.log.push(log(
                            "released",
                            format!("{} below {} for {} days", g.metric.name(), g.below, g.days),
                        ));
                    }
                }
                let units = self.resolve(&wave, campus, pop);
                out.log.push(log("started", format!("{} units over {} day(s)", units.len(), wave.duration.max(1))));
                self.status[w] = Status::Running { started: day, units, done: 0 };
            }
            // Apply today's batch of running waves.
            if let Status::Running { started, units, done } = &self.status[w] {
                let (started, total, from) = (*started, units.len(), *done);
                // Unit k goes out on day started + floor(k * duration / total): the units
                // spread evenly over the duration (six domains over 42 days: one a week).
                let elapsed = (day - started) as usize + 1;
                let to = (elapsed * total).div_ceil(wave.duration.max(1) as usize).clamp(from, total);
                let batch: Vec<Unit> = units[from..to].to_vec();
                let (p, s) = self.apply(w, &wave.action, &batch, campus, pop, &mut out);
                policy_changed |= p;
                settings_changed |= s;
                if to >= total {
                    self.status[w] = Status::Done { started, finished: day };
                    out.log.push(log("done", format!("{total} units")));
                } else if let Status::Running { done, .. } = &mut self.status[w] {
                    *done = to;
                }
            }
        }
        if policy_changed {
            out.policy = Some(self.set.clone());
        }
        if settings_changed {
            out.settings = Some(self.settings.clone());
        }
        out
    }

    /// The units a wave covers, in order, skipping those the target already has.
    fn resolve(&self, wave: &Wave, campus: &Campus, pop: &Population) -> Vec<Unit> {
        let s = &wave.select;
        let mut units: Vec<(u64, Unit)> = match s.kind {
            UnitKind::Subnets => campus
                .subnets
                .iter()
                .enumerate()
                .filter(|(_, n)| s.purposes.is_empty() || s.purposes.contains(&n.purpose))
                .filter(|(_, n)| !n.hosts.is_empty())
                .map(|(i, n)| (n.hosts.len() as u64, Unit::Subnet(SubnetId::from_index(i))))
                .collect(),
            UnitKind::Buildings => campus
                .buildings
                .iter()
                .enumerate()
                .map(|(i, b)| (b.hosts.len() as u64, Unit::Building(BuildingId::from_index(i))))
                .collect(),
            UnitKind::Sites => campus
                .sites
                .iter()
                .enumerate()
                .map(|(i, x)| (x.hosts.len() as u64, Unit::Site(SiteId::from_index(i))))
                .collect(),
            UnitKind::Domains if s.named.is_empty() => {
                let mut count = vec![0u64; campus.domains.len()];
                for i in 0..pop.hosts() {
                    if let Some(d) = pop.domain(HostId::from_index(i)) {
                        count[d.index()] += 1;
                    }
                }
                (0..campus.domains.len()).map(|d| (count[d], Unit::Domain(DomainId::from_index(d)))).collect()
            }
            UnitKind::All => vec![(0, Unit::All)],
            _ => s.named.iter().map(|u| (0, *u)).collect(),
        };
        units.retain(|(_, u)| !self.target_has(&wave.action, u, campus));
        match s.order {
            Order::Smallest => units.sort_by_key(|(n, u)| (*n, *u)),
            Order::Largest => units.sort_by_key(|(n, u)| (std::cmp::Reverse(*n), *u)),
            Order::Listed => {}
        }
        let mut take = units.len();
        if let Some(c) = s.count {
            take = take.min(c as usize);
        }
        if let Some(f) = s.fraction {
            take = take.min((units.len() as f64 * f).ceil() as usize);
        }
        units.into_iter().take(take).map(|(_, u)| u).collect()
    }

    /// Whether the action's target already covers a unit (so "the next smallest" skips it).
    fn target_has(&self, action: &WaveAction, unit: &Unit, campus: &Campus) -> bool {
        match action {
            WaveAction::AddFilters { list } => prefix_of(unit, campus).is_some_and(|p| {
                self.set.filter_lists[*list].filters.iter().any(|f| matches!(&f.dst, AddrSpec::Prefix(q) if q.contains(&p.network()) && q.prefix_len() <= p.prefix_len()))
            }),
            WaveAction::LinkGpo { gpo } => match (unit, &self.set.gpos[*gpo].domains) {
                (_, None) => true,
                (Unit::Domain(d), Some(ds)) => ds.contains(d),
                _ => false,
            },
            _ => false,
        }
    }

    /// Applies one batch; returns (policy changed, settings changed).
    fn apply(
        &mut self,
        w: usize,
        action: &WaveAction,
        units: &[Unit],
        campus: &Campus,
        pop: &Population,
        out: &mut DayChanges,
    ) -> (bool, bool) {
        let undo = &mut self.undo[w];
        match action {
            WaveAction::AddFilters { list } => {
                for u in units {
                    if let Some(p) = prefix_of(u, campus) {
                        let f = FilterSpec {
                            src: AddrSpec::Any,
                            dst: AddrSpec::Prefix(p),
                            mirrored: true,
                            protocol: None,
                            port: None,
                        };
                        self.set.filter_lists[*list].filters.push(f.clone());
                        undo.filters_added.push((*list, f));
                    }
                }
                (!units.is_empty(), false)
            }
            WaveAction::SetFilters { list, filters } => {
                if undo.filters_before.is_none() {
                    undo.filters_before = Some((*list, self.set.filter_lists[*list].filters.clone()));
                }
                self.set.filter_lists[*list].filters = filters.clone();
                (true, false)
            }
            WaveAction::LinkGpo { gpo } => {
                let g = &mut self.set.gpos[*gpo];
                if undo.gpo_before.is_none() {
                    undo.gpo_before = Some((*gpo, g.domains.clone()));
                }
                for u in units {
                    match u {
                        Unit::All => g.domains = None,
                        Unit::Domain(d) => {
                            if let Some(ds) = g.domains.as_mut() {
                                if !ds.contains(d) {
                                    ds.push(*d);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                (!units.is_empty(), false)
            }
            WaveAction::AddToGroup { group } => {
                for i in 0..campus.hosts.len() {
                    let h = HostId::from_index(i);
                    if !pop.groups(h).contains(*group) && units.iter().any(|u| unit_contains(u, campus, pop, h)) {
                        out.groups.push((h, *group, true));
                        undo.group_members.push((*group, h));
                    }
                }
                (false, false)
            }
            WaveAction::Nap(mode) => {
                for u in units {
                    self.settings.nap.push((*u, *mode));
                    undo.nap_links.push((*u, *mode));
                }
                (false, !units.is_empty())
            }
            WaveAction::Firewall(on) => {
                for u in units {
                    self.settings.firewall.push((*u, *on));
                    undo.firewall_links.push((*u, *on));
                }
                (false, !units.is_empty())
            }
        }
    }

    /// Undoes everything wave `w` did.
    fn revert(&mut self, w: usize, out: &mut DayChanges) -> (bool, bool) {
        let undo = std::mem::take(&mut self.undo[w]);
        let mut policy = false;
        let mut settings = false;
        for (list, f) in &undo.filters_added {
            if let Some(pos) = self.set.filter_lists[*list].filters.iter().rposition(|x| x == f) {
                self.set.filter_lists[*list].filters.remove(pos);
                policy = true;
            }
        }
        if let Some((list, before)) = undo.filters_before {
            self.set.filter_lists[list].filters = before;
            policy = true;
        }
        if let Some((gpo, before)) = undo.gpo_before {
            self.set.gpos[gpo].domains = before;
            policy = true;
        }
        for (g, h) in undo.group_members {
            out.groups.push((h, g, false));
        }
        // Remove the wave's own links (the last occurrence of each), leaving later waves'.
        for link in &undo.nap_links {
            if let Some(pos) = self.settings.nap.iter().rposition(|x| x == link) {
                self.settings.nap.remove(pos);
                settings = true;
            }
        }
        for link in &undo.firewall_links {
            if let Some(pos) = self.settings.firewall.iter().rposition(|x| x == link) {
                self.settings.firewall.remove(pos);
                settings = true;
            }
        }
        (policy, settings)
    }

    /// Status names for reports: (wave name, phase, status).
    pub fn statuses(&self) -> Vec<(String, String, &'static str)> {
        self.schedule
            .waves
            .iter()
            .zip(&self.status)
            .map(|(w, s)| {
                let st = match s {
                    Status::Waiting => "waiting",
                    Status::Held => "held",
                    Status::Running { .. } => "running",
                    Status::Done { .. } => "done",
                    Status::RolledBack => "rolled-back",
                };
                (w.name.clone(), w.phase.clone(), st)
            })
            .collect()
    }
}

/// The prefix a unit stands for in a filter.
pub fn prefix_of(unit: &Unit, campus: &Campus) -> Option<Ipv4Net> {
    match *unit {
        Unit::Subnet(s) => Some(campus.subnets[s.index()].prefix),
        Unit::Building(b) => Some(campus.buildings[b.index()].prefix),
        Unit::Site(s) => Some(campus.sites[s.index()].prefix),
        Unit::Prefix(p) => Some(p),
        _ => None,
    }
}
