//! domiso: a seeded discrete-event simulator of IPsec domain-isolation rollouts.

pub mod bench;
pub mod engine;
pub mod scenario;
