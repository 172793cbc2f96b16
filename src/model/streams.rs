//! The model's random-stream namespace: which (entity kind, purpose) pairs exist.
//!
//! Contract: every random draw in the model comes from a stream keyed by one of these
//! entity kinds and purposes (plus an entity index and an epoch, usually the simulated
//! day), so adding an entity or a purpose never shifts another entity's draws. The numbers
//! are part of the determinism contract: changing one changes every output.

/// Entity kinds (the `entity_kind` field of a stream key).
pub mod entity {
    pub const CAMPUS: u8 = 0;
    pub const SITE: u8 = 1;
    pub const BUILDING: u8 = 2;
    pub const HOST: u8 = 3;
    pub const CLUSTER: u8 = 4;
    pub const REGION: u8 = 5;
}

/// Purposes (the `purpose` field of a stream key).
pub mod purpose {
    /// Shape of the campus: sizes, counts, regions.
    pub const STRUCTURE: u8 = 0;
    /// Per-entity attributes drawn once at build time.
    pub const ATTRIBUTES: u8 = 1;
    /// Session arrivals and their parameters (epoch = simulated day).
    pub const TRAFFIC: u8 = 2;
    /// Server popularity ranks.
    pub const POPULARITY: u8 = 3;
    /// Link parameters (latency, circuit purchase).
    pub const LINKS: u8 = 4;
    /// Ownership of machines by users.
    pub const OWNERS: u8 = 5;
    /// Policy membership drawn per host (local policies).
    pub const POLICY: u8 = 6;
    /// Packet sample membership and offload NICs, drawn per host.
    pub const PACKETS: u8 = 7;
    /// Traffic sample membership (per user or server).
    pub const SAMPLE: u8 = 8;
    /// Daily population events of a host: join, reimage, travel (epoch = day).
    pub const DAILY: u8 = 9;
    /// NAP health lapses and remediation (epoch = day).
    pub const NAP: u8 = 10;
    /// Group Policy refresh delays (epoch = refresh round).
    pub const GP: u8 = 11;
    /// Helpdesk: calls and service times (entity CAMPUS, epoch = day).
    pub const HELPDESK: u8 = 12;
    /// Boundary requests and grants, firewall exceptions (epoch = day).
    pub const REQUESTS: u8 = 13;
    /// NLB: node failures and repairs (entity CLUSTER, epoch = node index); the NAT-T
    /// update of XP SP1 hosts (entity HOST).
    pub const NLB: u8 = 14;
}
