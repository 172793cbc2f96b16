//! The one integration-test binary; one module per area.

mod campus;
mod common;
mod engine;
mod run;
mod scenario;
mod units;
