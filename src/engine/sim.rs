//! The run loop: pops events in `(time, class, seq)` order and hands each to a [`Handler`],
//! until a stop condition holds.
//!
//! # Contract
//! - Before each event the loop checks, in this order: the queue is empty
//!   ([`StopReason::Drained`]); the next event's time is `>= stop.until`
//!   ([`StopReason::Until`]; that event and all later ones stay queued); `stop.max_events`
//!   events have been processed in this call ([`StopReason::MaxEvents`]). After each event,
//!   a [`Flow::Stop`] from the handler ends the run ([`StopReason::Handler`]).
//! - `RunStats::events` counts the events handled by this call; `end_time` is the queue's
//!   `now()` at return, i.e. the time of the last event handled (by this or an earlier call;
//!   [`SimTime::ZERO`] if none ever was). It is *not* advanced to `until`.
//! - The progress hook is called every [`PROGRESS_EVERY`] events and once at the end, so it
//!   costs nothing measurable; it must not touch the model (it gets a read-only snapshot).
//! - `run` may be called again on the same queue to continue (e.g. day by day with `until`).
//!
//! Panics only if the handler does (e.g. by pushing an event into the past).

use std::sync::atomic::{AtomicBool, Ordering};

use super::queue::EventQueue;
use super::time::SimTime;

/// The progress hook runs every this many events (2^16).
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// What the handler wants after an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The model side of the run loop: handles one event, may schedule more.
pub trait Handler<E> {
    fn handle(&mut self, now: SimTime, event: E, queue: &mut EventQueue<E>) -> Flow;

    /// Called with the next pending event (when the queue has it at hand) before the
    /// current one is handled: a handler may ask the CPU for the memory that event will
    /// read, so that it arrives while the current one is handled. A hint only: it must
    /// not change any state.
    #[inline]
    fn prefetch(&self, _next: &E) {}

    /// Called with an event [`PREFETCH_DISTANCE`] places further on (when the queue has
    /// it at hand): the first stage of a two-stage prefetch. A handler fetches here what
    /// [`Handler::prefetch`] will read to find that event's memory (e.g. the index of a
    /// record), so that the second stage does not wait for it. A hint only.
    #[inline]
    fn prefetch_ahead(&self, _later: &E) {}
}

/// How many events ahead of the current one [`Handler::prefetch_ahead`] looks: far enough
/// for a memory access to complete while the events between are handled.
pub const PREFETCH_DISTANCE: usize = 3;

/// Stop conditions; `None` means no limit.
#[derive(Copy, Clone, Debug, Default)]
pub struct Stop {
    /// Process only events with `time < until`; the rest stay queued.
    pub until: Option<SimTime>,
    /// Process at most this many events in this call.
    pub max_events: Option<u64>,
    /// A flag raised from outside (a signal handler): the loop stops at its next progress
    /// report (every [`PROGRESS_EVERY`] events) with [`StopReason::Cancelled`].
    pub cancel: Option<&'static AtomicBool>,
}

impl Stop {
    /// Run until the queue drains or the handler stops.
    pub const NEVER: Stop = Stop { until: None, max_events: None, cancel: None };

    pub const fn until(t: SimTime) -> Self {
        Stop { until: Some(t), max_events: None, cancel: None }
    }

    pub const fn max_events(n: u64) -> Self {
        Stop { until: None, max_events: Some(n), cancel: None }
    }
}

/// Snapshot handed to the progress hook.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Time of the last event handled.
    pub now: SimTime,
    /// Events handled so far in this call.
    pub events: u64,
    /// Events still queued.
    pub pending: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    Drained,
    Until,
    MaxEvents,
    Handler,
    /// The [`Stop::cancel`] flag was raised.
    Cancelled,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RunStats {
    pub events: u64,
    pub end_time: SimTime,
    pub stopped_by: StopReason,
}

/// Runs `handler` over `queue` until a stop condition holds (see the module docs).
pub fn run<E, H: Handler<E>>(
    queue: &mut EventQueue<E>,
    handler: &mut H,
    stop: &Stop,
    progress: &mut dyn FnMut(&Progress),
) -> RunStats {
    // `max_events` as a plain countdown bound keeps the hot loop to one compare.
    let max_events = stop.max_events.unwrap_or(u64::MAX);
    let mut events: u64 = 0;
    let stopped_by = loop {
        if events == max_events {
            // Budget spent: report Drained/Until instead if they hold too (checked first).
            break match queue.peek_time() {
                None => StopReason::Drained,
                Some(t) if stop.until.is_some_and(|u| t >= u) => StopReason::Until,
                Some(_) => StopReason::MaxEvents,
            };
        }
        let next = match stop.until {
            None => queue.pop(),
            Some(until) => queue.pop_before(until),
        };
        let Some(next) = next else {
            break if queue.is_empty() { StopReason::Drained } else { StopReason::Until };
        };
        events += 1;
        if let Some(after) = queue.peek_near() {
            handler.prefetch(after);
        }
        if let Some(later) = queue.peek_near_at(PREFETCH_DISTANCE - 1) {
            handler.prefetch_ahead(later);
        }
        let flow = handler.handle(next.time, next.event, queue);
        if events % PROGRESS_EVERY == 0 {
            progress(&Progress { now: queue.now(), events, pending: queue.len() });
            if stop.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break StopReason::Cancelled;
            }
        }
        if flow == Flow::Stop {
            break StopReason::Handler;
        }
    };
    progress(&Progress { now: queue.now(), events, pending: queue.len() });
    RunStats { events, end_time: queue.now(), stopped_by }
}
