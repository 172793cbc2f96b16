//! The one integration-test binary; one module per area.

mod campus;
mod common;
mod engine;
mod ipsec;
mod packets;
mod run;
mod scenario;
mod units;
mod wire;
