//! The discrete-event engine. It knows nothing of IPsec: simulated time, the event queue,
//! random-number streams and the run loop. Everything in `model/` is built on it.

pub mod queue;
pub mod rng;
pub mod sim;
pub mod time;

pub use time::{SimDuration, SimTime};
