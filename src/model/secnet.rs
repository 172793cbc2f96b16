//! The IPsec state of the campus during a run: which policy and credentials each host
//! holds, whether it can reach a domain controller for Kerberos, the SA table per host
//! pair, live SA counts per host, and the outcome of every new connection.
//!
//! Contract:
//! - [`SecNet::connect`] takes one connection (initiator, responder endpoint, service,
//!   start, end, bytes, two uniform draws) and returns its [`Connection`]: protected,
//!   clear (exempt, fallback, or on a soft SA) or blocked, the wait the user sees, and the
//!   SA timers the caller must schedule. Policy decisions come from `policy::decide`, SA
//!   transitions from `sa::step`; this module only wires them to the campus.
//! - Live SA counts never go negative (checked in debug builds) and are exact at every
//!   event, because idle and main-mode expiries are events the caller schedules at their
//!   deadlines ([`SaTimer`]).
//! - Deterministic: no randomness of its own, hash maps used for lookup only.

use rustc_hash::FxHashMap;

use super::campus::{Campus, Endpoint};
use super::ids::{ClusterId, HostId};
use super::kinds::{Affinity, HostKind, Role};
use super::policy::{
    ActionKind, Assignment, BlockReason, ClearReason, Decision, Flow, Packet, PolicyEngine, PolicySet, Service, Side,
    decide,
};

/// The service the lint's reachability probes use (SMB, the workhorse of the campus).
const SMB: Service = Service { protocol: 6, port: 445 };
use super::sa::{self, PairState, QmState, SaEvent};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::IpsecParams;

/// What happened to a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carried under IPsec. `negotiated` when this connection set up a new quick mode.
    Protected {
        encrypt: bool,
        negotiated: bool,
    },
    Clear(ClearKind),
    Blocked(BlockReason),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClearKind {
    /// No side asked for IPsec.
    Exempt,
    /// The initiator asked and fell back (a new soft SA).
    Fallback(ClearReason),
    /// An existing soft SA: clear at once.
    Soft,
}

/// A timer the caller schedules on the event queue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SaTimer {
    Idle { pair: u64, at: SimTime },
    MainMode { pair: u64, at: SimTime },
}

/// The result of [`SecNet::connect`].
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Connection {
    pub outcome: Outcome,
    /// The host that answered (an NLB node for a virtual IP).
    pub responder: HostId,
    /// How long the initiator waits before data flows (fallback wait, IKE for pre-Vista).
    pub delay: SimDuration,
    pub effects: sa::Effects,
    /// IKE was attempted with a willing responder and failed (authentication or a lost
    /// negotiation), as opposed to a responder that never answered.
    pub ike_failed: bool,
    /// For a protected connection: the SA's host pair and the time its current key was
    /// set (SPIs and keys of a packet capture derive from these).
    pub sa_key: Option<(u64, SimTime)>,
    pub timers: [Option<SaTimer>; 2],
}

/// Per-server SA statistics.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    pub peak_qm: u32,
    pub peak_mm: u32,
    pub main_modes: u64,
    pub quick_modes: u64,
    pub peak_main_modes_per_minute: u32,
    pub peak_memory_bytes: u64,
    minute: u64,
    this_minute: u32,
}

struct PairEntry {
    state: PairState,
    /// When the pending idle check fires, if one is scheduled.
    idle_check: Option<SimTime>,
}

pub struct SecNet<'a> {
    campus: &'a Campus,
    set: &'a PolicySet,
    params: &'a IpsecParams,
    engine: PolicyEngine,
    pub assignment: Assignment,
    /// Per host: can get Kerberos tickets (joined, and its DC reachable in clear).
    pub kerberos: Vec<bool>,
    certificate: Vec<bool>,
    sas: FxHashMap<u64, PairEntry>,
    mm_live: Vec<u32>,
    qm_live: Vec<u32>,
    /// Index into `servers` per host (`u32::MAX` for clients).
    server_slot: Vec<u32>,
    pub servers: Vec<(HostId, ServerStats)>,
    pub live_mm: u64,
    pub live_qm: u64,
    pub live_soft: u64,
}

/// The SA table key of a host pair (order-free).
pub fn pair_key(a: HostId, b: HostId) -> u64 {
    let (lo, hi) = if a.0 <= b.0 { (a.0, b.0) } else { (b.0, a.0) };
    (u64::from(lo) << 32) | u64::from(hi)
}

fn pair_hosts(key: u64) -> (HostId, HostId) {
    (HostId((key >> 32) as u32), HostId(key as u32))
}

impl<'a> SecNet<'a> {
    /// `local_draw(host)`: the host's uniform draw for local-policy membership.
    pub fn new(
        campus: &'a Campus,
        set: &'a PolicySet,
        params: &'a IpsecParams,
        local_draw: impl Fn(HostId) -> f64,
    ) -> Self {
        let assignment = Assignment::resolve(set, campus, local_draw);
        let engine = PolicyEngine::new(set, campus);
        let n = campus.hosts.len();
        let certificate: Vec<bool> = (0..n)
            .map(|i| assignment.certificate[i] || (params.managed_certificates && campus.hosts[i].is_managed()))
            .collect();
        let mut server_slot = vec![u32::MAX; n];
        let mut servers = Vec::new();
        for (i, h) in campus.hosts.iter().enumerate() {
            if h.kind.is_server() {
                server_slot[i] = servers.len() as u32;
                servers.push((HostId::from_index(i), ServerStats::default()));
            }
        }
        let mut net = SecNet {
            campus,
            set,
            params,
            engine,
            assignment,
            kerberos: vec![false; n],
            certificate,
            sas: FxHashMap::default(),
            mm_live: vec![0; n],
            qm_live: vec![0; n],
            server_slot,
            servers,
            live_mm: 0,
            live_qm: 0,
            live_soft: 0,
        };
        net.kerberos = (0..n).map(|i| net.reaches_dc_in_clear(HostId::from_index(i))).collect();
        net
    }

    /// Kerberos needs the host's domain controller reachable without IPsec (IKE cannot
    /// authenticate before it has a ticket): the bootstrap rule behind exempting DCs.
    fn reaches_dc_in_clear(&mut self, host: HostId) -> bool {
        let h = self.campus.host(host);
        if h.domain.is_none() {
            return false;
        }
        let Some(dc) = self.campus.home_server(host, Role::Dc) else {
            return false;
        };
        let (hp, dp) = (self.policy_of(host), self.policy_of(dc));
        let kerberos = Service { protocol: 17, port: 88 };
        let (me, peer) = (self.engine.host(host), self.engine.host(dc));
        let init_action =
            hp.and_then(|p| self.engine.match_flow(p, Flow { me, peer, outbound: true, service: kerberos }));
        let resp_action =
            dp.and_then(|p| self.engine.match_flow(p, Flow { me: peer, peer: me, outbound: false, service: kerberos }));
        let init = self.side(host, hp, init_action, false);
        let resp = self.side(dc, dp, resp_action, false);
        // Without Kerberos on either side: what is left is clear, or certificates.
        !matches!(decide(&init, &resp, &self.params.fallback, true), Decision::Blocked { .. })
    }

    pub fn policy_of(&self, host: HostId) -> Option<u16> {
        self.assignment.policy[host.index()]
    }

    fn side(&self, host: HostId, policy: Option<u16>, rule: Option<u16>, kerberos: bool) -> Side<'a> {
        let h = self.campus.host(host);
        let (action, rule_auth): (Option<ActionKind>, &'a [super::policy::AuthMethod]) = match (policy, rule) {
            (Some(p), Some(r)) => {
                let rule = &self.set.policies[p as usize].rules[r as usize];
                (Some(self.set.actions[rule.action].kind), rule.auth.as_slice())
            }
            _ => (None, &[]),
        };
        Side {
            os: h.os,
            simple_policy: h.has_simple_policy(),
            action,
            rule_auth,
            kerberos,
            certificate: self.certificate[host.index()],
            psk: &[],
        }
    }

    /// The NLB node that answers a client on a cluster's virtual IP.
    pub fn nlb_node(&self, cluster: ClusterId, client: HostId, u_node: f64) -> HostId {
        let c = &self.campus.clusters[cluster.index()];
        let n = c.nodes.len() as u64;
        let addr = u64::from(self.campus.host(client).addr);
        let pick = match c.affinity {
            // Single: by client address; network: by the client's class C [MS NLB].
            Affinity::Single => (addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n,
            Affinity::Network => ((addr >> 8).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n,
            Affinity::None => ((u_node * n as f64) as u64).min(n - 1),
        };
        HostId(c.nodes.start + pick as u32)
    }

    /// One connection from `init` to `peer` for a service (`protocol`, `port`), opened at
    /// `now`, moving `bytes` for `duration` once data flows. `u_ike` decides random IKE
    /// failures, `u_node` the NLB node under no affinity.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &mut self,
        init: HostId,
        peer: Endpoint,
        service: Service,
        now: SimTime,
        duration: SimDuration,
        bytes: u64,
        u_ike: f64,
        u_node: f64,
    ) -> Connection {
        let c = self.campus;
        // An NLB node answers on the cluster's virtual IP: that is its address here.
        let (resp, resp_peer) = match peer {
            Endpoint::Host(h) => (h, self.engine.host(h)),
            Endpoint::Vip(cl) => (self.nlb_node(cl, init, u_node), self.engine.address(c.clusters[cl.index()].vip)),
        };
        let mut conn = Connection {
            outcome: Outcome::Clear(ClearKind::Exempt),
            responder: resp,
            delay: SimDuration::ZERO,
            effects: sa::Effects::default(),
            ike_failed: false,
            sa_key: None,
            timers: [None, None],
        };
        let (ip, rp) = (self.policy_of(init), self.policy_of(resp));
        if ip.is_none() && rp.is_none() {
            return conn;
        }
        let init_peer = self.engine.host(init);
        let ir = ip
            .and_then(|p| self.engine.match_flow(p, Flow { me: init_peer, peer: resp_peer, outbound: true, service }));
        let rr = rp
            .and_then(|p| self.engine.match_flow(p, Flow { me: resp_peer, peer: init_peer, outbound: false, service }));
        let init_side = self.side(init, ip, ir, self.kerberos[init.index()]);
        let resp_side = self.side(resp, rp, rr, self.kerberos[resp.index()]);
        if init_side.negotiates().is_none() && resp_side.negotiates().is_none() {
            // Nobody asks for IPsec: permit, block, or no rule.
            conn.outcome = match decide(&init_side, &resp_side, &self.params.fallback, true) {
                Decision::Blocked { reason, .. } => Outcome::Blocked(reason),
                _ => Outcome::Clear(ClearKind::Exempt),
            };
            return conn;
        }
        let key = pair_key(init, resp);
        let p = self.params.sa;
        let mut entry = self.sas.remove(&key).unwrap_or(PairEntry { state: PairState::EMPTY, idle_check: None });
        let alive = |s: &PairState| s.idle_deadline(&p).is_some_and(|d| now < d);
        let mut fx = sa::Effects::default();
        let mut apply = |state: &mut PairState, ev: SaEvent, at: SimTime| {
            let (next, e) = sa::step(*state, ev, at, &p).unwrap_or_else(|ill| panic!("{ill}"));
            *state = next;
            fx.main_modes += e.main_modes;
            fx.quick_modes += e.quick_modes;
            fx.rekeys += e.rekeys;
            fx.failures += e.failures;
            fx.mm_delta += e.mm_delta;
            fx.qm_delta += e.qm_delta;
            fx.soft_delta += e.soft_delta;
            if e.mm_expires.is_some() {
                fx.mm_expires = e.mm_expires;
            }
        };
        match entry.state.qm {
            QmState::Established { ready, keyed, encrypt, .. }
                if alive(&entry.state) && init_side.action != Some(ActionKind::Block) =>
            {
                conn.sa_key = Some((key, keyed));
                // Reuse the quick-mode SA (waiting if its negotiation is still under way,
                // except Vista-class initiators, which send clear meanwhile).
                if !init_side.os.is_vista_class() {
                    conn.delay = ready.saturating_duration_since(now);
                }
                apply(&mut entry.state, SaEvent::Traffic { until: now + conn.delay + duration, bytes }, now);
                conn.outcome = Outcome::Protected { encrypt, negotiated: false };
            }
            QmState::Soft { .. } if alive(&entry.state) && init_side.negotiates().is_some() => {
                // The initiator remembers the fallback: clear at once, responder decides.
                if resp_side.refuses_clear() {
                    conn.outcome = Outcome::Blocked(BlockReason::ClearRefused);
                } else {
                    apply(&mut entry.state, SaEvent::Traffic { until: now + duration, bytes }, now);
                    conn.outcome = Outcome::Clear(ClearKind::Soft);
                }
            }
            _ => {
                let decision = decide(
                    &init_side,
                    &resp_side,
                    &self.params.fallback,
                    u_ike >= self.params.negotiation_failure_probability,
                );
                let started = init_side.negotiates().is_some();
                let one_way = c
                    .topology
                    .route(c.host(init).building, c.host(init).site, c.host(resp).building, c.host(resp).site)
                    .latency;
                match decision {
                    Decision::Negotiate { encrypt, authip } => {
                        let new_mm = !entry.state.mm_alive(now);
                        let latency = sa::negotiation_latency(one_way, new_mm, authip, &p);
                        let ready = now + latency;
                        apply(&mut entry.state, SaEvent::Negotiate { ready, encrypt, authip }, now);
                        apply(&mut entry.state, SaEvent::Succeeded, now);
                        // Vista-class initiators send clear alongside IKE: no wait [WP].
                        conn.delay = if init_side.os.is_vista_class() { SimDuration::ZERO } else { latency };
                        let until = (now + conn.delay + duration).max(ready);
                        apply(&mut entry.state, SaEvent::Traffic { until, bytes }, now);
                        conn.sa_key = Some((key, ready));
                        conn.outcome = Outcome::Protected { encrypt, negotiated: true };
                    }
                    Decision::Clear { reason, delay } => {
                        conn.delay = delay;
                        conn.ike_failed = matches!(reason, ClearReason::AuthFailed | ClearReason::NegotiationFailed);
                        if started {
                            let ready = now + delay;
                            apply(&mut entry.state, SaEvent::Negotiate { ready, encrypt: false, authip: false }, now);
                            apply(&mut entry.state, SaEvent::Failed { fallback: true }, now);
                            apply(&mut entry.state, SaEvent::Traffic { until: ready + duration, bytes }, now);
                            conn.outcome = Outcome::Clear(ClearKind::Fallback(reason));
                        } else {
                            conn.outcome = Outcome::Clear(ClearKind::Exempt);
                        }
                    }
                    Decision::Blocked { reason, delay } => {
                        conn.delay = delay;
                        // Blocked after an attempt: failed IKE unless the responder had no
                        // IKE to answer with.
                        conn.ike_failed =
                            started && reason != BlockReason::BlockRule && resp_side.negotiates().is_some();
                        if started && reason != BlockReason::BlockRule {
                            let ready = now + delay;
                            let fallback = init_side.negotiates().is_some_and(|m| m.falls_back());
                            apply(&mut entry.state, SaEvent::Negotiate { ready, encrypt: false, authip: false }, now);
                            apply(&mut entry.state, SaEvent::Failed { fallback }, now);
                        }
                        conn.outcome = Outcome::Blocked(reason);
                    }
                }
            }
        }
        conn.effects = fx;
        self.account(init, resp, now, &fx);
        let mut timers = [None, None];
        if let Some(at) = fx.mm_expires {
            timers[1] = Some(SaTimer::MainMode { pair: key, at });
        }
        if entry.idle_check.is_none() {
            if let Some(d) = entry.state.idle_deadline(&p) {
                entry.idle_check = Some(d);
                timers[0] = Some(SaTimer::Idle { pair: key, at: d });
            }
        }
        conn.timers = timers;
        if !entry.state.is_empty() {
            self.sas.insert(key, entry);
        }
        conn
    }

    /// Handles a timer at its deadline; returns a timer to schedule next, if any.
    pub fn timer(&mut self, timer: SaTimer, now: SimTime) -> Option<SaTimer> {
        let p = self.params.sa;
        let (key, event) = match timer {
            SaTimer::Idle { pair, .. } => (pair, SaEvent::Expire),
            SaTimer::MainMode { pair, .. } => (pair, SaEvent::MmExpire),
        };
        let entry = self.sas.get_mut(&key)?;
        if let SaTimer::Idle { at, .. } = timer {
            if entry.idle_check != Some(at) {
                // A check scheduled for an earlier incarnation of the pair: not ours.
                return None;
            }
        }
        let legal = match event {
            SaEvent::MmExpire => !matches!(entry.state.mm, sa::MmState::None),
            _ => entry.state.idle_deadline(&p).is_some(),
        };
        let mut fx = sa::Effects::default();
        if legal {
            let (next, e) = sa::step(entry.state, event, now, &p).unwrap_or_else(|ill| panic!("{ill}"));
            entry.state = next;
            fx = e;
        }
        let mut next_timer = None;
        if let SaEvent::Expire = event {
            entry.idle_check = entry.state.idle_deadline(&p);
            next_timer = entry.idle_check.map(|at| SaTimer::Idle { pair: key, at });
        }
        if entry.state.is_empty() {
            self.sas.remove(&key);
        }
        if fx != sa::Effects::default() {
            let (a, b) = pair_hosts(key);
            self.account(a, b, now, &fx);
        }
        next_timer
    }

    /// Applies live-SA changes and negotiation counts to both hosts and the totals.
    fn account(&mut self, a: HostId, b: HostId, now: SimTime, fx: &sa::Effects) {
        self.live_mm = (self.live_mm as i64 + i64::from(fx.mm_delta)) as u64;
        self.live_qm = (self.live_qm as i64 + i64::from(fx.qm_delta)) as u64;
        self.live_soft = (self.live_soft as i64 + i64::from(fx.soft_delta)) as u64;
        for h in [a, b] {
            let i = h.index();
            debug_assert!(i64::from(self.mm_live[i]) + i64::from(fx.mm_delta) >= 0, "negative main-mode SA count");
            debug_assert!(i64::from(self.qm_live[i]) + i64::from(fx.qm_delta) >= 0, "negative quick-mode SA count");
            self.mm_live[i] = (i64::from(self.mm_live[i]) + i64::from(fx.mm_delta)) as u32;
            self.qm_live[i] = (i64::from(self.qm_live[i]) + i64::from(fx.qm_delta)) as u32;
            let slot = self.server_slot[i];
            if slot == u32::MAX {
                continue;
            }
            let s = &mut self.servers[slot as usize].1;
            s.peak_mm = s.peak_mm.max(self.mm_live[i]);
            s.peak_qm = s.peak_qm.max(self.qm_live[i]);
            let memory = u64::from(self.mm_live[i]) * self.params.mm_sa_bytes
                + u64::from(self.qm_live[i]) * self.params.qm_sa_bytes;
            s.peak_memory_bytes = s.peak_memory_bytes.max(memory);
            s.main_modes += u64::from(fx.main_modes);
            s.quick_modes += u64::from(fx.quick_modes);
            if fx.main_modes > 0 {
                let minute = now.as_nanos() / SimDuration::MINUTE.as_nanos();
                if minute != s.minute {
                    s.minute = minute;
                    s.this_minute = 0;
                }
                s.this_minute += fx.main_modes;
                s.peak_main_modes_per_minute = s.peak_main_modes_per_minute.max(s.this_minute);
            }
        }
    }

    /// Live SAs of a host (main mode, quick mode).
    pub fn live_of(&self, host: HostId) -> (u32, u32) {
        (self.mm_live[host.index()], self.qm_live[host.index()])
    }

    /// Host counts per policy mode: (no policy, permit-only, request, secure-request,
    /// require, require-encryption).
    pub fn policy_state_counts(&self) -> [u64; 6] {
        let mut out = [0u64; 6];
        for p in &self.assignment.policy {
            let slot = match p.map(|p| self.set.policy_mode(p as usize)) {
                None => 0,
                Some(None) => 1,
                Some(Some(m)) => 2 + m as usize,
            };
            out[slot] += 1;
        }
        out
    }

    /// Whether `host` drops clear traffic that `from` opens to it (its matched rule
    /// negotiates and does not accept clear).
    pub fn refuses_clear_from(&mut self, host: HostId, from: HostId) -> bool {
        let Some(p) = self.policy_of(host) else { return false };
        let flow = Flow { me: self.engine.host(host), peer: self.engine.host(from), outbound: false, service: SMB };
        let rule = self.engine.match_flow(p, flow);
        self.side(host, Some(p), rule, false).refuses_clear()
    }

    /// The mode `host` negotiates when it opens a connection to an address outside the
    /// campus's hosts (a home router, a hotel neighbour), if it negotiates at all.
    pub fn negotiates_with_addr(&mut self, host: HostId, addr: u32) -> Option<super::policy::Mode> {
        let p = self.policy_of(host)?;
        let flow = Flow { me: self.engine.host(host), peer: self.engine.address(addr), outbound: true, service: SMB };
        let rule = self.engine.match_flow(p, flow);
        self.side(host, Some(p), rule, false).negotiates()
    }

    /// The actions both sides' policies give a connection, computed without the decision
    /// cache (for audits and tests): (initiator's, responder's).
    pub fn rule_actions(
        &self,
        init: HostId,
        resp: HostId,
        service: Service,
    ) -> (Option<ActionKind>, Option<ActionKind>) {
        let packet = Packet { src: self.campus.host(init).addr, dst: self.campus.host(resp).addr };
        let action = |p: u16, rule: Option<u16>| {
            rule.map(|r| self.set.actions[self.set.policies[p as usize].rules[r as usize].action].kind)
        };
        let i =
            self.policy_of(init).and_then(|p| action(p, self.engine.match_uncached(p, packet.src, packet, service)));
        let r =
            self.policy_of(resp).and_then(|p| action(p, self.engine.match_uncached(p, packet.dst, packet, service)));
        (i, r)
    }

    /// Checks the SA table against its invariants at `now` (after every timer due by then
    /// has run): live counts equal a recount, no quick-mode or soft SA past its idle time,
    /// no main-mode SA past its lifetime, no traffic under a key past its lifetime.
    pub fn audit(&self, now: SimTime) -> Result<(), String> {
        let p = self.params.sa;
        let mut mm = vec![0u32; self.mm_live.len()];
        let mut qm = vec![0u32; self.qm_live.len()];
        let (mut tm, mut tq, mut ts) = (0u64, 0u64, 0u64);
        for (&key, e) in &self.sas {
            let (a, b) = pair_hosts(key);
            if let sa::MmState::Established { expires, .. } = e.state.mm {
                if expires <= now {
                    return Err(format!("pair {a}-{b}: main-mode SA alive at {now} past its lifetime ({expires})"));
                }
                mm[a.index()] += 1;
                mm[b.index()] += 1;
                tm += 1;
            }
            match e.state.qm {
                QmState::Established { keyed, last_used, .. } => {
                    if last_used + p.quick_mode_idle <= now {
                        return Err(format!(
                            "pair {a}-{b}: quick-mode SA alive at {now} after 5 idle minutes (last used {last_used})"
                        ));
                    }
                    if keyed + p.quick_mode_lifetime <= last_used {
                        return Err(format!(
                            "pair {a}-{b}: traffic until {last_used} under a key from {keyed}, past its lifetime"
                        ));
                    }
                    qm[a.index()] += 1;
                    qm[b.index()] += 1;
                    tq += 1;
                }
                QmState::Soft { last_used } => {
                    if last_used + p.quick_mode_idle <= now {
                        return Err(format!("pair {a}-{b}: soft SA alive at {now} after its idle time"));
                    }
                    ts += 1;
                }
                QmState::Negotiating { .. } => return Err(format!("pair {a}-{b}: negotiation left pending")),
                QmState::None => {}
            }
        }
        if mm != self.mm_live || qm != self.qm_live {
            return Err("per-host live SA counts differ from a recount of the SA table".into());
        }
        if (tm, tq, ts) != (self.live_mm, self.live_qm, self.live_soft) {
            return Err(format!(
                "live totals {:?} differ from a recount {:?}",
                (self.live_mm, self.live_qm, self.live_soft),
                (tm, tq, ts)
            ));
        }
        Ok(())
    }

    /// Number of hosts, for reports.
    pub fn hosts(&self) -> usize {
        self.campus.hosts.len()
    }

    /// Whether a host is a server (for reports).
    pub fn is_server(&self, host: HostId) -> bool {
        matches!(self.campus.host(host).kind, HostKind::Server(_))
    }
}
