//! The generated campus: structural invariants, counts against the scenario, the white-paper
//! figures, determinism by seed, stream independence, and routes against petgraph.

use std::collections::HashSet;

use domiso::engine::rng::RngStreams;
use domiso::model::campus::{Campus, SiteKind};
use domiso::model::census::Census;
use domiso::model::ids::{HostId, SiteId};
use domiso::model::kinds::{ClientCategory, HostKind, Role};
use domiso::model::topology::TopoNode;
use domiso::model::traffic::TrafficModel;
use domiso::model::world::host_day_sessions;
use domiso::scenario::build::Scenario;
use rand::{RngExt, SeedableRng};

use crate::common::{domiso, full, reduced};

fn check_invariants(sc: &Scenario, c: &Campus) {
    // Host ranges: subnets partition the hosts in order; buildings and sites agree.
    let mut next = 0u32;
    for (i, s) in c.subnets.iter().enumerate() {
        assert_eq!(s.hosts.start, next, "subnet {i} starts where the previous ended");
        next = s.hosts.end;
        assert!(
            (18..=26).contains(&s.prefix.prefix_len()) || s.prefix.prefix_len() <= 26,
            "prefix /{}",
            s.prefix.prefix_len()
        );
        assert!(s.prefix.prefix_len() >= 18, "subnet {i} is /{}, larger than /18", s.prefix.prefix_len());
        assert!(sc.campus.address_space.contains(&s.prefix), "subnet {} inside the address space", s.prefix);
        let b = &c.buildings[s.building.index()];
        assert!(b.subnets.contains(&(i as u32)));
        assert!(b.prefix.contains(&s.prefix), "building block holds its subnets");
        assert!(c.sites[s.site.index()].prefix.contains(&s.prefix), "site block holds its subnets");
    }
    assert_eq!(next as usize, c.hosts.len(), "every host is in exactly one subnet");
    for (bi, b) in c.buildings.iter().enumerate() {
        let first = &c.subnets[b.subnets.start as usize];
        let last = &c.subnets[b.subnets.end as usize - 1];
        assert_eq!(b.hosts, first.hosts.start..last.hosts.end, "building {bi} host range");
    }
    // Every host's address is a usable address of its own subnet, and unique.
    let mut addrs = HashSet::new();
    for (i, h) in c.hosts.iter().enumerate() {
        let s = &c.subnets[h.subnet.index()];
        assert!(s.hosts.contains(&(i as u32)), "host {i} in its subnet's range");
        let net = u32::from(s.prefix.network());
        let bcast = u32::from(s.prefix.broadcast());
        assert!(h.addr > net + 1 && h.addr < bcast, "host {i} address is usable in {}", s.prefix);
        assert_eq!(h.building, s.building);
        assert_eq!(h.site, s.site);
        assert!(addrs.insert(h.addr), "address of host {i} is unique");
    }
    // No two subnets overlap.
    let mut nets: Vec<(u32, u32)> =
        c.subnets.iter().map(|s| (u32::from(s.prefix.network()), u32::from(s.prefix.broadcast()))).collect();
    nets.sort();
    for w in nets.windows(2) {
        assert!(w[0].1 < w[1].0, "subnets {:?} and {:?} overlap", w[0], w[1]);
    }
    // Counts match the scenario.
    assert_eq!(c.clients_total(), sc.campus.clients as usize);
    assert_eq!(c.sites.len(), sc.campus.sites as usize);
    assert_eq!(c.regions.len(), sc.campus.regions as usize);
    assert_eq!(c.users.len(), sc.campus.users as usize);
    assert_eq!(c.domains.len(), sc.domains.len());
    assert_eq!(c.groups.len(), sc.groups.len());
    assert_eq!(c.clusters.len(), sc.nlb.clusters as usize);
    assert!(c.users.iter().all(|u| u.machines >= 1), "every user owns a machine");
    assert_eq!(c.users.iter().map(|u| u.machines as usize).sum::<usize>(), c.clients_total());
    for h in &c.hosts {
        assert_eq!(h.owner.is_some(), h.is_client(), "clients, and only clients, have owners");
        assert_eq!(
            h.is_managed(),
            matches!(h.kind, HostKind::Client(ClientCategory::Managed)) || (h.kind.is_server() && h.os.ipsec_capable())
        );
    }
    for cl in &c.clusters {
        let n = cl.nodes.len() as u32;
        assert!((sc.nlb.nodes_min..=sc.nlb.nodes_max).contains(&n));
        for node in cl.nodes.clone() {
            assert_eq!(c.hosts[node as usize].subnet, cl.subnet, "NLB nodes share the VIP's subnet");
        }
    }
    // Site-placed servers follow their rule: ceil(clients / per) at sites above the threshold.
    for role in sc.server_roles.iter().filter(|r| r.placement == domiso::scenario::build::Placement::Site) {
        for (si, site) in c.sites.iter().enumerate() {
            let have = site
                .hosts
                .clone()
                .filter(|&h| {
                    c.hosts[h as usize].kind == HostKind::Server(role.role) && c.hosts[h as usize].cluster.is_none()
                })
                .count() as u32;
            let want =
                if site.clients >= role.min_site_clients.max(1) { site.clients.div_ceil(role.per_clients) } else { 0 };
            if want > 0 || si != 0 {
                assert_eq!(have, want, "{} servers at site {si}", role.role);
            }
        }
    }
}

#[test]
fn reduced_campus_invariants() {
    let (sc, c) = reduced();
    check_invariants(sc, c);
}

#[test]
fn full_campus_invariants_and_white_paper_figures() {
    let (sc, c) = full();
    check_invariants(sc, c);
    let census = Census::of(c);
    assert!(census.clients_total >= 260_000, "[WP] more than 260,000 clients");
    assert!(census.sites.total > 500, "[WP] more than 500 locations");
    assert_eq!(census.users_total, 140_000);
    assert!(census.domains.len() >= 3);
    let main = census.domains.iter().find(|d| d.main).expect("a main domain");
    assert!(census.domains.iter().all(|d| d.computers <= main.computers), "the main domain is the largest");
    assert!(
        (60.0..=75.0).contains(&main.pct_of_joined),
        "[DOMAIN] 60-75% in the main domain, got {}",
        main.pct_of_joined
    );
    let server_pct = 100.0 * census.servers_total as f64 / census.hosts_total as f64;
    assert!((3.5..=6.5).contains(&server_pct), "[DOMAIN] servers about 5% of hosts, got {server_pct:.2}%");
    let unmanaged_pct = 100.0 * census.unmanaged as f64 / census.hosts_total as f64;
    assert!((25.0..=30.0).contains(&unmanaged_pct), "[DOMAIN] 25-30% not in a managed domain, got {unmanaged_pct:.2}%");
    assert!(census.nlb.clusters > 0 && census.nlb.nodes_max <= 32 && census.nlb.nodes_min >= 2);
    for role in ["dc", "dns", "dhcp", "wins", "ris", "file", "web", "mail", "lob"] {
        assert!(census.servers_by_role.get(role).copied().unwrap_or(0) > 0, "servers of role {role}");
    }
    for cat in ["managed", "test-domain", "legacy-windows", "mac", "linux", "xbox", "vpn-guest"] {
        assert!(census.client_categories.get(cat).copied().unwrap_or(0) > 0, "clients of category {cat}");
    }
    assert!(census.groups.iter().any(|g| g.name == "No-IPsec" && g.members > 0));
    assert!(
        census.boundary_pct_of_joined > 0.0 && census.boundary_pct_of_joined < 2.0,
        "[WP] boundary under 2% of joined"
    );
    assert!(census.laptops > 0);
    assert!(census.users_with_several_machines > 0, "[WP] employees often have 2+ machines");
    // Every domain has a domain controller, and Kerberos finds one of the host's domain.
    assert!(census.domains.iter().all(|d| d.domain_controllers > 0));
    for h in (0..c.hosts.len()).step_by(997) {
        let host = c.host(HostId::from_index(h));
        if let Some(d) = host.domain {
            let dc = c.home_server(HostId::from_index(h), Role::Dc).expect("a DC");
            assert_eq!(c.host(dc).domain, Some(d), "home DC of host {h} is of its domain");
        }
    }
}

#[test]
fn category_mix_follows_the_scenario_within_sampling_error() {
    let (sc, c) = full();
    let n_placed =
        c.hosts.iter().filter(|h| h.is_client() && h.kind != HostKind::Client(ClientCategory::VpnGuest)).count() as f64;
    let vpn_share = sc.campus.client_mix.share(ClientCategory::VpnGuest);
    for &(cat, share) in sc.campus.client_mix.entries() {
        if cat == ClientCategory::VpnGuest {
            continue;
        }
        let p = share / (1.0 - vpn_share);
        let got = c.hosts.iter().filter(|h| h.kind == HostKind::Client(cat)).count() as f64;
        let sigma = (n_placed * p * (1.0 - p)).sqrt();
        assert!((got - n_placed * p).abs() < 5.0 * sigma + 1.0, "{cat}: {got} vs expected {:.0}", n_placed * p);
    }
}

#[test]
fn same_seed_same_campus_other_seed_other_campus() {
    let (sc, _) = reduced();
    let a = serde_json::to_string(&Census::of(&Campus::generate(sc, 7).unwrap())).unwrap();
    let b = serde_json::to_string(&Census::of(&Campus::generate(sc, 7).unwrap())).unwrap();
    let c = serde_json::to_string(&Census::of(&Campus::generate(sc, 8).unwrap())).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let x = Campus::generate(sc, 7).unwrap();
    let y = Campus::generate(sc, 7).unwrap();
    let fingerprint = |c: &Campus| {
        c.hosts
            .iter()
            .map(|h| format!("{}{:?}{:?}{}{}", h.addr, h.os, h.domain, h.salt, h.groups.0))
            .collect::<String>()
    };
    assert_eq!(fingerprint(&x), fingerprint(&y));
}

#[test]
fn campus_json_cli_is_byte_identical_per_seed() {
    let args = ["campus", "scenarios/reduced-campus.toml", "--json"];
    let a = domiso(&args);
    let b = domiso(&args);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let c = domiso(&["campus", "scenarios/reduced-campus.toml", "--json", "--seed", "2"]);
    assert_ne!(a.stdout, c.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    for key in [
        "clients_total",
        "sites",
        "domains",
        "os_mix_clients",
        "domain_joined",
        "unmanaged",
        "subnets_by_prefix",
        "groups",
        "nlb",
    ] {
        assert!(v.get(key).is_some(), "campus --json has {key}");
    }
}

#[test]
fn adding_a_host_does_not_change_another_hosts_draws() {
    let (sc, c) = reduced();
    let traffic = TrafficModel::new(sc);
    let streams = RngStreams::new(1);
    let mut bigger = c.clone();
    // Append one client to the last subnet (and its building and site).
    let mut extra = bigger.hosts.iter().rev().find(|h| h.is_client()).unwrap().clone();
    extra.addr += 1;
    let last_subnet = bigger.subnets.len() - 1;
    extra.subnet = domiso::model::ids::SubnetId::from_index(last_subnet);
    extra.building = bigger.subnets[last_subnet].building;
    extra.site = bigger.subnets[last_subnet].site;
    bigger.hosts.push(extra);
    bigger.subnets[last_subnet].hosts.end += 1;
    let b = bigger.subnets[last_subnet].building.index();
    bigger.buildings[b].hosts.end += 1;
    let s = bigger.subnets[last_subnet].site.index();
    bigger.sites[s].hosts.end += 1;
    let mut compared = 0;
    for h in (0..c.hosts.len()).step_by(101) {
        let id = HostId::from_index(h);
        let strip = |v: Vec<(domiso::engine::SimTime, Option<domiso::model::traffic::Session>)>| {
            v.into_iter()
                .map(|(t, s)| (t, s.map(|s| (s.app, s.bytes_up, s.bytes_down, s.duration))))
                .collect::<Vec<_>>()
        };
        let before = strip(host_day_sessions(c, &traffic, &streams, id, 0));
        let after = strip(host_day_sessions(&bigger, &traffic, &streams, id, 0));
        assert_eq!(before, after, "host {h}'s sessions changed when a host was added");
        compared += before.len();
    }
    assert!(compared > 1000, "enough sessions compared ({compared})");
}

#[test]
fn routes_agree_with_shortest_paths_on_the_graph() {
    let (_, c) = reduced();
    let t = &c.topology;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        let a = rng.random_range(0..c.buildings.len());
        let b = rng.random_range(0..c.buildings.len());
        let (ba, bb) = (&c.buildings[a], &c.buildings[b]);
        let route = t.route(
            domiso::model::ids::BuildingId::from_index(a),
            ba.site,
            domiso::model::ids::BuildingId::from_index(b),
            bb.site,
        );
        let costs = petgraph::algo::dijkstra(&t.graph, t.building_node[a], Some(t.building_node[b]), |e| {
            t.link(*e.weight()).latency.as_nanos()
        });
        let want = costs[&t.building_node[b]];
        assert_eq!(route.latency.as_nanos(), want, "route {a} -> {b}");
        // The bottleneck gathered while the route is built is its thinnest link's.
        let thinnest = route.hops().map(|h| t.link(h.link).capacity_bps).min().unwrap_or(u64::MAX);
        assert_eq!(route.bottleneck_bps(), thinnest, "route {a} -> {b}");
        // Wide-area hops only between sites, LAN hops only at the ends.
        if ba.site == bb.site {
            assert!(route.hops().all(|h| !t.link(h.link).kind.is_wide_area()));
        }
    }
    // A route within one building crosses nothing: no bottleneck.
    let b0 = domiso::model::ids::BuildingId::from_index(0);
    assert_eq!(t.route(b0, c.buildings[0].site, b0, c.buildings[0].site).bottleneck_bps(), u64::MAX);
    // The tree is connected and rooted at headquarters.
    assert_eq!(c.sites[0].kind, SiteKind::Hq);
    assert_eq!(petgraph::algo::connected_components(&t.graph), 1);
    assert_eq!(t.graph.edge_count(), t.graph.node_count() - 1, "a tree");
    let hq = t.site_node[0];
    assert!(matches!(t.graph[hq], TopoNode::Site(SiteId(0))));
}
