//! The campus's computers as they change during a rollout: domain joins, reimaged PCs
//! that are unmanaged until they rejoin, security-group membership (boundary grants, pilot
//! groups), NAP health, and Windows Firewall state with local exceptions.
//!
//! Contract:
//! - The generated `Campus` is the state of day 0 and never changes; `Population` holds
//!   what moves. Every question "is this host managed now, in which domain and groups" goes
//!   through here.
//! - Pure state with explicit transitions; the caller decides when (events) and draws the
//!   randomness (from the host's streams).

use super::campus::{Campus, GroupSet};
use super::ids::{DomainId, GroupId, HostId};
use super::kinds::{ClientCategory, HostKind};

/// NAP rollout mode a host is under [WP "Planning the NAP Deployment"].
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NapMode {
    Off,
    /// Statistics only.
    Reporting,
    /// Users see notifications; nothing is blocked.
    Deferred,
    /// Non-compliant computers lose SecureNet access until remediated.
    Enforcement,
}

impl NapMode {
    pub const ALL: [NapMode; 4] = [NapMode::Off, NapMode::Reporting, NapMode::Deferred, NapMode::Enforcement];
    pub fn name(self) -> &'static str {
        match self {
            NapMode::Off => "off",
            NapMode::Reporting => "reporting",
            NapMode::Deferred => "deferred",
            NapMode::Enforcement => "enforcement",
        }
    }
    pub fn from_name(s: &str) -> Option<NapMode> {
        NapMode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Counts over the whole population (see [`Population::tally`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Hosts in a managed domain.
    pub joined: u64,
    /// Joined hosts in any of the boundary groups asked about.
    pub boundary: u64,
    pub reimaging: u64,
    pub firewall_on: u64,
    /// Hosts under each NAP mode, by [`NapMode::ALL`]'s order.
    pub nap: [u64; 4],
    /// Hosts not compliant with the NAP health policy.
    pub unhealthy: u64,
}

/// What moves of one host, kept in one record: a connection's credentials, a policy
/// refresh (`Campaign::apply_now`) and the firewall's check of a responder read several
/// of these fields of a random host, and one record is one cache line to wait for (or
/// fetch ahead) where an array per field was one each.
#[derive(Copy, Clone, Debug)]
#[repr(C, align(32))]
struct HostRecord {
    /// Security groups the host is a member of.
    groups: GroupSet,
    /// Applications a local administrator has opened inbound (bit per app).
    exceptions: u64,
    /// Current managed domain; `None` while unmanaged.
    domain: Option<DomainId>,
    /// The domain a reimaged PC rejoins.
    home_domain: Option<DomainId>,
    /// NAP mode in force for the host (set by rollout waves).
    nap: NapMode,
    /// Joinable: a Windows test machine outside the managed domains that may join one.
    joinable: bool,
    /// Reimaged and not yet rejoined.
    reimaging: bool,
    /// NAP: compliant with the health policy.
    healthy: bool,
    /// Windows Firewall on (inbound default block).
    firewall: bool,
    /// Its OS has a NAP client (fixed: kept here so that the NAP check reads one record).
    nap_capable: bool,
}

// Two records to a 64-byte cache line, none straddling two.
const _: () = assert!(std::mem::size_of::<HostRecord>() == 32);

/// Per-host dynamic state.
#[derive(Clone, Debug)]
pub struct Population {
    hosts: Vec<HostRecord>,
}

impl Population {
    pub fn new(campus: &Campus) -> Population {
        let hosts = campus
            .hosts
            .iter()
            .map(|h| HostRecord {
                groups: h.groups,
                exceptions: 0,
                domain: h.domain,
                home_domain: h.domain,
                nap: NapMode::Off,
                joinable: h.kind == HostKind::Client(ClientCategory::TestDomain) && h.os.joinable(),
                reimaging: false,
                healthy: true,
                firewall: false,
                nap_capable: h.os.nap_capable(),
            })
            .collect();
        Population { hosts }
    }

    /// Asks the CPU for the record a policy refresh and a connection read of `h` (its
    /// domain, groups, NAP mode and health, firewall and its exceptions) ahead of its use.
    #[inline]
    pub fn prefetch_host(&self, h: HostId) {
        if let Some(r) = self.hosts.get(h.index()) {
            crate::engine::prefetch(r);
        }
    }

    pub fn domain(&self, h: HostId) -> Option<DomainId> {
        self.hosts[h.index()].domain
    }

    pub fn is_managed(&self, h: HostId) -> bool {
        self.hosts[h.index()].domain.is_some()
    }

    pub fn groups(&self, h: HostId) -> GroupSet {
        self.hosts[h.index()].groups
    }

    /// Every host's groups, in host order (what a policy version is compiled with).
    pub fn group_sets(&self) -> Vec<GroupSet> {
        self.hosts.iter().map(|r| r.groups).collect()
    }

    pub fn is_joinable(&self, h: HostId) -> bool {
        let r = &self.hosts[h.index()];
        r.joinable && r.domain.is_none()
    }

    pub fn is_reimaging(&self, h: HostId) -> bool {
        self.hosts[h.index()].reimaging
    }

    /// Whether the host is compliant with the NAP health policy.
    pub fn is_healthy(&self, h: HostId) -> bool {
        self.hosts[h.index()].healthy
    }

    pub fn set_healthy(&mut self, h: HostId, healthy: bool) {
        self.hosts[h.index()].healthy = healthy;
    }

    /// The NAP mode in force for the host.
    pub fn nap(&self, h: HostId) -> NapMode {
        self.hosts[h.index()].nap
    }

    /// Whether NAP keeps the host off SecureNet: it has a NAP client, is under
    /// enforcement and is not healthy, so it gets no health certificate.
    pub fn nap_blocked(&self, h: HostId) -> bool {
        let r = &self.hosts[h.index()];
        r.nap_capable && r.nap == NapMode::Enforcement && !r.healthy
    }

    /// Sets the NAP mode and whether Windows Firewall is on, as a Group Policy refresh
    /// applies them.
    pub fn set_nap_and_firewall(&mut self, h: HostId, nap: NapMode, firewall: bool) {
        let r = &mut self.hosts[h.index()];
        r.nap = nap;
        r.firewall = firewall;
    }

    /// Whether Windows Firewall is on.
    pub fn firewall_on(&self, h: HostId) -> bool {
        self.hosts[h.index()].firewall
    }

    /// Applications a local administrator has opened inbound (bit per app).
    pub fn exceptions(&self, h: HostId) -> u64 {
        self.hosts[h.index()].exceptions
    }

    /// A local administrator opens the applications of `bits` inbound.
    pub fn add_exceptions(&mut self, h: HostId, bits: u64) {
        self.hosts[h.index()].exceptions |= bits;
    }

    /// A test machine joins a managed domain (it becomes a managed computer).
    pub fn join(&mut self, h: HostId, domain: DomainId) {
        let r = &mut self.hosts[h.index()];
        r.domain = Some(domain);
        r.home_domain = Some(domain);
        r.joinable = false;
    }

    /// A managed PC is rebuilt: unmanaged until it rejoins. Returns false if it was not
    /// managed (nothing to do).
    pub fn reimage(&mut self, h: HostId) -> bool {
        let r = &mut self.hosts[h.index()];
        if r.domain.is_none() || r.reimaging {
            return false;
        }
        r.domain = None;
        r.reimaging = true;
        // A fresh image is healthy, has no local firewall exceptions.
        r.healthy = true;
        r.exceptions = 0;
        true
    }

    /// The rebuilt PC rejoins its domain.
    pub fn rejoin(&mut self, h: HostId) {
        let r = &mut self.hosts[h.index()];
        if r.reimaging {
            r.reimaging = false;
            r.domain = r.home_domain;
        }
    }

    pub fn add_to_group(&mut self, h: HostId, g: GroupId) {
        self.hosts[h.index()].groups.insert(g);
    }

    pub fn remove_from_group(&mut self, h: HostId, g: GroupId) {
        self.hosts[h.index()].groups.0 &= !(1u64 << g.0);
    }

    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The day's counts of the whole population, in one pass over it (a pass per count
    /// read the population's 8.7 MB five times a day on the full campus).
    pub fn tally(&self, boundary_groups: &[GroupId]) -> Tally {
        let mut t = Tally::default();
        for r in &self.hosts {
            let joined = r.domain.is_some();
            t.joined += u64::from(joined);
            t.boundary += u64::from(joined && boundary_groups.iter().any(|&g| r.groups.contains(g)));
            t.reimaging += u64::from(r.reimaging);
            t.firewall_on += u64::from(r.firewall);
            t.nap[r.nap as usize] += 1;
            t.unhealthy += u64::from(!r.healthy);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::build;

    /// The one-pass tally counts what the per-host questions answer, on a population
    /// moved away from day 0 in every field it counts.
    #[test]
    fn the_tally_counts_what_the_per_host_accessors_say() {
        let sc = build::builtin_small(600, 400, 6, Some(2));
        let campus = Campus::generate(&sc, 3).unwrap();
        let mut pop = Population::new(&campus);
        let boundary = GroupId(1);
        for i in (0..pop.hosts()).step_by(7) {
            let h = HostId::from_index(i);
            pop.set_nap_and_firewall(h, NapMode::ALL[i % 4], i % 3 == 0);
            pop.set_healthy(h, i % 5 != 0);
            if i % 2 == 0 {
                pop.add_to_group(h, boundary);
            }
            if i % 11 == 0 {
                pop.reimage(h);
            }
        }
        let hosts: Vec<HostId> = (0..pop.hosts()).map(HostId::from_index).collect();
        let count = |f: &dyn Fn(HostId) -> bool| hosts.iter().filter(|&&h| f(h)).count() as u64;
        let want = Tally {
            joined: count(&|h| pop.is_managed(h)),
            boundary: count(&|h| pop.is_managed(h) && pop.groups(h).contains(boundary)),
            reimaging: count(&|h| pop.is_reimaging(h)),
            firewall_on: count(&|h| pop.firewall_on(h)),
            nap: NapMode::ALL.map(|m| count(&|h| pop.nap(h) == m)),
            unhealthy: count(&|h| !pop.is_healthy(h)),
        };
        assert_eq!(pop.tally(&[GroupId(9), boundary]), want);
        // Every count is exercised (none is trivially zero or everyone).
        let n = pop.hosts() as u64;
        for c in [want.joined, want.boundary, want.reimaging, want.firewall_on, want.unhealthy] {
            assert!(c > 0 && c < n, "{want:?}");
        }
        assert!(want.nap.iter().all(|&c| c > 0), "{want:?}");
    }
}
