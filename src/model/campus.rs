//! The generated campus: regions, sites, buildings, subnets, domains, hosts, users,
//! security groups, NLB clusters, and the indexes the traffic model needs (home servers,
//! popular servers, peers).
//!
//! Contract:
//! - Deterministic by (scenario, seed): every draw comes from a stream of
//!   `model::streams`; host attributes come from the host's own stream with a fixed draw
//!   order, so appending a host changes no other host's attributes.
//! - Hosts are ordered site -> building -> subnet, so every site, building and subnet owns
//!   a contiguous range of host ids; every host is in exactly one subnet.
//! - Subnets are carved from the scenario's address space as aligned power-of-two blocks,
//!   largest first, per building and per site: no two subnets overlap.
//! - Generation allocates in proportion to the scenario's sizes, which `scenario::build`
//!   has already bounded.

use std::ops::Range;

use ipnet::Ipv4Net;
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use super::ids::*;
use super::kinds::{Affinity, ClientCategory, GroupKind, HostKind, Os, Role};
use super::streams::{entity, purpose};
use super::topology::Topology;
use crate::engine::rng::{RngStreams, StreamKey};
use crate::scenario::build::{Mix, Placement, Scenario};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteKind {
    /// The headquarters campus: hub of region 0 and home of the central data centre.
    Hq,
    /// The largest site of a region: its WAN hub and regional data centre.
    Hub,
    Branch,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    pub hub: SiteId,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub kind: SiteKind,
    pub region: RegionId,
    /// Clients placed at the site (VPN guests count at their region's hub).
    pub clients: u32,
    pub buildings: Range<u32>,
    pub hosts: Range<u32>,
    pub prefix: Ipv4Net,
}

#[derive(Debug, Clone)]
pub struct Building {
    pub site: SiteId,
    pub datacenter: bool,
    pub subnets: Range<u32>,
    pub hosts: Range<u32>,
    pub prefix: Ipv4Net,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubnetPurpose {
    Client,
    Server,
    /// One NLB cluster's nodes and its virtual IP.
    Cluster,
    /// A regional VPN address pool (remote partner, vendor and home PCs).
    VpnPool,
}

impl SubnetPurpose {
    pub fn name(self) -> &'static str {
        match self {
            SubnetPurpose::Client => "client",
            SubnetPurpose::Server => "server",
            SubnetPurpose::Cluster => "cluster",
            SubnetPurpose::VpnPool => "vpn-pool",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub building: BuildingId,
    pub site: SiteId,
    pub purpose: SubnetPurpose,
    pub prefix: Ipv4Net,
    pub hosts: Range<u32>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    /// The main corporate domain: the one with the largest share.
    pub main: bool,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub kind: GroupKind,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub site: SiteId,
    pub subnet: SubnetId,
    pub service: Role,
    pub affinity: Affinity,
    pub vip: u32,
    pub nodes: Range<u32>,
}

/// Security-group membership as a bit set (at most 64 groups, checked by the scenario).
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct GroupSet(pub u64);

impl GroupSet {
    pub fn contains(self, g: GroupId) -> bool {
        self.0 & (1u64 << g.0) != 0
    }
    pub fn insert(&mut self, g: GroupId) {
        self.0 |= 1u64 << g.0;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Host flag bits.
pub mod flags {
    pub const LAPTOP: u8 = 1;
    /// Has the Simple Policy update (500 ms fallback instead of 3 s).
    pub const SIMPLE_POLICY: u8 = 2;
}

#[derive(Debug, Clone)]
pub struct Host {
    pub addr: u32,
    pub subnet: SubnetId,
    pub building: BuildingId,
    pub site: SiteId,
    pub kind: HostKind,
    pub os: Os,
    /// The managed domain it is joined to; `None` for unmanaged hosts.
    pub domain: Option<DomainId>,
    pub flags: u8,
    pub groups: GroupSet,
    /// Owning user (clients only).
    pub owner: Option<UserId>,
    /// The NLB cluster it is a node of.
    pub cluster: Option<ClusterId>,
    /// A per-host random value that fixes which of its nearest servers is its home one.
    pub salt: u32,
}

impl Host {
    pub fn is_laptop(&self) -> bool {
        self.flags & flags::LAPTOP != 0
    }
    pub fn has_simple_policy(&self) -> bool {
        self.flags & flags::SIMPLE_POLICY != 0
    }
    pub fn is_managed(&self) -> bool {
        self.domain.is_some()
    }
    pub fn is_client(&self) -> bool {
        !self.kind.is_server()
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub site: SiteId,
    pub machines: u32,
}

/// Where a session goes: a host, or an NLB cluster's virtual IP.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Host(HostId),
    Vip(ClusterId),
}

/// Servers of one role reachable by popularity: a global alias table and one per region.
#[derive(Debug, Clone)]
pub struct PopularSet {
    pub endpoints: Vec<Endpoint>,
    pub global: Option<WeightedAliasIndex<f64>>,
    /// Per region: the endpoints located there, and an alias table over them.
    pub by_region: Vec<(Vec<Endpoint>, Option<WeightedAliasIndex<f64>>)>,
}

/// The generated campus.
#[derive(Debug, Clone)]
pub struct Campus {
    pub seed: u64,
    pub regions: Vec<Region>,
    pub sites: Vec<Site>,
    pub buildings: Vec<Building>,
    pub subnets: Vec<Subnet>,
    pub hosts: Vec<Host>,
    pub users: Vec<User>,
    pub domains: Vec<Domain>,
    pub groups: Vec<Group>,
    pub clusters: Vec<Cluster>,
    pub topology: Topology,
    /// Non-clustered servers of each role, in host order.
    pub servers_by_role: Vec<Vec<HostId>>,
    /// `home_lists[home_index[site * ROLES + role]]`: the nearest servers of a role.
    home_lists: Vec<Vec<HostId>>,
    home_index: Vec<u32>,
    /// Domain controllers nearest to a site, per domain: `dc_lists[site * domains + d]`.
    dc_lists: Vec<Vec<HostId>>,
    pub popular: Vec<PopularSet>,
}

/// Why a campus could not be generated from a valid scenario.
#[derive(Debug, thiserror::Error)]
pub enum CampusError {
    #[error("the campus needs {needed} addresses but the address space {space} holds only {available}")]
    AddressSpace { space: Ipv4Net, needed: u64, available: u64 },
}

const ROLES: usize = Role::ALL.len();

impl Campus {
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.index()]
    }
    /// Asks the CPU for a host's record (both lines it may span) ahead of its use.
    #[inline]
    pub fn prefetch_host(&self, id: HostId) {
        if let Some(h) = self.hosts.get(id.index()) {
            crate::engine::prefetch_span(h);
        }
    }
    pub fn clients_total(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_client()).count()
    }
    pub fn servers_total(&self) -> usize {
        self.hosts.len() - self.clients_total()
    }
    pub fn main_domain(&self) -> Option<DomainId> {
        self.domains.iter().position(|d| d.main).map(DomainId::from_index)
    }

    /// The host's home server of a role: one of the nearest servers (same site, else the
    /// region's hub, else headquarters, else anywhere), fixed per host by its salt. For
    /// domain controllers, only those of the host's own domain count (Kerberos needs
    /// one); unmanaged hosts use any.
    pub fn home_server(&self, host: HostId, role: Role) -> Option<HostId> {
        let h = self.host(host);
        let list = match (role, h.domain) {
            (Role::Dc, Some(d)) => &self.dc_lists[h.site.index() * self.domains.len() + d.index()],
            _ => &self.home_lists[self.home_index[h.site.index() * ROLES + role as usize] as usize],
        };
        if list.is_empty() {
            return None;
        }
        // Mix the role into the salt so a host's homes of different roles are independent.
        let mixed = (u64::from(h.salt) ^ ((role as u64 + 1) * 0x9E37_79B9)).wrapping_mul(0x2545_F491_4F6C_DD1D);
        Some(list[((mixed >> 32) % list.len() as u64) as usize])
    }

    /// A popular endpoint of a role, drawn by popularity rank; with probability
    /// `local_share` from the initiator's own region.
    pub fn popular_endpoint<R: Rng + ?Sized>(
        &self,
        role: Role,
        region: RegionId,
        local_share: f64,
        rng: &mut R,
    ) -> Option<Endpoint> {
        let set = &self.popular[role as usize];
        let u: f64 = rng.random();
        if u < local_share {
            if let (eps, Some(table)) = &set.by_region[region.index()] {
                return Some(eps[table.sample(rng)]);
            }
        }
        set.global.as_ref().map(|t| set.endpoints[t.sample(rng)])
    }

    /// A random client peer of `host`: same building with probability `building_share`,
    /// else same site or anywhere in equal halves. Never the host itself or a server.
    pub fn peer<R: Rng + ?Sized>(&self, host: HostId, building_share: f64, rng: &mut R) -> Option<HostId> {
        let h = self.host(host);
        let u: f64 = rng.random();
        let scopes: [Range<u32>; 3] = [
            self.buildings[h.building.index()].hosts.clone(),
            self.sites[h.site.index()].hosts.clone(),
            0..self.hosts.len() as u32,
        ];
        let first = if u < building_share {
            0
        } else if u < building_share + (1.0 - building_share) / 2.0 {
            1
        } else {
            2
        };
        for scope in &scopes[first..] {
            // A few tries per scope: servers and self are rare in client buildings.
            for _ in 0..8 {
                if scope.is_empty() {
                    break;
                }
                let cand = HostId(rng.random_range(scope.clone()));
                if cand != host && self.host(cand).is_client() {
                    return Some(cand);
                }
            }
        }
        None
    }

    /// Site of an endpoint.
    pub fn endpoint_site(&self, e: Endpoint) -> SiteId {
        match e {
            Endpoint::Host(h) => self.host(h).site,
            Endpoint::Vip(c) => self.clusters[c.index()].site,
        }
    }

    pub fn endpoint_building(&self, e: Endpoint) -> BuildingId {
        match e {
            Endpoint::Host(h) => self.host(h).building,
            Endpoint::Vip(c) => self.subnets[self.clusters[c.index()].subnet.index()].building,
        }
    }

    /// Generates the campus of a scenario with a master seed.
    pub fn generate(sc: &Scenario, seed: u64) -> Result<Campus, CampusError> {
        Generator::new(sc, seed).run()
    }
}

struct Generator<'a> {
    sc: &'a Scenario,
    streams: RngStreams,
    seed: u64,
    /// Domain index by share, for managed hosts.
    domain_mix: Mix<usize>,
}

/// Largest-remainder apportionment of `total` over `weights`.
pub fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum.is_nan() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let assigned: u64 = out.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Ties broken by index so the result is deterministic.
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take((total.saturating_sub(assigned)) as usize) {
        out[i] += 1;
    }
    out
}

/// Server counts of one role per site.
fn role_counts(sc: &Scenario, sites: &[SiteDraft], regions: &[RegionDraft], role: usize) -> Vec<u32> {
    let r = &sc.server_roles[role];
    let per = u64::from(r.per_clients.max(1));
    let mut counts = vec![0u32; sites.len()];
    let ceil = |n: u64| n.div_ceil(per) as u32;
    match r.placement {
        Placement::Site => {
            for (i, s) in sites.iter().enumerate() {
                if s.clients >= r.min_site_clients.max(1) {
                    counts[i] = ceil(u64::from(s.clients));
                }
            }
            // Every campus needs at least one: put it at headquarters.
            if counts.iter().all(|&c| c == 0) {
                counts[0] = 1;
            }
        }
        Placement::Hub => {
            for reg in regions {
                let clients: u64 = reg.sites.iter().map(|&s| u64::from(sites[s].clients)).sum();
                counts[reg.hub] += ceil(clients.max(1));
            }
        }
        Placement::Hq => {
            let clients: u64 = sites.iter().map(|s| u64::from(s.clients)).sum();
            counts[0] = ceil(clients.max(1));
        }
    }
    // Every domain needs a domain controller of its own: on a small campus, add the
    // missing ones at headquarters.
    if r.role == Role::Dc {
        let total: u32 = counts.iter().sum();
        let domains = sc.domains.len() as u32;
        if total < domains {
            counts[0] += domains - total;
        }
    }
    counts
}

struct SiteDraft {
    clients: u32,
    region: usize,
    kind: SiteKind,
}

struct RegionDraft {
    hub: usize,
    sites: Vec<usize>,
}

/// One subnet before addresses are assigned.
struct SubnetDraft {
    purpose: SubnetPurpose,
    prefix_len: u8,
    members: Vec<HostDraft>,
    cluster: Option<usize>,
}

#[derive(Clone, Copy)]
enum HostDraft {
    Client { vpn: bool },
    Server { role: Role, cluster: Option<usize> },
}

struct BuildingDraft {
    datacenter: bool,
    subnets: Vec<SubnetDraft>,
}

/// Usable host addresses of a prefix (network, broadcast and the router excluded).
fn usable(prefix_len: u8) -> u64 {
    (1u64 << (32 - prefix_len)).saturating_sub(3)
}

/// The smallest prefix length (largest block) not below 18 that holds `n` hosts at `fill`.
fn prefix_for(n: usize, fill: f64, shortest: u8) -> u8 {
    let mut len = 26u8;
    while len > shortest && (usable(len) as f64 * fill) < n as f64 {
        len -= 1;
    }
    len
}

impl<'a> Generator<'a> {
    fn new(sc: &'a Scenario, seed: u64) -> Self {
        Generator {
            sc,
            streams: RngStreams::new(seed),
            seed,
            domain_mix: Mix::new(sc.domains.iter().map(|d| d.share).enumerate().collect()),
        }
    }

    fn stream(&self, kind: u8, index: usize, purpose: u8) -> ChaCha8Rng {
        self.streams.stream(StreamKey::new(kind, index as u32, purpose, 0))
    }

    fn run(self) -> Result<Campus, CampusError> {
        let sc = self.sc;
        let c = &sc.campus;
        let (sites, regions) = self.sites();
        let site_domain = self.site_domains(&sites);

        // VPN guests live in their region's VPN pool at the hub, in proportion to the
        // region's clients; everyone else lives in the site's client subnets.
        let vpn_total = (f64::from(c.clients) * c.client_mix.share(ClientCategory::VpnGuest)).round() as u64;
        let region_clients: Vec<f64> =
            regions.iter().map(|r| r.sites.iter().map(|&s| f64::from(sites[s].clients)).sum()).collect();
        let vpn_by_region = apportion(vpn_total, &region_clients);

        // Servers per site, per role.
        let mut site_servers: Vec<Vec<(Role, u32)>> = vec![Vec::new(); sites.len()];
        for (ri, role) in sc.server_roles.iter().enumerate() {
            for (si, n) in role_counts(sc, &sites, &regions, ri).into_iter().enumerate() {
                if n > 0 {
                    site_servers[si].push((role.role, n));
                }
            }
        }
        // NLB clusters: at headquarters or a hub.
        let mut cluster_drafts = Vec::new();
        let mut site_clusters: Vec<Vec<usize>> = vec![Vec::new(); sites.len()];
        for ci in 0..sc.nlb.clusters as usize {
            let mut rng = self.stream(entity::CLUSTER, ci, purpose::ATTRIBUTES);
            let site = if rng.random::<f64>() < 0.6 { 0 } else { regions[rng.random_range(0..regions.len())].hub };
            let service = sc.nlb.services[rng.random_range(0..sc.nlb.services.len())];
            let affinity = sc.nlb.affinity.sample(rng.random());
            // Node count: nodes_min plus a geometric excess with the configured mean,
            // truncated at nodes_max.
            let excess_mean = sc.nlb.nodes_mean - f64::from(sc.nlb.nodes_min);
            let mut nodes = sc.nlb.nodes_min;
            if excess_mean > 0.0 {
                let p = 1.0 / (1.0 + excess_mean);
                while nodes < sc.nlb.nodes_max && rng.random::<f64>() > p {
                    nodes += 1;
                }
            }
            cluster_drafts.push((site, service, affinity, nodes));
            site_clusters[site].push(ci);
        }

        // Buildings and subnets of every site.
        let mut site_buildings: Vec<Vec<BuildingDraft>> = Vec::with_capacity(sites.len());
        for (si, s) in sites.iter().enumerate() {
            let mut rng = self.stream(entity::SITE, si, purpose::STRUCTURE);
            let region = &regions[s.region];
            let vpn_here = if region.hub == si { vpn_by_region[s.region] as usize } else { 0 };
            site_buildings.push(self.buildings_of(
                s,
                &site_servers[si],
                &site_clusters[si],
                &cluster_drafts,
                vpn_here,
                &mut rng,
            ));
        }

        // Address plan: aligned blocks, largest first, building within site within space.
        let mut building_blocks: Vec<Vec<(u8, Vec<u32>)>> = Vec::new(); // per site: (building prefix len, subnet offsets)
        let mut site_block_len = Vec::with_capacity(sites.len());
        let mut site_building_offsets = Vec::with_capacity(sites.len());
        for bds in &site_buildings {
            let mut per_building = Vec::new();
            for b in bds {
                let sizes: Vec<u8> = b.subnets.iter().map(|s| s.prefix_len).collect();
                per_building.push(pack(&sizes));
            }
            let sizes: Vec<u8> = per_building.iter().map(|(len, _)| *len).collect();
            let (site_len, offsets) = pack(&sizes);
            site_block_len.push(site_len);
            site_building_offsets.push(offsets);
            building_blocks.push(per_building);
        }
        let (campus_len, site_offsets) = pack(&site_block_len);
        let space = c.address_space;
        let needed = 1u64 << (32 - campus_len);
        let available = 1u64 << (32 - space.prefix_len());
        if campus_len < space.prefix_len() {
            return Err(CampusError::AddressSpace { space, needed, available });
        }
        let base = u32::from(space.network());

        // Materialise everything in site -> building -> subnet order.
        let mut campus = Campus {
            seed: self.seed,
            regions: regions
                .iter()
                .enumerate()
                .map(|(i, r)| Region { name: format!("region-{i}"), hub: SiteId::from_index(r.hub) })
                .collect(),
            sites: Vec::with_capacity(sites.len()),
            buildings: Vec::new(),
            subnets: Vec::new(),
            hosts: Vec::with_capacity(c.clients as usize + c.clients as usize / 16),
            users: Vec::new(),
            domains: self.domains(),
            groups: sc.groups.iter().map(|g| Group { name: g.name.clone(), kind: g.kind }).collect(),
            clusters: Vec::with_capacity(cluster_drafts.len()),
            topology: Topology::default(),
            servers_by_role: vec![Vec::new(); ROLES],
            home_lists: Vec::new(),
            home_index: Vec::new(),
            dc_lists: Vec::new(),
            popular: Vec::new(),
        };
        let mut cluster_slots: Vec<Option<Cluster>> = vec![None; cluster_drafts.len()];
        for (si, bds) in site_buildings.into_iter().enumerate() {
            let s = &sites[si];
            let site_base = base + site_offsets[si];
            let site_id = SiteId::from_index(si);
            let host_start = campus.hosts.len() as u32;
            let building_start = campus.buildings.len() as u32;
            for (bi, b) in bds.into_iter().enumerate() {
                let (b_len, ref sub_offsets) = building_blocks[si][bi];
                let b_base = site_base + site_building_offsets[si][bi];
                let building_id = BuildingId::from_index(campus.buildings.len());
                let b_host_start = campus.hosts.len() as u32;
                let subnet_start = campus.subnets.len() as u32;
                for (ni, sd) in b.subnets.into_iter().enumerate() {
                    let net_base = b_base + sub_offsets[ni];
                    let subnet_id = SubnetId::from_index(campus.subnets.len());
                    let first = campus.hosts.len() as u32;
                    // .1 is the router; hosts from .2 (clusters: VIP at .2, nodes after).
                    let mut next_addr = net_base + 2;
                    if let Some(ci) = sd.cluster {
                        let (_, service, affinity, nodes) = cluster_drafts[ci];
                        cluster_slots[ci] = Some(Cluster {
                            site: site_id,
                            subnet: subnet_id,
                            service,
                            affinity,
                            vip: next_addr,
                            nodes: first..first + nodes,
                        });
                        next_addr += 1;
                    }
                    for m in sd.members {
                        let id = HostId::from_index(campus.hosts.len());
                        let host =
                            self.host(id, m, next_addr, subnet_id, building_id, site_id, site_domain.get(si).copied());
                        campus.hosts.push(host);
                        next_addr += 1;
                    }
                    campus.subnets.push(Subnet {
                        building: building_id,
                        site: site_id,
                        purpose: sd.purpose,
                        prefix: Ipv4Net::new(net_base.into(), sd.prefix_len).expect("valid prefix"),
                        hosts: first..campus.hosts.len() as u32,
                    });
                }
                campus.buildings.push(Building {
                    site: site_id,
                    datacenter: b.datacenter,
                    subnets: subnet_start..campus.subnets.len() as u32,
                    hosts: b_host_start..campus.hosts.len() as u32,
                    prefix: Ipv4Net::new(b_base.into(), b_len).expect("valid prefix"),
                });
            }
            campus.sites.push(Site {
                name: match s.kind {
                    SiteKind::Hq => "hq".to_string(),
                    _ => format!("site-{si:04}"),
                },
                kind: s.kind.clone(),
                region: RegionId::from_index(s.region),
                clients: s.clients,
                buildings: building_start..campus.buildings.len() as u32,
                hosts: host_start..campus.hosts.len() as u32,
                prefix: Ipv4Net::new(site_base.into(), site_block_len[si]).expect("valid prefix"),
            });
        }
        campus.clusters = cluster_slots.into_iter().map(|c| c.expect("every cluster placed")).collect();
        for (ci, cl) in campus.clusters.iter().enumerate() {
            for h in cl.nodes.clone() {
                campus.hosts[h as usize].cluster = Some(ClusterId::from_index(ci));
            }
        }
        self.assign_dc_domains(&mut campus);
        self.assign_owners(&mut campus);
        self.assign_groups(&mut campus);
        campus.topology = Topology::build(sc, &campus, &self.streams);
        self.index_servers(&mut campus);
        Ok(campus)
    }

    /// The home domain of each site: sites in decreasing size (the headquarters first) go to
    /// the domain furthest below its share of clients, so the domains' shares hold and the
    /// largest domain gets the headquarters. Empty without domains.
    fn site_domains(&self, sites: &[SiteDraft]) -> Vec<usize> {
        let shares: Vec<f64> = self.sc.domains.iter().map(|d| d.share).collect();
        if shares.is_empty() {
            return Vec::new();
        }
        let total: f64 = sites.iter().map(|s| f64::from(s.clients)).sum();
        let mut order: Vec<usize> = (0..sites.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(sites[i].clients), i));
        let mut assigned = vec![0.0; shares.len()];
        let mut out = vec![0; sites.len()];
        for i in order {
            let d = (0..shares.len())
                .max_by(|&a, &b| {
                    let (ra, rb) = (shares[a] * total - assigned[a], shares[b] * total - assigned[b]);
                    ra.total_cmp(&rb).then(b.cmp(&a))
                })
                .expect("at least one domain");
            assigned[d] += f64::from(sites[i].clients);
            out[i] = d;
        }
        out
    }

    /// Site sizes, kinds and regions.
    fn sites(&self) -> (Vec<SiteDraft>, Vec<RegionDraft>) {
        let c = &self.sc.campus;
        let n = c.sites as usize;
        let mut rng = self.stream(entity::CAMPUS, 0, purpose::STRUCTURE);
        let vpn = (f64::from(c.clients) * c.client_mix.share(ClientCategory::VpnGuest)).round() as u64;
        let placed = u64::from(c.clients) - vpn;
        let hq = if n == 1 { placed } else { (placed as f64 * c.hq_client_share).round() as u64 };
        let weights: Vec<f64> = (1..n).map(|r| 1.0 / (r as f64).powf(c.site_size_zipf)).collect();
        let mut sizes = vec![hq];
        sizes.extend(apportion(placed - hq, &weights));
        // Every site has at least one client when there are enough to go round: take them
        // from the largest branch.
        for i in 1..n {
            if sizes[i] == 0 && sizes[1] > 1 {
                sizes[1] -= 1;
                sizes[i] = 1;
            }
        }
        let regions_n = c.regions as usize;
        let mut site_region = vec![0usize; n];
        for (i, region) in site_region.iter_mut().enumerate().skip(1) {
            *region = if i < regions_n { i } else { rng.random_range(0..regions_n) };
        }
        let sites: Vec<SiteDraft> = (0..n)
            .map(|i| SiteDraft {
                clients: sizes[i] as u32,
                region: site_region[i],
                kind: if i == 0 {
                    SiteKind::Hq
                } else if i < regions_n {
                    SiteKind::Hub
                } else {
                    SiteKind::Branch
                },
            })
            .collect();
        let regions = (0..regions_n)
            .map(|r| RegionDraft { hub: r, sites: (0..n).filter(|&i| site_region[i] == r).collect() })
            .collect();
        (sites, regions)
    }

    fn domains(&self) -> Vec<Domain> {
        let ds = &self.sc.domains;
        let main =
            ds.iter().enumerate().max_by(|a, b| a.1.share.total_cmp(&b.1.share).then(b.0.cmp(&a.0))).map(|(i, _)| i);
        ds.iter().enumerate().map(|(i, d)| Domain { name: d.name.clone(), main: Some(i) == main }).collect()
    }

    /// Buildings of a site and the subnets in each.
    fn buildings_of(
        &self,
        s: &SiteDraft,
        servers: &[(Role, u32)],
        clusters: &[usize],
        cluster_drafts: &[(usize, Role, Affinity, u32)],
        vpn_guests: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<BuildingDraft> {
        let c = &self.sc.campus;
        let nb = ((f64::from(s.clients) / f64::from(c.clients_per_building)).round() as usize).max(1);
        let weights: Vec<f64> = (0..nb).map(|_| rng.random_range(0.5..1.5)).collect();
        let per_building = apportion(u64::from(s.clients), &weights);
        let mut out: Vec<BuildingDraft> = per_building
            .iter()
            .map(|&n| {
                let mut subnets = Vec::new();
                let mut left = n as usize;
                while left > 0 {
                    let len = c.client_subnet_prefixes.sample(rng.random());
                    let fill = rng.random_range(c.subnet_fill.0..=c.subnet_fill.1);
                    let take = ((usable(len) as f64 * fill).floor() as usize).clamp(1, left);
                    subnets.push(SubnetDraft {
                        purpose: SubnetPurpose::Client,
                        prefix_len: len,
                        members: vec![HostDraft::Client { vpn: false }; take],
                        cluster: None,
                    });
                    left -= take;
                }
                BuildingDraft { datacenter: false, subnets }
            })
            .collect();

        // Servers: a data-centre building at headquarters and hubs, else the first building.
        let total_servers: u32 = servers.iter().map(|s| s.1).sum();
        let datacenter = matches!(s.kind, SiteKind::Hq | SiteKind::Hub);
        let mut server_subnets = Vec::new();
        let fill = c.subnet_fill.1;
        let per_subnet = (usable(24) as f64 * fill) as usize;
        let mut members: Vec<HostDraft> = servers
            .iter()
            .flat_map(|&(role, n)| std::iter::repeat_n(HostDraft::Server { role, cluster: None }, n as usize))
            .collect();
        while !members.is_empty() {
            let rest = members.split_off(members.len().min(per_subnet));
            let len = prefix_for(members.len(), fill, 22);
            server_subnets.push(SubnetDraft {
                purpose: SubnetPurpose::Server,
                prefix_len: len,
                members: std::mem::replace(&mut members, rest),
                cluster: None,
            });
        }
        for &ci in clusters {
            let (_, service, _, nodes) = cluster_drafts[ci];
            let len = prefix_for(nodes as usize + 1, fill, 22);
            server_subnets.push(SubnetDraft {
                purpose: SubnetPurpose::Cluster,
                prefix_len: len,
                members: vec![HostDraft::Server { role: service, cluster: Some(ci) }; nodes as usize],
                cluster: Some(ci),
            });
        }
        // VPN pools: as many pools of the configured size as the guests need.
        let pool_len = c.vpn_pool_prefix;
        let pool_cap = ((usable(pool_len) as f64 * fill) as usize).max(1);
        let mut left = vpn_guests;
        while left > 0 {
            let take = left.min(pool_cap);
            server_subnets.push(SubnetDraft {
                purpose: SubnetPurpose::VpnPool,
                prefix_len: pool_len,
                members: vec![HostDraft::Client { vpn: true }; take],
                cluster: None,
            });
            left -= take;
        }
        out.retain(|b| !b.subnets.is_empty());
        if !server_subnets.is_empty() {
            if datacenter || total_servers > 200 || out.is_empty() {
                out.push(BuildingDraft { datacenter: true, subnets: server_subnets });
            } else {
                out[0].subnets.extend(server_subnets);
            }
        }
        out
    }

    /// One host and its attributes, from its own stream with a fixed draw order.
    #[allow(clippy::too_many_arguments)]
    fn host(
        &self,
        id: HostId,
        draft: HostDraft,
        addr: u32,
        subnet: SubnetId,
        building: BuildingId,
        site: SiteId,
        site_domain: Option<usize>,
    ) -> Host {
        let c = &self.sc.campus;
        let mut rng = self.stream(entity::HOST, id.index(), purpose::ATTRIBUTES);
        let u_kind: f64 = rng.random();
        let u_os: f64 = rng.random();
        let u_laptop: f64 = rng.random();
        let u_update: f64 = rng.random();
        let u_domain: f64 = rng.random();
        let salt: u32 = rng.random();
        let (kind, os) = match draft {
            HostDraft::Client { vpn: true } => {
                (HostKind::Client(ClientCategory::VpnGuest), c.vpn_guest_os.sample(u_os))
            }
            HostDraft::Client { vpn: false } => {
                let cat = sample_without(&c.client_mix, ClientCategory::VpnGuest, u_kind);
                let os = match cat {
                    ClientCategory::Managed => c.managed_os.sample(u_os),
                    ClientCategory::TestDomain => c.test_domain_os.sample(u_os),
                    ClientCategory::LegacyWindows => c.legacy_os.sample(u_os),
                    ClientCategory::Mac => Os::MacOsX,
                    ClientCategory::Linux => Os::Linux,
                    ClientCategory::Xbox => Os::Xbox,
                    ClientCategory::PocketPc => Os::PocketPc,
                    ClientCategory::VpnGuest => c.vpn_guest_os.sample(u_os),
                };
                (HostKind::Client(cat), os)
            }
            HostDraft::Server { role, cluster } => {
                let os = match cluster {
                    Some(_) => self.sc.nlb.os.sample(u_os),
                    None => self.sc.server_roles.iter().find(|r| r.role == role).expect("role defined").os.sample(u_os),
                };
                (HostKind::Server(role), os)
            }
        };
        let mut fl = 0u8;
        if matches!(kind, HostKind::Client(ClientCategory::Managed | ClientCategory::TestDomain | ClientCategory::Mac))
            && u_laptop < c.laptop_fraction
        {
            fl |= flags::LAPTOP;
        }
        if os.simple_policy_builtin() || (os.simple_policy_optional() && u_update < c.simple_policy_update_fraction) {
            fl |= flags::SIMPLE_POLICY;
        }
        let managed = match kind {
            HostKind::Client(cat) => cat == ClientCategory::Managed,
            HostKind::Server(_) => os.ipsec_capable(),
        };
        // Most of a site's managed computers are in its own domain; the rest anywhere, by share.
        let affinity = c.domain_site_affinity;
        let domain = match site_domain.filter(|_| managed) {
            None => None,
            Some(d) if u_domain < affinity => Some(DomainId::from_index(d)),
            Some(_) => Some(DomainId::from_index(self.domain_mix.sample((u_domain - affinity) / (1.0 - affinity)))),
        };
        Host {
            addr,
            subnet,
            building,
            site,
            kind,
            os,
            domain,
            flags: fl,
            groups: GroupSet::default(),
            owner: None,
            cluster: None,
            salt,
        }
    }

    /// Domain controllers serve one domain each. They are dealt out so each domain gets
    /// close to its share, at least one, spread over the sites in host order.
    fn assign_dc_domains(&self, campus: &mut Campus) {
        let dcs: Vec<usize> = (0..campus.hosts.len())
            .filter(|&i| campus.hosts[i].kind == HostKind::Server(Role::Dc) && campus.hosts[i].os.ipsec_capable())
            .collect();
        let shares: Vec<f64> = self.sc.domains.iter().map(|d| d.share).collect();
        let nd = shares.len();
        if dcs.is_empty() || nd == 0 {
            return;
        }
        let mut given = vec![0usize; nd];
        for (k, &h) in dcs.iter().enumerate() {
            // The domain furthest below its quota; domains with no DC yet come first while
            // there are still enough DCs left to give every domain one.
            let left = dcs.len() - k;
            let missing = given.iter().filter(|&&g| g == 0).count();
            let d = (0..nd)
                .filter(|&d| left > missing || given[d] == 0)
                .max_by(|&a, &b| {
                    let da = shares[a] * (k + 1) as f64 - given[a] as f64;
                    let db = shares[b] * (k + 1) as f64 - given[b] as f64;
                    da.total_cmp(&db).then(b.cmp(&a))
                })
                .expect("at least one domain");
            given[d] += 1;
            campus.hosts[h].domain = Some(DomainId::from_index(d));
        }
    }

    /// Users own clients: users are apportioned to sites by clients; in each site a random
    /// client per user is that user's primary machine, and the remaining clients go to
    /// the site's multi-machine users (developers and testers).
    fn assign_owners(&self, campus: &mut Campus) {
        let c = &self.sc.campus;
        let weights: Vec<f64> = campus
            .sites
            .iter()
            .map(|s| (s.hosts.clone().filter(|&h| campus.hosts[h as usize].is_client()).count()) as f64)
            .collect();
        let per_site = apportion(u64::from(c.users), &weights);
        for (si, site) in campus.sites.iter().enumerate() {
            let mut rng = self.stream(entity::SITE, si, purpose::OWNERS);
            let mut clients: Vec<u32> = site.hosts.clone().filter(|&h| campus.hosts[h as usize].is_client()).collect();
            let users = (per_site[si] as usize).min(clients.len());
            if users == 0 {
                continue;
            }
            // Fisher-Yates with the site's stream.
            for i in (1..clients.len()).rev() {
                let j = rng.random_range(0..=i);
                clients.swap(i, j);
            }
            let first_user = campus.users.len();
            let multi = ((users as f64 * c.multi_machine_user_fraction).ceil() as usize).clamp(1, users);
            for _ in 0..users {
                campus.users.push(User { site: SiteId::from_index(si), machines: 0 });
            }
            for (k, &h) in clients.iter().enumerate() {
                let u = if k < users { k } else { rng.random_range(0..multi) };
                campus.hosts[h as usize].owner = Some(UserId::from_index(first_user + u));
                campus.users[first_user + u].machines += 1;
            }
        }
    }

    /// Group membership: a host of a listed role or category joins with the group's
    /// probability, drawn from the host's own membership stream (one draw per group in
    /// group order, so adding a group at the end changes no earlier membership). Policy-
    /// exception groups are exclusive.
    fn assign_groups(&self, campus: &mut Campus) {
        if self.sc.groups.is_empty() {
            return;
        }
        for (i, h) in campus.hosts.iter_mut().enumerate() {
            let mut rng = self.streams.stream(StreamKey::new(entity::HOST, i as u32, purpose::ATTRIBUTES, 1));
            let mut has_exception = false;
            for (gi, g) in self.sc.groups.iter().enumerate() {
                let u: f64 = rng.random();
                let eligible = match h.kind {
                    HostKind::Server(r) => g.roles.contains(&r),
                    HostKind::Client(cat) => g.clients.contains(&cat),
                };
                // A computer has one IPsec policy [WP], so it belongs to at most one
                // policy-exception group (No-IPsec, boundary, secure-server): the first
                // it is drawn into, in scenario order.
                let exception = matches!(g.kind, GroupKind::NoIpsec | GroupKind::Boundary | GroupKind::SecureServer);
                if eligible && u < g.fraction && !(exception && has_exception) {
                    h.groups.insert(GroupId::from_index(gi));
                    has_exception |= exception;
                }
            }
        }
    }

    /// Home-server lists per (site, role) and per (site, domain) for DCs; popularity sets.
    fn index_servers(&self, campus: &mut Campus) {
        let ns = campus.sites.len();
        let nd = campus.domains.len();
        let mut by_role_site: Vec<Vec<Vec<HostId>>> = vec![vec![Vec::new(); ns]; ROLES];
        for (i, h) in campus.hosts.iter().enumerate() {
            if let (HostKind::Server(r), None) = (h.kind, h.cluster) {
                by_role_site[r as usize][h.site.index()].push(HostId::from_index(i));
                campus.servers_by_role[r as usize].push(HostId::from_index(i));
            }
        }
        // Nearest-first fallback chain: own site, region hub, headquarters, anywhere.
        let chain = |si: usize| -> [usize; 3] {
            let hub = campus.regions[campus.sites[si].region.index()].hub.index();
            [si, hub, 0]
        };
        let mut lists: Vec<Vec<HostId>> = Vec::new();
        let mut index = vec![0u32; ns * ROLES];
        let mut cache: std::collections::HashMap<(usize, usize), u32> = std::collections::HashMap::new();
        for r in 0..ROLES {
            let all_idx = lists.len() as u32;
            lists.push(campus.servers_by_role[r].clone());
            for si in 0..ns {
                let found = chain(si).into_iter().find(|&s| !by_role_site[r][s].is_empty());
                index[si * ROLES + r] = match found {
                    Some(s) => *cache.entry((r, s)).or_insert_with(|| {
                        lists.push(by_role_site[r][s].clone());
                        (lists.len() - 1) as u32
                    }),
                    None => all_idx,
                };
            }
        }
        let mut dc_lists = vec![Vec::new(); ns * nd];
        let dc = Role::Dc as usize;
        for si in 0..ns {
            for d in 0..nd {
                let of_domain = |s: usize| -> Vec<HostId> {
                    by_role_site[dc][s]
                        .iter()
                        .copied()
                        .filter(|&h| campus.hosts[h.index()].domain == Some(DomainId::from_index(d)))
                        .collect()
                };
                let mut list = Vec::new();
                for s in chain(si) {
                    list = of_domain(s);
                    if !list.is_empty() {
                        break;
                    }
                }
                if list.is_empty() {
                    list = campus.servers_by_role[dc]
                        .iter()
                        .copied()
                        .filter(|&h| campus.hosts[h.index()].domain == Some(DomainId::from_index(d)))
                        .collect();
                }
                dc_lists[si * nd + d] = list;
            }
        }
        campus.home_lists = lists;
        campus.home_index = index;
        campus.dc_lists = dc_lists;

        // Popularity: endpoints of a role (servers and VIPs of clusters providing it),
        // weight 1/rank^zipf. A campus puts its busiest services behind NLB [assumption]:
        // the VIPs take the top ranks, in a random order, and the servers the rest.
        let zipf = self.sc.traffic.popularity_zipf;
        let nr = campus.regions.len();
        let mut popular = Vec::with_capacity(ROLES);
        for (r, role) in Role::ALL.iter().enumerate() {
            let mut eps: Vec<Endpoint> = campus.servers_by_role[r].iter().map(|&h| Endpoint::Host(h)).collect();
            eps.extend(
                campus
                    .clusters
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.service == *role)
                    .map(|(i, _)| Endpoint::Vip(ClusterId::from_index(i))),
            );
            let mut rng = self.stream(entity::CAMPUS, r, purpose::POPULARITY);
            let servers = campus.servers_by_role[r].len();
            let mut ranks: Vec<usize> = (0..eps.len()).map(|i| (i + eps.len() - servers) % eps.len()).collect();
            for group in [0..servers, servers..eps.len()] {
                let base = group.start;
                for i in (1..group.len()).rev() {
                    let j = rng.random_range(0..=i);
                    ranks.swap(base + i, base + j);
                }
            }
            let weight = |i: usize| 1.0 / ((ranks[i] + 1) as f64).powf(zipf);
            let global = WeightedAliasIndex::new((0..eps.len()).map(weight).collect()).ok();
            let mut by_region = Vec::with_capacity(nr);
            for reg in 0..nr {
                let idx: Vec<usize> = (0..eps.len())
                    .filter(|&i| campus.sites[campus.endpoint_site(eps[i]).index()].region.index() == reg)
                    .collect();
                let table = WeightedAliasIndex::new(idx.iter().map(|&i| weight(i)).collect()).ok();
                by_region.push((idx.iter().map(|&i| eps[i]).collect(), table));
            }
            popular.push(PopularSet { endpoints: eps, global, by_region });
        }
        campus.popular = popular;
    }
}

/// Samples a mix with one category excluded (renormalising the rest).
fn sample_without(mix: &Mix<ClientCategory>, skip: ClientCategory, u: f64) -> ClientCategory {
    let total: f64 = mix.entries().iter().filter(|e| e.0 != skip).map(|e| e.1).sum();
    let mut acc = 0.0;
    let mut last = ClientCategory::Managed;
    for &(cat, w) in mix.entries().iter().filter(|e| e.0 != skip) {
        acc += w / total;
        last = cat;
        if u < acc {
            return cat;
        }
    }
    last
}

/// Packs aligned power-of-two blocks (given as prefix lengths) into one enclosing block:
/// returns its prefix length and each block's offset. Largest first keeps every block
/// aligned to its own size, so no two overlap.
fn pack(lens: &[u8]) -> (u8, Vec<u32>) {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut offsets = vec![0u32; lens.len()];
    let mut cursor: u64 = 0;
    for &i in &order {
        offsets[i] = cursor as u32;
        cursor += 1u64 << (32 - lens[i]);
    }
    let total = cursor.max(1);
    let len = 32 - total.next_power_of_two().trailing_zeros() as u8;
    (len, offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_fair() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(apportion(7, &[0.5, 0.25, 0.25]).iter().sum::<u64>(), 7);
        assert_eq!(apportion(0, &[1.0]), vec![0]);
    }

    #[test]
    fn pack_aligns_blocks() {
        let (len, offs) = pack(&[24, 26, 23, 26]);
        // 512 + 256 + 64 + 64 = 896 -> a /22 (1024)
        assert_eq!(len, 22);
        assert_eq!(offs[2], 0);
        assert_eq!(offs[0], 512);
        for (i, &l) in [24u8, 26, 23, 26].iter().enumerate() {
            assert_eq!(offs[i] % (1 << (32 - l)), 0, "block {i} aligned");
        }
    }

    #[test]
    fn prefix_for_fits() {
        assert_eq!(prefix_for(10, 0.75, 22), 26);
        assert_eq!(prefix_for(100, 0.75, 22), 24);
        assert_eq!(prefix_for(10_000, 0.75, 22), 22);
    }
}
