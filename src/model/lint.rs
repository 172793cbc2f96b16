//! Policy lint: static findings on a scenario's IPsec configuration, in the spirit of
//! Batfish's filter-line reachability but for Windows IPsec policy and the white paper's
//! design rules. Each finding names the policy, rules and filters involved, says why it
//! matters and how to fix it.
//!
//! Contract: pure (campus and scenario in, findings out), deterministic order (policies,
//! then rules, then filters in scenario order; host checks after). Severity: `error` breaks
//! connectivity or isolation for some hosts (the CLI exits 1), `warning` is error-prone or
//! against the paper's design rules, `info` is a known, accepted risk.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::campus::{Campus, SubnetPurpose};
use super::ids::HostId;
use super::kinds::{ClientCategory, GroupKind, HostKind, Role};
use super::policy::{ActionKind, AddrSpec, FilterSpec, Mode, Principal, weight};
use super::secnet::SecNet;
use crate::scenario::build::{IpsecParams, Scenario};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// The kinds of finding; the kebab-case names are stable.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A filter that can never decide: a filter of at least its weight covers all of it.
    ShadowedFilter,
    /// Two filters with different actions overlap without one nesting inside the other
    /// (or with equal weight), so which one wins depends on weighting details.
    OverlapConflict,
    /// Secure subnets smaller than /18 or exempt subnets larger than /23 [WP "IPsec Design"].
    GapDesign,
    /// Domain controllers, DNS, DHCP or WINS not reachable in clear: no host can get
    /// policy or Kerberos tickets (a bootstrap deadlock).
    InfrastructureNotExempt,
    /// Boundary machines under a policy stricter than Request.
    BoundaryNotRequest,
    /// A home range employees use is inside the secure subnets and not exempt.
    HomeRangeNotExempt,
    /// Foreign (hotel, partner) ranges overlap the secure subnets: roaming laptops try
    /// IPsec there.
    ForeignRangeOverlap,
    /// VPN/L2TP servers under a policy that refuses unauthenticated tunnel traffic.
    VpnServerPolicy,
    /// Managed, IPsec-capable hosts that match no GPO.
    HostWithoutPolicy,
}

impl FindingKind {
    pub const ALL: [FindingKind; 9] = [
        FindingKind::ShadowedFilter,
        FindingKind::OverlapConflict,
        FindingKind::GapDesign,
        FindingKind::InfrastructureNotExempt,
        FindingKind::BoundaryNotRequest,
        FindingKind::HomeRangeNotExempt,
        FindingKind::ForeignRangeOverlap,
        FindingKind::VpnServerPolicy,
        FindingKind::HostWithoutPolicy,
    ];
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::ShadowedFilter => "shadowed-filter",
            FindingKind::OverlapConflict => "overlap-conflict",
            FindingKind::GapDesign => "gap-design",
            FindingKind::InfrastructureNotExempt => "infrastructure-not-exempt",
            FindingKind::BoundaryNotRequest => "boundary-not-request",
            FindingKind::HomeRangeNotExempt => "home-range-not-exempt",
            FindingKind::ForeignRangeOverlap => "foreign-range-overlap",
            FindingKind::VpnServerPolicy => "vpn-server-policy",
            FindingKind::HostWithoutPolicy => "host-without-policy",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// The IPsec policy concerned, if one.
    pub policy: Option<String>,
    /// Rules (by filter list and action) and filters involved.
    pub rules: Vec<String>,
    pub filters: Vec<String>,
    /// Hosts affected, where the finding is about hosts.
    pub hosts: Option<u64>,
    /// What is wrong and why it matters.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// One filter of a policy with where it came from.
struct Located<'a> {
    rule: usize,
    filter: &'a FilterSpec,
    action: ActionKind,
    rule_name: String,
}

/// Address sets the lint reasons about: the campus addresses a spec denotes, or
/// `None` for "any" and "me" (which the lint treats as unknown hosts).
fn members(spec: &AddrSpec, campus: &Campus) -> Option<BTreeSet<u32>> {
    match spec {
        AddrSpec::Role(r) => Some(
            campus
                .hosts
                .iter()
                .filter(|h| h.kind == HostKind::Server(*r))
                .map(|h| h.addr)
                .chain(campus.clusters.iter().filter(|c| c.service == *r).map(|c| c.vip))
                .collect(),
        ),
        AddrSpec::Group(g, _) => Some(campus.hosts.iter().filter(|h| h.groups.contains(*g)).map(|h| h.addr).collect()),
        _ => None,
    }
}

fn prefix_contains(outer: &Ipv4Net, inner: &Ipv4Net) -> bool {
    outer.prefix_len() <= inner.prefix_len() && outer.contains(&inner.network())
}

/// `a` covers every address `b` can denote.
fn addr_covers(a: &AddrSpec, b: &AddrSpec, campus: &Campus) -> bool {
    match (a, b) {
        (AddrSpec::Any, _) => true,
        (_, AddrSpec::Any) => false,
        (AddrSpec::Me, AddrSpec::Me) => true,
        (AddrSpec::Prefix(x), AddrSpec::Prefix(y)) => prefix_contains(x, y),
        (AddrSpec::Prefix(x), AddrSpec::Role(_) | AddrSpec::Group(..)) => {
            members(b, campus).is_some_and(|m| m.iter().all(|&addr| x.contains(&std::net::Ipv4Addr::from(addr))))
        }
        (AddrSpec::Prefix(x), AddrSpec::Purpose(p)) => {
            campus.subnets.iter().filter(|s| s.purpose == *p).all(|s| prefix_contains(x, &s.prefix))
        }
        (x, y) => x == y,
    }
}

/// `a` and `b` can denote a common address.
fn addr_meets(a: &AddrSpec, b: &AddrSpec, campus: &Campus) -> bool {
    match (a, b) {
        (AddrSpec::Any, _) | (_, AddrSpec::Any) | (AddrSpec::Me, _) | (_, AddrSpec::Me) => true,
        (AddrSpec::Prefix(x), AddrSpec::Prefix(y)) => prefix_contains(x, y) || prefix_contains(y, x),
        (AddrSpec::Prefix(x), other) | (other, AddrSpec::Prefix(x)) => match other {
            AddrSpec::Purpose(p) => campus
                .subnets
                .iter()
                .filter(|s| s.purpose == *p)
                .any(|s| s.prefix.contains(&x.network()) || x.contains(&s.prefix.network())),
            _ => members(other, campus)
                .is_some_and(|m| m.iter().any(|&addr| x.contains(&std::net::Ipv4Addr::from(addr)))),
        },
        (x, y) => match (members(x, campus), members(y, campus)) {
            (Some(mx), Some(my)) => mx.intersection(&my).next().is_some(),
            _ => x == y,
        },
    }
}

fn proto_covers(a: &FilterSpec, b: &FilterSpec) -> bool {
    (a.protocol.is_none() || a.protocol == b.protocol) && (a.port.is_none() || a.port == b.port)
}

fn proto_meets(a: &FilterSpec, b: &FilterSpec) -> bool {
    (a.protocol.is_none() || b.protocol.is_none() || a.protocol == b.protocol)
        && (a.port.is_none() || b.port.is_none() || a.port == b.port)
}

/// The far end of a mirrored "any/me <-> X" filter: such a filter is about X alone
/// (every host talking with X), which is how the paper's filter lists are written.
fn far_end(f: &FilterSpec) -> Option<&AddrSpec> {
    if !f.mirrored {
        return None;
    }
    match (&f.src, &f.dst) {
        (AddrSpec::Any | AddrSpec::Me, x) => Some(x),
        (x, AddrSpec::Any | AddrSpec::Me) => Some(x),
        _ => None,
    }
}

/// Every packet `b` matches, `a` matches too.
fn filter_covers(a: &FilterSpec, b: &FilterSpec, campus: &Campus) -> bool {
    if !proto_covers(a, b) {
        return false;
    }
    if let (Some(x), Some(y)) = (far_end(a), far_end(b)) {
        return addr_covers(x, y, campus);
    }
    let direct = |src: &AddrSpec, dst: &AddrSpec| {
        (addr_covers(&a.src, src, campus) && addr_covers(&a.dst, dst, campus))
            || (a.mirrored && addr_covers(&a.src, dst, campus) && addr_covers(&a.dst, src, campus))
    };
    direct(&b.src, &b.dst) && (!b.mirrored || direct(&b.dst, &b.src))
}

/// Some packet matches both. Two "any <-> X" filters meet when their X meet; traffic
/// between an address of one and an address of the other is the intended boundary between
/// lists, decided by weight, and not counted as an overlap.
fn filters_meet(a: &FilterSpec, b: &FilterSpec, campus: &Campus) -> bool {
    if !proto_meets(a, b) {
        return false;
    }
    if let (Some(x), Some(y)) = (far_end(a), far_end(b)) {
        return addr_meets(x, y, campus);
    }
    let meet = |s1: &AddrSpec, d1: &AddrSpec, s2: &AddrSpec, d2: &AddrSpec| {
        addr_meets(s1, s2, campus) && addr_meets(d1, d2, campus)
    };
    meet(&a.src, &a.dst, &b.src, &b.dst)
        || (a.mirrored && meet(&a.dst, &a.src, &b.src, &b.dst))
        || (b.mirrored && meet(&a.src, &a.dst, &b.dst, &b.src))
}

/// Lints the scenario's policy on its campus. `secnet` supplies host assignments.
pub fn lint(sc: &Scenario, campus: &Campus, secnet: &mut SecNet) -> Vec<Finding> {
    let mut out = Vec::new();
    let set = &sc.policy;
    let Some(params) = sc.ipsec.as_ref() else { return out };
    for pol in &set.policies {
        let located: Vec<Located> = pol
            .rules
            .iter()
            .enumerate()
            .flat_map(|(ri, r)| {
                let action = set.actions[r.action].kind;
                let rule_name = format!("{} -> {}", set.filter_lists[r.filter_list].name, set.actions[r.action].name);
                set.filter_lists[r.filter_list].filters.iter().map(move |f| Located {
                    rule: ri,
                    filter: f,
                    action,
                    rule_name: rule_name.clone(),
                })
            })
            .collect();
        filter_findings(&mut out, &pol.name, &located, campus);
    }
    host_findings(&mut out, sc, params, campus, secnet);
    out
}

fn filter_findings(out: &mut Vec<Finding>, policy: &str, fs: &[Located], campus: &Campus) {
    // Shadowed: covered by a filter of greater weight, or of equal weight in an earlier
    // position (the tie-break).
    for (i, f) in fs.iter().enumerate() {
        let wf = weight(f.filter);
        if let Some((_, g)) = fs.iter().enumerate().find(|&(j, g)| {
            j != i && filter_covers(g.filter, f.filter, campus) && {
                let wg = weight(g.filter);
                wg > wf || (wg == wf && (g.rule, j) < (f.rule, i))
            }
        }) {
            out.push(Finding {
                kind: FindingKind::ShadowedFilter,
                severity: Severity::Warning,
                policy: Some(policy.into()),
                rules: vec![f.rule_name.clone(), g.rule_name.clone()],
                filters: vec![f.filter.to_string(), g.filter.to_string()],
                hosts: None,
                message: format!(
                    "filter `{}` ({}) can never decide: `{}` ({}) matches every packet it matches and weighs at least as much",
                    f.filter, f.rule_name, g.filter, g.rule_name
                ),
                fix: "remove the shadowed filter, or make it more specific than the one covering it".into(),
            });
        }
    }
    // Conflicts: different actions, overlapping, and not a clean nesting where the inner
    // (more specific) filter outweighs the outer one.
    for i in 0..fs.len() {
        for j in i + 1..fs.len() {
            let (a, b) = (&fs[i], &fs[j]);
            if a.action == b.action || !filters_meet(a.filter, b.filter, campus) {
                continue;
            }
            let (wa, wb) = (weight(a.filter), weight(b.filter));
            let a_in_b = filter_covers(b.filter, a.filter, campus);
            let b_in_a = filter_covers(a.filter, b.filter, campus);
            let clean = (a_in_b && wa > wb) || (b_in_a && wb > wa);
            let shadowed = (a_in_b && wb >= wa) || (b_in_a && wa >= wb);
            if clean || shadowed {
                continue;
            }
            let equal = wa == wb;
            out.push(Finding {
                kind: FindingKind::OverlapConflict,
                severity: if equal { Severity::Error } else { Severity::Warning },
                policy: Some(policy.into()),
                rules: vec![a.rule_name.clone(), b.rule_name.clone()],
                filters: vec![a.filter.to_string(), b.filter.to_string()],
                hosts: None,
                message: if equal {
                    format!(
                        "`{}` ({}) and `{}` ({}) overlap with equal weight and different actions: which applies is undefined [WP: filters cannot overlap]",
                        a.filter,
                        a.action.name(),
                        b.filter,
                        b.action.name()
                    )
                } else {
                    let (win, lose) = if wa > wb { (a, b) } else { (b, a) };
                    format!(
                        "`{}` ({}) and `{}` ({}) partly overlap; where they do, `{}` wins by weight, so `{}` does not apply to part of the traffic it names",
                        a.filter,
                        a.action.name(),
                        b.filter,
                        b.action.name(),
                        win.filter,
                        lose.filter
                    )
                },
                fix: "split the filters so one nests inside the other with the more specific one carrying the exception, or make them disjoint".into(),
            });
        }
    }
    // Gap design [WP "IPsec Design"]: secure subnets /18 or larger, exempt subnets /23 or
    // smaller, pilots in /19 to /22.
    for f in fs {
        // Protocol- or port-specific filters carve services, not address bands.
        if f.filter.protocol.is_some() {
            continue;
        }
        for spec in [&f.filter.src, &f.filter.dst] {
            let AddrSpec::Prefix(p) = spec else { continue };
            let len = p.prefix_len();
            let problem = match f.action {
                ActionKind::Negotiate(_) if len > 22 => Some(format!(
                    "secure subnet {p} is smaller than the /19-/22 pilot band and collides with exemptions (/23 and smaller)"
                )),
                ActionKind::Permit | ActionKind::Block if len < 23 && len > 0 => {
                    Some(format!("exempt subnet {p} is larger than /23 and reaches into the secure or pilot band"))
                }
                _ => None,
            };
            if let Some(message) = problem {
                out.push(Finding {
                    kind: FindingKind::GapDesign,
                    severity: Severity::Warning,
                    policy: Some(policy.into()),
                    rules: vec![f.rule_name.clone()],
                    filters: vec![f.filter.to_string()],
                    hosts: None,
                    message,
                    fix: "keep secure subnets at /18 or larger, exempt subnets at /23 or smaller, and pilots in /19-/22 so filters never cancel out".into(),
                });
            }
        }
    }
}

fn host_findings(out: &mut Vec<Finding>, sc: &Scenario, params: &IpsecParams, campus: &Campus, net: &mut SecNet) {
    let set = &sc.policy;
    let policy_name = |p: Option<u16>| p.map(|p| set.policies[p as usize].name.clone());
    // A representative unmanaged client (for "can an untrusted host reach it").
    let untrusted = campus
        .hosts
        .iter()
        .position(|h| h.kind == HostKind::Client(ClientCategory::TestDomain))
        .map(HostId::from_index);

    // Infrastructure reachable in clear by unmanaged hosts (they need DHCP, DNS, the DC).
    let mut infra_bad: std::collections::BTreeMap<Option<String>, (u64, BTreeSet<&'static str>)> = Default::default();
    for (i, h) in campus.hosts.iter().enumerate() {
        let HostKind::Server(role) = h.kind else { continue };
        if !role.is_infrastructure() {
            continue;
        }
        let host = HostId::from_index(i);
        if let Some(u) = untrusted {
            if net.refuses_clear_from(host, u) {
                let e = infra_bad.entry(policy_name(net.policy_of(host))).or_default();
                e.0 += 1;
                e.1.insert(role.name());
            }
        }
    }
    for (policy, (n, roles)) in infra_bad {
        out.push(Finding {
            kind: FindingKind::InfrastructureNotExempt,
            severity: Severity::Error,
            policy,
            rules: Vec::new(),
            filters: Vec::new(),
            hosts: Some(n),
            message: format!(
                "{n} infrastructure servers ({}) refuse clear traffic: new, rebuilt and unmanaged computers cannot get an address, resolve names or reach a domain controller, so they can never receive IPsec policy (a bootstrap deadlock)",
                roles.into_iter().collect::<Vec<_>>().join(", ")
            ),
            fix: "put domain controllers, DNS, DHCP and WINS servers in the No-IPsec group and deny it the IPsec GPOs".into(),
        });
    }
    // Managed hosts that cannot reach their DC in clear cannot use Kerberos.
    let no_kerberos = (0..campus.hosts.len())
        .filter(|&i| {
            campus.hosts[i].is_managed()
                && net.policy_of(HostId::from_index(i)).is_some()
                && !net.has_kerberos(HostId::from_index(i))
        })
        .count() as u64;
    if no_kerberos > 0 {
        out.push(Finding {
            kind: FindingKind::InfrastructureNotExempt,
            severity: Severity::Error,
            policy: None,
            rules: Vec::new(),
            filters: Vec::new(),
            hosts: Some(no_kerberos),
            message: format!("{no_kerberos} managed hosts cannot reach a domain controller without IPsec, and IPsec needs a Kerberos ticket from it first: their Kerberos-authenticated IPsec never starts"),
            fix: "exempt the domain controllers' addresses (a Permit rule for role:dc) in every policy that negotiates with them".into(),
        });
    }
    // Boundary machines must run Request.
    let boundary_groups: Vec<usize> =
        sc.groups.iter().enumerate().filter(|(_, g)| g.kind == GroupKind::Boundary).map(|(i, _)| i).collect();
    let mut boundary_bad: std::collections::BTreeMap<(String, Mode), u64> = Default::default();
    for (i, h) in campus.hosts.iter().enumerate() {
        if !boundary_groups.iter().any(|&g| h.groups.contains(super::ids::GroupId::from_index(g))) {
            continue;
        }
        let Some(p) = net.policy_of(HostId::from_index(i)) else { continue };
        if let Some(m) = set.policy_mode(p as usize) {
            if m > Mode::Request {
                *boundary_bad.entry((set.policies[p as usize].name.clone(), m)).or_default() += 1;
            }
        }
    }
    for ((policy, mode), n) in boundary_bad {
        out.push(Finding {
            kind: FindingKind::BoundaryNotRequest,
            severity: Severity::Error,
            policy: Some(policy),
            rules: Vec::new(),
            filters: Vec::new(),
            hosts: Some(n),
            message: format!("{n} boundary machines run `{mode}`: untrusted computers (Macs, test machines, partners) that rely on them are refused [WP: boundary machines use Request]"),
            fix: "give the boundary groups a GPO with a Request-mode policy, listed before the Secure Request GPO".into(),
        });
    }
    // Home ranges: a managed laptop at home talking to its home devices.
    let sample_managed = campus.hosts.iter().position(|h| h.is_managed() && h.is_client()).map(HostId::from_index);
    if let Some(m) = sample_managed {
        for range in &params.home_ranges {
            // A device at home (the .2 behind the router), inside the range even for a /31
            // or a /32 at the top of the address space.
            let addr = u32::from(range.network()).saturating_add(2).min(u32::from(range.broadcast()));
            if let Some(mode) = net.negotiates_with_addr(m, addr) {
                out.push(Finding {
                    kind: FindingKind::HomeRangeNotExempt,
                    severity: Severity::Warning,
                    policy: policy_name(net.policy_of(m)),
                    rules: Vec::new(),
                    filters: Vec::new(),
                    hosts: None,
                    message: format!("home range {range} falls under a `{mode}` filter: a managed laptop at home tries IPsec with its home router and devices (a 3 s wait per connection, or failure)"),
                    fix: format!("add `any <-> {range}` to an exemption list with a Permit action"),
                });
            }
        }
    }
    // Foreign ranges overlapping secure subnets: the paper's theoretical roaming problem.
    for range in &params.foreign_ranges {
        let mut hits: BTreeSet<String> = BTreeSet::new();
        for pol in &set.policies {
            for r in &pol.rules {
                if !matches!(set.actions[r.action].kind, ActionKind::Negotiate(_)) {
                    continue;
                }
                for f in &set.filter_lists[r.filter_list].filters {
                    for spec in [&f.src, &f.dst] {
                        if let AddrSpec::Prefix(p) = spec {
                            if prefix_contains(p, range) || prefix_contains(range, p) {
                                hits.insert(format!("{f}"));
                            }
                        }
                    }
                }
            }
        }
        if !hits.is_empty() {
            out.push(Finding {
                kind: FindingKind::ForeignRangeOverlap,
                severity: Severity::Info,
                policy: None,
                rules: Vec::new(),
                filters: hits.into_iter().collect(),
                hosts: None,
                message: format!("networks numbered from {range} (hotels, partners) overlap the secure subnets: a roaming laptop there tries IPsec with local hosts (about 3 s per connection, or failure against an incompatible policy) [WP: a theoretical problem at Microsoft]"),
                fix: "keep secure subnets to the ranges the corporate network uses and exempt commonly used foreign ranges where possible".into(),
            });
        }
    }
    // VPN servers must accept unauthenticated tunnel traffic from the VPN pools.
    let pool_client = campus
        .subnets
        .iter()
        .find(|s| s.purpose == SubnetPurpose::VpnPool && !s.hosts.is_empty())
        .map(|s| HostId(s.hosts.start));
    let mut vpn_bad: std::collections::BTreeMap<Option<String>, u64> = Default::default();
    if let Some(client) = pool_client {
        for (i, h) in campus.hosts.iter().enumerate() {
            if h.kind == HostKind::Server(Role::Vpn) && net.refuses_clear_from(HostId::from_index(i), client) {
                *vpn_bad.entry(policy_name(net.policy_of(HostId::from_index(i)))).or_default() += 1;
            }
        }
    }
    for (policy, n) in vpn_bad {
        out.push(Finding {
            kind: FindingKind::VpnServerPolicy,
            severity: Severity::Error,
            policy,
            rules: Vec::new(),
            filters: Vec::new(),
            hosts: Some(n),
            message: format!("{n} VPN servers refuse clear traffic from the VPN address pools: L2TP tunnels and remote clients without IPsec policy are cut off [WP: incompatible with default L2TP filters]"),
            fix: "give VPN servers their own policy with a Permit rule for `me <-> subnets:vpn-pool`".into(),
        });
    }
    // Managed hosts without any GPO (other than those denied on purpose via No-IPsec).
    let no_ipsec: Vec<usize> =
        sc.groups.iter().enumerate().filter(|(_, g)| g.kind == GroupKind::NoIpsec).map(|(i, _)| i).collect();
    let denied_on_purpose =
        |h: &super::campus::Host| no_ipsec.iter().any(|&g| h.groups.contains(super::ids::GroupId::from_index(g)));
    let orphans = campus
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.is_managed()
                && h.os.ipsec_capable()
                && !denied_on_purpose(h)
                && h.domain.and_then(|d| set.gpo_for(d, h.groups)).is_none()
        })
        .count() as u64;
    if orphans > 0 && !set.gpos.is_empty() {
        let linked: Vec<String> =
            set.gpos.iter().filter(|g| g.apply.contains(&Principal::DomainComputers)).map(|g| g.name.clone()).collect();
        out.push(Finding {
            kind: FindingKind::HostWithoutPolicy,
            severity: Severity::Warning,
            policy: None,
            rules: linked,
            filters: Vec::new(),
            hosts: Some(orphans),
            message: format!("{orphans} managed, IPsec-capable hosts match no GPO (not linked to their domain, or filtered out): they stay outside SecureNet without anyone deciding so"),
            fix: "link the default IPsec GPO to every domain with Apply for Domain Computers, and exclude hosts only through explicit groups".into(),
        });
    }
}
