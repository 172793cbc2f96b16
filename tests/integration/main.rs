//! The one integration-test binary; one module per area.

mod campus;
mod common;
mod determinism;
mod engine;
mod helpdesk;
mod hostile;
mod integrity;
mod interrupt;
mod ipsec;
mod nlb;
mod packets;
mod plot;
mod rollout;
mod run;
mod scenario;
mod sweep;
mod units;
mod wire;
