//! The world domiso simulates: the campus, its network and traffic, and (in later layers)
//! IPsec policy, security associations and rollouts. Model code never does I/O and never
//! prints: results leave through observers, and `now` is always an argument.

pub mod campaign;
pub mod campus;
pub mod census;
pub mod day_plan;
pub mod esp;
pub mod helpdesk;
pub mod host_draws;
pub mod ids;
pub mod kinds;
pub mod lint;
pub mod nlb;
pub mod packet_layer;
pub mod packets;
pub mod policy;
pub mod population;
pub mod rollout;
pub mod sa;
pub mod secnet;
pub mod streams;
pub mod topology;
pub mod traffic;
pub mod wire;
pub mod world;
