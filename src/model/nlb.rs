//! NLB clusters under node failures: which node answers a client, which nodes the cluster
//! believes alive, and how long a client stalls when the node it was talking to dies.
//!
//! Contract:
//! - [`Nlb`] holds each node's state (up, or down since a failure until its repair) and
//!   answers [`Nlb::route`]: the node that takes a client's packets now. The cluster hashes
//!   clients into 60 buckets [MS NLB] and gives each bucket to one of the nodes it believes
//!   alive by rendezvous hashing, so a node leaving or joining moves only its own buckets.
//!   The cluster notices a failure, and admits a repaired node, one convergence time later:
//!   until then packets for the failed node's buckets go to the dead node.
//! - [`stall`] computes one connection's stall from the mechanics, not from a table: the
//!   client's TCP transmissions (RTO backoff, SYN retries, application retries after TCP
//!   gives up) meet the instant the network lets them through, which depends on how the
//!   client's IPsec notices the dead peer ([`Detection`]): an idle timer counted from the
//!   last packet received (5 minutes on Windows 2000 / XP before SP2, 1 minute with the
//!   NAT-T update, XP SP2 and Server 2003), a TCP retransmission (Vista / Server 2008
//!   renegotiate with another node), or nothing to notice (clear traffic: TCP's own
//!   failover once the cluster has converged) [WP "Network Load Balancing Clusters",
//!   DOMAIN 5].
//! - [`failure_schedule`] draws each node's failures and repairs (exponential times between
//!   failures and to repair) and merges the scenario's scheduled failures; it is pure given
//!   the per-node generators it is handed.
//! - Nothing here knows SAs: the IPsec layer pins clients to nodes and finds stranded SAs.

use rand_distr::{Distribution, Exp};

use super::kinds::Os;
use crate::engine::{SimDuration, SimTime};

/// Buckets a Windows NLB cluster hashes clients into [MS NLB].
pub const BUCKETS: u64 = 60;

/// Windows TCP's timers as far as a dead peer shows them, and the application on top
/// [assumption: Windows 2000-2008 TCP/IP defaults: TcpMaxDataRetransmissions 5,
/// TcpMaxConnectRetransmissions 2, initial SYN RTO 3 s].
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TcpTimers {
    /// Retransmission timeout of an established connection on the campus LAN/WAN (the
    /// floor Windows applies to a measured RTT).
    pub data_rto: SimDuration,
    pub data_retransmissions: u32,
    pub syn_rto: SimDuration,
    pub syn_retransmissions: u32,
    /// After TCP gives up, the application (or its user) tries again this much later.
    pub app_retry: SimDuration,
    /// The application reports a failure when a request has not been answered after this
    /// long, even if TCP is still retrying.
    pub app_timeout: SimDuration,
}

impl TcpTimers {
    /// When TCP gives up on a connection whose first unanswered transmission went at
    /// `from`: after the last retransmission's timeout (the RTO doubles each time).
    fn give_up(rto: SimDuration, retransmissions: u32) -> SimDuration {
        rto.saturating_mul((1u64 << (retransmissions + 1).min(62)) - 1)
    }
}

/// A failure the scenario names, for a controlled experiment.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct ScheduledFailure {
    pub cluster: u32,
    /// Node index within the cluster.
    pub node: u32,
    pub at: SimTime,
    pub down_for: SimDuration,
}

/// Node failures and the timers that decide failover stalls.
#[derive(Clone, Debug, PartialEq)]
pub struct FailoverParams {
    /// Mean time between failures of one node (`None`: no random failures).
    pub mtbf: Option<SimDuration>,
    /// Mean time to repair.
    pub mttr: SimDuration,
    /// Time for the cluster to notice a node leaving or joining (missed heartbeats and
    /// convergence).
    pub convergence: SimDuration,
    /// The IPsec idle timer of Windows 2000 and XP SP1 without the NAT-T update.
    pub idle_legacy: SimDuration,
    /// The idle timer of XP SP1 with NAT-T, XP SP2/SP3 and Server 2003.
    pub idle: SimDuration,
    /// Share of XP SP1 machines with the NAT-T update (and so the shorter timer).
    pub xp_sp1_nat_t: f64,
    /// Exempt every cluster's virtual IP from IPsec (a permit filter in every policy).
    pub exempt_vips: bool,
    pub tcp: TcpTimers,
    pub scheduled: Vec<ScheduledFailure>,
}

/// How a client's IPsec notices that the node holding its SA is gone.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Detection {
    /// No SA to notice: clear traffic, or a new negotiation towards a dead node.
    Nothing,
    /// The SA is deleted once nothing has been received on it for this long.
    IdleTimer(SimDuration),
    /// A TCP retransmission makes IPsec renegotiate (Vista / Server 2008).
    TcpRetransmit,
}

impl Detection {
    /// Stable name for outputs.
    pub fn name(self) -> &'static str {
        match self {
            Detection::Nothing => "none",
            Detection::IdleTimer(_) => "idle-timer",
            Detection::TcpRetransmit => "tcp-retransmit",
        }
    }

    /// How a client with `os` notices a dead SA peer; `nat_t_update` for XP SP1 machines
    /// that have it [WP "Network Load Balancing Clusters"].
    pub fn of(os: Os, nat_t_update: bool, p: &FailoverParams) -> Detection {
        match os {
            Os::Vista | Os::Server2008 => Detection::TcpRetransmit,
            Os::XpSp1 if nat_t_update => Detection::IdleTimer(p.idle),
            Os::Win2000 | Os::XpSp1 => Detection::IdleTimer(p.idle_legacy),
            _ => Detection::IdleTimer(p.idle),
        }
    }
}

/// One connection meeting a failed node.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StallCase {
    /// When the connection's first unanswered packet went: the failure instant for a
    /// connection in progress, the connection's start for a new one.
    pub start: SimTime,
    /// Established before the failure (its data is retransmitted) rather than new (SYNs).
    pub in_progress: bool,
    /// When the client last received anything on the SA (for idle timers).
    pub last_inbound: SimTime,
    /// From when the cluster sends the client's packets to a live node.
    pub reachable: SimTime,
    pub detection: Detection,
    /// Time to set up a new SA with the new node once a transmission triggers it (zero in
    /// clear).
    pub ike: SimDuration,
}

/// What the user of that connection saw.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Stall {
    /// When data flowed again (on a new connection if the old one was lost).
    pub recovered: SimTime,
    pub stall: SimDuration,
    /// TCP gave up, or the application's timeout passed, before data flowed again.
    pub app_failed: bool,
}

/// The client's transmissions for a connection: the original packet, TCP's retransmissions
/// with exponential backoff until it gives up, then the application's new connections (a
/// SYN and its retries), forever.
struct Transmissions<'a> {
    tcp: &'a TcpTimers,
    /// Start of the current TCP attempt, its RTO and retransmission budget.
    attempt_start: SimTime,
    rto: SimDuration,
    budget: u32,
    /// Index of the next transmission within the attempt (0 = original).
    k: u32,
}

impl<'a> Transmissions<'a> {
    fn new(start: SimTime, in_progress: bool, tcp: &'a TcpTimers) -> Self {
        let (rto, budget) =
            if in_progress { (tcp.data_rto, tcp.data_retransmissions) } else { (tcp.syn_rto, tcp.syn_retransmissions) };
        Transmissions { tcp, attempt_start: start, rto, budget, k: 0 }
    }
}

impl Iterator for Transmissions<'_> {
    /// (time, a retransmission).
    type Item = (SimTime, bool);

    fn next(&mut self) -> Option<(SimTime, bool)> {
        if self.k > self.budget {
            // TCP gave up: the application opens a new connection a little later.
            let gave_up = self.attempt_start + TcpTimers::give_up(self.rto, self.budget);
            self.attempt_start = gave_up + self.tcp.app_retry;
            self.rto = self.tcp.syn_rto;
            self.budget = self.tcp.syn_retransmissions;
            self.k = 0;
        }
        let at = self.attempt_start + self.rto.saturating_mul((1u64 << self.k) - 1);
        let retransmission = self.k > 0;
        self.k += 1;
        Some((at, retransmission))
    }
}

/// The stall of one connection (see the module contract).
pub fn stall(case: &StallCase, tcp: &TcpTimers) -> Stall {
    let through = |(at, retransmission): (SimTime, bool)| match case.detection {
        Detection::Nothing => at >= case.reachable,
        Detection::IdleTimer(idle) => at >= case.reachable.max(case.last_inbound + idle),
        // Each retransmission makes IPsec renegotiate; it reaches a live node once the
        // cluster has converged.
        Detection::TcpRetransmit => retransmission && at >= case.reachable,
    };
    // Transmissions are increasing and the retry cycle repeats, so a bounded search
    // always ends: at most a day of retries (far beyond any idle timer).
    let horizon = case.start.max(case.reachable).max(case.last_inbound) + SimDuration::DAY;
    let sent = Transmissions::new(case.start, case.in_progress, tcp)
        .take_while(|&(at, _)| at <= horizon)
        .find(|&t| through(t))
        .map_or(horizon, |(at, _)| at);
    let recovered = sent + case.ike;
    let (rto, budget) = if case.in_progress {
        (tcp.data_rto, tcp.data_retransmissions)
    } else {
        (tcp.syn_rto, tcp.syn_retransmissions)
    };
    let patience = TcpTimers::give_up(rto, budget).min(tcp.app_timeout);
    let stall = recovered.saturating_duration_since(case.start);
    Stall { recovered, stall, app_failed: stall > patience }
}

/// A node's state.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum NodeState {
    /// Serving; the cluster gives it buckets from `serving_from` (after a repair, once
    /// the cluster has converged).
    Up {
        serving_from: SimTime,
    },
    Down {
        since: SimTime,
        until: SimTime,
    },
}

/// Where the cluster sends a client's packets now.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Route {
    /// The node that answers once packets get through (a live node).
    pub node: u32,
    /// `Some((dead, reachable))` when the packets go to the dead node `dead` now and reach
    /// `node` only from `reachable` (the cluster has not converged, or every node is down).
    pub dead: Option<(u32, SimTime)>,
    /// No node serves: the wait is for a repair, not for convergence.
    pub cluster_down: bool,
}

/// The node states of every cluster.
#[derive(Clone, Debug)]
pub struct Nlb {
    states: Vec<Vec<NodeState>>,
    convergence: SimDuration,
}

/// A well-mixed 64-bit hash (SplitMix64 finaliser).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Nlb {
    /// Clusters of these sizes, every node up.
    pub fn new(nodes_per_cluster: impl IntoIterator<Item = u32>, convergence: SimDuration) -> Nlb {
        let states = nodes_per_cluster
            .into_iter()
            .map(|n| vec![NodeState::Up { serving_from: SimTime::ZERO }; n as usize])
            .collect();
        Nlb { states, convergence }
    }

    pub fn state(&self, cluster: u32, node: u32) -> NodeState {
        self.states[cluster as usize][node as usize]
    }

    pub fn is_down(&self, cluster: u32, node: u32) -> bool {
        matches!(self.state(cluster, node), NodeState::Down { .. })
    }

    /// A node fails at `now` until `until`. A failure of a node already down extends it.
    pub fn fail(&mut self, cluster: u32, node: u32, now: SimTime, until: SimTime) {
        let s = &mut self.states[cluster as usize][node as usize];
        *s = match *s {
            NodeState::Down { since, until: u } => NodeState::Down { since, until: u.max(until) },
            NodeState::Up { .. } => NodeState::Down { since: now, until },
        };
    }

    /// A node's repair is due at `now`; returns whether it came back (a later failure may
    /// have extended its outage).
    pub fn repair(&mut self, cluster: u32, node: u32, now: SimTime) -> bool {
        let s = &mut self.states[cluster as usize][node as usize];
        match *s {
            NodeState::Down { until, .. } if until <= now => {
                *s = NodeState::Up { serving_from: now + self.convergence };
                true
            }
            _ => false,
        }
    }

    /// Whether the cluster gives a node buckets at `t` (it still does for a dead node
    /// until it has converged).
    fn member(&self, s: NodeState, t: SimTime) -> bool {
        match s {
            NodeState::Up { serving_from } => t >= serving_from,
            NodeState::Down { since, .. } => t < since + self.convergence,
        }
    }

    /// The owner of `bucket` among the nodes for which `member` holds (highest rendezvous
    /// weight).
    fn owner(&self, cluster: u32, bucket: u64, member: impl Fn(NodeState) -> bool) -> Option<u32> {
        self.states[cluster as usize]
            .iter()
            .enumerate()
            .filter(|(_, s)| member(**s))
            .max_by_key(|(i, _)| mix(bucket.wrapping_mul(0x1_0000_0001) ^ ((u64::from(cluster) << 8) | *i as u64)))
            .map(|(i, _)| i as u32)
    }

    /// The bucket of a client: `key` is the client address (single affinity), its class C
    /// (network affinity) or a per-connection draw scaled to 2^32 (no affinity).
    pub fn bucket(key: u64) -> u64 {
        mix(key) % BUCKETS
    }

    /// Where the cluster sends a packet of `bucket` at `now`.
    pub fn route(&self, cluster: u32, bucket: u64, now: SimTime) -> Route {
        let owner = self.owner(cluster, bucket, |s| self.member(s, now));
        match owner.map(|n| (n, self.state(cluster, n))) {
            Some((n, NodeState::Up { .. })) => Route { node: n, dead: None, cluster_down: false },
            Some((dead, NodeState::Down { since, .. })) => {
                // The cluster has not yet noticed: packets reach a live node once it has.
                let reachable = since + self.convergence;
                let mut r = self.live_from(cluster, bucket, dead, reachable);
                // Unless no node will be serving then either.
                r.cluster_down = r.dead.is_some_and(|d| d.1 > reachable);
                r
            }
            None => {
                // Nobody serves (every node down, or a repaired one not yet admitted): the
                // first node back, once admitted.
                let dead = self.owner(cluster, bucket, |_| true).expect("a cluster has nodes");
                Route { cluster_down: true, ..self.live_from(cluster, bucket, dead, now) }
            }
        }
    }

    /// The live owner of a bucket as of `reachable`, reported as reachable from then
    /// (packets go to `dead` until then).
    fn live_from(&self, cluster: u32, bucket: u64, dead: u32, reachable: SimTime) -> Route {
        let serving = |s: NodeState, t: SimTime| match s {
            NodeState::Up { serving_from } => serving_from <= t,
            NodeState::Down { until, .. } => until + self.convergence <= t,
        };
        if let Some(node) = self.owner(cluster, bucket, |s| serving(s, reachable)) {
            return Route { node, dead: Some((dead, reachable)), cluster_down: false };
        }
        // Every node is down at `reachable` too: the first one back.
        let back = self.states[cluster as usize]
            .iter()
            .map(|s| match *s {
                NodeState::Up { serving_from } => serving_from,
                NodeState::Down { until, .. } => until + self.convergence,
            })
            .min()
            .expect("a cluster has nodes")
            .max(reachable);
        let node = self.owner(cluster, bucket, |s| serving(s, back)).expect("a node serves once back");
        Route { node, dead: Some((dead, back)), cluster_down: true }
    }
}

/// One node outage of the run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Outage {
    pub at: SimTime,
    pub until: SimTime,
    pub cluster: u32,
    pub node: u32,
}

/// Every outage before `horizon`: for each node (cluster by cluster, `sizes` giving node
/// counts), alternating exponential up and down times drawn from `rng_of(cluster, node)`,
/// plus the scheduled failures; sorted by time.
pub fn failure_schedule<R: rand::Rng>(
    p: &FailoverParams,
    sizes: &[u32],
    horizon: SimTime,
    mut rng_of: impl FnMut(u32, u32) -> R,
) -> Vec<Outage> {
    let mut out: Vec<Outage> = p
        .scheduled
        .iter()
        .filter(|f| f.at < horizon)
        .map(|f| Outage { at: f.at, until: f.at + f.down_for, cluster: f.cluster, node: f.node })
        .collect();
    if let Some(mtbf) = p.mtbf {
        let up = Exp::new(1.0 / mtbf.as_secs_f64()).expect("positive MTBF");
        let down = Exp::new(1.0 / p.mttr.as_secs_f64().max(1e-9)).expect("positive MTTR");
        for (c, &n) in sizes.iter().enumerate() {
            for node in 0..n {
                let mut rng = rng_of(c as u32, node);
                let mut t = SimTime::ZERO;
                loop {
                    t = t.saturating_add(SimDuration::from_secs_f64(up.sample(&mut rng)));
                    if t >= horizon {
                        break;
                    }
                    let until =
                        t.saturating_add(SimDuration::from_secs_f64(down.sample(&mut rng)).max(SimDuration::SECOND));
                    out.push(Outage { at: t, until, cluster: c as u32, node });
                    t = until;
                }
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> TcpTimers {
        TcpTimers {
            data_rto: SimDuration::from_millis(500),
            data_retransmissions: 5,
            syn_rto: SimDuration::from_secs(3),
            syn_retransmissions: 2,
            app_retry: SimDuration::from_secs(10),
            app_timeout: SimDuration::from_secs(30),
        }
    }

    fn secs(s: f64) -> SimDuration {
        SimDuration::from_secs_f64(s)
    }

    #[test]
    fn transmissions_back_off_then_the_application_retries() {
        let t = tcp();
        let start = SimTime::ZERO + SimDuration::HOUR;
        let times: Vec<f64> =
            Transmissions::new(start, true, &t).take(9).map(|(at, _)| (at - start).as_secs_f64()).collect();
        // Data: 0, then RTO 0.5 s doubling five times; TCP gives up at 31.5 s; the
        // application's new connection 10 s later: SYN, +3 s, +6 s.
        assert_eq!(times, vec![0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 41.5, 44.5, 50.5]);
        let syn: Vec<f64> =
            Transmissions::new(start, false, &t).take(5).map(|(at, _)| (at - start).as_secs_f64()).collect();
        assert_eq!(syn, vec![0.0, 3.0, 9.0, 31.0, 34.0]);
    }

    /// A connection in progress on a node that fails at 01:00; the cluster converges 5 s
    /// later.
    fn in_progress_at_failure(detection: Detection, ike: SimDuration) -> StallCase {
        let t0 = SimTime::ZERO + SimDuration::HOUR;
        StallCase { start: t0, in_progress: true, last_inbound: t0, reachable: t0 + secs(5.0), detection, ike }
    }

    #[test]
    fn clear_traffic_waits_for_convergence_only() {
        let s = stall(&in_progress_at_failure(Detection::Nothing, SimDuration::ZERO), &tcp());
        assert_eq!(s.stall, secs(7.5));
        assert!(!s.app_failed);
    }

    #[test]
    fn idle_timers_decide_pre_vista_stalls() {
        let t0 = SimTime::ZERO + SimDuration::HOUR;
        let case = |idle: u64| {
            in_progress_at_failure(Detection::IdleTimer(SimDuration::from_mins(idle)), SimDuration::from_millis(20))
        };
        let legacy = stall(&case(5), &tcp());
        let modern = stall(&case(1), &tcp());
        assert!(legacy.stall >= SimDuration::from_mins(5) && legacy.stall <= SimDuration::from_mins(6), "{legacy:?}");
        assert!(modern.stall >= SimDuration::from_mins(1) && modern.stall <= SimDuration::from_mins(2), "{modern:?}");
        assert!(legacy.app_failed && modern.app_failed);
        // Recovery is a transmission plus IKE, never before the SA is gone.
        assert!(legacy.recovered >= t0 + SimDuration::from_mins(5) + SimDuration::from_millis(20));
    }

    #[test]
    fn a_quiet_sa_times_out_sooner() {
        let t0 = SimTime::ZERO + SimDuration::HOUR;
        let s = stall(
            &StallCase {
                start: t0 + SimDuration::from_mins(1),
                in_progress: false,
                last_inbound: t0 - SimDuration::from_mins(2),
                reachable: t0 + secs(5.0),
                detection: Detection::IdleTimer(SimDuration::from_mins(5)),
                ike: SimDuration::ZERO,
            },
            &tcp(),
        );
        // The SA dies at t0 + 3 min: 2 minutes after this connection started, plus the
        // retry cycle's alignment.
        assert!(s.stall >= SimDuration::from_mins(2) && s.stall < SimDuration::from_mins(2) + secs(31.0), "{s:?}");
    }

    #[test]
    fn vista_renegotiates_at_a_retransmission_after_convergence() {
        let s = stall(&in_progress_at_failure(Detection::TcpRetransmit, SimDuration::from_millis(10)), &tcp());
        assert_eq!(s.stall, secs(7.51));
        assert!(!s.app_failed);
    }

    #[test]
    fn routing_moves_only_the_failed_nodes_buckets() {
        let conv = SimDuration::from_secs(5);
        let mut nlb = Nlb::new([4], conv);
        let t0 = SimTime::ZERO + SimDuration::HOUR;
        let before: Vec<u32> = (0..BUCKETS).map(|b| nlb.route(0, b, t0).node).collect();
        assert!((0..4).all(|n| before.contains(&n)), "every node owns buckets: {before:?}");
        nlb.fail(0, 1, t0, t0 + SimDuration::HOUR);
        for b in 0..BUCKETS {
            let during = nlb.route(0, b, t0 + secs(1.0));
            let after = nlb.route(0, b, t0 + secs(6.0));
            assert_eq!(after.dead, None);
            assert_ne!(after.node, 1);
            if before[b as usize] == 1 {
                assert_eq!(during.dead, Some((1, t0 + conv)));
                assert_eq!(during.node, after.node);
            } else {
                assert_eq!(during, Route { node: before[b as usize], dead: None, cluster_down: false });
                assert_eq!(after.node, before[b as usize]);
            }
        }
        // Repair: admitted after convergence, and it takes its buckets back.
        assert!(nlb.repair(0, 1, t0 + SimDuration::HOUR));
        let back: Vec<u32> = (0..BUCKETS).map(|b| nlb.route(0, b, t0 + SimDuration::HOUR + secs(6.0)).node).collect();
        assert_eq!(back, before);
    }

    #[test]
    fn an_empty_cluster_is_reachable_when_the_first_node_returns() {
        let conv = SimDuration::from_secs(5);
        let mut nlb = Nlb::new([2], conv);
        let t0 = SimTime::ZERO + SimDuration::HOUR;
        nlb.fail(0, 0, t0, t0 + SimDuration::from_mins(10));
        nlb.fail(0, 1, t0, t0 + SimDuration::from_mins(20));
        let r = nlb.route(0, 7, t0 + SimDuration::from_mins(1));
        assert_eq!(r.node, 0);
        assert!(r.cluster_down);
        assert_eq!(r.dead.map(|d| d.1), Some(t0 + SimDuration::from_mins(10) + conv));
        // The other node failing just now: convergence would be 5 s away, but nobody
        // serves then either.
        let mut nlb = Nlb::new([2], conv);
        nlb.fail(0, 0, t0, t0 + SimDuration::from_mins(10));
        nlb.fail(0, 1, t0 + SimDuration::from_mins(1), t0 + SimDuration::from_mins(20));
        for b in 0..BUCKETS {
            let r = nlb.route(0, b, t0 + SimDuration::from_mins(1));
            if let Some((_, reachable)) = r.dead {
                assert!(r.cluster_down);
                assert_eq!(reachable, t0 + SimDuration::from_mins(10) + conv);
            }
        }
    }

    #[test]
    fn failures_follow_mtbf_and_mttr() {
        use rand::SeedableRng;
        let p = FailoverParams {
            mtbf: Some(SimDuration::from_days(10)),
            mttr: SimDuration::from_hours(4),
            convergence: SimDuration::from_secs(5),
            idle_legacy: SimDuration::from_mins(5),
            idle: SimDuration::from_mins(1),
            xp_sp1_nat_t: 0.5,
            exempt_vips: false,
            tcp: tcp(),
            scheduled: vec![ScheduledFailure {
                cluster: 0,
                node: 0,
                at: SimTime::ZERO + secs(10.0),
                down_for: secs(60.0),
            }],
        };
        let horizon = SimTime::start_of_day(10_000);
        let out = failure_schedule(&p, &[3, 2], horizon, |c, n| {
            rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(c) * 100 + u64::from(n))
        });
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
        assert!(out.contains(&Outage {
            at: SimTime::ZERO + secs(10.0),
            until: SimTime::ZERO + secs(70.0),
            cluster: 0,
            node: 0
        }));
        let random: Vec<&Outage> = out.iter().filter(|o| o.until - o.at != secs(60.0)).collect();
        // 5 nodes over 10,000 days at one failure per ~10 days: about 5,000 failures.
        let n = random.len() as f64;
        assert!((n - 5000.0).abs() < 300.0, "{n}");
        let mean_down = random.iter().map(|o| (o.until - o.at).as_secs_f64()).sum::<f64>() / n;
        assert!((mean_down / 3600.0 - 4.0).abs() < 0.25, "{mean_down}");
    }
}
