//! The discrete-event engine. It knows nothing of IPsec: simulated time, the event queue,
//! random-number streams and the run loop. Everything in `model/` is built on it.

pub mod prefetch;
pub mod queue;
pub mod rng;
pub mod sim;
pub mod time;

pub use prefetch::{prefetch, prefetch_span};
pub use queue::{EventQueue, Scheduled};
pub use rng::{RngStreams, StreamKey};
pub use sim::{Flow, Handler, Progress, RunStats, Stop, StopReason, run};
pub use time::{SimDuration, SimTime};
