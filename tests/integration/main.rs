//! The one integration-test binary; one module per area.

mod campus;
mod common;
mod engine;
mod helpdesk;
mod ipsec;
mod packets;
mod rollout;
mod run;
mod scenario;
mod units;
mod wire;
