//! The IPsec side of NLB failover: clients pinned to the node that holds their SA, SAs left
//! stranded on a node that died, and the connections in progress when it did.
//!
//! Contract:
//! - A client with a live SA to a cluster node keeps going to that node (the SA binds it,
//!   whatever the affinity) [WP "Network Load Balancing Clusters"]; otherwise the cluster's
//!   buckets decide ([`Nlb::route`]).
//! - When a node fails, its SAs leave the SA table (live counts stay exact) and each
//!   client that was pinned to it gets a stranded entry: until its IPsec notices
//!   ([`Detection`]), every new connection of that client to the cluster stalls. The
//!   connections in progress on the node stall too, from the failure instant.
//! - Stall lengths come from [`nlb::stall`]; this module only finds who is affected.

use rustc_hash::FxHashMap;

use super::super::ids::{ClusterId, HostId};
use super::super::kinds::Affinity;
use super::super::nlb::{self, Detection, FailoverParams, Nlb, StallCase};
use super::super::sa::{self, MmState, QmState};
use super::pair_table::PairTable;
use super::{Connection, Outcome, SecNet, pair_hosts, pair_key};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::limits;

/// A connection that met a failed node, and how long it stalled.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct StallEvent {
    /// The failure instant (in progress) or the connection's start (new).
    pub at: SimTime,
    pub cluster: ClusterId,
    /// The failed node (global host id).
    pub node: HostId,
    pub client: HostId,
    /// The application (catalogue index).
    pub app: u16,
    pub in_progress: bool,
    /// Every node of the cluster was down: the wait was for a repair.
    pub cluster_down: bool,
    /// The client's traffic to the cluster went under IPsec.
    pub ipsec: bool,
    pub detection: Detection,
    pub stall: nlb::Stall,
}

/// A connection open on a node, kept so a failure can find it. 16 bytes: a busy node of
/// a full-traffic day keeps tens of thousands.
#[derive(Copy, Clone, Debug)]
struct Active {
    end: SimTime,
    client: HostId,
    app: u16,
    /// Its NLB bucket (below [`nlb::BUCKETS`]).
    bucket: u8,
    protected: bool,
}

const _: () = assert!(std::mem::size_of::<Active>() == 16 && nlb::BUCKETS <= 256);
// A pin keeps a node's index in its cluster in a byte.
const _: () = assert!(limits::MAX_NLB_NODES <= 256);

/// The pins table's key of a (client, cluster).
fn pin_key((client, cluster): (u32, u32)) -> u64 {
    (u64::from(client) << 32) | u64::from(cluster)
}

/// A client's SA to a node that died.
#[derive(Copy, Clone, Debug)]
struct Stranded {
    node: u32,
    last_inbound: SimTime,
    /// From when the client's new connections no longer meet the dead SA.
    cleared: SimTime,
}

/// Failover state of the IPsec layer.
pub struct Failover {
    pub nlb: Nlb,
    params: FailoverParams,
    /// XP SP1 hosts with the NAT-T update.
    nat_t_update: Vec<bool>,
    /// Per (client, cluster), [`pin_key`]: the node (index in its cluster, below
    /// `limits::MAX_NLB_NODES`) holding the client's SA. Our sharded table rather than a
    /// hash map: a full-traffic day pins over a million clients, and a map's growth held
    /// its old and new arrays at once (41 MB at the day's peak); a byte per node index,
    /// not four (25 -> 19 MB).
    pins: PairTable<u8>,
    stranded: FxHashMap<(u32, u32), Stranded>,
    /// Per cluster and node: open connections (pruned of ended ones as it grows).
    active: Vec<Vec<Vec<Active>>>,
}

/// What a connection to a virtual IP meets on the way when a node has failed.
#[derive(Copy, Clone, Debug)]
pub(super) enum Hazard {
    /// The client's SA to the cluster is stranded on the dead node `node`.
    Stranded { node: u32, last_inbound: SimTime, reachable: SimTime },
    /// The cluster still sends the client's packets to the dead node `node` (or has no
    /// node serving at all).
    DeadTarget { node: u32, reachable: SimTime },
}

/// The pending connection to a virtual IP, between routing and its outcome.
#[derive(Copy, Clone, Debug)]
pub(super) struct VipRoute {
    pub node: HostId,
    bucket: u64,
    hazard: Option<Hazard>,
    cluster_down: bool,
}

impl Failover {
    /// `nat_t_update`: per host, an XP SP1 machine with the NAT-T update; `sizes`: nodes
    /// per cluster.
    pub fn new(nlb: Nlb, params: FailoverParams, nat_t_update: Vec<bool>, sizes: &[u32]) -> Failover {
        let active = sizes.iter().map(|&n| vec![Vec::new(); n as usize]).collect();
        Failover { nlb, params, nat_t_update, pins: PairTable::default(), stranded: FxHashMap::default(), active }
    }

    pub fn params(&self) -> &FailoverParams {
        &self.params
    }

    fn detection(&self, campus: &super::super::campus::Campus, client: HostId) -> Detection {
        Detection::of(campus.host(client).os, self.nat_t_update[client.index()], &self.params)
    }
}

impl SecNet<'_> {
    /// The NLB bucket of a connection from `client` (`u_node`: its draw under no affinity).
    fn bucket(&self, cluster: ClusterId, client: HostId, u_node: f64) -> u64 {
        let addr = u64::from(self.campus.host(client).addr);
        let key = match self.campus.clusters[cluster.index()].affinity {
            Affinity::Single => addr,
            // Network affinity: the client's class C [MS NLB].
            Affinity::Network => addr >> 8,
            // No affinity: any bucket, per connection (kept apart from address keys).
            Affinity::None => (u_node * f64::from(u32::MAX)) as u64 | 1 << 40,
        };
        Nlb::bucket(key)
    }

    /// The node answering `client` on a cluster's virtual IP at `now`, and the hazard on
    /// the way if a node failure stands between them.
    pub(super) fn route_vip(&mut self, cluster: ClusterId, client: HostId, now: SimTime, u_node: f64) -> VipRoute {
        if self.failover.is_none() {
            return VipRoute {
                node: self.nlb_node(cluster, client, u_node),
                bucket: 0,
                hazard: None,
                cluster_down: false,
            };
        }
        let bucket = self.bucket(cluster, client, u_node);
        let first = self.campus.clusters[cluster.index()].nodes.start;
        let key = (client.0, cluster.0);
        let qm_idle = self.params.sa.quick_mode_idle;
        let f = self.failover.as_mut().expect("checked above");
        let route = f.nlb.route(cluster.0, bucket, now);
        let node = HostId(first + route.node);
        let reachable = route.dead.map_or(now, |d| d.1);
        if let Some(s) = f.stranded.get(&key).copied() {
            if now < s.cleared {
                let hazard = Hazard::Stranded { node: s.node, last_inbound: s.last_inbound, reachable };
                return VipRoute { node, bucket, hazard: Some(hazard), cluster_down: route.cluster_down };
            }
            f.stranded.remove(&key);
        }
        if let Some(pinned) = f.pins.get(pin_key(key)).map(|&n| u32::from(n)) {
            let alive = !f.nlb.is_down(cluster.0, pinned)
                && self.sas.get(pair_key(client, HostId(first + pinned))).is_some_and(
                    |e| matches!(e.state().qm, QmState::Established { last_used, .. } if now < last_used + qm_idle),
                );
            if alive {
                return VipRoute { node: HostId(first + pinned), bucket, hazard: None, cluster_down: false };
            }
            self.failover.as_mut().expect("checked above").pins.remove(pin_key(key));
        }
        let hazard = route.dead.map(|(dead, reachable)| Hazard::DeadTarget { node: dead, reachable });
        VipRoute { node, bucket, hazard, cluster_down: route.cluster_down }
    }

    /// After [`SecNet::connect`] decided a connection to a virtual IP: turns a hazard into
    /// a stall (added to the wait), pins the client to the node of its SA, and remembers
    /// the connection for a later failure.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_vip_connect(
        &mut self,
        cluster: ClusterId,
        client: HostId,
        app: u16,
        now: SimTime,
        duration: SimDuration,
        route: VipRoute,
        conn: &mut Connection,
    ) {
        let first = self.campus.clusters[cluster.index()].nodes.start;
        let campus = self.campus;
        let Some(f) = self.failover.as_mut() else { return };
        if matches!(conn.outcome, Outcome::Blocked(_)) {
            return;
        }
        let key = (client.0, cluster.0);
        let protected = matches!(conn.outcome, Outcome::Protected { .. });
        if let Some(h) = route.hazard {
            let (node, last_inbound, reachable, detection) = match h {
                Hazard::Stranded { node, last_inbound, reachable } => {
                    (node, last_inbound, reachable, f.detection(campus, client))
                }
                Hazard::DeadTarget { node, reachable } => (node, now, reachable, Detection::Nothing),
            };
            // The wait the connection has anyway (IKE with the new node) comes after.
            let case =
                StallCase { start: now, in_progress: false, last_inbound, reachable, detection, ike: conn.delay };
            let stall = nlb::stall(&case, &f.params.tcp);
            if detection == Detection::TcpRetransmit {
                // Vista renegotiated on this connection's retransmission: the client's
                // later connections are fine from then.
                if let Some(s) = f.stranded.get_mut(&key) {
                    s.cleared = s.cleared.min(stall.recovered);
                }
            }
            conn.delay = stall.stall;
            conn.stall = Some(StallEvent {
                at: now,
                cluster,
                node: HostId(first + node),
                client,
                app,
                in_progress: false,
                cluster_down: route.cluster_down,
                ipsec: matches!(h, Hazard::Stranded { .. }) || protected,
                detection,
                stall,
            });
        }
        let node = conn.responder.0 - first;
        if protected {
            debug_assert!(node < limits::MAX_NLB_NODES, "node index {node}");
            f.pins.insert(pin_key(key), node as u8);
        }
        let list = &mut f.active[cluster.index()][node as usize];
        if list.len() >= 64 && list.len().is_power_of_two() {
            list.retain(|a| a.end > now);
        }
        debug_assert!(route.bucket < nlb::BUCKETS, "bucket {}", route.bucket);
        let bucket = route.bucket as u8;
        list.push(Active { end: now + conn.delay + duration, client, app, bucket, protected });
    }

    /// A node fails at `now` until `until`: its SAs die with it (clients pinned to it are
    /// left with a stranded SA), and the connections in progress on it stall; returns
    /// their stalls. A failure of a node already down only extends its outage.
    pub fn node_down(&mut self, cluster: ClusterId, node: u32, now: SimTime, until: SimTime) -> Vec<StallEvent> {
        let c = self.campus;
        let host = HostId(c.clusters[cluster.index()].nodes.start + node);
        let sa_params = self.params.sa;
        let Some(f) = self.failover.as_mut() else { return Vec::new() };
        let was_up = !f.nlb.is_down(cluster.0, node);
        f.nlb.fail(cluster.0, node, now, until);
        if !was_up {
            return Vec::new();
        }
        let mut keys: Vec<u64> = self
            .sas
            .iter()
            .map(|(k, _)| k)
            .filter(|&k| {
                let (a, b) = pair_hosts(k);
                a == host || b == host
            })
            .collect();
        keys.sort_unstable();
        for k in keys {
            let state = self.sas.remove(k).expect("listed above").state();
            let (a, b) = pair_hosts(k);
            let peer = if a == host { b } else { a };
            let f = self.failover.as_mut().expect("checked above");
            if let QmState::Established { last_used, .. } = state.qm {
                let pinned = f.pins.get(pin_key((peer.0, cluster.0))).map(|&n| u32::from(n)) == Some(node);
                if pinned && now < last_used + sa_params.quick_mode_idle {
                    f.pins.remove(pin_key((peer.0, cluster.0)));
                    // Nothing arrives after the failure; the SA would idle out anyway.
                    let last_inbound = last_used.min(now);
                    let cleared = match f.detection(c, peer) {
                        Detection::IdleTimer(idle) => last_inbound + idle.min(sa_params.quick_mode_idle),
                        _ => last_inbound + sa_params.quick_mode_idle,
                    };
                    f.stranded.insert((peer.0, cluster.0), Stranded { node, last_inbound, cleared });
                }
            }
            let fx = sa::Effects {
                mm_delta: -i32::from(matches!(state.mm, MmState::Established { .. })),
                qm_delta: -i32::from(matches!(state.qm, QmState::Established { .. })),
                soft_delta: -i32::from(matches!(state.qm, QmState::Soft { .. })),
                ..sa::Effects::default()
            };
            self.account(a, b, now, &fx);
        }
        let f = self.failover.as_mut().expect("checked above");
        let open = std::mem::take(&mut f.active[cluster.index()][node as usize]);
        let f = self.failover.as_ref().expect("checked above");
        let stalls: Vec<StallEvent> = open
            .into_iter()
            .filter(|a| a.end > now)
            .map(|a| {
                let h = c.host(a.client);
                let (detection, ike) = if a.protected {
                    let one_way =
                        c.topology.route(h.building, h.site, c.host(host).building, c.host(host).site).latency;
                    let authip = h.os.is_vista_class() && c.host(host).os.is_vista_class();
                    (f.detection(c, a.client), sa::negotiation_latency(one_way, true, authip, &sa_params))
                } else {
                    (Detection::Nothing, SimDuration::ZERO)
                };
                let route = f.nlb.route(cluster.0, u64::from(a.bucket), now);
                let reachable = route.dead.map_or(now, |d| d.1);
                let case = StallCase { start: now, in_progress: true, last_inbound: now, reachable, detection, ike };
                StallEvent {
                    at: now,
                    cluster,
                    node: host,
                    client: a.client,
                    app: a.app,
                    in_progress: true,
                    cluster_down: route.cluster_down,
                    ipsec: a.protected,
                    detection,
                    stall: nlb::stall(&case, &f.params.tcp),
                }
            })
            .collect();
        // A Vista client renegotiated at its open connection's retransmission: its later
        // connections are fine from then.
        let f = self.failover.as_mut().expect("checked above");
        for st in stalls.iter().filter(|s| s.detection == Detection::TcpRetransmit) {
            if let Some(s) = f.stranded.get_mut(&(st.client.0, cluster.0)) {
                s.cleared = s.cleared.min(st.stall.recovered);
            }
        }
        stalls
    }

    /// A node's repair is due: it rejoins the cluster after convergence. Returns whether
    /// it came back (a later failure may have extended the outage).
    pub fn node_up(&mut self, cluster: ClusterId, node: u32, now: SimTime) -> bool {
        self.failover.as_mut().is_some_and(|f| f.nlb.repair(cluster.0, node, now))
    }

    /// Installs the failover layer.
    pub fn enable_failover(&mut self, failover: Failover) {
        self.failover = Some(failover);
    }

    pub fn failover(&self) -> Option<&Failover> {
        self.failover.as_ref()
    }
}
