//! Scenario files: TOML text -> raw serde structs (`file`) -> validated, typed
//! [`build::Scenario`] (`build`). Unit strings are parsed here and nowhere else; `diag`
//! turns every problem into a `file:line:col: key.path: message` diagnostic; `source` reads
//! the files with a size limit.

pub mod build;
pub mod date;
pub mod diag;
pub mod file;
pub mod source;
pub mod units;
