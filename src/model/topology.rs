//! The network: a petgraph graph of building LANs, site routers, WAN links from each branch
//! site to its region's hub, and backbone links from each hub to headquarters. Links carry
//! capacity and one-way latency; routes between buildings are the tree paths.
//!
//! Contract:
//! - The graph is a tree rooted at headquarters, so the route between two buildings is
//!   unique; [`Topology::route`] computes it in O(1) from each site's uplink chain and
//!   agrees with a shortest-path search on the graph (tested).
//! - Links are fixed once built: routes keep copies of their latencies and capacities.
//! - Each link has an "up" direction (towards headquarters); [`Hop::up`] says whether a
//!   route crosses it that way.
//! - WAN circuits are bought per site from the scenario's circuit list: the smallest that
//!   covers `(clients x per-client + sqrt(clients) x burst-per-sqrt-client) x headroom` (headroom
//!   drawn per site).

use petgraph::graph::{NodeIndex, UnGraph};
use rand::RngExt;

use super::campus::{Campus, SiteKind};
use super::ids::{BuildingId, LinkId, SiteId};
use super::streams::{entity, purpose};
use crate::engine::SimDuration;
use crate::engine::rng::{RngStreams, StreamKey};
use crate::scenario::build::Scenario;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Building LAN to its site router.
    Lan,
    /// Branch site router to its region's hub.
    Wan,
    /// Hub to headquarters.
    Backbone,
}

impl LinkKind {
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Lan => "lan",
            LinkKind::Wan => "wan",
            LinkKind::Backbone => "backbone",
        }
    }
    /// Links that cross sites (the costly ones the paper worries about).
    pub fn is_wide_area(self) -> bool {
        !matches!(self, LinkKind::Lan)
    }
}

#[derive(Debug, Clone)]
pub struct Link {
    pub kind: LinkKind,
    pub capacity_bps: u64,
    pub latency: SimDuration,
    /// The site at the lower end (the building's site for LAN links, the branch or hub
    /// for WAN and backbone links).
    pub site: SiteId,
    /// Lower and upper end in the graph.
    pub lower: NodeIndex,
    pub upper: NodeIndex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopoNode {
    Site(SiteId),
    Building(BuildingId),
}

/// One link of a route and the direction it is crossed in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub link: LinkId,
    /// True when the route goes from the lower to the upper end.
    pub up: bool,
}

/// A route between two buildings: at most two LAN hops and four WAN/backbone hops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    hops: [Option<Hop>; 6],
    len: u8,
    pub latency: SimDuration,
    /// The least capacity of its links (`u64::MAX` with none), gathered as it is built so
    /// that a session's transfer time reads no link records.
    bottleneck_bps: u64,
}

impl Default for Route {
    fn default() -> Self {
        Route { hops: [None; 6], len: 0, latency: SimDuration::ZERO, bottleneck_bps: u64::MAX }
    }
}

impl Route {
    /// Adds the hop across `via`'s link, `up` towards headquarters or down from it.
    fn push(&mut self, via: &Uplink, up: bool) {
        self.hops[self.len as usize] = Some(Hop { link: via.link, up });
        self.len += 1;
        self.latency += via.latency;
        self.bottleneck_bps = self.bottleneck_bps.min(via.capacity_bps);
    }
    /// The least capacity of the route's links, `u64::MAX` for an empty route.
    pub fn bottleneck_bps(&self) -> u64 {
        self.bottleneck_bps
    }
    pub fn hops(&self) -> impl Iterator<Item = Hop> + '_ {
        self.hops[..self.len as usize].iter().map(|h| h.expect("filled"))
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Round-trip time: twice the one-way latency.
    pub fn rtt(&self) -> SimDuration {
        self.latency + self.latency
    }
}

#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub graph: UnGraph<TopoNode, LinkId>,
    /// Private: routes keep copies of the latencies and capacities (see
    /// [`Topology::links`]).
    links: Vec<Link>,
    pub site_node: Vec<NodeIndex>,
    pub building_node: Vec<NodeIndex>,
    /// LAN link of each building, with its latency and capacity.
    building_uplink: Vec<Uplink>,
    /// Each site's links towards headquarters, lowest first (none for headquarters).
    site_uplinks: Vec<SiteUplinks>,
}

/// A link towards headquarters with its latency and capacity, side by side:
/// [`Topology::route`] reads one of these per end and one [`SiteUplinks`] (56 bytes) per
/// site, instead of the link records and a list on the heap. The latencies and capacities
/// are copies: links are fixed once built.
#[derive(Copy, Clone, Debug)]
struct Uplink {
    link: LinkId,
    latency: SimDuration,
    capacity_bps: u64,
}

/// A site's links towards headquarters, lowest first: a branch's WAN link and its hub's
/// backbone link, a hub's backbone link, or none at headquarters.
#[derive(Copy, Clone, Debug)]
struct SiteUplinks {
    /// The first `len` are the site's; the rest are never read.
    links: [Uplink; 2],
    len: u8,
}

impl Uplink {
    fn of(topo: &Topology, link: LinkId) -> Uplink {
        let l = &topo.links[link.index()];
        Uplink { link, latency: l.latency, capacity_bps: l.capacity_bps }
    }
}

impl SiteUplinks {
    fn of(topo: &Topology, links: impl IntoIterator<Item = LinkId>) -> SiteUplinks {
        let unused = Uplink { link: LinkId::from_index(0), latency: SimDuration::ZERO, capacity_bps: 0 };
        let mut up = SiteUplinks { links: [unused; 2], len: 0 };
        for link in links {
            assert!(up.len < 2, "a site has at most two links towards headquarters");
            up.links[up.len as usize] = Uplink::of(topo, link);
            up.len += 1;
        }
        up
    }

    fn as_slice(&self) -> &[Uplink] {
        &self.links[..self.len as usize]
    }
}

impl Topology {
    pub fn build(sc: &Scenario, campus: &Campus, streams: &RngStreams) -> Topology {
        let t = &sc.topology;
        let mut topo = Topology::default();
        for si in 0..campus.sites.len() {
            let n = topo.graph.add_node(TopoNode::Site(SiteId::from_index(si)));
            topo.site_node.push(n);
        }
        for (bi, b) in campus.buildings.iter().enumerate() {
            let n = topo.graph.add_node(TopoNode::Building(BuildingId::from_index(bi)));
            topo.building_node.push(n);
            let upper = topo.site_node[b.site.index()];
            let id = topo.add_link(Link {
                kind: LinkKind::Lan,
                capacity_bps: t.lan_capacity_bps,
                latency: t.lan_latency,
                site: b.site,
                lower: n,
                upper,
            });
            topo.building_uplink.push(Uplink::of(&topo, id));
        }
        let draw = |lo: SimDuration, hi: SimDuration, rng: &mut rand_chacha::ChaCha8Rng| {
            if hi > lo { SimDuration::from_nanos(rng.random_range(lo.as_nanos()..=hi.as_nanos())) } else { lo }
        };
        // Backbone first (hub -> HQ), then branch WAN links (branch -> hub).
        let mut hub_uplink = vec![None; campus.sites.len()];
        for (si, s) in campus.sites.iter().enumerate() {
            if s.kind == SiteKind::Hub {
                let mut rng = streams.stream(StreamKey::new(entity::SITE, si as u32, purpose::LINKS, 0));
                let latency = draw(t.backbone_latency.0, t.backbone_latency.1, &mut rng);
                let id = topo.add_link(Link {
                    kind: LinkKind::Backbone,
                    capacity_bps: t.backbone_capacity_bps,
                    latency,
                    site: SiteId::from_index(si),
                    lower: topo.site_node[si],
                    upper: topo.site_node[0],
                });
                hub_uplink[si] = Some(id);
            }
        }
        topo.site_uplinks = vec![SiteUplinks::of(&topo, None); campus.sites.len()];
        for (si, s) in campus.sites.iter().enumerate() {
            match s.kind {
                SiteKind::Hq => {}
                SiteKind::Hub => {
                    topo.site_uplinks[si] =
                        SiteUplinks::of(&topo, Some(hub_uplink[si].expect("hub has a backbone link")))
                }
                SiteKind::Branch => {
                    let hub = campus.regions[s.region.index()].hub.index();
                    let mut rng = streams.stream(StreamKey::new(entity::SITE, si as u32, purpose::LINKS, 0));
                    let latency = draw(t.wan_latency.0, t.wan_latency.1, &mut rng);
                    let headroom = rng.random_range(t.wan_headroom.0..=t.wan_headroom.1);
                    let need = (f64::from(s.clients.max(1)) * t.wan_provisioned_per_client_bps as f64
                        + f64::from(s.clients.max(1)).sqrt() * t.wan_burst_per_sqrt_client_bps as f64)
                        * headroom;
                    let capacity = t
                        .wan_circuits_bps
                        .iter()
                        .copied()
                        .find(|&c| c as f64 >= need)
                        .unwrap_or(*t.wan_circuits_bps.last().expect("validated non-empty"));
                    let id = topo.add_link(Link {
                        kind: LinkKind::Wan,
                        capacity_bps: capacity,
                        latency,
                        site: SiteId::from_index(si),
                        lower: topo.site_node[si],
                        upper: topo.site_node[hub],
                    });
                    topo.site_uplinks[si] = SiteUplinks::of(&topo, std::iter::once(id).chain(hub_uplink[hub]));
                }
            }
        }
        topo
    }

    fn add_link(&mut self, link: Link) -> LinkId {
        let id = LinkId::from_index(self.links.len());
        self.graph.add_edge(link.lower, link.upper, id);
        self.links.push(link);
        id
    }

    /// Every link, by id (fixed once built).
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn link(&self, id: LinkId) -> &Link {
        &self.links[id.index()]
    }

    /// The route from building `a` (at site `sa`) to building `b` (at site `sb`).
    pub fn route(&self, a: BuildingId, sa: SiteId, b: BuildingId, sb: SiteId) -> Route {
        let mut r = Route::default();
        if a == b {
            return r;
        }
        let la = self.building_uplink[a.index()];
        r.push(&la, true);
        if sa != sb {
            let ua = self.site_uplinks[sa.index()].as_slice();
            let ub = self.site_uplinks[sb.index()].as_slice();
            // Links shared by both chains (the common path to HQ) are not crossed. Both
            // chains end at HQ, so the shared links form a common suffix.
            let mut shared = 0;
            while shared < ua.len()
                && shared < ub.len()
                && ua[ua.len() - 1 - shared].link == ub[ub.len() - 1 - shared].link
            {
                shared += 1;
            }
            for u in &ua[..ua.len() - shared] {
                r.push(u, true);
            }
            for u in ub[..ub.len() - shared].iter().rev() {
                r.push(u, false);
            }
        }
        let lb = self.building_uplink[b.index()];
        r.push(&lb, false);
        r
    }
}
