//! Everything that touches files: output rows, the run directory (written atomically) and
//! charts. Model code hands results over as records; only this module serialises them.

pub mod capture;
pub mod check;
pub mod compare;
pub mod determinism;
pub mod integrity;
pub mod pcap;
pub mod plot;
pub mod record;
pub mod writer;
