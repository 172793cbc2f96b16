//! The simulated world of one run: the campus, its traffic, and the day-by-day accounting,
//! driven as discrete events on the engine.
//!
//! Contract:
//! - Events: `DayEnd(d)` at midnight after day `d` (class 0), `DayStart(d)` at midnight
//!   (class 1), `Arrival { host, seq }` for session starts (class 2). Each host has at most
//!   one pending arrival; its chain restarts at every midnight (exact for a Poisson process,
//!   and it keeps days independent).
//! - Randomness: the `seq`-th event of a host on day `d` draws from a fixed window of
//!   [`WORDS_PER_EVENT`] words of the host's stream for that day, so no generator state is
//!   kept per host (the event carries its position) and a host's draws depend on nothing
//!   but (seed, host, day, seq).
//! - With an IPsec layer ([`SecNet`]), every session is a connection through policy and SA
//!   logic: blocked sessions carry nothing, the others start after the wait the user sees
//!   (fallback, IKE) and are counted protected or clear. SA idle and main-mode expiries are
//!   `Sa` events (class 2) at their deadlines, so live SA counts are exact at every event.
//! - Bytes of a session are spread evenly over its duration into utilisation bins of the
//!   wide-area links it crosses; a day's link figures are final at its `DayEnd`.
//! - Results leave through an [`Observer`]; nothing here does I/O.

use super::campaign::{Campaign, CampaignEvent, Felt};
use super::campus::{Campus, Endpoint};
use super::day_plan::{DayPlan, Slot, Step, sampled_hosts};
use super::ids::{ClusterId, HostId, LinkId};
use super::kinds::{HostKind, Os};
use super::nlb::Outage;
use super::packet_layer::{PacketLayer, SessionPackets, encap_for};
use super::policy::{BlockReason, Service};
use super::population::Population;
use super::secnet::{ClearKind, Outcome, SaTimer, SecNet, StallEvent, TimerKind, pair_key};
use super::streams::{entity, purpose};
use super::traffic::{Session, TrafficModel};
use crate::engine::queue::EventQueue;
use crate::engine::rng::{RngStreams, StreamKey, StreamWindow};
use crate::engine::sim::{Flow, Handler};
use crate::engine::{SimDuration, SimTime};

/// Event classes: at equal times, a day closes before the next opens, SAs expire before
/// new connections look for them, and sessions start last.
pub mod class {
    pub const DAY_END: u8 = 0;
    pub const DAY_START: u8 = 1;
    /// Policy refreshes, joins, reimages, NAP changes: before anything at the same instant
    /// that depends on them.
    pub const CAMPAIGN: u8 = 2;
    pub const SA_TIMER: u8 = 3;
    /// NLB node failures and repairs: before the sessions that meet them.
    pub const NLB: u8 = 4;
    pub const ARRIVAL: u8 = 5;
}

/// An event is 16 bytes: with the queue's time and order key, 32 per pending event (a
/// full-campus day has 1.5 M pending). Variants keep larger data elsewhere (an outage's
/// times in the run's outage list, a timer's deadline in the queue).
const _: () = assert!(std::mem::size_of::<Event>() == 16);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    DayStart(u32),
    DayEnd(u32),
    /// `slot`: where the plan of the arrival's window holds its draws (a place in it, or
    /// the host's rank among the sampled hosts, which finds its first step there).
    Arrival {
        host: HostId,
        seq: u32,
        slot: Slot,
    },
    /// An SA timer (a [`SaTimer`] spelled out: the variant's fields share the enum's
    /// padding, the struct's would not).
    Sa {
        pair: u64,
        kind: TimerKind,
    },
    Campaign(CampaignEvent),
    Node(NodeEvent),
}

/// An NLB node failing (until its repair) or coming back.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// The `outage`-th of the run's outages (its node and repair time are there: an event
    /// stays 16 bytes).
    Down {
        outage: u32,
    },
    Up {
        cluster: ClusterId,
        node: u32,
    },
}

/// Stream words reserved for one event of a host: a session with its peer choice and the
/// next arrival use well under half of them.
pub const WORDS_PER_EVENT: u64 = 128;

/// Totals of one simulated day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRecord {
    pub day: u32,
    pub sessions: u64,
    /// Per application (catalogue order).
    pub app_sessions: Vec<u64>,
    pub app_bytes: Vec<u64>,
    /// Bytes of sessions whose route crosses at least one wide-area link.
    pub wan_session_bytes: u64,
    /// Sum over wide-area links of the bytes each carried (a byte crossing two links
    /// counts twice).
    pub wan_link_bytes: u64,
    /// Highest utilisation of any wide-area link in any bin of the day, and the link.
    pub peak_wan_util: f64,
    pub peak_wan_link: Option<LinkId>,
    /// Wide-area links whose busiest bin exceeded 80% / 100% of capacity.
    pub wan_links_over_80: u32,
    pub wan_links_over_100: u32,
    /// IPsec figures of the day; `None` for a run without an IPsec layer.
    pub ipsec: Option<IpsecDay>,
    /// Packet-level figures of the day; `None` below packet granularity.
    pub packets: Option<PacketDay>,
}

/// Packet-level figures of one day (IP bytes of carried sessions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PacketDay {
    /// All carried sessions, as if without IPsec, and as they went on the wire.
    pub clear_bytes: u64,
    pub wire_bytes: u64,
    pub wire_packets: u64,
    /// Protected sessions only.
    pub protected_clear_bytes: u64,
    pub protected_wire_bytes: u64,
    /// Highest WAN link utilisation the same traffic would have had without IPsec.
    pub peak_wan_util_clear: f64,
    /// Links at or below the threshold without IPsec and above it with.
    pub links_pushed_over: u32,
}

/// A link's day without IPsec (packet granularity).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkClear {
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub peak_util: f64,
}

/// Connection outcomes of one initiator OS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsOutcomes {
    pub sessions: u64,
    pub protected: u64,
    pub clear_exempt: u64,
    pub clear_fallback: u64,
    pub clear_soft: u64,
    pub blocked: u64,
    /// Connections that waited for a fallback to clear, and the total wait.
    pub fallback_waits: u64,
    pub fallback_wait_s: f64,
    /// Connections that waited for IKE to complete, and the total wait.
    pub ike_waits: u64,
    pub ike_wait_s: f64,
}

/// Initiator groups of the outcome table: the client categories, then servers.
pub const INITIATOR_GROUPS: [&str; 9] =
    ["managed", "test-domain", "legacy-windows", "mac", "linux", "xbox", "pocket-pc", "vpn-guest", "server"];

/// Index of (initiator group, OS) in [`IpsecDay::by_os`].
pub fn initiator_slot(kind: HostKind, os: Os) -> usize {
    let group = match kind {
        HostKind::Client(c) => c as usize,
        HostKind::Server(_) => INITIATOR_GROUPS.len() - 1,
    };
    group * Os::ALL.len() + os as usize
}

/// IPsec figures of one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpsecDay {
    /// Hosts by policy state: none, permit-only, request, secure-request, require,
    /// require-encryption.
    pub policy_states: [u64; 6],
    pub bytes_protected: u64,
    pub bytes_clear: u64,
    /// Bytes of sessions that were blocked (not carried).
    pub bytes_blocked: u64,
    /// Bytes between two domain-joined hosts, and the part carried under IPsec.
    pub bytes_managed_pairs: u64,
    pub bytes_managed_pairs_protected: u64,
    pub main_modes: u64,
    pub quick_modes: u64,
    pub rekeys: u64,
    /// IKE attempts with a willing responder that failed (authentication or a lost
    /// negotiation), and fallbacks to clear (new soft SAs, whatever the cause).
    pub negotiation_failures: u64,
    pub fallbacks: u64,
    pub blocked: u64,
    /// Blocked by reason: block rule, clear refused, IPsec required but failed, firewall.
    pub blocked_by_reason: [u64; 4],
    pub peak_live_mm: u64,
    pub peak_live_qm: u64,
    pub end_live_mm: u64,
    pub end_live_qm: u64,
    /// Per initiator group and OS, indexed by [`initiator_slot`].
    pub by_os: Vec<OsOutcomes>,
    /// Per application: bytes protected, bytes clear.
    pub app_protected: Vec<u64>,
    pub app_clear: Vec<u64>,
}

/// One wide-area link's day.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkDayRecord {
    pub day: u32,
    pub link: LinkId,
    /// Bytes crossing towards headquarters / away from it.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Utilisation of the busiest bin (either direction), as a fraction of capacity.
    pub peak_util: f64,
    /// Start of the busiest bin, as time of day.
    pub peak_bin_start: SimDuration,
    /// The same day without IPsec (packet granularity only).
    pub clear: Option<LinkClear>,
}

/// Receives the results of a run as they become final.
pub trait Observer {
    fn day(&mut self, record: &DayRecord);
    fn link_day(&mut self, record: &LinkDayRecord);
    /// A sampled connection that met a failed NLB node.
    fn stall(&mut self, _stall: &StallEvent) {}
}

/// Byte counters per wide-area link, direction and bin, for the current and next day.
struct LinkBins {
    /// Slot of each link in the counters; `u32::MAX` for LAN links (not tracked).
    slot: Vec<u32>,
    links: Vec<LinkId>,
    bins_per_day: usize,
    bin_ns: u64,
    /// [day parity][slot][direction][bin]
    counts: [Vec<f64>; 2],
}

impl LinkBins {
    fn new(campus: &Campus, bin: SimDuration) -> Self {
        let mut slot = vec![u32::MAX; campus.topology.links().len()];
        let mut links = Vec::new();
        for (i, l) in campus.topology.links().iter().enumerate() {
            if l.kind.is_wide_area() {
                slot[i] = links.len() as u32;
                links.push(LinkId::from_index(i));
            }
        }
        let bins_per_day = (SimDuration::DAY.as_nanos() / bin.as_nanos()) as usize;
        let size = links.len() * 2 * bins_per_day;
        LinkBins { slot, links, bins_per_day, bin_ns: bin.as_nanos(), counts: [vec![0.0; size], vec![0.0; size]] }
    }

    /// Adds `bytes` spread evenly over `[start, start + duration)` on one link direction.
    /// Bins beyond the next midnight are folded into the last bin of the next day.
    fn add(&mut self, day: u32, slot: usize, up: bool, start: SimTime, duration: SimDuration, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let day_start = SimTime::start_of_day(day).as_nanos();
        let from = start.as_nanos() - day_start;
        let to = from + duration.as_nanos().max(1);
        let dir = usize::from(!up);
        let per_ns = bytes as f64 / (to - from) as f64;
        let bpd = self.bins_per_day as u64;
        let last = 2 * bpd - 1;
        let mut t = from;
        while t < to {
            let g = (t / self.bin_ns).min(last);
            // The last bin of the next day takes whatever reaches beyond it.
            let end = if g == last { to } else { ((g + 1) * self.bin_ns).min(to) };
            let parity = ((u64::from(day) + g / bpd) % 2) as usize;
            let idx = (slot * 2 + dir) * self.bins_per_day + (g % bpd) as usize;
            self.counts[parity][idx] += per_ns * (end - t) as f64;
            t = end;
        }
    }
}

impl LinkBins {
    /// A link slot's day in bins of `parity`: bytes each way, busiest bin (either
    /// direction) as a share of `capacity_bytes_per_bin`, and that bin's index.
    fn day_stats(&self, parity: usize, slot: usize, capacity_bytes_per_bin: f64) -> ([f64; 2], f64, usize) {
        let mut totals = [0.0f64; 2];
        let mut peak = 0.0f64;
        let mut peak_bin = 0usize;
        for (dir, total) in totals.iter_mut().enumerate() {
            let base = (slot * 2 + dir) * self.bins_per_day;
            for bin in 0..self.bins_per_day {
                let v = self.counts[parity][base + bin];
                *total += v;
                if v > peak {
                    peak = v;
                    peak_bin = bin;
                }
            }
        }
        (totals, peak / capacity_bytes_per_bin, peak_bin)
    }

    fn clear_day(&mut self, parity: usize) {
        self.counts[parity].iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Per-day accumulators.
#[derive(Default)]
struct DayTotals {
    sessions: u64,
    app_sessions: Vec<u64>,
    app_bytes: Vec<u64>,
    wan_session_bytes: u64,
}

fn push_timer(queue: &mut EventQueue<Event>, (at, t): (SimTime, SaTimer)) {
    queue.push(at, class::SA_TIMER, Event::Sa { pair: t.pair, kind: t.kind });
}

/// The window of a host's day stream that its `seq`-th event of that day draws from.
fn event_rng(streams: &RngStreams, host: HostId, day: u32, seq: u32) -> StreamWindow {
    let key = StreamKey::new(entity::HOST, host.0, purpose::TRAFFIC, day as u16);
    streams.window(key, u64::from(seq) * WORDS_PER_EVENT)
}

/// A host's first session arrival of `day` (its event 0 draws only that).
pub fn first_arrival(
    campus: &Campus,
    traffic: &TrafficModel,
    streams: &RngStreams,
    host: HostId,
    day: u32,
) -> Option<SimTime> {
    let mut rng = event_rng(streams, host, day, 0);
    traffic.next_arrival(campus.host(host).kind, SimTime::start_of_day(day), &mut rng)
}

/// The `seq`-th event (seq >= 1) of a host's day, a session arriving at `now`: the next
/// arrival (drawn first, so it never depends on the session's draws) and the session.
pub fn arrival_step(
    campus: &Campus,
    traffic: &TrafficModel,
    streams: &RngStreams,
    host: HostId,
    seq: u32,
    now: SimTime,
) -> (Option<SimTime>, Option<Session>) {
    let mut rng = event_rng(streams, host, now.day(), seq);
    let next = traffic.next_arrival(campus.host(host).kind, now, &mut rng);
    let session = traffic.draw_session(campus, host, now, &mut rng);
    (next, session)
}

/// All sessions of one host on one day, in order: what the run replays for that host.
pub fn host_day_sessions(
    campus: &Campus,
    traffic: &TrafficModel,
    streams: &RngStreams,
    host: HostId,
    day: u32,
) -> Vec<(SimTime, Option<Session>)> {
    let mut out = Vec::new();
    let mut at = first_arrival(campus, traffic, streams, host, day);
    let mut seq = 1;
    while let Some(now) = at {
        let (next, session) = arrival_step(campus, traffic, streams, host, seq, now);
        out.push((now, session));
        at = next;
        seq += 1;
    }
    out
}

/// The layers of a run: the changing population, and optionally IPsec (policy and SAs)
/// and packets.
pub struct Layers<'a> {
    pub population: Population,
    pub campaign: Campaign<'a>,
    pub secnet: Option<SecNet<'a>>,
    pub packets: Option<PacketLayer<'a>>,
    /// NLB node outages of the run (they matter with an IPsec layer that has failover).
    pub outages: Vec<Outage>,
}

pub struct World<'a, O: Observer> {
    campus: &'a Campus,
    traffic: &'a TrafficModel,
    /// Who the computers are now (joins, reimages, groups, NAP, firewall).
    pub population: Population,
    /// The rollout, population changes, user experience and the helpdesk.
    pub campaign: Campaign<'a>,
    /// The IPsec layer, when the scenario has one.
    pub secnet: Option<SecNet<'a>>,
    ipsec_today: IpsecDay,
    /// The packet layer, at packet granularity.
    pub packets: Option<PacketLayer<'a>>,
    packet_today: PacketDay,
    /// Link bins of the same traffic without IPsec (packet granularity).
    bins_clear: Option<LinkBins>,
    streams: RngStreams,
    days: u32,
    bins: LinkBins,
    today: DayTotals,
    outages: Vec<Outage>,
    /// Where the session draws come from when they are drawn ahead (see
    /// [`World::draw_ahead`]), and the plan of the window being simulated.
    plan_source: Option<PlanSource<'a>>,
    plan: Option<DayPlan>,
    pub observer: O,
}

/// Takes back the plan just replayed, if any (its buffers can be reused), and hands over
/// the next window's (windows in time order, see [`super::day_plan::PlanDrawer`]), or
/// `None` when there are no more.
pub type PlanSource<'a> = Box<dyn FnMut(Option<DayPlan>) -> Option<DayPlan> + 'a>;

impl<'a, O: Observer> World<'a, O> {
    pub fn new(
        campus: &'a Campus,
        traffic: &'a TrafficModel,
        layers: Layers<'a>,
        seed: u64,
        days: u32,
        bin: SimDuration,
        observer: O,
    ) -> Self {
        let streams = RngStreams::new(seed);
        let Layers { population, campaign, secnet, packets, outages } = layers;
        World {
            campus,
            traffic,
            population,
            campaign,
            secnet,
            ipsec_today: IpsecDay::default(),
            bins_clear: packets.as_ref().map(|_| LinkBins::new(campus, bin)),
            packets,
            packet_today: PacketDay::default(),
            streams,
            days,
            bins: LinkBins::new(campus, bin),
            today: DayTotals::default(),
            outages,
            plan_source: None,
            plan: None,
            observer,
        }
    }

    /// Takes the session draws from `source` (e.g. a thread drawing the next window while
    /// this one is simulated). Outputs are the same with or without it: a plan holds only
    /// exact draws, and whatever it lacks is drawn here.
    pub fn draw_ahead(&mut self, source: PlanSource<'a>) {
        self.plan_source = Some(source);
    }

    /// Drops the plan source (and with it, e.g., the channel a drawing thread waits on).
    pub fn stop_drawing_ahead(&mut self) {
        self.plan_source = None;
        self.plan = None;
    }

    /// Puts the first events of the run on the queue.
    pub fn prime(&self, queue: &mut EventQueue<Event>) {
        queue.push(SimTime::ZERO, class::DAY_START, Event::DayStart(0));
        if self.secnet.as_ref().is_some_and(|n| n.failover().is_some()) {
            for (i, o) in self.outages.iter().enumerate() {
                let (cluster, node) = (ClusterId(o.cluster), o.node);
                let outage = u32::try_from(i).expect("fewer than 2^32 outages");
                queue.push(o.at, class::NLB, Event::Node(NodeEvent::Down { outage }));
                queue.push(o.until, class::NLB, Event::Node(NodeEvent::Up { cluster, node }));
            }
        }
    }

    /// A node failure or repair; the stalls of connections in progress on a failed node
    /// go to the observer and to their users.
    fn node_event(&mut self, ev: NodeEvent, now: SimTime) {
        let Some(net) = self.secnet.as_mut() else { return };
        match ev {
            NodeEvent::Down { outage } => {
                let o = &self.outages[outage as usize];
                for st in net.node_down(ClusterId(o.cluster), o.node, now, o.until) {
                    self.stalled(&st);
                }
            }
            NodeEvent::Up { cluster, node } => {
                net.node_up(cluster, node, now);
            }
        }
    }

    fn stalled(&mut self, st: &StallEvent) {
        self.observer.stall(st);
        let felt = Felt::Stalled { stall: st.stall.stall, failed: st.stall.app_failed };
        self.campaign.felt(&self.population, st.client, st.node, usize::from(st.app), felt, st.at);
    }

    fn start_day(&mut self, day: u32, queue: &mut EventQueue<Event>) {
        let napps = self.traffic.apps.len();
        self.today = DayTotals { app_sessions: vec![0; napps], app_bytes: vec![0; napps], ..DayTotals::default() };
        for (at, ev) in self.campaign.start_day(day, &mut self.population, self.secnet.as_mut()) {
            queue.push(at, class::CAMPAIGN, Event::Campaign(ev));
        }
        if let Some(net) = self.secnet.as_mut() {
            self.campaign.travel(day, &self.population, net);
        }
        if let Some(net) = &self.secnet {
            self.ipsec_today = IpsecDay {
                by_os: vec![OsOutcomes::default(); INITIATOR_GROUPS.len() * Os::ALL.len()],
                app_protected: vec![0; napps],
                app_clear: vec![0; napps],
                peak_live_mm: net.live_mm,
                peak_live_qm: net.live_qm,
                ..IpsecDay::default()
            };
        }
        for (rank, id) in sampled_hosts(&self.campaign.sampled).enumerate() {
            if let Some(t) = first_arrival(self.campus, self.traffic, &self.streams, id, day) {
                // The plan holding it is found when it arrives (see `World::planned`).
                queue.push(t, class::ARRIVAL, Event::Arrival { host: id, seq: 1, slot: Slot::first_of(rank) });
            }
        }
        queue.push(SimTime::start_of_day(day + 1), class::DAY_END, Event::DayEnd(day));
    }

    fn arrival(&mut self, host: HostId, seq: u32, slot: Slot, now: SimTime, queue: &mut EventQueue<Event>) {
        let planned = self.planned(host, seq, slot, now);
        let ((next, session), next_slot) = planned.unwrap_or_else(|| {
            // A place is handed over by the plan that holds its step, and only within it.
            debug_assert!(!slot.is_place(), "host {host:?} seq {seq}: a place without its step");
            (arrival_step(self.campus, self.traffic, &self.streams, host, seq, now), slot.handed_on())
        });
        if let Some(t) = next {
            queue.push(t, class::ARRIVAL, Event::Arrival { host, seq: seq + 1, slot: next_slot });
        }
        if let Some(s) = session {
            self.account(host, seq, now, &s, queue);
        }
    }

    /// The plan's draws of the arrival `(host, seq)` at `now`, if it holds them, and the
    /// slot of the host's next step. Windows are taken in time order as arrivals reach
    /// them; an arrival whose place is not known (its step lies in a later window than the
    /// one before it, or it is the day's first) is looked up by its host's rank.
    fn planned(&mut self, host: HostId, seq: u32, slot: Slot, now: SimTime) -> Option<(Step, Slot)> {
        while self.plan.as_ref().is_none_or(|p| p.ends_by(now)) {
            let next = self.plan_source.as_mut()?;
            self.plan = next(self.plan.take());
            let Some(plan) = &self.plan else {
                self.plan_source = None;
                return None;
            };
            // The drawer ranks the hosts of the same sample as `start_day` does.
            debug_assert_eq!(plan.ranks(), sampled_hosts(&self.campaign.sampled).count());
        }
        self.plan.as_ref().filter(|p| p.covers(now))?.step(host, seq, slot)
    }

    fn account(&mut self, host: HostId, seq: u32, now: SimTime, s: &Session, queue: &mut EventQueue<Event>) {
        let c = self.campus;
        let h = c.host(host);
        let bytes = s.bytes_up + s.bytes_down;
        self.today.sessions += 1;
        self.today.app_sessions[s.app.index()] += 1;
        let peer_site = c.endpoint_site(s.peer);
        let route =
            (peer_site != h.site).then(|| c.topology.route(h.building, h.site, c.endpoint_building(s.peer), peer_site));
        let duration = match &route {
            Some(r) => self.traffic.network_duration(s, r),
            None => s.duration,
        };
        let mut start = now;
        // Who answered, and under which SA (for the packet layer).
        let (mut responder, mut responder_addr) = match s.peer {
            Endpoint::Host(p) => (p, c.host(p).addr),
            Endpoint::Vip(cl) => (HostId(c.clusters[cl.index()].nodes.start), c.clusters[cl.index()].vip),
        };
        let mut protected: Option<(bool, Option<(u64, SimTime)>)> = None;
        if let Some(net) = self.secnet.as_mut() {
            let app = &self.traffic.apps[s.app.index()];
            let service = Service { protocol: app.protocol.number(), port: app.port };
            let conn = net.connect(
                &self.population,
                host,
                s.peer,
                service,
                s.app.index() as u16,
                now,
                duration,
                bytes,
                s.u_ike,
                s.u_node,
            );
            for t in conn.timers.into_iter().flatten() {
                push_timer(queue, t);
            }
            let d = &mut self.ipsec_today;
            let fx = conn.effects;
            d.main_modes += u64::from(fx.main_modes);
            d.quick_modes += u64::from(fx.quick_modes);
            d.rekeys += u64::from(fx.rekeys);
            d.negotiation_failures += u64::from(conn.ike_failed);
            d.peak_live_mm = d.peak_live_mm.max(net.live_mm);
            d.peak_live_qm = d.peak_live_qm.max(net.live_qm);
            let os = &mut d.by_os[initiator_slot(h.kind, h.os)];
            os.sessions += 1;
            if !conn.delay.is_zero() {
                if let Outcome::Protected { .. } = conn.outcome {
                    os.ike_waits += 1;
                    os.ike_wait_s += conn.delay.as_secs_f64();
                } else {
                    os.fallback_waits += 1;
                    os.fallback_wait_s += conn.delay.as_secs_f64();
                }
            }
            responder = conn.responder;
            if let Endpoint::Host(p) = s.peer {
                responder_addr = c.host(p).addr;
            }
            // What the user felt: IPsec (or, for an unhealthy NAP client under
            // enforcement, NAP) refusing the connection, a wait, or a firewall block.
            let protected_now = matches!(conn.outcome, Outcome::Protected { .. });
            let mut conn = conn;
            let firewalled = !matches!(conn.outcome, Outcome::Blocked(_))
                && self.campaign.firewall_blocks(
                    &mut self.population,
                    host,
                    responder,
                    s.app.index(),
                    protected_now,
                    now,
                );
            if firewalled {
                conn.outcome = Outcome::Blocked(BlockReason::Firewall);
            }
            let nap_blocked = self.population.nap_blocked(host);
            let felt = match conn.outcome {
                Outcome::Blocked(BlockReason::Firewall) => Felt::BlockedByFirewall,
                Outcome::Blocked(_) if nap_blocked => Felt::BlockedByNap,
                Outcome::Blocked(_) => Felt::BlockedByIpsec,
                _ if conn.stall.is_some() => {
                    let st = conn.stall.expect("checked");
                    self.observer.stall(&st);
                    Felt::Stalled { stall: st.stall.stall, failed: st.stall.app_failed }
                }
                _ if !conn.delay.is_zero() => Felt::Waited(conn.delay),
                _ => Felt::Fine,
            };
            self.campaign.felt(&self.population, host, responder, s.app.index(), felt, now);
            let managed_pair = h.is_managed() && c.host(conn.responder).is_managed();
            match conn.outcome {
                Outcome::Blocked(reason) => {
                    os.blocked += 1;
                    d.blocked += 1;
                    d.blocked_by_reason[match reason {
                        BlockReason::BlockRule => 0,
                        BlockReason::ClearRefused => 1,
                        BlockReason::NegotiationRequired => 2,
                        BlockReason::Firewall => 3,
                    }] += 1;
                    d.bytes_blocked += bytes;
                    if matches!(fx.soft_delta, 1) {
                        d.fallbacks += 1;
                    }
                    // Nothing is carried.
                    return;
                }
                Outcome::Protected { encrypt, .. } => {
                    protected = Some((encrypt, conn.sa_key));
                    os.protected += 1;
                    d.bytes_protected += bytes;
                    d.app_protected[s.app.index()] += bytes;
                    if managed_pair {
                        d.bytes_managed_pairs_protected += bytes;
                    }
                }
                Outcome::Clear(kind) => {
                    match kind {
                        ClearKind::Exempt => os.clear_exempt += 1,
                        ClearKind::Fallback(_) => {
                            os.clear_fallback += 1;
                            d.fallbacks += 1;
                        }
                        ClearKind::Soft => os.clear_soft += 1,
                    }
                    d.bytes_clear += bytes;
                    d.app_clear[s.app.index()] += bytes;
                }
            }
            if managed_pair {
                d.bytes_managed_pairs += bytes;
            }
            start = now + conn.delay;
        }
        self.today.app_bytes[s.app.index()] += bytes;
        // Bytes each way on the links: application bytes, or at packet granularity the IP
        // bytes on the wire (and, aside, the same packets without IPsec).
        let mut on_wire = [s.bytes_up, s.bytes_down];
        let mut in_clear = None;
        if let Some(layer) = self.packets.as_mut() {
            let encap = protected.map(|(encrypt, _)| encap_for(layer.params, encrypt, layer.nat_t(host, responder)));
            let (clear, wire) = layer.session(&SessionPackets {
                app: s.app,
                initiator: host,
                responder,
                responder_addr,
                start,
                duration,
                bytes_up: s.bytes_up,
                bytes_down: s.bytes_down,
                encap,
                sa: protected.and_then(|p| p.1),
                seq,
            });
            let d = &mut self.packet_today;
            d.clear_bytes += clear.bytes_total();
            d.wire_bytes += wire.bytes_total();
            d.wire_packets += wire.packets_total();
            if encap.is_some() {
                d.protected_clear_bytes += clear.bytes_total();
                d.protected_wire_bytes += wire.bytes_total();
            }
            on_wire = wire.bytes;
            in_clear = Some(clear.bytes);
        }
        let Some(route) = route else { return };
        let mut crossed = false;
        for hop in route.hops() {
            let slot = self.bins.slot[hop.link.index()];
            if slot == u32::MAX {
                continue;
            }
            crossed = true;
            let day = now.day();
            self.bins.add(day, slot as usize, hop.up, start, duration, on_wire[0]);
            self.bins.add(day, slot as usize, !hop.up, start, duration, on_wire[1]);
            if let (Some(bc), Some(cb)) = (self.bins_clear.as_mut(), in_clear) {
                bc.add(day, slot as usize, hop.up, start, duration, cb[0]);
                bc.add(day, slot as usize, !hop.up, start, duration, cb[1]);
            }
        }
        if crossed {
            self.today.wan_session_bytes += bytes;
        }
    }

    fn end_day(&mut self, day: u32, queue: &mut EventQueue<Event>) {
        let b = &mut self.bins;
        let parity = (day % 2) as usize;
        let bin_s = b.bin_ns as f64 / 1e9;
        let mut rec = DayRecord {
            day,
            sessions: self.today.sessions,
            app_sessions: std::mem::take(&mut self.today.app_sessions),
            app_bytes: std::mem::take(&mut self.today.app_bytes),
            wan_session_bytes: self.today.wan_session_bytes,
            wan_link_bytes: 0,
            peak_wan_util: 0.0,
            peak_wan_link: None,
            wan_links_over_80: 0,
            wan_links_over_100: 0,
            ipsec: self.secnet.as_ref().map(|net| {
                let mut d = std::mem::take(&mut self.ipsec_today);
                d.end_live_mm = net.live_mm;
                d.end_live_qm = net.live_qm;
                // Policy states as the day ends, after its refreshes.
                d.policy_states = net.policy_state_counts();
                d
            }),
            packets: self.packets.as_ref().map(|_| std::mem::take(&mut self.packet_today)),
        };
        let threshold = self.packets.as_ref().map(|l| l.params.wan_threshold);
        for (slot, &link) in b.links.iter().enumerate() {
            let cap_bytes_per_bin = self.campus.topology.link(link).capacity_bps as f64 / 8.0 * bin_s;
            let (totals, util, peak_bin) = b.day_stats(parity, slot, cap_bytes_per_bin);
            let clear = self.bins_clear.as_ref().map(|bc| {
                let (t, u, _) = bc.day_stats(parity, slot, cap_bytes_per_bin);
                LinkClear { bytes_up: t[0].round() as u64, bytes_down: t[1].round() as u64, peak_util: u }
            });
            if let (Some(c), Some(thr), Some(pd)) = (&clear, threshold, rec.packets.as_mut()) {
                pd.links_pushed_over += u32::from(c.peak_util <= thr && util > thr);
                pd.peak_wan_util_clear = pd.peak_wan_util_clear.max(c.peak_util);
            }
            let lr = LinkDayRecord {
                day,
                link,
                bytes_up: totals[0].round() as u64,
                bytes_down: totals[1].round() as u64,
                peak_util: util,
                peak_bin_start: SimDuration::from_nanos(peak_bin as u64 * b.bin_ns),
                clear,
            };
            rec.wan_link_bytes += lr.bytes_up + lr.bytes_down;
            if util > rec.peak_wan_util {
                rec.peak_wan_util = util;
                rec.peak_wan_link = Some(link);
            }
            rec.wan_links_over_80 += u32::from(util > 0.8);
            rec.wan_links_over_100 += u32::from(util > 1.0);
            self.observer.link_day(&lr);
        }
        b.clear_day(parity);
        if let Some(bc) = self.bins_clear.as_mut() {
            bc.clear_day(parity);
        }
        if let Some(l) = self.packets.as_mut() {
            l.end_day();
        }
        let blocked = rec.ipsec.as_ref().map_or(0.0, |d| d.blocked as f64 * self.campaign.scale);
        self.campaign.end_day(day, &self.population, self.secnet.as_ref(), blocked);
        self.observer.day(&rec);
        if day + 1 < self.days {
            queue.push(SimTime::start_of_day(day + 1), class::DAY_START, Event::DayStart(day + 1));
        }
    }
}

impl<O: Observer> World<'_, O> {
    /// Asks the CPU for what an event reads first, found from the event alone: an SA
    /// timer's pair entry and hosts' records, an arrival's host records.
    #[inline]
    fn prefetch_records(&self, e: &Event) {
        match *e {
            Event::Sa { pair, .. } => {
                if let Some(net) = self.secnet.as_ref() {
                    net.prefetch_pair(pair);
                }
            }
            Event::Arrival { host, .. } => {
                self.campaign.prefetch_host_records(host, &self.population, self.secnet.as_ref());
            }
            _ => {}
        }
    }
}

impl<O: Observer> World<'_, O> {
    /// When the plan holds an arrival's session, the peer is known before the session is
    /// handled: its records, its entry in the compiled policy and the pair's SA entry,
    /// random reads that the connection would otherwise wait on, are asked for here. A
    /// cluster's node is only chosen when the session connects, so a virtual IP's are not.
    #[inline]
    fn prefetch_peer(&self, host: HostId, seq: u32, slot: Slot) {
        let Some(peer) = self.planned_peer(host, seq, slot) else { return };
        self.campus.prefetch_host(peer);
        self.population.prefetch_host(peer);
        if let Some(net) = self.secnet.as_ref() {
            net.prefetch_pair(pair_key(host, peer));
            net.prefetch_policy(peer);
        }
    }

    /// The host peer of the arrival `(host, seq)` if the plan in hand holds its session.
    #[inline]
    fn planned_peer(&self, host: HostId, seq: u32, slot: Slot) -> Option<HostId> {
        // A day's first arrival may be ahead of its day's first window: the plan in hand
        // would then hold the day before's first step, not this one.
        if seq == 1 && !slot.is_place() {
            return None;
        }
        match self.plan.as_ref()?.peer_of(host, seq, slot)? {
            Endpoint::Host(peer) => Some(peer),
            Endpoint::Vip(_) => None,
        }
    }
}

impl<O: Observer> Handler<Event> for World<'_, O> {
    /// An SA timer's pair entry is a random read of a table of hundreds of MB, an
    /// arrival's host and user records random reads of arrays of MBs: fetched while the
    /// event before it is handled, they are in cache when it runs. (An arrival's peer, and
    /// so its pair, is known before its session is handled only from the plan: see
    /// `World::prefetch_peer`.) The records were usually
    /// asked for already by [`Handler::prefetch_ahead`]; asking again costs little and
    /// covers events that were not yet in the near run then. The server statistics of an
    /// SA timer's pair, or of a planned arrival's, are found through its hosts' records,
    /// which the first stage fetched: here, an event ahead, that read is a hit and the
    /// statistics have the current event's handling to arrive in (an event that changes
    /// no SA count reads them needlessly, but which do is known only once it runs).
    #[inline]
    fn prefetch(&self, next: &Event) {
        self.prefetch_records(next);
        // The pair whose servers' statistics to ask for: a planned arrival's is found
        // through the hosts' records that `prefetch_peer` asked for two events before.
        let pair = match *next {
            Event::Arrival { host, seq, slot } => {
                self.campaign.prefetch_user(host);
                self.secnet.is_some().then(|| self.planned_peer(host, seq, slot)).flatten().map(|p| pair_key(host, p))
            }
            Event::Sa { pair, .. } => Some(pair),
            _ => None,
        };
        if let (Some(net), Some(pair)) = (self.secnet.as_ref(), pair) {
            net.prefetch_servers(pair);
        }
    }

    /// The first stage: the same records, the owner index the user record's prefetch
    /// will read (which would otherwise stall it), a planned arrival's peer's records, and
    /// the plan a few steps further on.
    #[inline]
    fn prefetch_ahead(&self, later: &Event) {
        self.prefetch_records(later);
        if let Event::Arrival { host, seq, slot } = *later {
            if let Some(plan) = &self.plan {
                plan.prefetch_beyond(slot);
            }
            self.campaign.prefetch_owner(host);
            self.prefetch_peer(host, seq, slot);
        }
    }

    fn handle(&mut self, now: SimTime, event: Event, queue: &mut EventQueue<Event>) -> Flow {
        match event {
            Event::Arrival { host, seq, slot } => self.arrival(host, seq, slot, now, queue),
            Event::DayStart(d) => self.start_day(d, queue),
            Event::DayEnd(d) => self.end_day(d, queue),
            Event::Campaign(ev) => {
                for (at, next) in self.campaign.handle(ev, now, &mut self.population, self.secnet.as_mut()) {
                    queue.push(at, class::CAMPAIGN, Event::Campaign(next));
                }
            }
            Event::Node(ev) => self.node_event(ev, now),
            Event::Sa { pair, kind } => {
                if let Some(net) = self.secnet.as_mut() {
                    if let Some(next) = net.timer(SaTimer { pair, kind }, now) {
                        push_timer(queue, next);
                    }
                    let d = &mut self.ipsec_today;
                    d.peak_live_mm = d.peak_live_mm.max(net.live_mm);
                    d.peak_live_qm = d.peak_live_qm.max(net.live_qm);
                }
            }
        }
        Flow::Continue
    }
}
