//! Small closed vocabularies of the campus: operating systems and what each can do,
//! client categories, server roles, security-group kinds, NLB affinity, protocols.
//!
//! Contract: the kebab-case names (`xp-sp2`, `test-domain`, `no-ipsec`) are the spelling
//! used in scenario files and outputs; they are stable. Capability facts come from
//! DOMAIN.md sections 2, 3 and 5 and the white paper; each method cites its rule.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stable kebab-case name used in scenarios and outputs.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
            /// Comma-separated list of the valid names, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(
    /// Operating system and service-pack level, as far as IPsec behaviour differs.
    Os {
        Win2000 = "win2000",
        XpSp1 = "xp-sp1",
        XpSp2 = "xp-sp2",
        XpSp3 = "xp-sp3",
        Server2003Sp1 = "server2003-sp1",
        Server2003Sp2 = "server2003-sp2",
        Vista = "vista",
        Server2008 = "server2008",
        Nt4 = "nt4",
        Win9x = "win9x",
        MacOsX = "mac-os-x",
        Linux = "linux",
        Xbox = "xbox",
        PocketPc = "pocket-pc",
    }
);

impl Os {
    /// Windows that can take Group Policy-based IPsec (Windows 2000 and later). NT4/9x
    /// cannot [WP "Supporting Non-IPsec Platforms"]; non-Windows devices have no Windows
    /// IPsec installed.
    pub const fn ipsec_capable(self) -> bool {
        matches!(
            self,
            Os::Win2000
                | Os::XpSp1
                | Os::XpSp2
                | Os::XpSp3
                | Os::Server2003Sp1
                | Os::Server2003Sp2
                | Os::Vista
                | Os::Server2008
        )
    }

    /// Can join a managed domain (and so become a SecureNet member).
    pub const fn joinable(self) -> bool {
        self.ipsec_capable()
    }

    pub const fn is_server_os(self) -> bool {
        matches!(self, Os::Server2003Sp1 | Os::Server2003Sp2 | Os::Server2008)
    }

    /// Vista and Server 2008 speak AuthIP and send clear and IKE at once (no fallback
    /// wait) [WP "Improvements with Windows Vista and Windows Server 2008"].
    pub const fn is_vista_class(self) -> bool {
        matches!(self, Os::Vista | Os::Server2008)
    }

    /// Windows 2000 and XP have no real Secure Request: it behaves like Request
    /// [WP Table 1].
    pub const fn secure_request_acts_as_request(self) -> bool {
        matches!(self, Os::Win2000 | Os::XpSp1 | Os::XpSp2 | Os::XpSp3)
    }

    /// XP SP3, Server 2003 SP2 include the Simple Policy update; XP SP2 and Server 2003
    /// SP1 have it only when KB914841 is installed.
    pub const fn simple_policy_optional(self) -> bool {
        matches!(self, Os::XpSp2 | Os::Server2003Sp1)
    }

    pub const fn simple_policy_builtin(self) -> bool {
        matches!(self, Os::XpSp3 | Os::Server2003Sp2)
    }

    /// NAP clients: Windows Server 2008, Vista and XP SP3 [WP "Systems Capable of Using NAP"].
    pub const fn nap_capable(self) -> bool {
        matches!(self, Os::XpSp3 | Os::Vista | Os::Server2008)
    }

    /// Windows Firewall with Advanced Security (inbound block by default, authenticated
    /// bypass): Vista and Server 2008, the systems the white paper's firewall rollout
    /// enforced it on [WP "Planning the Windows Firewall Rollout"].
    pub const fn advanced_firewall(self) -> bool {
        matches!(self, Os::Vista | Os::Server2008)
    }

    /// Family name used in reports keyed by OS (stall percentiles, mixes).
    pub const fn family(self) -> &'static str {
        match self {
            Os::Win2000 => "win2000",
            Os::XpSp1 | Os::XpSp2 | Os::XpSp3 => "xp",
            Os::Server2003Sp1 | Os::Server2003Sp2 => "server2003",
            Os::Vista => "vista",
            Os::Server2008 => "server2008",
            Os::Nt4 | Os::Win9x => "legacy-windows",
            Os::MacOsX => "mac-os-x",
            Os::Linux => "linux",
            Os::Xbox => "xbox",
            Os::PocketPc => "pocket-pc",
        }
    }
}

named_enum!(
    /// What kind of client computer a host is, as the white paper groups them.
    ClientCategory {
        /// Windows computer joined to a managed domain of the forest.
        Managed = "managed",
        /// Windows computer in a private test domain or workgroup: can join later.
        TestDomain = "test-domain",
        /// Windows NT 4.0 / 9x test computers: no Group Policy IPsec.
        LegacyWindows = "legacy-windows",
        Mac = "mac",
        Linux = "linux",
        Xbox = "xbox",
        PocketPc = "pocket-pc",
        /// Partner, vendor or home PC on the VPN: Windows, not domain-joined.
        VpnGuest = "vpn-guest",
    }
);

named_enum!(
    /// Server roles. Infrastructure roles (dc, dns, dhcp, wins) must stay reachable in
    /// clear; RIS servers are boundary machines [WP "Supporting Non-IPsec Platforms"].
    Role {
        Dc = "dc",
        Dns = "dns",
        Dhcp = "dhcp",
        Wins = "wins",
        Ris = "ris",
        File = "file",
        Web = "web",
        Mail = "mail",
        Lob = "lob",
        Backup = "backup",
        Mgmt = "mgmt",
        Vpn = "vpn",
    }
);

impl Role {
    /// Infrastructure that a computer needs before it can have IPsec policy at all.
    pub const fn is_infrastructure(self) -> bool {
        matches!(self, Role::Dc | Role::Dns | Role::Dhcp | Role::Wins)
    }
}

named_enum!(
    /// Purpose of a universal security group in policy assignment.
    GroupKind {
        /// Denied the IPsec GPOs: infrastructure reachable in clear.
        NoIpsec = "no-ipsec",
        /// Boundary machines: Request mode, accept clear from untrusted hosts.
        Boundary = "boundary",
        /// Secure-server policies (e.g. Require Encryption for HR, finance, source code).
        SecureServer = "secure-server",
        /// Pilot group for a new policy.
        Pilot = "pilot",
        Other = "other",
    }
);

named_enum!(
    /// NLB client affinity [MS NLB]: none (any node per connection), single (per client
    /// address), network (per class C).
    Affinity {
        None = "none",
        Single = "single",
        Network = "network",
    }
);

named_enum!(
    Protocol {
        Tcp = "tcp",
        Udp = "udp",
    }
);

impl Protocol {
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// What a host is: a client of some category or a server of some role.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[serde(into = "String")]
pub enum HostKind {
    Client(ClientCategory),
    Server(Role),
}

impl HostKind {
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Client(c) => c.name(),
            HostKind::Server(r) => r.name(),
        }
    }
    /// Parses a client category or a server role name.
    pub fn from_name(s: &str) -> Option<Self> {
        ClientCategory::from_name(s).map(HostKind::Client).or_else(|| Role::from_name(s).map(HostKind::Server))
    }
    pub fn expected() -> String {
        format!("{}, {}", ClientCategory::expected(), Role::expected())
    }
    pub const fn is_server(self) -> bool {
        matches!(self, HostKind::Server(_))
    }
    /// Dense index over all kinds: client categories first, then roles.
    pub fn dense_index(self) -> usize {
        match self {
            HostKind::Client(c) => c as usize,
            HostKind::Server(r) => ClientCategory::ALL.len() + r as usize,
        }
    }
    pub const COUNT: usize = 8 + 12;
    pub fn from_dense_index(i: usize) -> Self {
        let nc = ClientCategory::ALL.len();
        if i < nc { HostKind::Client(ClientCategory::ALL[i]) } else { HostKind::Server(Role::ALL[i - nc]) }
    }
}

impl From<HostKind> for String {
    fn from(k: HostKind) -> String {
        k.name().to_string()
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_index_round_trips() {
        assert_eq!(HostKind::COUNT, ClientCategory::ALL.len() + Role::ALL.len());
        for i in 0..HostKind::COUNT {
            assert_eq!(HostKind::from_dense_index(i).dense_index(), i);
        }
    }

    #[test]
    fn names_round_trip() {
        for os in Os::ALL {
            assert_eq!(Os::from_name(os.name()), Some(*os));
        }
        assert_eq!(HostKind::from_name("mac"), Some(HostKind::Client(ClientCategory::Mac)));
        assert_eq!(HostKind::from_name("dc"), Some(HostKind::Server(Role::Dc)));
        assert_eq!(HostKind::from_name("nope"), None);
    }

    #[test]
    fn capabilities_follow_the_paper() {
        assert!(Os::XpSp2.secure_request_acts_as_request());
        assert!(!Os::Server2003Sp2.secure_request_acts_as_request());
        assert!(!Os::Nt4.ipsec_capable());
        assert!(!Os::MacOsX.ipsec_capable());
        assert!(Os::Vista.is_vista_class());
        assert!(Os::XpSp3.nap_capable() && !Os::XpSp2.nap_capable());
    }
}
