//! Scenario files: TOML text -> raw serde structs (`file`) -> validated, typed
//! [`build::Scenario`] (`build`). Unit strings are parsed here and nowhere else.

pub mod diag;
pub mod units;
