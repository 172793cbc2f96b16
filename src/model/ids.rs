//! Identifier newtypes. Each is a dense index into one `Vec` of the campus (or of the
//! traffic catalogue), so no function can take a subnet where it wanted a host.
//!
//! Contract: ids are assigned in generation order and never reused within a run; `index()`
//! is the position in the owning `Vec`. Sizes are chosen for memory at campus scale
//! (u32 for anything that can exceed 65k, u8/u16 for small catalogues).

use serde::Serialize;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $repr:ty) => {
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $repr);

        impl $name {
            /// Position in the owning vector.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
            /// The id of position `i`; panics if `i` does not fit (a generator bug: sizes
            /// are validated against the limits in `scenario::build` first).
            #[inline]
            pub fn from_index(i: usize) -> Self {
                $name(<$repr>::try_from(i).expect(concat!(stringify!($name), " overflow")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(/// A host (client, server or device) of the campus.
    HostId, u32);
id_type!(/// A user who owns one or more client computers.
    UserId, u32);
id_type!(/// An IP subnet.
    SubnetId, u32);
id_type!(/// A building: a LAN holding several subnets.
    BuildingId, u32);
id_type!(/// A site (location) with its own WAN link.
    SiteId, u32);
id_type!(/// A geographic region served by one hub site.
    RegionId, u16);
id_type!(/// An Active Directory domain of the forest.
    DomainId, u8);
id_type!(/// A universal security group.
    GroupId, u8);
id_type!(/// An NLB cluster (one virtual IP).
    ClusterId, u32);
id_type!(/// A link of the topology graph.
    LinkId, u32);
id_type!(/// An application of the traffic catalogue.
    AppId, u8);
