//! Stopping on SIGINT or SIGTERM: the handler only raises a flag; the event loop looks at
//! it every few thousand events ([`crate::engine::sim::Stop::cancel`]) and a sweep stops
//! handing out runs, so a run writes nothing half-done and a sweep keeps every finished row.
//!
//! Signals are process-wide, so the flag is too. Only the command line installs the
//! handler; library users (tests, benches) never see the flag raised.

use std::sync::atomic::{AtomicBool, Ordering};

/// Raised by SIGINT or SIGTERM once [`install`] has run.
pub static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // If another handler is already installed, the default behaviour (exit) remains,
        // which still leaves no partial file thanks to the atomic writes.
        let _ = ctrlc::set_handler(|| REQUESTED.store(true, Ordering::SeqCst));
    });
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
