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

/// Per-host dynamic state.
#[derive(Clone, Debug)]
pub struct Population {
    /// Current managed domain; `None` while unmanaged.
    domain: Vec<Option<DomainId>>,
    /// The domain a reimaged PC rejoins.
    home_domain: Vec<Option<DomainId>>,
    pub groups: Vec<GroupSet>,
    /// Joinable: Windows test machines outside the managed domains that may join one.
    joinable: Vec<bool>,
    /// Reimaged and not yet rejoined.
    reimaging: Vec<bool>,
    /// NAP: compliant with the health policy.
    pub healthy: Vec<bool>,
    /// NAP mode in force for the host (set by rollout waves).
    pub nap: Vec<NapMode>,
    /// Windows Firewall on (inbound default block).
    pub firewall: Vec<bool>,
    /// Applications a local administrator has opened inbound (bit per app).
    pub exceptions: Vec<u64>,
}

impl Population {
    pub fn new(campus: &Campus) -> Population {
        let n = campus.hosts.len();
        Population {
            domain: campus.hosts.iter().map(|h| h.domain).collect(),
            home_domain: campus.hosts.iter().map(|h| h.domain).collect(),
            groups: campus.hosts.iter().map(|h| h.groups).collect(),
            joinable: campus
                .hosts
                .iter()
                .map(|h| h.kind == HostKind::Client(ClientCategory::TestDomain) && h.os.joinable())
                .collect(),
            reimaging: vec![false; n],
            healthy: vec![true; n],
            nap: vec![NapMode::Off; n],
            firewall: vec![false; n],
            exceptions: vec![0; n],
        }
    }

    /// Asks the CPU for the state a policy refresh and a connection read of `h` (its
    /// domain, groups, NAP mode and health, firewall and its exceptions), one line in
    /// each array, ahead of its use.
    #[inline]
    pub fn prefetch_host(&self, h: HostId) {
        let i = h.index();
        if i < self.domain.len() {
            crate::engine::prefetch(&self.domain[i]);
            crate::engine::prefetch(&self.groups[i]);
            crate::engine::prefetch(&self.nap[i]);
            crate::engine::prefetch(&self.healthy[i]);
            crate::engine::prefetch(&self.firewall[i]);
            crate::engine::prefetch(&self.exceptions[i]);
        }
    }

    pub fn domain(&self, h: HostId) -> Option<DomainId> {
        self.domain[h.index()]
    }

    pub fn is_managed(&self, h: HostId) -> bool {
        self.domain[h.index()].is_some()
    }

    pub fn groups(&self, h: HostId) -> GroupSet {
        self.groups[h.index()]
    }

    pub fn is_joinable(&self, h: HostId) -> bool {
        self.joinable[h.index()] && self.domain[h.index()].is_none()
    }

    pub fn is_reimaging(&self, h: HostId) -> bool {
        self.reimaging[h.index()]
    }

    /// A test machine joins a managed domain (it becomes a managed computer).
    pub fn join(&mut self, h: HostId, domain: DomainId) {
        self.domain[h.index()] = Some(domain);
        self.home_domain[h.index()] = Some(domain);
        self.joinable[h.index()] = false;
    }

    /// A managed PC is rebuilt: unmanaged until it rejoins. Returns false if it was not
    /// managed (nothing to do).
    pub fn reimage(&mut self, h: HostId) -> bool {
        if self.domain[h.index()].is_none() || self.reimaging[h.index()] {
            return false;
        }
        self.domain[h.index()] = None;
        self.reimaging[h.index()] = true;
        // A fresh image is healthy, has no local firewall exceptions.
        self.healthy[h.index()] = true;
        self.exceptions[h.index()] = 0;
        true
    }

    /// The rebuilt PC rejoins its domain.
    pub fn rejoin(&mut self, h: HostId) {
        if self.reimaging[h.index()] {
            self.reimaging[h.index()] = false;
            self.domain[h.index()] = self.home_domain[h.index()];
        }
    }

    pub fn add_to_group(&mut self, h: HostId, g: GroupId) {
        self.groups[h.index()].insert(g);
    }

    pub fn remove_from_group(&mut self, h: HostId, g: GroupId) {
        self.groups[h.index()].0 &= !(1u64 << g.0);
    }

    pub fn hosts(&self) -> usize {
        self.domain.len()
    }

    /// Domain-joined hosts now.
    pub fn joined_count(&self) -> u64 {
        self.domain.iter().filter(|d| d.is_some()).count() as u64
    }

    /// Joined hosts that are members of any of `groups`.
    pub fn joined_in_any(&self, groups: &[GroupId]) -> u64 {
        (0..self.domain.len())
            .filter(|&i| self.domain[i].is_some() && groups.iter().any(|&g| self.groups[i].contains(g)))
            .count() as u64
    }
}
