//! IPsec policy: filter lists, filter actions, policies of rules, GPOs linked to domains
//! with security-group filtering, local policies; which policy each host holds; which rule
//! a packet matches; and what happens when two hosts' policies meet.
//!
//! Contract:
//! - One active IPsec policy per host [WP]. A managed host takes the first GPO, in the
//!   scenario's order (= precedence), that is linked to its domain, whose Apply list holds
//!   the host ("Domain Computers" or one of its groups) and whose Deny list does not.
//!   Unmanaged hosts take no GPO; some take a local policy (VPN clients with certificates).
//!   Hosts whose OS has no Windows IPsec never hold a policy.
//! - Filter weighting: the most specific filter wins [WP "IPsec Design"]. Specificity is the
//!   sum of both addresses' mask bits (any = 0, a host address or dynamic server set = 32),
//!   then a named protocol, then a port; ties go to the earlier rule. Filters are mirrored
//!   unless written with `->`.
//! - [`decide`] is pure: from both sides' matched actions, OS and credentials it returns the
//!   connection outcome the white paper and DOMAIN.md section 2-3 describe. It never draws
//!   random numbers and never looks at existing SAs (that is `sa.rs`).

use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

use ipnet::Ipv4Net;
use rustc_hash::{FxHashMap, FxHashSet};

use super::campus::{Campus, GroupSet, SubnetPurpose};
use super::ids::{DomainId, GroupId, HostId};
use super::kinds::{ClientCategory, HostKind, Os, Role};
use crate::engine::SimDuration;

mod filter_index;
use filter_index::FilterIndex;

/// Negotiation mode of a Negotiate Security filter action [DOMAIN 2].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Ask for IPsec, fall back to clear; accept IPsec or clear inbound.
    Request,
    /// Ask for IPsec, fall back to clear (soft SA); inbound only IPsec.
    SecureRequest,
    /// IPsec only, both ways.
    Require,
    /// IPsec with encryption only, both ways.
    RequireEncryption,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Request, Mode::SecureRequest, Mode::Require, Mode::RequireEncryption];
    pub fn name(self) -> &'static str {
        match self {
            Mode::Request => "request",
            Mode::SecureRequest => "secure-request",
            Mode::Require => "require",
            Mode::RequireEncryption => "require-encryption",
        }
    }
    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
    /// Falls back to clear when negotiation fails (outbound).
    pub fn falls_back(self) -> bool {
        matches!(self, Mode::Request | Mode::SecureRequest)
    }
    /// Accepts clear inbound, given the responder's OS (Windows 2000/XP run Secure Request
    /// as Request [WP Table 1]).
    pub fn accepts_clear(self, os: Os) -> bool {
        match self {
            Mode::Request => true,
            Mode::SecureRequest => os.secure_request_acts_as_request(),
            Mode::Require | Mode::RequireEncryption => false,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A filter action [WP "IPsec Policy Settings"].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Permit,
    Block,
    Negotiate(Mode),
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Permit => "permit",
            ActionKind::Block => "block",
            ActionKind::Negotiate(m) => m.name(),
        }
    }
}

/// IKE authentication methods [WP "Default Authentication Method"].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// Needs both hosts in the forest and a domain controller reachable in clear.
    Kerberos,
    /// A machine certificate from the enterprise root.
    Certificate,
    /// A pre-shared key, by name (discouraged by the paper).
    Psk(String),
}

impl AuthMethod {
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "kerberos" => Some(AuthMethod::Kerberos),
            "certificate" => Some(AuthMethod::Certificate),
            _ => s.strip_prefix("psk:").filter(|k| !k.is_empty()).map(|k| AuthMethod::Psk(k.to_string())),
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::Kerberos => f.write_str("kerberos"),
            AuthMethod::Certificate => f.write_str("certificate"),
            AuthMethod::Psk(k) => write!(f, "psk:{k}"),
        }
    }
}

/// One end of a filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddrSpec {
    Any,
    /// "My IP address": the host evaluating the filter.
    Me,
    Prefix(Ipv4Net),
    /// Dynamic set: every server of a role (like Windows' "DNS servers <dynamic>").
    Role(Role),
    /// Every member of a security group (by index into the scenario's groups).
    Group(GroupId, String),
    /// Every subnet of a purpose (e.g. the VPN address pools).
    Purpose(SubnetPurpose),
    /// Every NLB cluster's virtual IP.
    Vips,
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrSpec::Any => f.write_str("any"),
            AddrSpec::Me => f.write_str("me"),
            AddrSpec::Prefix(p) => write!(f, "{p}"),
            AddrSpec::Role(r) => write!(f, "role:{r}"),
            AddrSpec::Group(_, name) => write!(f, "group:{name}"),
            AddrSpec::Purpose(p) => write!(f, "subnets:{}", p.name()),
            AddrSpec::Vips => f.write_str("vips"),
        }
    }
}

/// A filter: source, destination, mirrored or not, optional protocol and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FilterSpec {
    pub src: AddrSpec,
    pub dst: AddrSpec,
    pub mirrored: bool,
    /// IP protocol number; `None` = any.
    pub protocol: Option<u8>,
    /// Destination port; `None` = any.
    pub port: Option<u16>,
}

impl fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.src, if self.mirrored { "<->" } else { "->" }, self.dst)?;
        match self.protocol {
            None => {}
            Some(1) => f.write_str(" icmp")?,
            Some(6) => f.write_str(" tcp")?,
            Some(17) => f.write_str(" udp")?,
            Some(p) => write!(f, " proto:{p}")?,
        }
        if let Some(p) = self.port {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

impl FilterSpec {
    /// Parses `"<src> <-> <dst> [tcp|udp|icmp|any|proto:N] [port]"` (`->` for one way).
    /// Addresses: `any`, `me`, `a.b.c.d`, `a.b.c.d/n`, `role:<role>`, `group:<name>`,
    /// `subnets:<purpose>`, `vips` (every NLB virtual IP). `group` names resolve through `groups`.
    pub fn parse(s: &str, groups: &[String]) -> Result<FilterSpec, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.len() < 3 || words.len() > 5 {
            return Err(format!("expected \"<src> <-> <dst> [protocol] [port]\", found {s:?}"));
        }
        let mirrored = match words[1] {
            "<->" => true,
            "->" => false,
            other => return Err(format!("expected `<->` (mirrored) or `->` between the addresses, found {other:?}")),
        };
        let addr = |w: &str| -> Result<AddrSpec, String> {
            match w {
                "any" => return Ok(AddrSpec::Any),
                "me" => return Ok(AddrSpec::Me),
                "vips" => return Ok(AddrSpec::Vips),
                _ => {}
            }
            if let Some(r) = w.strip_prefix("role:") {
                return Role::from_name(r)
                    .map(AddrSpec::Role)
                    .ok_or_else(|| format!("unknown role {r:?}: expected one of {}", Role::expected()));
            }
            if let Some(g) = w.strip_prefix("group:") {
                return groups
                    .iter()
                    .position(|n| n == g)
                    .map(|i| AddrSpec::Group(GroupId::from_index(i), g.to_string()))
                    .ok_or_else(|| format!("unknown group {g:?}"));
            }
            if let Some(p) = w.strip_prefix("subnets:") {
                return match p {
                    "client" => Ok(AddrSpec::Purpose(SubnetPurpose::Client)),
                    "server" => Ok(AddrSpec::Purpose(SubnetPurpose::Server)),
                    "cluster" => Ok(AddrSpec::Purpose(SubnetPurpose::Cluster)),
                    "vpn-pool" => Ok(AddrSpec::Purpose(SubnetPurpose::VpnPool)),
                    _ => Err(format!("unknown subnet purpose {p:?}: expected client, server, cluster, vpn-pool")),
                };
            }
            if let Ok(net) = w.parse::<Ipv4Net>() {
                return Ok(AddrSpec::Prefix(net.trunc()));
            }
            if let Ok(ip) = w.parse::<std::net::Ipv4Addr>() {
                return Ok(AddrSpec::Prefix(Ipv4Net::new(ip, 32).expect("a /32 is valid")));
            }
            Err(format!(
                "expected an address (any, me, a.b.c.d[/n], role:<role>, group:<name>, subnets:<purpose>, vips), found {w:?}"
            ))
        };
        let src = addr(words[0])?;
        let dst = addr(words[2])?;
        let mut protocol = None;
        let mut port = None;
        if let Some(p) = words.get(3) {
            protocol = match *p {
                "any" => None,
                "tcp" => Some(6),
                "udp" => Some(17),
                "icmp" => Some(1),
                other => match other.strip_prefix("proto:").and_then(|n| n.parse::<u8>().ok()) {
                    Some(n) => Some(n),
                    None => return Err(format!("expected a protocol (any, tcp, udp, icmp, proto:N), found {other:?}")),
                },
            };
        }
        if let Some(p) = words.get(4) {
            if !matches!(protocol, Some(6 | 17)) {
                return Err("a port needs the protocol tcp or udp".into());
            }
            port = Some(p.parse::<u16>().map_err(|_| format!("expected a port number, found {p:?}"))?);
        }
        Ok(FilterSpec { src, dst, mirrored, protocol, port })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FilterList {
    pub name: String,
    pub filters: Vec<FilterSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FilterAction {
    pub name: String,
    pub kind: ActionKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub filter_list: usize,
    pub action: usize,
    pub auth: Vec<AuthMethod>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IpsecPolicy {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// Who a GPO's Apply or Deny entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Every domain-joined computer.
    DomainComputers,
    Group(GroupId),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gpo {
    pub name: String,
    pub policy: usize,
    /// Domains it is linked to; `None` = all.
    pub domains: Option<Vec<DomainId>>,
    pub apply: Vec<Principal>,
    pub deny: Vec<Principal>,
}

/// A policy installed locally on unmanaged hosts of some categories (e.g. the VPN client
/// package for partner PCs), with the credentials that come with it.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalPolicy {
    pub clients: Vec<ClientCategory>,
    pub fraction: f64,
    pub policy: usize,
    pub credentials: Vec<AuthMethod>,
}

/// The whole IPsec configuration of a scenario (names resolved to indexes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySet {
    pub filter_lists: Vec<FilterList>,
    pub actions: Vec<FilterAction>,
    pub policies: Vec<IpsecPolicy>,
    pub gpos: Vec<Gpo>,
    pub local_policies: Vec<LocalPolicy>,
}

impl PolicySet {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Exempts every NLB cluster's virtual IP from IPsec, the paper's option where a
    /// cluster's availability matters more than securing it [WP "IPsec and NLB"]: a permit
    /// rule first in every policy, over `me <-> vips` (a client's side) and `vips <-> any`
    /// (a node answering on its VIP). As in Windows, a more specific filter elsewhere in a
    /// policy still outranks it.
    pub fn exempt_vips(&mut self) {
        let filter = |src, dst| FilterSpec { src, dst, mirrored: true, protocol: None, port: None };
        let list = self.filter_lists.len();
        self.filter_lists.push(FilterList {
            name: "NLB virtual IPs (exempt)".into(),
            filters: vec![filter(AddrSpec::Me, AddrSpec::Vips), filter(AddrSpec::Vips, AddrSpec::Any)],
        });
        let action = self.actions.len();
        self.actions.push(FilterAction { name: "Permit (NLB exemption)".into(), kind: ActionKind::Permit });
        for p in &mut self.policies {
            p.rules.insert(0, Rule { filter_list: list, action, auth: Vec::new() });
        }
    }

    /// The strongest negotiate mode a policy uses (its "state" for reports), or `None` if
    /// it only permits and blocks.
    /// Rules over an empty filter list (one a rollout has not grown yet) match nothing and
    /// do not count.
    pub fn policy_mode(&self, policy: usize) -> Option<Mode> {
        self.policies[policy]
            .rules
            .iter()
            .filter(|r| !self.filter_lists[r.filter_list].filters.is_empty())
            .filter_map(|r| match self.actions[r.action].kind {
                ActionKind::Negotiate(m) => Some(m),
                _ => None,
            })
            .max()
    }

    /// The GPO that applies to a computer joined to `domain` with these group
    /// memberships, if any (the first in precedence order).
    pub fn gpo_for(&self, domain: DomainId, groups: GroupSet) -> Option<usize> {
        let holds = |p: &Principal| match p {
            Principal::DomainComputers => true,
            Principal::Group(g) => groups.contains(*g),
        };
        self.gpos.iter().position(|g| {
            g.domains.as_ref().is_none_or(|ds| ds.contains(&domain))
                && g.apply.iter().any(holds)
                && !g.deny.iter().any(holds)
        })
    }
}

/// A filter end resolved against the campus.
#[derive(Clone, Debug)]
enum AddrMatch {
    Any,
    Me,
    Prefix {
        net: u32,
        mask: u32,
    },
    /// Host addresses (dynamic server sets, group members).
    Hosts(Rc<FxHashSet<u32>>),
    Prefixes(Rc<Vec<(u32, u32)>>),
}

impl AddrMatch {
    fn contains(&self, addr: u32, me: u32) -> bool {
        match self {
            AddrMatch::Any => true,
            AddrMatch::Me => addr == me,
            AddrMatch::Prefix { net, mask } => addr & mask == *net,
            AddrMatch::Hosts(set) => set.contains(&addr),
            AddrMatch::Prefixes(v) => v.iter().any(|(net, mask)| addr & mask == *net),
        }
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// Mask bits of a filter end, for weighting.
pub fn specificity(a: &AddrSpec) -> u32 {
    match a {
        AddrSpec::Any => 0,
        AddrSpec::Me | AddrSpec::Role(_) | AddrSpec::Group(..) | AddrSpec::Vips => 32,
        AddrSpec::Prefix(p) => u32::from(p.prefix_len()),
        AddrSpec::Purpose(_) => 24,
    }
}

/// Filter weight: address specificity first, then protocol, then port.
pub fn weight(f: &FilterSpec) -> u32 {
    (specificity(&f.src) + specificity(&f.dst)) * 4
        + if f.protocol.is_some() { 2 } else { 0 }
        + u32::from(f.port.is_some())
}

#[derive(Clone, Debug)]
struct CompiledFilter {
    rule: u16,
    src: AddrMatch,
    dst: AddrMatch,
    mirrored: bool,
    protocol: Option<u8>,
    port: Option<u16>,
}

impl CompiledFilter {
    /// Whether the filter matches a packet from `s` to `d` evaluated on host `me`.
    fn matches(&self, me: u32, s: u32, d: u32, protocol: u8, port: u16) -> bool {
        if self.protocol.is_some_and(|p| p != protocol) || self.port.is_some_and(|p| p != port) {
            return false;
        }
        (self.src.contains(s, me) && self.dst.contains(d, me))
            || (self.mirrored && self.src.contains(d, me) && self.dst.contains(s, me))
    }
}

/// A service: IP protocol and destination port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub protocol: u8,
    pub port: u16,
}

/// An address as the engine sees it: the address and its class (see [`PolicyEngine`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: u32,
    pub class: u64,
}

/// One connection seen from one end: `me` evaluates its policy for traffic with `peer`;
/// `outbound` when `me` opened the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub me: Peer,
    pub peer: Peer,
    pub outbound: bool,
    pub service: Service,
}

/// A packet's addresses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: u32,
    pub dst: u32,
}

/// A host as the compiled policy sees it.
#[derive(Copy, Clone, Debug, Default)]
struct HostEntry {
    addr: u32,
    class: u32,
}

/// Policies compiled for fast matching on one campus: filters sorted by weight, address
/// sets resolved, filters indexed by prefix (see `filter_index`), and a cache of decisions
/// per (policy, address classes, service).
///
/// Address classes: a filter end is `any`, `me`, or a set of addresses, so whether a
/// filter matches a flow depends only on which of the policies' address sets hold each
/// end's address (and on the two ends being different hosts). Hosts whose addresses lie in
/// exactly the same sets share a class: on the white-paper campus a few dozen classes
/// stand for 260,000 hosts, so the decision cache stays small and hot instead of holding
/// one entry per (client subnet, server) pair. Every address that belongs to no host (a
/// virtual IP, a foreign network) has a class of its own.
#[derive(Default)]
pub struct PolicyEngine {
    filters: Vec<Vec<CompiledFilter>>,
    /// Per policy: its filters by the prefixes their addresses must lie in, made at the
    /// policy's first decision (a version's engine decides for only some of its policies).
    index: Vec<OnceCell<FilterIndex>>,
    /// Per host: its address and its class (a few dozen distinct values: u32 halves what
    /// a run keeps per version), side by side, so that a connection's lookup of either
    /// end is one cache line, not two.
    hosts: Vec<HostEntry>,
    /// Decisions by (policy, my class, peer class, outbound, service): addresses of one
    /// class decide alike, so the key holds classes only.
    cache: FxHashMap<(u16, u64, u64, bool, Service), Option<u16>>,
}

impl PolicyEngine {
    /// Compiles `set` for `campus`, with group memberships as they are now (`groups`, per
    /// host) for `group:` addresses.
    pub fn new(set: &PolicySet, campus: &Campus, groups: &[GroupSet]) -> PolicyEngine {
        // A policy set names the same few address sets in many filters (and the engine is
        // rebuilt at every policy change), so each distinct end is resolved once.
        let mut resolved: FxHashMap<AddrSpec, AddrMatch> = FxHashMap::default();
        let mut resolve = |a: &AddrSpec| -> AddrMatch {
            if let Some(m) = resolved.get(a) {
                return m.clone();
            }
            let m = match a {
                AddrSpec::Any => AddrMatch::Any,
                AddrSpec::Me => AddrMatch::Me,
                AddrSpec::Prefix(p) => AddrMatch::Prefix { net: u32::from(p.network()), mask: mask(p.prefix_len()) },
                AddrSpec::Role(r) => AddrMatch::Hosts(Rc::new(
                    campus
                        .hosts
                        .iter()
                        .filter(|h| h.kind == HostKind::Server(*r))
                        .map(|h| h.addr)
                        .chain(campus.clusters.iter().filter(|c| c.service == *r).map(|c| c.vip))
                        .collect(),
                )),
                AddrSpec::Group(g, _) => AddrMatch::Hosts(Rc::new(
                    campus.hosts.iter().zip(groups).filter(|(_, gs)| gs.contains(*g)).map(|(h, _)| h.addr).collect(),
                )),
                AddrSpec::Vips => AddrMatch::Hosts(Rc::new(campus.clusters.iter().map(|c| c.vip).collect())),
                AddrSpec::Purpose(p) => AddrMatch::Prefixes(Rc::new(
                    campus
                        .subnets
                        .iter()
                        .filter(|s| s.purpose == *p)
                        .map(|s| (u32::from(s.prefix.network()), mask(s.prefix.prefix_len())))
                        .collect(),
                )),
            };
            resolved.insert(a.clone(), m.clone());
            m
        };
        let mut filters = Vec::with_capacity(set.policies.len());
        for p in &set.policies {
            let mut fs: Vec<(u32, usize, CompiledFilter)> = Vec::new();
            for (ri, r) in p.rules.iter().enumerate() {
                for f in &set.filter_lists[r.filter_list].filters {
                    let (src, dst) = (resolve(&f.src), resolve(&f.dst));
                    fs.push((
                        weight(f),
                        ri,
                        CompiledFilter {
                            rule: ri as u16,
                            src,
                            dst,
                            mirrored: f.mirrored,
                            protocol: f.protocol,
                            port: f.port,
                        },
                    ));
                }
            }
            // Heaviest first; ties to the earlier rule.
            fs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            filters.push(fs.into_iter().map(|(_, _, f)| f).collect());
        }
        let class = membership_classes(campus, &filters);
        debug_assert_eq!(class.len(), campus.hosts.len());
        let hosts = campus.hosts.iter().zip(class).map(|(h, class)| HostEntry { addr: h.addr, class }).collect();
        let index = filters.iter().map(|_| OnceCell::new()).collect();
        PolicyEngine { filters, index, hosts, cache: FxHashMap::default() }
    }

    /// The rule of `policy` that decides `packet` on the host whose address is `me` (one of
    /// the packet's two), without the cache.
    pub fn match_uncached(&self, policy: u16, me: u32, packet: Packet, service: Service) -> Option<u16> {
        let filters = &self.filters[policy as usize];
        let index = self.index[policy as usize].get_or_init(|| FilterIndex::new(filters));
        let matches = |i: u32| filters[i as usize].matches(me, packet.src, packet.dst, service.protocol, service.port);
        index.first_match(packet.src, packet.dst, matches).map(|i| filters[i as usize].rule)
    }

    /// The rule of `policy` that decides `flow` (cached by address classes).
    pub fn match_flow(&mut self, policy: u16, flow: Flow) -> Option<u16> {
        if flow.me.addr == flow.peer.addr {
            // `me` filter ends would hold the peer too: not what its class says.
            let packet = Packet { src: flow.me.addr, dst: flow.me.addr };
            return self.match_uncached(policy, flow.me.addr, packet, flow.service);
        }
        let key = (policy, flow.me.class, flow.peer.class, flow.outbound, flow.service);
        if let Some(&r) = self.cache.get(&key) {
            return r;
        }
        let packet = if flow.outbound {
            Packet { src: flow.me.addr, dst: flow.peer.addr }
        } else {
            Packet { src: flow.peer.addr, dst: flow.me.addr }
        };
        let r = self.match_uncached(policy, flow.me.addr, packet, flow.service);
        self.cache.insert(key, r);
        r
    }

    /// Asks the CPU for a host's entries read by [`PolicyEngine::host`], ahead of its use.
    #[inline]
    pub fn prefetch_host(&self, host: HostId) {
        if let Some(e) = self.hosts.get(host.index()) {
            crate::engine::prefetch(e);
        }
    }

    /// A host as a [`Peer`].
    pub fn host(&self, host: HostId) -> Peer {
        let e = self.hosts[host.index()];
        Peer { addr: e.addr, class: u64::from(e.class) }
    }

    /// Frees everything compiled (a version no host holds any more is never consulted
    /// again; a rollout publishes a hundred versions, each several MB on a big campus).
    pub fn release(&mut self) {
        *self = PolicyEngine::default();
    }

    pub fn is_released(&self) -> bool {
        self.hosts.is_empty()
    }

    /// An address that belongs to no host (a virtual IP, a foreign network): its class is
    /// the address itself, above every host class.
    pub fn address(&self, addr: u32) -> Peer {
        Peer { addr, class: (1u64 << 32) | u64::from(addr) }
    }
}

/// Each host's address class (see [`PolicyEngine`]): the interned set of address sets that
/// hold its address, numbered in host order. A host that no set singles out (no host set
/// names it, no prefix set lies strictly inside its subnet and holds it) is in the same
/// sets as the rest of its subnet, so those are worked out once per subnet.
///
/// Set by set, not host by host: each prefix finds the subnets it covers by binary search,
/// so a compile costs about (subnets + hosts + prefixes) lookups, plus a bit per set for
/// each subnet (a word per 64 sets), where testing every subnet against every set grew
/// with the square of the campus (a rollout's subnet lists grow with it, and the engine is
/// compiled at each of about sixty policy changes).
fn membership_classes(campus: &Campus, filters: &[Vec<CompiledFilter>]) -> Vec<u32> {
    let sets = distinct_sets(filters);
    let words = sets.len().div_ceil(64);
    let subnets = &campus.subnets;
    // Per subnet: the sets that hold all of it (bits), and the prefixes of sets that lie
    // strictly inside it (set index, network, mask), whose hosts are tested one by one.
    let mut whole = vec![0u64; subnets.len() * words];
    let mut partial: Vec<Vec<(usize, u32, u32)>> = vec![Vec::new(); subnets.len()];
    let mut host_sets: Vec<(usize, &FxHashSet<u32>)> = Vec::new();
    // Subnets by network address (they do not overlap: see `campus`).
    let mut by_net: Vec<(u32, usize)> =
        subnets.iter().enumerate().map(|(i, s)| (u32::from(s.prefix.network()), i)).collect();
    by_net.sort_unstable();
    for (k, set) in sets.iter().enumerate() {
        let mut mark = |net: u32, m: u32| {
            let len = m.leading_ones() as u8;
            let start = by_net.partition_point(|&(n, _)| n < net);
            let end = by_net.partition_point(|&(n, _)| n <= net | !m);
            // A subnet starting before the prefix can only hold it (subnets are aligned).
            let before = start.checked_sub(1).map(|i| by_net[i].1);
            for i in before.into_iter().chain(by_net[start..end].iter().map(|&(_, i)| i)) {
                let prefix = subnets[i].prefix;
                let (snet, slen) = (u32::from(prefix.network()), prefix.prefix_len());
                if slen >= len && snet & m == net {
                    whole[i * words + k / 64] |= 1 << (k % 64);
                } else if slen < len && net & mask(slen) == snet {
                    partial[i].push((k, net, m));
                }
            }
        };
        match set {
            AddrMatch::Prefix { net, mask } => mark(*net, *mask),
            AddrMatch::Prefixes(v) => v.iter().for_each(|&(net, m)| mark(net, m)),
            AddrMatch::Hosts(h) => host_sets.push((k, h)),
            AddrMatch::Any | AddrMatch::Me => unreachable!("not an address set"),
        }
    }
    // The addresses that host sets name: their hosts are worked out one by one.
    let singled: FxHashSet<u32> = host_sets.iter().flat_map(|(_, set)| set.iter().copied()).collect();
    let mut interned: FxHashMap<Vec<u64>, u32> = FxHashMap::default();
    let mut by_subnet: Vec<Option<u32>> = vec![None; subnets.len()];
    let mut bits = vec![0u64; words];
    campus
        .hosts
        .iter()
        .map(|h| {
            let sub = h.subnet.index();
            debug_assert!(subnets[sub].prefix.contains(&std::net::Ipv4Addr::from(h.addr)), "a host outside its subnet");
            let split = singled.contains(&h.addr) || partial[sub].iter().any(|&(_, net, m)| h.addr & m == net);
            if !split && let Some(c) = by_subnet[sub] {
                return c;
            }
            bits.copy_from_slice(&whole[sub * words..(sub + 1) * words]);
            for &(k, net, m) in &partial[sub] {
                if h.addr & m == net {
                    bits[k / 64] |= 1 << (k % 64);
                }
            }
            for &(k, set) in &host_sets {
                if set.contains(&h.addr) {
                    bits[k / 64] |= 1 << (k % 64);
                }
            }
            let next = interned.len() as u32;
            let c = *interned.entry(bits.clone()).or_insert(next);
            if !split {
                by_subnet[sub] = Some(c);
            }
            c
        })
        .collect()
}

/// The distinct address sets that the filters' ends name (not `any` or `me`), each once:
/// a prefix by its value, a resolved set by identity (a policy set's filter lists name the
/// same few sets many times).
fn distinct_sets(filters: &[Vec<CompiledFilter>]) -> Vec<&AddrMatch> {
    let mut seen: FxHashSet<(u8, usize, u32)> = FxHashSet::default();
    filters
        .iter()
        .flatten()
        .flat_map(|f| [&f.src, &f.dst])
        .filter(|a| {
            let key = match a {
                AddrMatch::Any | AddrMatch::Me => return false,
                AddrMatch::Prefix { net, mask } => (0, *net as usize, *mask),
                AddrMatch::Hosts(set) => (1, Rc::as_ptr(set) as usize, 0),
                AddrMatch::Prefixes(v) => (2, Rc::as_ptr(v) as usize, 0),
            };
            seen.insert(key)
        })
        .collect()
}

/// One side of a connection, as [`decide`] needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Side<'a> {
    pub os: Os,
    pub simple_policy: bool,
    /// The action of the rule that matched, `None` when the host has no policy or no rule
    /// matches (both mean clear, no IKE).
    pub action: Option<ActionKind>,
    /// Authentication methods of the matched rule.
    pub rule_auth: &'a [AuthMethod],
    /// Credentials the host can present: Kerberos (joined and a DC reachable in clear),
    /// certificate, pre-shared keys (by name).
    pub kerberos: bool,
    pub certificate: bool,
    pub psk: &'a [String],
}

impl Side<'_> {
    /// A host without IPsec policy.
    pub fn clear(os: Os) -> Side<'static> {
        Side { os, simple_policy: false, action: None, rule_auth: &[], kerberos: false, certificate: false, psk: &[] }
    }
    pub fn negotiates(&self) -> Option<Mode> {
        match self.action {
            Some(ActionKind::Negotiate(m)) => Some(m),
            _ => None,
        }
    }
    fn has(&self, m: &AuthMethod) -> bool {
        match m {
            AuthMethod::Kerberos => self.kerberos,
            AuthMethod::Certificate => self.certificate,
            AuthMethod::Psk(k) => self.psk.contains(k),
        }
    }
    /// Whether clear traffic arriving at this host is dropped.
    pub fn refuses_clear(&self) -> bool {
        self.negotiates().is_some_and(|m| !m.accepts_clear(self.os))
    }
}

/// Why a connection went clear.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClearReason {
    /// Neither side asks for IPsec (no policy, Permit, or no matching filter).
    Exempt,
    /// The initiator asked, the responder never answered IKE (no policy or Permit).
    NoIkeResponse,
    /// IKE failed (no common authentication method, Kerberos unavailable, untrusted).
    AuthFailed,
    /// IKE failed for other reasons (lost packets, timeouts).
    NegotiationFailed,
}

/// Why a connection was blocked.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// A Block filter action on either side.
    BlockRule,
    /// Clear traffic reached a responder that only accepts IPsec (an untrusted initiator,
    /// or an initiator that fell back to clear).
    ClearRefused,
    /// The initiator requires IPsec and negotiation failed.
    NegotiationRequired,
    /// The responder's Windows Firewall refused it (not an IPsec decision; recorded here
    /// so a connection has one outcome).
    Firewall,
}

/// Outcome of a new connection before any existing SA is considered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Negotiate IPsec; `encrypt` when either side requires encryption; `authip` when both
    /// speak AuthIP (Vista/Server 2008 pairs).
    Negotiate {
        encrypt: bool,
        authip: bool,
    },
    /// Clear, after the initiator's fallback wait (zero when it never asked for IPsec or is
    /// Vista-class, which sends clear and IKE at once).
    Clear {
        reason: ClearReason,
        delay: SimDuration,
    },
    Blocked {
        reason: BlockReason,
        delay: SimDuration,
    },
}

/// Fallback parameters.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Fallback {
    /// Windows 2000 / XP / 2003 without the Simple Policy update.
    pub legacy: SimDuration,
    /// With the update (XP SP3, 2003 SP2, or KB914841).
    pub simple_policy: SimDuration,
}

impl Fallback {
    /// How long `side` waits for IKE before sending clear [DOMAIN 3].
    pub fn delay(&self, side: &Side<'_>) -> SimDuration {
        self.delay_for(side.os, side.simple_policy)
    }

    /// The wait of a host with this OS, and with or without the Simple Policy update.
    pub fn delay_for(&self, os: Os, simple_policy: bool) -> SimDuration {
        if os.is_vista_class() {
            SimDuration::ZERO
        } else if simple_policy || os.simple_policy_builtin() {
            self.simple_policy
        } else {
            self.legacy
        }
    }
}

/// The outcome of a new connection from `init` to `resp` [DOMAIN 2-3, WP Table 1].
/// `negotiation_ok` is whether IKE would complete if both sides try (the caller draws
/// random IKE failures; authentication is checked here).
pub fn decide(init: &Side<'_>, resp: &Side<'_>, fallback: &Fallback, negotiation_ok: bool) -> Decision {
    use ActionKind::*;
    if init.action == Some(Block) || resp.action == Some(Block) {
        return Decision::Blocked { reason: BlockReason::BlockRule, delay: SimDuration::ZERO };
    }
    // What reaches the responder in clear, and whether it takes it.
    let clear_at_responder = |reason: ClearReason, delay: SimDuration| {
        if resp.refuses_clear() {
            Decision::Blocked { reason: BlockReason::ClearRefused, delay }
        } else {
            Decision::Clear { reason, delay }
        }
    };
    let Some(im) = init.negotiates() else {
        return clear_at_responder(ClearReason::Exempt, SimDuration::ZERO);
    };
    // The initiator starts IKE. Does the responder answer, and can they authenticate?
    let failure = match resp.negotiates() {
        None => Some(ClearReason::NoIkeResponse),
        Some(_) => {
            let common = init.rule_auth.iter().any(|m| resp.rule_auth.contains(m) && init.has(m) && resp.has(m));
            if !common {
                Some(ClearReason::AuthFailed)
            } else if !negotiation_ok {
                Some(ClearReason::NegotiationFailed)
            } else {
                None
            }
        }
    };
    match failure {
        None => {
            let rm = resp.negotiates().expect("responder negotiates");
            Decision::Negotiate {
                encrypt: im == Mode::RequireEncryption || rm == Mode::RequireEncryption,
                authip: init.os.is_vista_class() && resp.os.is_vista_class(),
            }
        }
        Some(reason) => {
            let delay = fallback.delay(init);
            if im.falls_back() {
                clear_at_responder(reason, delay)
            } else {
                Decision::Blocked { reason: BlockReason::NegotiationRequired, delay }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::build;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn campus() -> &'static Campus {
        static CAMPUS: OnceLock<Campus> = OnceLock::new();
        CAMPUS.get_or_init(|| Campus::generate(&build::builtin_small(600, 400, 6, Some(2)), 3).unwrap())
    }

    /// The classes by definition: every host tested against every filter end, numbered in
    /// host order.
    fn classes_by_scan(campus: &Campus, filters: &[Vec<CompiledFilter>]) -> Vec<u32> {
        let ends: Vec<&AddrMatch> = filters
            .iter()
            .flatten()
            .flat_map(|f| [&f.src, &f.dst])
            .filter(|a| !matches!(a, AddrMatch::Any | AddrMatch::Me))
            .collect();
        let mut interned: FxHashMap<Vec<bool>, u32> = FxHashMap::default();
        campus
            .hosts
            .iter()
            .map(|h| {
                let next = interned.len() as u32;
                *interned.entry(ends.iter().map(|e| e.contains(h.addr, h.addr)).collect()).or_insert(next)
            })
            .collect()
    }

    /// Subnet `i`'s prefix lengthened by `d` bits (a prefix inside it, at `r`) or shortened
    /// (one holding it and its neighbours), as (network, mask).
    fn around(campus: &Campus, i: usize, d: i8, r: u32) -> (u32, u32) {
        let sub = &campus.subnets[i % campus.subnets.len()].prefix;
        let len = (i16::from(sub.prefix_len()) + i16::from(d)).clamp(0, 32) as u8;
        ((u32::from(sub.network()) | (r & !mask(sub.prefix_len()))) & mask(len), mask(len))
    }

    /// A filter end: a prefix around subnet `i`, a list of prefixes around the subnets
    /// `others`, the hosts `others`, `any`, `me`, the prefix of length 0 or host `i`'s
    /// address (kinds 0 to 6).
    fn end(campus: &Campus, kind: u8, i: usize, d: i8, r: u32, others: &[usize]) -> AddrMatch {
        match kind {
            0 => {
                let (net, mask) = around(campus, i, d, r);
                AddrMatch::Prefix { net, mask }
            }
            1 => AddrMatch::Prefixes(Rc::new(
                others.iter().map(|&j| around(campus, j, d, r.rotate_left(j as u32))).collect(),
            )),
            2 => AddrMatch::Hosts(Rc::new(others.iter().map(|&j| campus.hosts[j % campus.hosts.len()].addr).collect())),
            3 => AddrMatch::Any,
            4 => AddrMatch::Me,
            5 => AddrMatch::Prefix { net: 0, mask: 0 },
            _ => AddrMatch::Prefix { net: campus.hosts[i % campus.hosts.len()].addr, mask: u32::MAX },
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Worked out set by set and subnet by subnet, the classes are those of testing
        /// every host against every end.
        #[test]
        fn address_classes_are_those_of_testing_every_host(
            specs in proptest::collection::vec(
                (0u8..3, any::<usize>(), -6i8..=6, any::<u32>(), proptest::collection::vec(any::<usize>(), 0..6)),
                0..40,
            ),
        ) {
            let campus = campus();
            let ends: Vec<AddrMatch> = specs.iter().map(|(k, i, d, r, h)| end(campus, *k, *i, *d, *r, h)).collect();
            // A policy per pair of ends: each end as a destination, and the pair's second
            // to its first, so that most ends are named twice, as filter lists do.
            let filters: Vec<Vec<CompiledFilter>> = ends
                .chunks(2)
                .map(|pair| {
                    let f = |src: &AddrMatch, dst: &AddrMatch| CompiledFilter {
                        rule: 0, src: src.clone(), dst: dst.clone(), mirrored: true, protocol: None, port: None,
                    };
                    pair.iter().map(|e| f(&AddrMatch::Any, e)).chain(pair.get(1).map(|e| f(e, &pair[0]))).collect()
                })
                .collect();
            prop_assert_eq!(membership_classes(campus, &filters), classes_by_scan(campus, &filters));
        }

        /// Found through the prefix index, a packet's rule is the first filter's, in the
        /// policy's order, that matches it: any packet, any mix of filter ends. The ends and
        /// packets are drawn around a pool of 16 hosts, so that host sets and long prefixes
        /// hold the packets' addresses often.
        #[test]
        fn indexed_matching_finds_the_first_matching_filter(
            specs in proptest::collection::vec(
                (
                    (0u8..7, any::<usize>(), -6i8..=6, any::<u32>(), proptest::collection::vec(any::<usize>(), 0..6)),
                    (0u8..7, any::<usize>(), -6i8..=6, any::<u32>(), proptest::collection::vec(any::<usize>(), 0..6)),
                    any::<bool>(),
                    proptest::option::of(prop_oneof![Just(6u8), Just(17u8)]),
                    proptest::option::of(prop_oneof![Just(80u16), Just(445u16)]),
                ),
                0..40,
            ),
            packets in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u32>(), any::<bool>(), any::<bool>()), 1..40),
        ) {
            let campus = campus();
            // A pool host's index.
            let pool = |j: usize| (j % 16) * (campus.hosts.len() / 16);
            // Prefixes around the pool hosts' subnets (lengthened around the host itself
            // half the time), host ends among the pool hosts.
            let filter_end = |(k, i, d, r, h): &(u8, usize, i8, u32, Vec<usize>)| {
                let at = |j: usize| if *k <= 1 { campus.hosts[pool(j)].subnet.index() } else { pool(j) };
                let r = if r % 2 == 0 { campus.hosts[pool(*i)].addr } else { *r };
                end(campus, *k, at(*i), *d, r, &h.iter().map(|&j| at(j)).collect::<Vec<_>>())
            };
            let filters: Vec<CompiledFilter> = specs
                .iter()
                .enumerate()
                .map(|(rule, (src, dst, mirrored, protocol, port))| CompiledFilter {
                    rule: rule as u16, src: filter_end(src), dst: filter_end(dst), mirrored: *mirrored, protocol: *protocol, port: *port,
                })
                .collect();
            let engine = PolicyEngine {
                index: vec![OnceCell::new()],
                filters: vec![filters.clone()],
                ..PolicyEngine::default()
            };
            for &(a, b, foreign, outbound, tcp) in &packets {
                // Now and then an address near a host's but no host's.
                let (me, peer) = (campus.hosts[pool(a)].addr, campus.hosts[pool(b)].addr);
                let peer = if foreign % 4 == 0 { peer ^ (foreign >> 8 & 0xff) } else { peer };
                let packet = if outbound { Packet { src: me, dst: peer } } else { Packet { src: peer, dst: me } };
                let service = Service { protocol: if tcp { 6 } else { 17 }, port: if foreign % 3 == 0 { 80 } else { 445 } };
                let by_scan = filters
                    .iter()
                    .find(|f| f.matches(me, packet.src, packet.dst, service.protocol, service.port))
                    .map(|f| f.rule);
                prop_assert_eq!(engine.match_uncached(0, me, packet, service), by_scan);
            }
        }
    }
}
