//! Census of a generated campus: the counts `domiso campus` prints and `summary.json`
//! starts from.
//!
//! Contract: pure and deterministic; every collection is ordered (BTreeMap or generation
//! order), so the serialised census is byte-identical for the same campus.

use std::collections::BTreeMap;

use serde::Serialize;

use super::campus::{Campus, SiteKind};
use super::kinds::{GroupKind, HostKind};
use super::topology::LinkKind;

#[derive(Debug, Clone, Serialize)]
pub struct Census {
    pub seed: u64,
    pub hosts_total: u64,
    pub clients_total: u64,
    pub servers_total: u64,
    pub users_total: u64,
    pub machines_per_user_mean: f64,
    pub users_with_several_machines: u64,
    pub sites: SiteCensus,
    pub buildings_total: u64,
    pub subnets_total: u64,
    pub subnets_by_prefix: BTreeMap<String, u64>,
    pub subnets_by_purpose: BTreeMap<String, u64>,
    pub domains: Vec<DomainCensus>,
    pub main_domain: Option<String>,
    pub domain_joined: u64,
    pub unmanaged: u64,
    pub domain_joined_pct: f64,
    pub laptops: u64,
    pub client_categories: BTreeMap<String, u64>,
    pub servers_by_role: BTreeMap<String, u64>,
    pub os_mix_clients: BTreeMap<String, u64>,
    pub os_mix_servers: BTreeMap<String, u64>,
    pub groups: Vec<GroupCensus>,
    pub boundary_machines: u64,
    pub boundary_pct_of_joined: f64,
    pub nlb: NlbCensus,
    pub wan: WanCensus,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteCensus {
    pub total: u64,
    pub hq: u64,
    pub hubs: u64,
    pub branches: u64,
    pub regions: u64,
    pub largest_site_clients: u64,
    pub smallest_site_clients: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainCensus {
    pub name: String,
    pub main: bool,
    pub computers: u64,
    pub pct_of_joined: f64,
    pub domain_controllers: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupCensus {
    pub name: String,
    pub kind: GroupKind,
    pub members: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NlbCensus {
    pub clusters: u64,
    pub nodes_total: u64,
    pub nodes_min: u64,
    pub nodes_max: u64,
    pub by_service: BTreeMap<String, u64>,
    pub by_affinity: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WanCensus {
    pub wan_links: u64,
    pub backbone_links: u64,
    /// WAN circuits bought, by capacity in kbit/s.
    pub circuits_kbps: BTreeMap<u64, u64>,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { round4(100.0 * part as f64 / whole as f64) }
}

/// Rounds to 4 decimals so reports stay readable (the value is still deterministic).
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

impl Census {
    pub fn of(campus: &Campus) -> Census {
        let mut c = Census {
            seed: campus.seed,
            hosts_total: campus.hosts.len() as u64,
            clients_total: 0,
            servers_total: 0,
            users_total: campus.users.len() as u64,
            machines_per_user_mean: 0.0,
            users_with_several_machines: campus.users.iter().filter(|u| u.machines > 1).count() as u64,
            sites: SiteCensus {
                total: campus.sites.len() as u64,
                hq: campus.sites.iter().filter(|s| s.kind == SiteKind::Hq).count() as u64,
                hubs: campus.sites.iter().filter(|s| s.kind == SiteKind::Hub).count() as u64,
                branches: campus.sites.iter().filter(|s| s.kind == SiteKind::Branch).count() as u64,
                regions: campus.regions.len() as u64,
                largest_site_clients: campus.sites.iter().map(|s| u64::from(s.clients)).max().unwrap_or(0),
                smallest_site_clients: campus.sites.iter().map(|s| u64::from(s.clients)).min().unwrap_or(0),
            },
            buildings_total: campus.buildings.len() as u64,
            subnets_total: campus.subnets.len() as u64,
            subnets_by_prefix: BTreeMap::new(),
            subnets_by_purpose: BTreeMap::new(),
            domains: Vec::new(),
            main_domain: campus.main_domain().map(|d| campus.domains[d.index()].name.clone()),
            domain_joined: 0,
            unmanaged: 0,
            domain_joined_pct: 0.0,
            laptops: 0,
            client_categories: BTreeMap::new(),
            servers_by_role: BTreeMap::new(),
            os_mix_clients: BTreeMap::new(),
            os_mix_servers: BTreeMap::new(),
            groups: Vec::new(),
            boundary_machines: 0,
            boundary_pct_of_joined: 0.0,
            nlb: NlbCensus {
                clusters: campus.clusters.len() as u64,
                nodes_total: campus.clusters.iter().map(|c| c.nodes.len() as u64).sum(),
                nodes_min: campus.clusters.iter().map(|c| c.nodes.len() as u64).min().unwrap_or(0),
                nodes_max: campus.clusters.iter().map(|c| c.nodes.len() as u64).max().unwrap_or(0),
                by_service: BTreeMap::new(),
                by_affinity: BTreeMap::new(),
            },
            wan: WanCensus { wan_links: 0, backbone_links: 0, circuits_kbps: BTreeMap::new() },
        };
        for s in &campus.subnets {
            *c.subnets_by_prefix.entry(format!("/{}", s.prefix.prefix_len())).or_default() += 1;
            *c.subnets_by_purpose.entry(s.purpose.name().to_string()).or_default() += 1;
        }
        let boundary: Vec<usize> =
            campus.groups.iter().enumerate().filter(|(_, g)| g.kind == GroupKind::Boundary).map(|(i, _)| i).collect();
        let mut per_domain = vec![0u64; campus.domains.len()];
        let mut dcs = vec![0u64; campus.domains.len()];
        let mut group_members = vec![0u64; campus.groups.len()];
        for h in &campus.hosts {
            match h.kind {
                HostKind::Client(cat) => {
                    c.clients_total += 1;
                    *c.client_categories.entry(cat.name().into()).or_default() += 1;
                    *c.os_mix_clients.entry(h.os.name().into()).or_default() += 1;
                }
                HostKind::Server(role) => {
                    c.servers_total += 1;
                    *c.servers_by_role.entry(role.name().into()).or_default() += 1;
                    *c.os_mix_servers.entry(h.os.name().into()).or_default() += 1;
                    if let (super::kinds::Role::Dc, Some(d)) = (role, h.domain) {
                        dcs[d.index()] += 1;
                    }
                }
            }
            if let Some(d) = h.domain {
                c.domain_joined += 1;
                per_domain[d.index()] += 1;
                if boundary.iter().any(|&g| h.groups.0 & (1u64 << g) != 0) {
                    c.boundary_machines += 1;
                }
            } else {
                c.unmanaged += 1;
            }
            c.laptops += u64::from(h.is_laptop());
            for (g, m) in group_members.iter_mut().enumerate() {
                *m += (h.groups.0 >> g) & 1;
            }
        }
        c.machines_per_user_mean = if campus.users.is_empty() {
            0.0
        } else {
            round4(campus.users.iter().map(|u| f64::from(u.machines)).sum::<f64>() / campus.users.len() as f64)
        };
        c.domain_joined_pct = pct(c.domain_joined, c.hosts_total);
        c.boundary_pct_of_joined = pct(c.boundary_machines, c.domain_joined);
        c.domains = campus
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| DomainCensus {
                name: d.name.clone(),
                main: d.main,
                computers: per_domain[i],
                pct_of_joined: pct(per_domain[i], c.domain_joined),
                domain_controllers: dcs[i],
            })
            .collect();
        c.groups = campus
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| GroupCensus { name: g.name.clone(), kind: g.kind, members: group_members[i] })
            .collect();
        for cl in &campus.clusters {
            *c.nlb.by_service.entry(cl.service.name().into()).or_default() += 1;
            *c.nlb.by_affinity.entry(cl.affinity.name().into()).or_default() += 1;
        }
        for l in campus.topology.links() {
            match l.kind {
                LinkKind::Wan => {
                    c.wan.wan_links += 1;
                    *c.wan.circuits_kbps.entry(l.capacity_bps / 1000).or_default() += 1;
                }
                LinkKind::Backbone => c.wan.backbone_links += 1,
                LinkKind::Lan => {}
            }
        }
        c
    }

    /// Human-readable summary for the terminal.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "campus (seed {})", self.seed);
        let _ = writeln!(
            s,
            "  hosts {:>9}   clients {:>9}   servers {:>7}   users {:>8} ({:.2} machines each)",
            self.hosts_total, self.clients_total, self.servers_total, self.users_total, self.machines_per_user_mean
        );
        let _ = writeln!(
            s,
            "  sites {:>9}   (hq {}, hubs {}, branches {}; {} regions; {} to {} clients)",
            self.sites.total,
            self.sites.hq,
            self.sites.hubs,
            self.sites.branches,
            self.sites.regions,
            self.sites.smallest_site_clients,
            self.sites.largest_site_clients
        );
        let _ = writeln!(s, "  buildings {:>5}   subnets {:>9}", self.buildings_total, self.subnets_total);
        let prefixes: Vec<String> = self.subnets_by_prefix.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(s, "    by prefix: {}", prefixes.join(", "));
        let _ = writeln!(
            s,
            "  domain-joined {:>9} ({:.1}%)   unmanaged {:>8}   laptops {:>8}",
            self.domain_joined, self.domain_joined_pct, self.unmanaged, self.laptops
        );
        let _ = writeln!(s, "  domains:");
        for d in &self.domains {
            let _ = writeln!(
                s,
                "    {:<14} {:>8} computers ({:>5.1}% of joined), {:>3} DCs{}",
                d.name,
                d.computers,
                d.pct_of_joined,
                d.domain_controllers,
                if d.main { "  [main]" } else { "" }
            );
        }
        let cats: Vec<String> = self.client_categories.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  clients: {}", cats.join(", "));
        let os: Vec<String> = self.os_mix_clients.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  client OS: {}", os.join(", "));
        let roles: Vec<String> = self.servers_by_role.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  servers: {}", roles.join(", "));
        let _ = writeln!(s, "  groups:");
        for g in &self.groups {
            let _ = writeln!(s, "    {:<26} {:<13} {:>7} members", g.name, g.kind.name(), g.members);
        }
        let _ = writeln!(
            s,
            "  boundary machines {} ({:.2}% of joined)",
            self.boundary_machines, self.boundary_pct_of_joined
        );
        let _ = writeln!(
            s,
            "  NLB clusters {} ({} nodes, {} to {} per cluster)",
            self.nlb.clusters, self.nlb.nodes_total, self.nlb.nodes_min, self.nlb.nodes_max
        );
        let _ = writeln!(s, "  WAN links {} + backbone {}", self.wan.wan_links, self.wan.backbone_links);
        s
    }
}

/// One NLB cluster, as `domiso campus --clusters` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterRow {
    pub index: u32,
    pub service: String,
    pub affinity: String,
    pub site: String,
    pub vip: String,
    pub nodes: u32,
    /// Node operating systems, by node index.
    pub node_os: Vec<String>,
}

pub fn cluster_rows(campus: &Campus) -> Vec<ClusterRow> {
    campus
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| ClusterRow {
            index: i as u32,
            service: c.service.name().into(),
            affinity: c.affinity.name().into(),
            site: campus.sites[c.site.index()].name.clone(),
            vip: std::net::Ipv4Addr::from(c.vip).to_string(),
            nodes: c.nodes.len() as u32,
            node_os: c.nodes.clone().map(|h| campus.hosts[h as usize].os.name().to_string()).collect(),
        })
        .collect()
}

pub fn render_clusters(rows: &[ClusterRow]) -> String {
    let mut out = format!(
        "{:>5}  {:<8} {:<8} {:<16} {:<15} {:>5}  node OS\n",
        "index", "service", "affinity", "site", "vip", "nodes"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>5}  {:<8} {:<8} {:<16} {:<15} {:>5}  {}\n",
            r.index,
            r.service,
            r.affinity,
            r.site,
            r.vip,
            r.nodes,
            r.node_os.join(",")
        ));
    }
    out
}
