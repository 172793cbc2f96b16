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

mod entry;
mod failover;
mod pair_table;

use std::rc::Rc;

use super::campus::{Campus, Endpoint};
use super::ids::{ClusterId, HostId};
use super::kinds::{Affinity, HostKind, Role};
use super::policy::{
    ActionKind, AuthMethod, BlockReason, ClearReason, Decision, Flow, Packet, PolicyEngine, PolicySet, Service, Side,
    decide,
};
use super::population::Population;

/// The service the lint's reachability probes use (SMB, the workhorse of the campus).
const SMB: Service = Service { protocol: 6, port: 445 };
use super::sa::{self, PairState, QmState, SaEvent};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::IpsecParams;
use entry::{PackedEntry, PairEntry};
pub use failover::{Failover, StallEvent};
use pair_table::PairTable;

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

/// A timer the caller schedules on the event queue, at the time that comes with it. The
/// time is not kept in the timer: the queue has it, and the event stays 16 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SaTimer {
    pub pair: u64,
    pub kind: TimerKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The quick-mode or soft SA's idle check.
    Idle,
    /// The main-mode SA's lifetime.
    MainMode,
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
    pub timers: [Option<(SimTime, SaTimer)>; 2],
    /// The connection met a failed NLB node: its stall (already in `delay`).
    pub stall: Option<StallEvent>,
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

/// What the IPsec layer keeps per host, in one 24-byte record: a connection reads and
/// updates both hosts' records, one or two cache lines each instead of one per field.
#[derive(Copy, Clone)]
struct HostState {
    /// The version it applied and its policy in that version.
    applied: (u16, Option<u16>),
    /// Its local policy (index in version 0's local policies), for a host outside the
    /// domains that has one.
    local: Option<u16>,
    /// Can get Kerberos tickets (joined, and its DC reachable in clear), as of its last
    /// refresh.
    kerberos: bool,
    /// Holds a certificate through a local policy.
    local_certificate: bool,
    /// Live main-mode and quick-mode SAs.
    mm: u32,
    qm: u32,
    /// Index into `servers` (`u32::MAX` for clients).
    server_slot: u32,
}

const _: () = assert!(std::mem::size_of::<HostState>() == 24);

/// One published version of the policy configuration, compiled for this campus.
struct Version {
    set: Rc<PolicySet>,
    engine: PolicyEngine,
}

pub struct SecNet<'a> {
    campus: &'a Campus,
    params: &'a IpsecParams,
    /// Every version published so far (the rollout adds one per change); hosts move to the
    /// latest at their Group Policy refresh.
    versions: Vec<Version>,
    /// Per version: how many hosts hold it. A version no host holds, other than the
    /// latest, has its compiled engine released.
    holders: Vec<u32>,
    /// Per host: its applied policy, credentials, live SAs and server slot.
    per_host: Vec<HostState>,
    /// Per local policy of version 0: the pre-shared keys it gives its hosts (per local
    /// policy, not per host: every connection reads both sides' keys, and a per-host
    /// array of them was a cache miss a connection).
    local_psk: Rc<Vec<Vec<String>>>,
    sas: PairTable<PackedEntry>,
    pub servers: Vec<(HostId, ServerStats)>,
    pub live_mm: u64,
    pub live_qm: u64,
    pub live_soft: u64,
    /// Most SAs alive at once in the run: main mode, quick mode and soft (the table holds
    /// all three).
    pub live_peak: u64,
    /// NLB node failures, when the campus has clusters.
    failover: Option<Failover>,
}

/// The SA table key of a host pair (order-free).
pub fn pair_key(a: HostId, b: HostId) -> u64 {
    let (lo, hi) = if a.0 <= b.0 { (a.0, b.0) } else { (b.0, a.0) };
    (u64::from(lo) << 32) | u64::from(hi)
}

fn pair_hosts(key: u64) -> (HostId, HostId) {
    (HostId((key >> 32) as u32), HostId(key as u32))
}

/// A side of a connection under `set`: the matched rule's action and authentication, the
/// host's OS and credentials.
fn side<'s>(
    set: &'s PolicySet,
    campus: &Campus,
    host: HostId,
    policy: Option<u16>,
    rule: Option<u16>,
    creds: Creds,
    psk: &'s [String],
) -> Side<'s> {
    let h = campus.host(host);
    let (action, rule_auth): (Option<ActionKind>, &'s [super::policy::AuthMethod]) = match (policy, rule) {
        (Some(p), Some(r)) => {
            let rule = &set.policies[p as usize].rules[r as usize];
            (Some(set.actions[rule.action].kind), rule.auth.as_slice())
        }
        _ => (None, &[]),
    };
    Side {
        os: h.os,
        simple_policy: h.has_simple_policy(),
        action,
        rule_auth,
        kerberos: creds.kerberos,
        certificate: creds.certificate,
        psk,
    }
}

/// What a host can authenticate with right now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Creds {
    kerberos: bool,
    certificate: bool,
}

impl<'a> SecNet<'a> {
    /// The IPsec layer with `set` as version 0, applied by every host. `local_draw(host)`:
    /// the host's uniform draw for local-policy membership.
    pub fn new(
        campus: &'a Campus,
        set: PolicySet,
        params: &'a IpsecParams,
        pop: &Population,
        local_draw: impl Fn(HostId) -> f64,
    ) -> Self {
        let n = campus.hosts.len();
        let blank = HostState {
            applied: (0, None),
            local: None,
            kerberos: false,
            local_certificate: false,
            mm: 0,
            qm: 0,
            server_slot: u32::MAX,
        };
        let mut per_host = vec![blank; n];
        let mut servers = Vec::new();
        for (i, h) in campus.hosts.iter().enumerate() {
            if h.kind.is_server() {
                per_host[i].server_slot = servers.len() as u32;
                servers.push((HostId::from_index(i), ServerStats::default()));
            }
        }
        let local_psk: Vec<Vec<String>> = set
            .local_policies
            .iter()
            .map(|lp| {
                let keys =
                    lp.credentials.iter().filter_map(|c| if let AuthMethod::Psk(k) = c { Some(k) } else { None });
                keys.cloned().collect()
            })
            .collect();
        for (i, h) in campus.hosts.iter().enumerate() {
            let HostKind::Client(cat) = h.kind else { continue };
            if !h.os.ipsec_capable() || h.is_managed() {
                continue;
            }
            let u = local_draw(HostId::from_index(i));
            if let Some((li, lp)) = set.local_policies.iter().enumerate().find(|(_, lp)| lp.clients.contains(&cat)) {
                if u < lp.fraction {
                    per_host[i].local = Some(li as u16);
                    per_host[i].local_certificate = lp.credentials.contains(&AuthMethod::Certificate);
                }
            }
        }
        let mut net = SecNet {
            campus,
            params,
            versions: Vec::new(),
            holders: Vec::new(),
            per_host,
            local_psk: Rc::new(local_psk),
            sas: PairTable::default(),
            servers,
            live_mm: 0,
            live_qm: 0,
            live_soft: 0,
            live_peak: 0,
            failover: None,
        };
        net.publish(set, pop);
        for i in 0..n {
            net.assign(HostId::from_index(i), pop);
        }
        for i in 0..n {
            net.per_host[i].kerberos = net.reaches_dc_in_clear(HostId::from_index(i), pop);
        }
        net
    }

    /// Publishes a new policy configuration; hosts take it at their next refresh
    /// ([`SecNet::refresh`]). Returns its version number.
    pub fn publish(&mut self, set: PolicySet, pop: &Population) -> u16 {
        let engine = PolicyEngine::new(&set, self.campus, &pop.group_sets());
        self.versions.push(Version { set: Rc::new(set), engine });
        if self.holders.is_empty() {
            // Every host starts on the first version.
            self.holders.push(self.per_host.len() as u32);
        } else {
            self.holders.push(0);
            self.release_if_unheld(self.versions.len() - 2);
        }
        (self.versions.len() - 1) as u16
    }

    /// Versions whose compiled engine is kept (held by some host, or the latest).
    pub fn compiled_versions(&self) -> usize {
        self.versions.iter().filter(|v| !v.engine.is_released()).count()
    }

    fn release_if_unheld(&mut self, v: usize) {
        if self.holders[v] == 0 && v + 1 < self.versions.len() {
            self.versions[v].engine.release();
        }
    }

    /// The latest published version.
    pub fn latest(&self) -> u16 {
        (self.versions.len() - 1) as u16
    }

    /// The policy a host would hold under the latest version, given who it is now.
    fn assign(&mut self, host: HostId, pop: &Population) {
        let v = self.latest();
        let set = &self.versions[v as usize].set;
        let h = self.campus.host(host);
        let policy = if !h.os.ipsec_capable() {
            None
        } else if let Some(d) = pop.domain(host) {
            set.gpo_for(d, pop.groups(host)).map(|g| set.gpos[g].policy as u16)
        } else if pop.is_reimaging(host) {
            // A rebuilt PC has no policy until it rejoins.
            None
        } else {
            self.per_host[host.index()]
                .local
                .and_then(|l| set.local_policies.get(l as usize))
                .map(|lp| lp.policy as u16)
        };
        let old = std::mem::replace(&mut self.per_host[host.index()].applied, (v, policy)).0;
        if old != v {
            self.holders[v as usize] += 1;
            self.holders[old as usize] -= 1;
            self.release_if_unheld(old as usize);
        }
    }

    /// Group Policy refresh (or boot, join, rejoin): the host takes the latest version and
    /// re-checks that it can reach its domain controller in clear. Returns whether its
    /// policy changed.
    pub fn refresh(&mut self, host: HostId, pop: &Population) -> bool {
        let before = self.per_host[host.index()].applied;
        let old_policy = before.1.map(|p| (self.versions[before.0 as usize].set.clone(), p));
        self.assign(host, pop);
        self.per_host[host.index()].kerberos = self.reaches_dc_in_clear(host, pop);
        let after = self.per_host[host.index()].applied;
        match (old_policy, after.1) {
            (None, None) => false,
            (Some((set, p)), Some(q)) => !Rc::ptr_eq(&set, &self.versions[after.0 as usize].set) || p != q,
            _ => true,
        }
    }

    /// Kerberos needs the host's domain controller reachable without IPsec (IKE cannot
    /// authenticate before it has a ticket): the bootstrap rule behind exempting DCs.
    fn reaches_dc_in_clear(&mut self, host: HostId, pop: &Population) -> bool {
        if !pop.is_managed(host) {
            return false;
        }
        let Some(dc) = self.campus.home_server(host, Role::Dc) else {
            return false;
        };
        let kerberos = Service { protocol: 17, port: 88 };
        let init_rule = self.rule(host, Endpoint::Host(dc), dc, true, kerberos);
        let resp_rule = self.rule(dc, Endpoint::Host(host), host, false, kerberos);
        let (iv, ip) = self.per_host[host.index()].applied;
        let (dv, dp) = self.per_host[dc.index()].applied;
        let (iset, dset) = (self.versions[iv as usize].set.clone(), self.versions[dv as usize].set.clone());
        let no_kerberos = |c: Creds| Creds { kerberos: false, ..c };
        let psk = self.local_psk.clone();
        let init =
            side(&iset, self.campus, host, ip, init_rule, no_kerberos(self.creds(host, pop)), self.psk(&psk, host));
        let resp = side(&dset, self.campus, dc, dp, resp_rule, no_kerberos(self.creds(dc, pop)), self.psk(&psk, dc));
        // Without Kerberos on either side: what is left is clear, or certificates.
        !matches!(decide(&init, &resp, &self.params.fallback, true), Decision::Blocked { .. })
    }

    /// The rule of `me`'s applied policy deciding a connection with `peer` (answering on
    /// the peer endpoint's address), `outbound` when `me` opens it. For an NLB node, `me`
    /// answers on the cluster's virtual IP: pass the VIP endpoint as seen from the client.
    fn rule(&mut self, me: HostId, peer: Endpoint, peer_host: HostId, outbound: bool, service: Service) -> Option<u16> {
        let (v, p) = self.per_host[me.index()].applied;
        let p = p?;
        let engine = &mut self.versions[v as usize].engine;
        let peer = match peer {
            Endpoint::Host(h) => engine.host(h),
            Endpoint::Vip(cl) => engine.address(self.campus.clusters[cl.index()].vip),
        };
        let _ = peer_host;
        engine.match_flow(p, Flow { me: engine.host(me), peer, outbound, service })
    }

    /// Credentials a host presents now: Kerberos (as of its last refresh), a machine
    /// certificate (managed hosts with autoenrolment, or a local policy's). A NAP client
    /// under enforcement that is not healthy has no health certificate and cannot
    /// authenticate to SecureNet at all.
    fn creds(&self, host: HostId, pop: &Population) -> Creds {
        let i = host.index();
        let managed = pop.is_managed(host);
        let nap_blocked = pop.nap_blocked(host);
        Creds {
            kerberos: self.per_host[i].kerberos && managed && !nap_blocked,
            certificate: (self.per_host[i].local_certificate || (self.params.managed_certificates && managed))
                && !nap_blocked,
        }
    }

    /// Whether a host can get Kerberos tickets, as of its last refresh.
    pub fn has_kerberos(&self, host: HostId) -> bool {
        self.per_host[host.index()].kerberos
    }

    /// The policy index a host holds (in its applied version).
    pub fn policy_of(&self, host: HostId) -> Option<u16> {
        self.per_host[host.index()].applied.1
    }

    /// The name of the policy a host holds.
    pub fn policy_name(&self, host: HostId) -> Option<&str> {
        let (v, p) = self.per_host[host.index()].applied;
        p.map(|p| self.versions[v as usize].set.policies[p as usize].name.as_str())
    }

    /// The strongest negotiation mode of a host's policy (`Some(None)`: it has a policy
    /// that only permits or blocks).
    pub fn mode_of(&self, host: HostId) -> Option<Option<super::policy::Mode>> {
        let (v, p) = self.per_host[host.index()].applied;
        p.map(|p| self.versions[v as usize].set.policy_mode(p as usize))
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

    /// The rule of an NLB node's policy for a connection from `client` to the cluster's
    /// virtual IP (the node answers on the VIP).
    fn rule_as_vip(&mut self, node: HostId, cluster: ClusterId, client: HostId, service: Service) -> Option<u16> {
        let (v, p) = self.per_host[node.index()].applied;
        let p = p?;
        let engine = &mut self.versions[v as usize].engine;
        let me = engine.address(self.campus.clusters[cluster.index()].vip);
        engine.match_flow(p, Flow { me, peer: engine.host(client), outbound: false, service })
    }

    /// One connection from `init` to `peer` for a service (`protocol`, `port`) of
    /// application `app` (catalogue index), opened at `now`, moving `bytes` for `duration`
    /// once data flows. `u_ike` decides random IKE failures, `u_node` the NLB node under no
    /// affinity.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &mut self,
        pop: &Population,
        init: HostId,
        peer: Endpoint,
        service: Service,
        app: u16,
        now: SimTime,
        duration: SimDuration,
        bytes: u64,
        u_ike: f64,
        u_node: f64,
    ) -> Connection {
        let vip = match peer {
            Endpoint::Host(_) => None,
            Endpoint::Vip(cl) => Some((cl, self.route_vip(cl, init, now, u_node))),
        };
        let mut conn = self.connect_to(pop, init, peer, vip.map(|v| v.1.node), service, now, duration, bytes, u_ike);
        if let Some((cl, route)) = vip {
            self.after_vip_connect(cl, init, app, now, duration, route, &mut conn);
        }
        conn
    }

    /// [`SecNet::connect`] once the responder is known (`node`: the NLB node for a VIP).
    #[allow(clippy::too_many_arguments)]
    fn connect_to(
        &mut self,
        pop: &Population,
        init: HostId,
        peer: Endpoint,
        node: Option<HostId>,
        service: Service,
        now: SimTime,
        duration: SimDuration,
        bytes: u64,
        u_ike: f64,
    ) -> Connection {
        let c = self.campus;
        let resp = match peer {
            Endpoint::Host(h) => h,
            Endpoint::Vip(_) => node.expect("a VIP connection has its node"),
        };
        let mut conn = Connection {
            outcome: Outcome::Clear(ClearKind::Exempt),
            responder: resp,
            delay: SimDuration::ZERO,
            effects: sa::Effects::default(),
            ike_failed: false,
            sa_key: None,
            timers: [None, None],
            stall: None,
        };
        let (ip, rp) = (self.policy_of(init), self.policy_of(resp));
        if ip.is_none() && rp.is_none() {
            return conn;
        }
        // The pair's entry is a random read of a big table: ask for it now, so that it
        // arrives while the rules are matched.
        let key = pair_key(init, resp);
        self.sas.prefetch(key);
        let ir = self.rule(init, peer, resp, true, service);
        // An NLB node answers on the cluster's virtual IP: that is its address here.
        let rr = match peer {
            Endpoint::Host(_) => self.rule(resp, Endpoint::Host(init), init, false, service),
            Endpoint::Vip(cl) => self.rule_as_vip(resp, cl, init, service),
        };
        let (iset, rset) = (
            self.versions[self.per_host[init.index()].applied.0 as usize].set.clone(),
            self.versions[self.per_host[resp.index()].applied.0 as usize].set.clone(),
        );
        let psk = self.local_psk.clone();
        let init_side = side(&iset, c, init, ip, ir, self.creds(init, pop), self.psk(&psk, init));
        let resp_side = side(&rset, c, resp, rp, rr, self.creds(resp, pop), self.psk(&psk, resp));
        if init_side.negotiates().is_none() && resp_side.negotiates().is_none() {
            // Nobody asks for IPsec: permit, block, or no rule.
            conn.outcome = match decide(&init_side, &resp_side, &self.params.fallback, true) {
                Decision::Blocked { reason, .. } => Outcome::Blocked(reason),
                _ => Outcome::Clear(ClearKind::Exempt),
            };
            return conn;
        }
        let p = self.params.sa;
        // Copied out and written back in place, not removed and re-inserted (a removal
        // shifts the entries after it back, see `pair_table`).
        let existing = self.sas.get(key).map(PackedEntry::unpack);
        let mut entry = existing.unwrap_or(PairEntry::EMPTY);
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
            timers[1] = Some((at, SaTimer { pair: key, kind: TimerKind::MainMode }));
        }
        if entry.idle_check().is_none() {
            if let Some(d) = entry.state.idle_deadline(&p) {
                entry.set_idle_check(Some(d));
                timers[0] = Some((d, SaTimer { pair: key, kind: TimerKind::Idle }));
            }
        }
        conn.timers = timers;
        match (existing.is_some(), entry.state.is_empty()) {
            (true, true) => {
                self.sas.remove(key);
            }
            (true, false) => *self.sas.get_mut(key).expect("read above") = PackedEntry::pack(&entry),
            (false, false) => self.sas.insert(key, PackedEntry::pack(&entry)),
            (false, true) => {}
        }
        conn
    }

    /// The pre-shared keys `host` holds through its local policy (`keys`: a clone of
    /// [`SecNet::local_psk`], so that they outlive borrows of `self`).
    fn psk<'k>(&self, keys: &'k [Vec<String>], host: HostId) -> &'k [String] {
        self.per_host[host.index()].local.map_or(&[], |l| keys[l as usize].as_slice())
    }

    /// Asks the CPU for the SA table entry of `pair` ahead of its use (see
    /// [`pair_table::PairTable::prefetch`]), and for both hosts' records: a timer that
    /// ends an SA updates their live counts ([`SecNet::account`]).
    #[inline]
    pub fn prefetch_pair(&self, pair: u64) {
        self.sas.prefetch(pair);
        let (a, b) = pair_hosts(pair);
        self.prefetch_host(a);
        self.prefetch_host(b);
    }

    /// Asks the CPU for the statistics records of `pair`'s servers, which an SA change of
    /// the pair updates ([`SecNet::account`]). Reads the hosts' records to find them: call
    /// it an event or so after [`SecNet::prefetch_pair`], when those are in cache.
    #[inline]
    pub fn prefetch_servers(&self, pair: u64) {
        let (a, b) = pair_hosts(pair);
        for h in [a, b] {
            if let Some(s) = self.per_host.get(h.index()).and_then(|r| self.servers.get(r.server_slot as usize)) {
                crate::engine::prefetch_span(s);
            }
        }
    }

    /// Asks the CPU for `host`'s record ahead of a connection of it.
    #[inline]
    pub fn prefetch_host(&self, host: HostId) {
        if let Some(h) = self.per_host.get(host.index()) {
            crate::engine::prefetch_span(h);
        }
    }

    /// Asks the CPU for what a refresh ([`SecNet::refresh`]) or a connection of `host`
    /// reads of it first: its record and its entry in the latest version's compiled
    /// policy.
    #[inline]
    pub fn prefetch_host_policy(&self, host: HostId) {
        self.prefetch_host(host);
        self.prefetch_policy(host);
    }

    /// Asks the CPU for `host`'s entry in the latest version's compiled policy, which a
    /// connection of it reads (a host holds the latest version but for the hour or two
    /// after a change).
    #[inline]
    pub fn prefetch_policy(&self, host: HostId) {
        if let Some(v) = self.versions.last() {
            v.engine.prefetch_host(host);
        }
    }

    /// Handles a timer at its deadline `now`; returns a timer to schedule next, if any.
    pub fn timer(&mut self, timer: SaTimer, now: SimTime) -> Option<(SimTime, SaTimer)> {
        let p = self.params.sa;
        let key = timer.pair;
        let event = match timer.kind {
            TimerKind::Idle => SaEvent::Expire,
            TimerKind::MainMode => SaEvent::MmExpire,
        };
        let slot = self.sas.get_mut(key)?;
        let mut entry = slot.unpack();
        if timer.kind == TimerKind::Idle && entry.idle_check() != Some(now) {
            // A check scheduled for an earlier incarnation of the pair: not ours.
            return None;
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
            entry.set_idle_check(entry.state.idle_deadline(&p));
            next_timer = entry.idle_check().map(|at| (at, SaTimer { pair: key, kind: TimerKind::Idle }));
        }
        if entry.state.is_empty() {
            self.sas.remove(key);
        } else {
            *slot = PackedEntry::pack(&entry);
        }
        if fx != sa::Effects::default() {
            let (a, b) = pair_hosts(key);
            self.account(a, b, now, &fx);
        }
        next_timer
    }

    /// Applies live-SA changes and negotiation counts to both hosts and the totals.
    fn account(&mut self, a: HostId, b: HostId, now: SimTime, fx: &sa::Effects) {
        if *fx == sa::Effects::default() {
            // Nothing changed (traffic on a live SA): the peaks were taken when the counts
            // last moved. Most connections land here; this spares two random host reads.
            return;
        }
        self.live_mm = (self.live_mm as i64 + i64::from(fx.mm_delta)) as u64;
        self.live_qm = (self.live_qm as i64 + i64::from(fx.qm_delta)) as u64;
        self.live_soft = (self.live_soft as i64 + i64::from(fx.soft_delta)) as u64;
        self.live_peak = self.live_peak.max(self.live_mm + self.live_qm + self.live_soft);
        for h in [a, b] {
            let live = &mut self.per_host[h.index()];
            debug_assert!(i64::from(live.mm) + i64::from(fx.mm_delta) >= 0, "negative main-mode SA count");
            debug_assert!(i64::from(live.qm) + i64::from(fx.qm_delta) >= 0, "negative quick-mode SA count");
            live.mm = (i64::from(live.mm) + i64::from(fx.mm_delta)) as u32;
            live.qm = (i64::from(live.qm) + i64::from(fx.qm_delta)) as u32;
            let HostState { mm, qm, server_slot, .. } = *live;
            if server_slot == u32::MAX {
                continue;
            }
            let s = &mut self.servers[server_slot as usize].1;
            s.peak_mm = s.peak_mm.max(mm);
            s.peak_qm = s.peak_qm.max(qm);
            let memory = u64::from(mm) * self.params.mm_sa_bytes + u64::from(qm) * self.params.qm_sa_bytes;
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

    /// Bytes the SA table held at its largest: its slots' keys and entries (a host pair's
    /// entry keeps that pair's main-mode and quick-mode or soft SA).
    pub fn sa_table_bytes(&self) -> u64 {
        self.sas.bytes_peak()
    }

    /// Live SAs of a host (main mode, quick mode).
    pub fn live_of(&self, host: HostId) -> (u32, u32) {
        let live = self.per_host[host.index()];
        (live.mm, live.qm)
    }

    /// Host counts per policy mode: (no policy, permit-only, request, secure-request,
    /// require, require-encryption).
    pub fn policy_state_counts(&self) -> [u64; 6] {
        let mut out = [0u64; 6];
        for &HostState { applied: (v, p), .. } in &self.per_host {
            let slot = match p.map(|p| self.versions[v as usize].set.policy_mode(p as usize)) {
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
        let (v, p) = self.per_host[host.index()].applied;
        let Some(p) = p else { return false };
        let rule = self.rule(host, Endpoint::Host(from), from, false, SMB);
        let set = self.versions[v as usize].set.clone();
        side(&set, self.campus, host, Some(p), rule, Creds { kerberos: false, certificate: false }, &[]).refuses_clear()
    }

    /// The mode `host` negotiates when it opens a connection to an address outside the
    /// campus's hosts (a home router, a hotel neighbour), if it negotiates at all.
    pub fn negotiates_with_addr(&mut self, host: HostId, addr: u32) -> Option<super::policy::Mode> {
        let (v, p) = self.per_host[host.index()].applied;
        let p = p?;
        let version = &mut self.versions[v as usize];
        let flow =
            Flow { me: version.engine.host(host), peer: version.engine.address(addr), outbound: true, service: SMB };
        let rule = version.engine.match_flow(p, flow);
        let set = version.set.clone();
        side(&set, self.campus, host, Some(p), rule, Creds { kerberos: false, certificate: false }, &[]).negotiates()
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
        let action = |h: HostId, me: u32| {
            let (v, p) = self.per_host[h.index()].applied;
            let version = &self.versions[v as usize];
            p.and_then(|p| {
                version
                    .engine
                    .match_uncached(p, me, packet, service)
                    .map(|r| version.set.actions[version.set.policies[p as usize].rules[r as usize].action].kind)
            })
        };
        (action(init, packet.src), action(resp, packet.dst))
    }

    /// Checks the SA table against its invariants at `now` (after every timer due by then
    /// has run): live counts equal a recount, no quick-mode or soft SA past its idle time,
    /// no main-mode SA past its lifetime, no traffic under a key past its lifetime.
    pub fn audit(&self, now: SimTime) -> Result<(), String> {
        let p = self.params.sa;
        let mut mm = vec![0u32; self.per_host.len()];
        let mut qm = vec![0u32; self.per_host.len()];
        let (mut tm, mut tq, mut ts) = (0u64, 0u64, 0u64);
        for (key, e) in self.sas.iter() {
            let (a, b) = pair_hosts(key);
            if let sa::MmState::Established { expires, .. } = e.state().mm {
                if expires <= now {
                    return Err(format!("pair {a}-{b}: main-mode SA alive at {now} past its lifetime ({expires})"));
                }
                mm[a.index()] += 1;
                mm[b.index()] += 1;
                tm += 1;
            }
            match e.state().qm {
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
        if self.per_host.iter().zip(mm.iter().zip(&qm)).any(|(live, (&m, &q))| (live.mm, live.qm) != (m, q)) {
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
