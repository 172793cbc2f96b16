//! domiso: a seeded discrete-event simulator of IPsec domain-isolation rollouts on an
//! enterprise campus.
//!
//! Layers, bottom up:
//! - [`engine`]: simulated time, the event queue, random streams, the run loop. Knows
//!   nothing of IPsec.
//! - [`scenario`]: TOML scenario files, unit strings, validation with `file:line:col`
//!   diagnostics, into a typed `Scenario`.
//! - [`model`]: the campus, its topology and traffic (and, in later layers, policy, SAs,
//!   wire sizes, NLB, rollouts, helpdesk). Pure: no I/O, `now` is always an argument.
//! - [`output`]: run directories, CSV/JSON records, charts. The only layer that writes files.
//! - [`run`], [`cli`]: gluing a scenario to a run directory, and the command line;
//!   [`determinism_check`]: a run executed twice and compared (`run --check-determinism`).
//! - [`huge_pages`]: the binary's allocator (large blocks on transparent huge pages).
//!
//! Determinism contract: the same scenario and seed give byte-identical output files on
//! any machine and thread count. Every random draw comes from a ChaCha8 stream keyed by
//! (entity, purpose, epoch) under the master seed (`engine::rng`, `model::streams`); events
//! are totally ordered by (time, class, insertion); no output depends on hash-map order or
//! on the wall clock. The only exceptions are the machine measurements named in
//! `run` (wall time, event rate, peak memory). `domiso run --check-determinism` verifies
//! it for one scenario and seed.

pub mod bench;
pub mod cli;
pub mod determinism_check;
pub mod engine;
pub mod huge_pages;
pub mod interrupt;
pub mod model;
pub mod output;
pub mod run;
pub mod runner;
pub mod scaling;
pub mod scenario;
