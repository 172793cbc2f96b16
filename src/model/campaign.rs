//! The campaign around the traffic: the rollout schedule taking effect through Group
//! Policy refresh, the population changing (joins, reimaged PCs, boundary grants, NAP
//! lapses), what users experience, and the helpdesk that hears about it, day by day.
//!
//! Contract:
//! - Policy and NAP/firewall changes reach a host at its next Group Policy refresh: after a
//!   change is published, every managed host refreshes once at a uniform time within one
//!   refresh interval plus jitter (the position of its periodic refresh), to the minute.
//!   A join, a rejoin after reimaging, or a boot applies policy at once.
//! - Traffic is simulated for a sample of users and servers ([`Campaign::sampled`]); what
//!   users meet through traffic (blocked connections, noticeable fallback waits, NAP and
//!   firewall blocks) becomes calls by expectation: the day's expected calls of a cause are
//!   the sum of the affected sampled users' call probabilities divided by the sample share,
//!   and the calls are a Poisson draw of that mean at the times those users met the
//!   failure. NAP notifications concern the whole population and need no scaling.
//! - Every random draw comes from a host's, user's or the campus's stream for the day.
//! - Pure model code: the world turns the returned [`CampaignEvent`]s into engine events.

use std::collections::BTreeMap;

use rand::RngExt;
use rand_distr::{Distribution, Poisson, StandardNormal};
use rustc_hash::FxHashMap;

use super::campus::Campus;
use super::helpdesk::{
    Call, Cause, Circumstances, DayReport, HelpdeskQueue, PerCause, baseline_calls, call_probability,
};
use super::host_draws::{DrawSource, Draws, DrawsAhead, daily_uniforms, deciding, is_workday, refresh_uniforms};
use super::ids::{DomainId, HostId, UserId};
use super::kinds::{ClientCategory, GroupKind, HostKind};
use super::population::{NapMode, Population};
use super::rollout::{AnnouncementKind, HostSettings, LogEntry, Metric, Rollout, Topic};
use super::secnet::SecNet;
use super::streams::{entity, purpose};
use crate::engine::rng::{RngStreams, StreamKey, StreamWindow};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::{HelpdeskSettings, PopulationParams, Scenario};

/// Events the campaign asks the world to schedule.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CampaignEvent {
    /// The hosts of a refresh bucket (minute since start) apply the latest policy.
    Refresh(u32),
    Join(HostId),
    Reimage(HostId),
    Rejoin(HostId),
    NapLapse(HostId),
    NapRemediate(HostId),
}

/// What users met today, per user (only users touched today). 88 bytes: one per user,
/// read at random by every sampled connection.
#[derive(Clone, Debug)]
struct UserDay {
    /// Applications with a failure of each traffic cause, and with a success.
    failed: [u64; TRAFFIC_CAUSES.len()],
    ok: u64,
    /// The first failure of each cause today; `SimTime::MAX` for none (not an `Option`,
    /// which would double these 40 bytes).
    first: [SimTime; TRAFFIC_CAUSES.len()],
}

const _: () = assert!(std::mem::size_of::<UserDay>() == 88);

impl Default for UserDay {
    fn default() -> Self {
        UserDay { failed: [0; TRAFFIC_CAUSES.len()], ok: 0, first: [SimTime::MAX; TRAFFIC_CAUSES.len()] }
    }
}

impl UserDay {
    /// Nothing met today (`first` is set only with a `failed` bit).
    fn untouched(&self) -> bool {
        self.ok == 0 && self.failed.iter().all(|&f| f == 0)
    }
}

/// Causes users meet through traffic (sampled), in `UserDay` slot order.
const TRAFFIC_CAUSES: [Cause; 5] =
    [Cause::IpsecBlocked, Cause::IpsecDelay, Cause::NapBlocked, Cause::Firewall, Cause::FailoverStall];

/// How a connection went, as far as its user could tell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Felt {
    Fine,
    /// A wait of this length before data flowed (fallback to clear).
    Waited(SimDuration),
    BlockedByIpsec,
    BlockedByNap,
    BlockedByFirewall,
    /// The connection met a failed NLB node: it stalled this long, and the application
    /// failed (TCP or the application gave up) or not.
    Stalled {
        stall: SimDuration,
        failed: bool,
    },
}

/// The campaign's figures of one day (raw counts are already scaled to the population).
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignDay {
    pub day: u32,
    pub joined: u64,
    pub boundary: u64,
    pub reimaging: u64,
    pub joins: u64,
    pub reimages: u64,
    pub nap_reporting: u64,
    pub nap_deferred: u64,
    pub nap_enforcement: u64,
    pub nap_unhealthy: u64,
    pub firewall_on: u64,
    pub users_affected: f64,
    /// Users who met each kind of failure (scaled), by cause.
    pub users_by_cause: PerCause<f64>,
    pub boundary_grants: u64,
    pub policy_versions: u64,
    pub foreign_waits: f64,
    pub foreign_failures: f64,
    pub helpdesk: Option<DayReport>,
}

/// Metrics of a finished day, for gates and rollbacks.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
struct DayMetrics {
    ipsec_calls: f64,
    calls: f64,
    firewall_calls: f64,
    nap_calls: f64,
    blocked: f64,
}

pub struct Campaign<'a> {
    campus: &'a Campus,
    sc: &'a Scenario,
    streams: RngStreams,
    rollout: Option<Rollout>,
    settings: HostSettings,
    /// Hosts whose traffic is simulated, and the factor that scales sampled counts up.
    pub sampled: Vec<bool>,
    pub scale: f64,
    refresh_pending: Vec<bool>,
    refresh_buckets: BTreeMap<u32, Vec<HostId>>,
    refresh_round: u32,
    users: Vec<UserDay>,
    /// Per host: its owner's index (`u32::MAX` for none), a copy of the campus's for the
    /// prefetch of the next arrival's user record, which must not wait for the host's
    /// 56-byte record (itself only being fetched then).
    owners: Vec<u32>,
    /// Per user, the domain a machine of theirs joins (see [`join_domains`]), looked up
    /// once: searching the user's site for it at every join cost time in the site's size,
    /// which grows with the campus (the headquarters holds about 30% of the clients).
    join_domain: Vec<DomainId>,
    /// Per user, the causes (bits by `Cause::index`) met on an earlier day.
    met_before: Vec<u8>,
    /// Users whose record is not clear, in the order they were first touched today.
    touched: Vec<UserId>,
    /// NAP notifications today (whole population): (user, time).
    notices: Vec<(UserId, SimTime)>,
    /// Per host: a sampled joinable host refused today (a flag, not a list of refusals:
    /// a full-traffic day refuses millions of connections of a few thousand hosts).
    refused_today: Vec<bool>,
    /// Hosts flagged in `refused_today`.
    refused_hosts: u32,
    /// The share of sampled joinable hosts refused yesterday.
    refused_share: f64,
    /// Untrusted connections each server refused today (sampled).
    server_refused: FxHashMap<HostId, u32>,
    grants: Vec<(u32, HostId)>,
    /// Topics announced by e-mail, and the day of the last IPsec e-mail.
    announced: [bool; 3],
    last_ipsec_email: Option<u32>,
    /// Topics the helpdesk has been trained on (flowcharts, WMI, IPsec, Kerberos, DNS [WP]).
    trained: [bool; 3],
    queue: Option<HelpdeskQueue>,
    history: Vec<DayMetrics>,
    today_joins: u64,
    today_reimages: u64,
    today_grants: u64,
    foreign_waits: f64,
    foreign_failures: f64,
    pub days: Vec<CampaignDay>,
    pub log: Vec<LogEntry>,
    boundary_groups: Vec<super::ids::GroupId>,
    /// Every host's daily draws, when they are drawn ahead (see [`Campaign::draw_ahead`]).
    daily_ahead: DrawsAhead<'a>,
    /// Every host's Group Policy refresh draws of each round, when drawn ahead.
    refresh_ahead: DrawsAhead<'a>,
}

/// Per user, the domain their machines join: that of the first (in host order) of their
/// domain-joined machines at their site, else the main domain. One pass over the hosts.
fn join_domains(campus: &Campus) -> Vec<DomainId> {
    let mut found: Vec<Option<DomainId>> = vec![None; campus.users.len()];
    for (i, h) in campus.hosts.iter().enumerate() {
        if let (Some(u), Some(d)) = (h.owner, h.domain) {
            let first = &mut found[u.index()];
            if first.is_none() && campus.sites[campus.users[u.index()].site.index()].hosts.contains(&(i as u32)) {
                *first = Some(d);
            }
        }
    }
    let fallback = fallback_domain(campus);
    found.into_iter().map(|d| d.unwrap_or(fallback)).collect()
}

/// The domain of a machine with no domain-joined sibling: the main domain.
fn fallback_domain(campus: &Campus) -> DomainId {
    campus.main_domain().unwrap_or(DomainId(0))
}

/// How many hosts ahead a refresh bucket's loop prefetches (see [`Campaign::handle`]).
const REFRESH_PREFETCH_DISTANCE: usize = 8;

fn topic_index(t: Topic) -> usize {
    match t {
        Topic::Ipsec => 0,
        Topic::Nap => 1,
        Topic::Firewall => 2,
    }
}

fn topic_of(cause: Cause) -> Topic {
    match cause {
        Cause::NapNotice | Cause::NapBlocked => Topic::Nap,
        Cause::Firewall => Topic::Firewall,
        _ => Topic::Ipsec,
    }
}

impl<'a> Campaign<'a> {
    pub fn new(sc: &'a Scenario, campus: &'a Campus, seed: u64) -> Campaign<'a> {
        let streams = RngStreams::new(seed);
        let f = sc.run.traffic_sample;
        // The sample: users (all their machines) and servers, each with probability f.
        let user_in: Vec<bool> = (0..campus.users.len())
            .map(|u| {
                f >= 1.0
                    || streams.window(StreamKey::new(entity::HOST, u as u32, purpose::SAMPLE, 1), 0).random::<f64>() < f
            })
            .collect();
        let sampled = campus
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| match h.owner {
                Some(u) => user_in[u.index()],
                None => {
                    f >= 1.0
                        || streams.window(StreamKey::new(entity::HOST, i as u32, purpose::SAMPLE, 0), 0).random::<f64>()
                            < f
                }
            })
            .collect();
        let boundary_groups = sc
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.kind == GroupKind::Boundary)
            .map(|(i, _)| super::ids::GroupId::from_index(i))
            .collect();
        Campaign {
            campus,
            sc,
            streams,
            rollout: sc.rollout.as_ref().map(|r| Rollout::new(r.schedule.clone(), sc.policy.clone())),
            settings: HostSettings::default(),
            sampled,
            scale: 1.0 / f,
            refresh_pending: vec![false; campus.hosts.len()],
            refresh_buckets: BTreeMap::new(),
            refresh_round: 0,
            users: vec![UserDay::default(); campus.users.len()],
            owners: campus.hosts.iter().map(|h| h.owner.map_or(u32::MAX, |u| u.0)).collect(),
            join_domain: join_domains(campus),
            met_before: vec![0; campus.users.len()],
            touched: Vec::new(),
            notices: Vec::new(),
            refused_today: vec![false; campus.hosts.len()],
            refused_hosts: 0,
            refused_share: 0.0,
            server_refused: FxHashMap::default(),
            grants: Vec::new(),
            announced: [false; 3],
            last_ipsec_email: None,
            trained: [false; 3],
            queue: sc.helpdesk.as_ref().map(|h| HelpdeskQueue::new(h.params.clone())),
            history: Vec::new(),
            today_joins: 0,
            today_reimages: 0,
            today_grants: 0,
            foreign_waits: 0.0,
            foreign_failures: 0.0,
            days: Vec::new(),
            log: Vec::new(),
            boundary_groups,
            daily_ahead: DrawsAhead::default(),
            refresh_ahead: DrawsAhead::default(),
        }
    }

    /// Takes `draws` of every host from `source` (e.g. a thread drawing the next epoch's
    /// while this one is simulated). Outputs are the same with or without it: the draws
    /// are exact, and whatever is missing is drawn here.
    ///
    /// `first` is the source's first epoch (a day, a refresh round): earlier ones are
    /// drawn here without asking it.
    pub fn draw_ahead(&mut self, draws: Draws, source: DrawSource<'a>, first: u32) {
        let ahead = DrawsAhead::new(source, first);
        match draws {
            Draws::DailyDeciding => self.daily_ahead = ahead,
            Draws::Refresh => self.refresh_ahead = ahead,
        }
    }

    /// Drops the draw sources (and with them, e.g., the channels drawing threads wait on).
    pub fn stop_drawing_ahead(&mut self) {
        self.daily_ahead = DrawsAhead::default();
        self.refresh_ahead = DrawsAhead::default();
    }

    /// A stream of the day, read a block at a time (a `ChaCha8Rng` would set up its state
    /// and compute four blocks for the few words most of these streams give).
    fn day_rng(&self, kind: u8, index: u32, purpose: u8, day: u32) -> StreamWindow {
        self.streams.window(StreamKey::new(kind, index, purpose, day as u16), 0)
    }

    fn metric(&self, m: Metric) -> f64 {
        let week = |f: fn(&DayMetrics) -> f64| self.history.iter().rev().take(7).map(f).sum::<f64>();
        match m {
            Metric::IpsecCallsWeek => week(|d| d.ipsec_calls),
            Metric::CallsWeek => week(|d| d.calls),
            Metric::FirewallCallsWeek => week(|d| d.firewall_calls),
            Metric::NapCallsWeek => week(|d| d.nap_calls),
            Metric::BlockedDay => self.history.last().map_or(0.0, |d| d.blocked),
        }
    }

    /// Queues a refresh of `host` within one refresh interval (plus jitter) of `now`.
    fn schedule_refresh(&mut self, host: HostId, now: SimTime, out: &mut Vec<(SimTime, CampaignEvent)>) {
        if !self.refresh_pending[host.index()] {
            let u = refresh_uniforms(&self.streams, host, self.refresh_round);
            self.schedule_refresh_drawn(host, now, u, out);
        }
    }

    /// [`Campaign::schedule_refresh`] of a host with no refresh pending, its refresh
    /// uniforms of this round drawn.
    fn schedule_refresh_drawn(
        &mut self,
        host: HostId,
        now: SimTime,
        [u_interval, u_at]: [f64; 2],
        out: &mut Vec<(SimTime, CampaignEvent)>,
    ) {
        debug_assert!(!self.refresh_pending[host.index()], "a second refresh of one round");
        let Some(r) = self.sc.rollout.as_ref() else { return };
        let interval = r.gp_refresh + r.gp_refresh_jitter.mul_f64(u_interval);
        let at = now + interval.mul_f64(u_at);
        let minute = (at.as_nanos() / SimDuration::MINUTE.as_nanos()) as u32 + 1;
        self.refresh_pending[host.index()] = true;
        let bucket = self.refresh_buckets.entry(minute).or_default();
        if bucket.is_empty() {
            out.push((
                SimTime::from_nanos(u64::from(minute) * SimDuration::MINUTE.as_nanos()),
                CampaignEvent::Refresh(minute),
            ));
        }
        bucket.push(host);
    }

    /// Asks the CPU for what [`Campaign::apply_now`] and a connection of `host` read of
    /// it first: its campus and population records, its IPsec record and policy entry.
    #[inline]
    pub fn prefetch_host_records(&self, host: HostId, pop: &Population, net: Option<&SecNet>) {
        self.campus.prefetch_host(host);
        pop.prefetch_host(host);
        if let Some(net) = net {
            net.prefetch_host_policy(host);
        }
    }

    /// Applies the latest policy and settings to a host now.
    fn apply_now(&self, host: HostId, pop: &mut Population, net: Option<&mut SecNet>) {
        let (nap, fw) = self.settings.for_host(self.campus, pop, host);
        pop.set_nap_and_firewall(host, nap, fw);
        if let Some(net) = net {
            net.refresh(host, pop);
        }
    }

    /// The start of a day: grants, the rollout's changes, population events.
    pub fn start_day(
        &mut self,
        day: u32,
        pop: &mut Population,
        mut net: Option<&mut SecNet>,
    ) -> Vec<(SimTime, CampaignEvent)> {
        let now = SimTime::start_of_day(day);
        let mut out = Vec::new();
        self.today_joins = 0;
        self.today_reimages = 0;
        self.today_grants = 0;
        self.foreign_waits = 0.0;
        self.foreign_failures = 0.0;
        // Boundary exceptions granted today: group membership now, policy at refresh.
        let due: Vec<HostId> = self.grants.iter().filter(|g| g.0 == day).map(|g| g.1).collect();
        self.grants.retain(|g| g.0 != day);
        if let Some(p) = self.sc.population.as_ref() {
            for h in due {
                pop.add_to_group(h, p.boundary_group);
                self.today_grants += 1;
                self.schedule_refresh(h, now, &mut out);
            }
        }
        // The rollout.
        if let Some(mut rollout) = self.rollout.take() {
            let changes = rollout.day(day, self.campus, pop, &|m| self.metric(m));
            for (h, g, add) in &changes.groups {
                if *add {
                    pop.add_to_group(*h, *g);
                } else {
                    pop.remove_from_group(*h, *g);
                }
            }
            for a in &changes.announcements {
                match a.kind {
                    AnnouncementKind::Email | AnnouncementKind::UserTraining => {
                        self.announced[topic_index(a.topic)] = true;
                        if a.topic == Topic::Ipsec && a.kind == AnnouncementKind::Email {
                            self.last_ipsec_email = Some(day);
                        }
                    }
                    AnnouncementKind::HelpdeskTraining => {
                        self.trained[topic_index(a.topic)] = true;
                    }
                }
            }
            self.log.extend(changes.log.iter().cloned());
            let mut everyone = false;
            if let Some(set) = changes.policy {
                if let Some(n) = net.as_mut() {
                    n.publish(set, pop);
                }
                everyone = true;
            }
            if let Some(s) = changes.settings {
                self.settings = s;
                everyone = true;
            }
            if everyone {
                self.refresh_round += 1;
                let drawn = self.refresh_ahead.take(self.refresh_round);
                for i in 0..self.campus.hosts.len() {
                    let h = HostId::from_index(i);
                    if pop.is_managed(h) && !self.refresh_pending[i] {
                        let u = match &drawn {
                            Some(d) => {
                                let [a, b, _] = d.get(h);
                                [a, b]
                            }
                            None => refresh_uniforms(&self.streams, h, self.refresh_round),
                        };
                        self.schedule_refresh_drawn(h, now, u, &mut out);
                    }
                }
                self.refresh_ahead.done(drawn);
            } else {
                for (h, _, _) in &changes.groups {
                    self.schedule_refresh(*h, now, &mut out);
                }
            }
            self.rollout = Some(rollout);
        }
        self.population_events(day, pop, &mut out);
        out
    }

    /// Joins, reimages and NAP lapses of the day, from each host's daily stream (its
    /// deciding uniforms drawn ahead when they are: see [`super::host_draws`]).
    fn population_events(&mut self, day: u32, pop: &Population, out: &mut Vec<(SimTime, CampaignEvent)>) {
        let Some(p) = self.sc.population.as_ref() else { return };
        // Both counts in one pass over the population.
        let (mut managed_clients, mut sampled_joinable) = (0, 0);
        for (i, host) in self.campus.hosts.iter().enumerate() {
            let h = HostId::from_index(i);
            managed_clients += usize::from(pop.is_managed(h) && host.is_client());
            sampled_joinable += usize::from(self.sampled[i] && pop.is_joinable(h));
        }
        if is_workday(self.sc.run.start_weekday, day) {
            self.draw_population_events(p, day, pop, managed_clients, out);
        }
        self.refused_share = if sampled_joinable == 0 {
            0.0
        } else {
            (f64::from(self.refused_hosts) / sampled_joinable as f64).min(1.0)
        };
        self.refused_today.fill(false);
        self.refused_hosts = 0;
    }

    /// A workday's joins, reimages and NAP lapses (`managed_clients`: how many clients are
    /// managed, over whom the day's reimages are spread).
    fn draw_population_events(
        &mut self,
        p: &PopulationParams,
        day: u32,
        pop: &Population,
        managed_clients: usize,
        out: &mut Vec<(SimTime, CampaignEvent)>,
    ) {
        let ahead = self.daily_ahead.take(day);
        let start = SimTime::start_of_day(day);
        let office = |u: f64| start + SimDuration::from_hours(8) + SimDuration::from_hours(10).mul_f64(u);
        let announced_recently =
            self.last_ipsec_email.is_some_and(|d| day >= d && day - d < p.announcement_effect_days);
        let rebuilt = p.reimaged_share_per_day * self.campus.clients_total() as f64;
        let p_reimage = if managed_clients == 0 { 0.0 } else { (rebuilt / managed_clients as f64).min(1.0) };
        let nap = self.sc.nap.as_ref();
        let p_lapse = nap.map_or(0.0, |n| n.drift_per_day);
        for i in 0..pop.hosts() {
            let h = HostId::from_index(i);
            let host = &self.campus.hosts[i];
            let joinable = pop.is_joinable(h);
            let reimage_candidate = pop.is_managed(h) && host.is_client() && !pop.is_reimaging(h);
            let nap_candidate =
                nap.is_some() && pop.nap(h) != NapMode::Off && pop.is_healthy(h) && host.os.nap_capable();
            if !(joinable || reimage_candidate || nap_candidate) {
                continue;
            }
            // The whole block is drawn when the deciding uniforms drawn ahead say
            // something happens (or there are none); the times are read only then.
            let mut drawn = None;
            let [u_join, u_re, u_nap] = match &ahead {
                Some(d) => d.get(h),
                None => deciding(drawn.insert(daily_uniforms(&self.streams, h, day))),
            };
            // Being refused pushes people to join: the host's own refusal when it is in
            // the traffic sample, else the share of sampled joinable hosts refused.
            let joins = joinable && {
                let refused_boost = if self.sampled[i] {
                    if self.refused_today[i] { p.join_rate_refused } else { 0.0 }
                } else {
                    p.join_rate_refused * self.refused_share
                };
                u_join < p.join_rate + if announced_recently { p.join_rate_announced } else { 0.0 } + refused_boost
            };
            let reimaged = reimage_candidate && u_re < p_reimage;
            let lapses = nap_candidate && u_nap < p_lapse;
            if !(joins || reimaged || lapses) {
                continue;
            }
            let u = drawn.unwrap_or_else(|| daily_uniforms(&self.streams, h, day));
            if joins {
                out.push((office(u[1]), CampaignEvent::Join(h)));
            }
            if reimaged {
                out.push((office(u[3]), CampaignEvent::Reimage(h)));
            }
            if lapses {
                out.push((office(u[5]), CampaignEvent::NapLapse(h)));
            }
        }
        self.daily_ahead.done(ahead);
    }

    /// Handles one of the campaign's events.
    pub fn handle(
        &mut self,
        ev: CampaignEvent,
        now: SimTime,
        pop: &mut Population,
        mut net: Option<&mut SecNet>,
    ) -> Vec<(SimTime, CampaignEvent)> {
        let mut out = Vec::new();
        match ev {
            CampaignEvent::Refresh(minute) => {
                let hosts = self.refresh_buckets.remove(&minute).unwrap_or_default();
                for &h in hosts.iter().take(REFRESH_PREFETCH_DISTANCE) {
                    self.prefetch_host_records(h, pop, net.as_deref());
                }
                for (i, &h) in hosts.iter().enumerate() {
                    // A bucket holds thousands of hosts in random order after a policy
                    // change, each refresh a handful of random reads: fetch a later
                    // host's records while this one is refreshed.
                    if let Some(&later) = hosts.get(i + REFRESH_PREFETCH_DISTANCE) {
                        self.prefetch_host_records(later, pop, net.as_deref());
                    }
                    self.refresh_pending[h.index()] = false;
                    self.apply_now(h, pop, net.as_deref_mut());
                }
            }
            CampaignEvent::Join(h) => {
                if pop.is_joinable(h) {
                    let domain = self.domain_for(h);
                    pop.join(h, domain);
                    self.today_joins += 1;
                    self.apply_now(h, pop, net.as_deref_mut());
                }
            }
            CampaignEvent::Reimage(h) => {
                if pop.reimage(h) {
                    self.today_reimages += 1;
                    self.apply_now(h, pop, net.as_deref_mut());
                    let p = self.sc.population.as_ref().expect("reimages come from population settings");
                    let mut rng = self.day_rng(entity::HOST, h.0, purpose::DAILY, now.day() + 20_000);
                    let z: f64 = StandardNormal.sample(&mut rng);
                    let delay = p.rejoin_delay.mul_f64((p.rejoin_sigma * z).exp());
                    out.push((now + delay.max(SimDuration::MINUTE), CampaignEvent::Rejoin(h)));
                }
            }
            CampaignEvent::Rejoin(h) => {
                pop.rejoin(h);
                self.apply_now(h, pop, net);
            }
            CampaignEvent::NapLapse(h) => {
                if pop.is_healthy(h) && pop.is_managed(h) {
                    pop.set_healthy(h, false);
                    if let (NapMode::Deferred | NapMode::Enforcement, Some(u)) = (pop.nap(h), self.campus.host(h).owner)
                    {
                        self.notices.push((u, now));
                    }
                    let n = self.sc.nap.as_ref().expect("lapses come from NAP settings");
                    let mut rng = self.day_rng(entity::HOST, h.0, purpose::NAP, now.day());
                    let auto = rng.random::<f64>() < n.auto_remediation;
                    let z: f64 = StandardNormal.sample(&mut rng);
                    let median = if auto { n.auto_remediation_time } else { n.manual_remediation_time };
                    let d = median.mul_f64((n.remediation_sigma * z).exp()).max(SimDuration::MINUTE);
                    out.push((now + d, CampaignEvent::NapRemediate(h)));
                }
            }
            CampaignEvent::NapRemediate(h) => {
                pop.set_healthy(h, true);
            }
        }
        out
    }

    /// The domain a joining machine joins (see [`join_domains`]); an unowned one joins the
    /// main domain.
    fn domain_for(&self, h: HostId) -> DomainId {
        match self.campus.host(h).owner {
            Some(u) => self.join_domain[u.index()],
            None => fallback_domain(self.campus),
        }
    }

    /// Whether a connection is blocked by the responder's Windows Firewall. A blocked
    /// inbound application may get a local exception from the responder's administrator.
    pub fn firewall_blocks(
        &mut self,
        pop: &mut Population,
        init: HostId,
        resp: HostId,
        app: usize,
        protected: bool,
        now: SimTime,
    ) -> bool {
        let Some(fw) = self.sc.firewall.as_ref() else { return false };
        let r = resp.index();
        if !pop.firewall_on(resp) || !self.campus.hosts[r].is_client() {
            return false;
        }
        let bit = 1u64 << app;
        if fw.inbound_allowed & bit != 0 || pop.exceptions(resp) & bit != 0 {
            return false;
        }
        // Authenticated bypass: an IPsec-authenticated scanner passes [WP].
        if protected && fw.bypass_group.is_some_and(|g| pop.groups(init).contains(g)) {
            return false;
        }
        let mut rng = self.day_rng(entity::HOST, resp.0, purpose::REQUESTS, now.day() + 10_000);
        // One draw per host-day decides whether its administrator opens what was blocked.
        if rng.random::<f64>() < fw.local_exception_probability {
            pop.add_exceptions(resp, bit);
        }
        true
    }

    /// Asks the CPU for `host`'s owner index, which [`Campaign::prefetch_user`] reads,
    /// a few events ahead.
    #[inline]
    pub fn prefetch_owner(&self, host: HostId) {
        if let Some(o) = self.owners.get(host.index()) {
            crate::engine::prefetch(o);
        }
    }

    /// Asks the CPU for the day record of `host`'s user ahead of a session of it (see
    /// [`Campaign::felt`]).
    #[inline]
    pub fn prefetch_user(&self, host: HostId) {
        let owner = self.owners.get(host.index()).copied().unwrap_or(u32::MAX);
        if let Some(u) = self.users.get(owner as usize) {
            crate::engine::prefetch_span(u);
        }
    }

    /// Records what a sampled connection's user (if any) met.
    pub fn felt(&mut self, pop: &Population, init: HostId, resp: HostId, app: usize, felt: Felt, now: SimTime) {
        if let Felt::BlockedByIpsec = felt {
            // Untrusted clients refused by a server: the server's owners may ask for a
            // boundary exception. A refused joinable machine nudges its owner to join.
            if !pop.is_managed(init) && self.campus.hosts[resp.index()].kind.is_server() {
                *self.server_refused.entry(resp).or_default() += 1;
            }
            if pop.is_joinable(init) && !self.refused_today[init.index()] {
                self.refused_today[init.index()] = true;
                self.refused_hosts += 1;
            }
        }
        let Some(user) = self.campus.host(init).owner else { return };
        let noticeable = self.sc.helpdesk.as_ref().map_or(SimDuration::MAX, |h| h.noticeable_delay);
        let slot = match felt {
            Felt::Fine => None,
            Felt::Waited(d) if d >= noticeable => Some(1),
            Felt::Waited(_) => None,
            Felt::BlockedByIpsec => Some(0),
            Felt::BlockedByNap => Some(2),
            Felt::BlockedByFirewall => Some(3),
            Felt::Stalled { stall, failed } if failed || stall >= noticeable => Some(4),
            Felt::Stalled { .. } => None,
        };
        let u = &mut self.users[user.index()];
        // Every call sets a bit, so an untouched record is one still all clear: no separate
        // per-user flag to miss the cache on.
        if u.untouched() {
            self.touched.push(user);
        }
        let bit = 1u64 << app;
        match slot {
            None => u.ok |= bit,
            Some(s) => {
                u.failed[s] |= bit;
                u.first[s] = u.first[s].min(now);
            }
        }
    }

    /// A laptop's connections on a foreign network that overlaps the secure subnets.
    pub fn travel(&mut self, day: u32, pop: &Population, net: &mut SecNet) {
        let Some(p) = self.sc.population.as_ref() else { return };
        let weekday = (u32::from(self.sc.run.start_weekday) + day) % 7;
        if weekday >= 5 || p.travel_probability <= 0.0 {
            return;
        }
        let Some(ipsec) = self.sc.ipsec.as_ref() else { return };
        if ipsec.foreign_ranges.is_empty() {
            return;
        }
        let start = SimTime::start_of_day(day);
        for i in 0..self.campus.hosts.len() {
            let h = HostId::from_index(i);
            let host = &self.campus.hosts[i];
            if !self.sampled[i] || !host.is_laptop() || !pop.is_managed(h) {
                continue;
            }
            let mut rng = self.day_rng(entity::HOST, h.0, purpose::DAILY, day + 30_000);
            if rng.random::<f64>() >= p.travel_probability {
                continue;
            }
            let range = ipsec.foreign_ranges[rng.random_range(0..ipsec.foreign_ranges.len())];
            let size = 1u64 << (32 - range.prefix_len());
            // An address inside the range: a /32 is its own address (the draw stays the
            // same for every other range, so seeds keep their runs).
            let offset = rng.random_range(1..size.max(2));
            let offset = if offset < size { offset } else { 0 };
            let addr = u32::from(range.network()) + offset as u32;
            let Some(_mode) = net.negotiates_with_addr(h, addr) else { continue };
            let n = Poisson::new(p.foreign_connections.max(1e-9)).map(|d| d.sample(&mut rng) as u64).unwrap_or(0);
            let wait = ipsec.fallback.delay_for(host.os, host.has_simple_policy());
            for k in 0..n {
                let at = start + SimDuration::from_hours(19) + SimDuration::from_mins(5 * k.min(50));
                if rng.random::<f64>() < p.foreign_incompatible {
                    self.foreign_failures += self.scale;
                    self.felt(pop, h, h, 63, Felt::BlockedByIpsec, at);
                } else {
                    self.foreign_waits += self.scale;
                    self.felt(pop, h, h, 63, Felt::Waited(wait), at);
                }
            }
        }
    }

    /// The end of a day: calls, the helpdesk, boundary requests, the day's figures.
    /// `blocked` is the day's blocked connections (scaled).
    pub fn end_day(&mut self, day: u32, pop: &Population, net: Option<&SecNet>, blocked: f64) -> &CampaignDay {
        let weekday = ((u32::from(self.sc.run.start_weekday) + day) % 7) as u8;
        let mut helpdesk: Option<DayReport> = None;
        let mut users_affected = 0.0;
        let mut users_by_cause = PerCause::splat(0.0);
        if let Some(hd) = self.sc.helpdesk.as_ref() {
            let (calls, affected, by_cause) = self.user_calls(day, hd);
            users_affected = affected;
            users_by_cause = by_cause;
            let mut rng = self.day_rng(entity::CAMPUS, 0, purpose::HELPDESK, day);
            let mut all = baseline_calls(day, weekday, &hd.params, &mut rng);
            all.extend(calls);
            // Calls on a topic the desk was trained for are served faster.
            let trained = self.trained;
            let service = |c: &Call| match c.cause {
                Cause::Other => hd.params.mean_service,
                cause if trained[topic_index(topic_of(cause))] => hd.trained_service,
                _ => hd.params.mean_service,
            };
            let queue = self.queue.as_mut().expect("a helpdesk has a queue");
            let report = queue
                .push_day_with(day, weekday, &all, |c| {
                    let x: f64 = rand_distr::Exp1.sample(&mut rng);
                    service(c).mul_f64(x)
                })
                .expect("days are pushed in order with their own calls");
            helpdesk = Some(report);
        } else {
            self.clear_users();
        }
        self.boundary_requests(day, pop);
        let calls = |f: &dyn Fn(Cause) -> bool| -> f64 {
            helpdesk.as_ref().map_or(0.0, |r| r.calls.iter().filter(|(c, _)| f(*c)).map(|(_, n)| f64::from(n)).sum())
        };
        self.history.push(DayMetrics {
            ipsec_calls: calls(&|c| c.is_ipsec_related()),
            calls: calls(&|_| true),
            firewall_calls: calls(&|c| c == Cause::Firewall),
            nap_calls: calls(&|c| matches!(c, Cause::NapNotice | Cause::NapBlocked)),
            blocked,
        });
        let tally = pop.tally(&self.boundary_groups);
        let rec = CampaignDay {
            day,
            joined: tally.joined,
            boundary: tally.boundary,
            reimaging: tally.reimaging,
            joins: self.today_joins,
            reimages: self.today_reimages,
            nap_reporting: tally.nap[NapMode::Reporting as usize],
            nap_deferred: tally.nap[NapMode::Deferred as usize],
            nap_enforcement: tally.nap[NapMode::Enforcement as usize],
            nap_unhealthy: tally.unhealthy,
            firewall_on: tally.firewall_on,
            users_affected,
            users_by_cause,
            boundary_grants: self.today_grants,
            policy_versions: net.map_or(0, |n| u64::from(n.latest()) + 1),
            foreign_waits: self.foreign_waits,
            foreign_failures: self.foreign_failures,
            helpdesk,
        };
        self.days.push(rec);
        self.days.last().expect("just pushed")
    }

    fn clear_users(&mut self) {
        for u in self.touched.drain(..) {
            self.users[u.index()] = UserDay::default();
        }
        self.notices.clear();
    }

    /// The day's user calls, users affected and users affected by cause (scaled).
    fn user_calls(&mut self, day: u32, hd: &HelpdeskSettings) -> (Vec<Call>, f64, PerCause<f64>) {
        // Candidates per cause: (user, time, probability).
        let mut cand: PerCause<Vec<(UserId, SimTime, f64)>> = PerCause(Default::default());
        let mut affected = 0.0;
        let mut by_cause = PerCause::splat(0.0);
        let touched = std::mem::take(&mut self.touched);
        for &u in &touched {
            let d = std::mem::take(&mut self.users[u.index()]);
            let mut any = false;
            let before = self.met_before[u.index()];
            for (s, cause) in TRAFFIC_CAUSES.iter().enumerate() {
                if d.failed[s] == 0 {
                    continue;
                }
                any = true;
                let topic = topic_index(topic_of(*cause));
                let circumstances = Circumstances {
                    inconsistent: d.failed[s] & d.ok != 0,
                    announced: self.announced[topic],
                    trained: self.trained[topic],
                    repeated: before & (1 << cause.index()) != 0,
                };
                let p = call_probability(*cause, circumstances, &hd.propensity);
                // A failure always sets its first time: `failed[s]` is not zero here.
                debug_assert_ne!(d.first[s], SimTime::MAX, "a failure without its time");
                cand[*cause].push((u, d.first[s], p * self.scale));
                by_cause[*cause] += self.scale;
                self.met_before[u.index()] |= 1 << cause.index();
            }
            if any {
                affected += self.scale;
            }
        }
        for (u, t) in self.notices.drain(..) {
            let topic = topic_index(Topic::Nap);
            let circumstances = Circumstances {
                inconsistent: false,
                announced: self.announced[topic],
                trained: self.trained[topic],
                repeated: self.met_before[u.index()] & (1 << Cause::NapNotice.index()) != 0,
            };
            let p = call_probability(Cause::NapNotice, circumstances, &hd.propensity);
            cand[Cause::NapNotice].push((u, t, p));
            affected += 1.0;
            by_cause[Cause::NapNotice] += 1.0;
            self.met_before[u.index()] |= 1 << Cause::NapNotice.index();
        }
        let mut rng = self.day_rng(entity::CAMPUS, 1, purpose::HELPDESK, day);
        let mut calls = Vec::new();
        let end = SimTime::start_of_day(day + 1) - SimDuration::NANOSECOND;
        for cause in Cause::ALL {
            let list = &cand[cause];
            let mean: f64 = list.iter().map(|c| c.2).sum();
            if mean <= 0.0 {
                continue;
            }
            let n = Poisson::new(mean).map(|d| d.sample(&mut rng) as usize).unwrap_or(0);
            // Each call comes from an affected user, chosen by call probability, some
            // minutes after they met the failure.
            let cumulative: Vec<f64> = list
                .iter()
                .scan(0.0, |acc, c| {
                    *acc += c.2;
                    Some(*acc)
                })
                .collect();
            for _ in 0..n {
                let x = rng.random::<f64>() * mean;
                let k = cumulative.partition_point(|&c| c <= x).min(list.len() - 1);
                let (user, at, _) = list[k];
                let at = (at + SimDuration::from_mins(30).mul_f64(rng.random::<f64>())).min(end);
                calls.push(Call { at, cause, user: Some(user) });
            }
        }
        (calls, affected, by_cause)
    }

    /// Servers that refused many untrusted connections today: their owners may request a
    /// boundary exception, granted after a delay.
    fn boundary_requests(&mut self, day: u32, pop: &Population) {
        let Some(p) = self.sc.population.as_ref() else {
            self.server_refused.clear();
            return;
        };
        let mut refused: Vec<(HostId, u32)> = self.server_refused.drain().collect();
        refused.sort();
        for (h, n) in refused {
            if (f64::from(n) * self.scale) < f64::from(p.boundary_request_threshold)
                || self.boundary_groups.iter().any(|&g| pop.groups(h).contains(g))
                || self.grants.iter().any(|g| g.1 == h)
            {
                continue;
            }
            let mut rng = self.day_rng(entity::HOST, h.0, purpose::REQUESTS, day);
            if rng.random::<f64>() < p.boundary_request_probability
                && rng.random::<f64>() < p.boundary_grant_probability
            {
                self.grants.push((day + p.boundary_grant_days.max(1), h));
            }
        }
    }

    /// Whether the rollout has anything left to do.
    pub fn rollout_finished(&self) -> bool {
        self.rollout.as_ref().is_none_or(|r| r.finished())
    }

    pub fn rollout_statuses(&self) -> Vec<(String, String, &'static str)> {
        self.rollout.as_ref().map(|r| r.statuses()).unwrap_or_default()
    }

    /// Who a host is, for reports.
    pub fn category(&self, pop: &Population, h: HostId) -> &'static str {
        match self.campus.host(h).kind {
            HostKind::Server(_) => "server",
            HostKind::Client(_) if pop.is_managed(h) => "managed",
            HostKind::Client(c) => match c {
                ClientCategory::Managed => "managed",
                other => other.name(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::build;

    /// The domain a joining machine joins, found the slow way: the owner's first
    /// domain-joined machine in their site's host range, else the main domain.
    fn searched(campus: &Campus, u: UserId) -> DomainId {
        let site = &campus.sites[campus.users[u.index()].site.index()];
        site.hosts
            .clone()
            .map(|x| &campus.hosts[x as usize])
            .find(|x| x.owner == Some(u) && x.domain.is_some())
            .and_then(|x| x.domain)
            .unwrap_or(fallback_domain(campus))
    }

    #[test]
    fn join_domains_equal_searching_each_users_site() {
        let sc = build::builtin_small(3000, 1800, 12, None);
        let campus = Campus::generate(&sc, 5).unwrap();
        let joined = join_domains(&campus);
        assert_eq!(joined.len(), campus.users.len());
        for u in 0..campus.users.len() {
            let u = UserId::from_index(u);
            assert_eq!(joined[u.index()], searched(&campus, u), "user {u:?}");
        }
        // Not all users land in the main domain: the test would not see a wrong lookup.
        let main = fallback_domain(&campus);
        assert!(joined.iter().any(|&d| d != main), "every user joins the main domain");
    }

    /// The campaign's days give the same events with its draws made ahead as without, and
    /// the draws made ahead are the ones used: every workday after the first, and every
    /// refresh round, is handed over.
    #[test]
    fn days_with_draws_made_ahead_equal_days_drawn_inline() {
        use crate::model::host_draws::HostDrawer;
        let sc = build::builtin_small(3000, 1800, 12, None);
        let campus = Campus::generate(&sc, 5).unwrap();
        let days = 40;
        let hosts = campus.hosts.len();
        let run = |ahead: bool| {
            let mut campaign = Campaign::new(&sc, &campus, 9);
            if ahead {
                let streams = RngStreams::new(9);
                let workdays = (1..days).filter(|&d| is_workday(sc.run.start_weekday, d));
                let mut daily = HostDrawer::new(streams.clone(), Draws::DailyDeciding, hosts, workdays);
                campaign.draw_ahead(Draws::DailyDeciding, Box::new(move |spare| daily.next(spare)), 1);
                let mut refresh = HostDrawer::new(streams, Draws::Refresh, hosts, 1..);
                campaign.draw_ahead(Draws::Refresh, Box::new(move |spare| refresh.next(spare)), 1);
            }
            let mut pop = Population::new(&campus);
            let mut events = Vec::new();
            for day in 0..days {
                let out = campaign.start_day(day, &mut pop, None);
                events.extend(out.iter().copied());
                // The population moves as the world would move it, so later days differ.
                let mut due: std::collections::BTreeSet<(SimTime, CampaignEvent)> = out.into_iter().collect();
                while let Some((at, ev)) = due.pop_first() {
                    due.extend(campaign.handle(ev, at, &mut pop, None).into_iter().filter(|e| e.0.day() == day));
                }
                campaign.end_day(day, &pop, None, 0.0);
            }
            let refresh_rounds = campaign.refresh_round;
            (
                events,
                campaign.daily_ahead.hits,
                campaign.daily_ahead.misses,
                campaign.refresh_ahead.hits,
                refresh_rounds,
            )
        };
        let (inline, ..) = run(false);
        let (ahead, daily_hits, daily_misses, refresh_hits, rounds) = run(true);
        assert_eq!(ahead, inline);
        let workdays = (1..days).filter(|&d| is_workday(sc.run.start_weekday, d)).count() as u32;
        assert_eq!((daily_hits, daily_misses), (workdays, 0));
        assert!(rounds > 1, "a rollout of {days} days publishes more than once");
        assert_eq!(refresh_hits, rounds);
        // Something happens on these days: joins, reimages and refreshes.
        let kinds = |f: fn(&CampaignEvent) -> bool| inline.iter().filter(|e| f(&e.1)).count();
        assert!(kinds(|e| matches!(e, CampaignEvent::Join(_))) > 0);
        assert!(kinds(|e| matches!(e, CampaignEvent::Reimage(_))) > 0);
        assert!(kinds(|e| matches!(e, CampaignEvent::Refresh(_))) > 0);
    }
}
