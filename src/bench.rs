//! Event-queue throughput on the classic "hold" workload, for `domiso bench engine` and the
//! criterion bench `benches/engine.rs`.
//!
//! Hold: keep `pending` events queued; each operation pops the least event and pushes a new
//! one at the popped time plus a random increment. The increments are pre-generated from a
//! seeded [`RngStreams`] stream (so RNG cost is excluded) and the very same sequence drives
//! the three queues, in the same process, one after the other:
//! - domiso's [`EventQueue`],
//! - `std::collections::BinaryHeap` with `Reverse` on a `(time, class, seq)` key plus payload,
//! - `radix_heap::RadixHeapMap` with `Reverse<u64>` time keys (no class/seq tie-break).
//!
//! Each queue is filled, warmed up (`min(pending, events)` untimed operations), then timed over
//! `events` operations with [`std::time::Instant`] (this module is a tool, not model code).
//! Because the next push time depends only on the popped time and the increment, all three
//! queues must pop the same time sequence; a hash of that sequence is compared and a mismatch
//! panics (it would be an engine bug). Payloads are 16 bytes, like the simulator's events.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use rand::RngExt;
use rand_distr::{Distribution, Exp1};
use serde::Serialize;

use crate::engine::queue::EventQueue;
use crate::engine::rng::{RngStreams, StreamKey};
use crate::engine::time::SimTime;

/// The 16-byte payload carried by every hold event (the simulator's events are ~16 bytes).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldPayload {
    pub id: u64,
    pub kind: u32,
    pub extra: u32,
}

const _: () = assert!(std::mem::size_of::<HoldPayload>() == 16);

/// Distribution of the hold increments, in nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Increments {
    /// Exponential with a fixed mean.
    Exp { mean_ns: u64 },
    /// Exponential whose mean is drawn per event, log-uniformly in `[min_ns, max_ns]`: a mix
    /// of time scales like the simulator's (packets, negotiations, SA lifetimes).
    ExpLogUniformMean { min_ns: u64, max_ns: u64 },
}

impl Increments {
    /// The default: exponential, mean log-uniform in 1 ms..1 s.
    pub const DEFAULT: Increments = Increments::ExpLogUniformMean { min_ns: 1_000_000, max_ns: 1_000_000_000 };

    fn describe(&self) -> String {
        match *self {
            Increments::Exp { mean_ns } => format!("exponential, mean {mean_ns} ns"),
            Increments::ExpLogUniformMean { min_ns, max_ns } => {
                format!("exponential, mean log-uniform in {min_ns}..{max_ns} ns")
            }
        }
    }
}

/// Result of [`hold_benchmark`].
#[derive(Clone, Debug, Serialize)]
pub struct HoldReport {
    pub pending: usize,
    pub events: u64,
    pub warmup_events: u64,
    pub seed: u64,
    pub increments: Increments,
    pub domiso_events_per_s: f64,
    pub binary_heap_events_per_s: f64,
    pub radix_heap_events_per_s: f64,
    pub speedup_vs_binary_heap: f64,
    pub speedup_vs_radix_heap: f64,
    /// Hash of the popped time sequence; identical for the three queues (checked).
    pub checksum: u64,
}

/// The minimal queue interface the hold loop needs.
pub trait HoldQueue {
    fn with_capacity(n: usize) -> Self;
    fn hold_push(&mut self, time: u64, class: u8, payload: HoldPayload);
    fn hold_pop(&mut self) -> Option<(u64, HoldPayload)>;
}

impl HoldQueue for EventQueue<HoldPayload> {
    fn with_capacity(n: usize) -> Self {
        EventQueue::with_capacity(n)
    }
    #[inline]
    fn hold_push(&mut self, time: u64, class: u8, payload: HoldPayload) {
        self.push(SimTime::from_nanos(time), class, payload);
    }
    #[inline]
    fn hold_pop(&mut self) -> Option<(u64, HoldPayload)> {
        self.pop().map(|s| (s.time.as_nanos(), s.event))
    }
}

/// `std` binary heap baseline: min-heap by `(time, class, seq)` via `Reverse`.
pub struct StdBinaryHeap {
    heap: BinaryHeap<HeapItem>,
    seq: u64,
}

struct HeapItem {
    key: Reverse<(u64, u8, u64)>,
    payload: HoldPayload,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl HoldQueue for StdBinaryHeap {
    fn with_capacity(n: usize) -> Self {
        StdBinaryHeap { heap: BinaryHeap::with_capacity(n + 1), seq: 0 }
    }
    #[inline]
    fn hold_push(&mut self, time: u64, class: u8, payload: HoldPayload) {
        self.seq += 1;
        self.heap.push(HeapItem { key: Reverse((time, class, self.seq)), payload });
    }
    #[inline]
    fn hold_pop(&mut self) -> Option<(u64, HoldPayload)> {
        self.heap.pop().map(|h| (h.key.0.0, h.payload))
    }
}

/// `radix-heap` crate baseline (time key only; ties pop in LIFO order).
pub struct RadixHeap(radix_heap::RadixHeapMap<Reverse<u64>, HoldPayload>);

impl HoldQueue for RadixHeap {
    fn with_capacity(_n: usize) -> Self {
        RadixHeap(radix_heap::RadixHeapMap::new())
    }
    #[inline]
    fn hold_push(&mut self, time: u64, _class: u8, payload: HoldPayload) {
        self.0.push(Reverse(time), payload);
    }
    #[inline]
    fn hold_pop(&mut self) -> Option<(u64, HoldPayload)> {
        self.0.pop().map(|(Reverse(t), p)| (t, p))
    }
}

/// Pre-generated increments (ns, each >= 1) from stream `(bench, 0, hold, 0)` of `seed`.
pub fn hold_increments(count: usize, seed: u64, dist: Increments) -> Vec<u64> {
    let mut rng = RngStreams::new(seed).stream(StreamKey::new(0xBE, 0, 0, 0));
    (0..count)
        .map(|_| {
            let mean = match dist {
                Increments::Exp { mean_ns } => mean_ns as f64,
                Increments::ExpLogUniformMean { min_ns, max_ns } => {
                    let (lo, hi) = ((min_ns as f64).ln(), (max_ns as f64).ln());
                    (lo + (hi - lo) * rng.random::<f64>()).exp()
                }
            };
            let x: f64 = Exp1.sample(&mut rng);
            ((x * mean).round() as u64).max(1)
        })
        .collect()
}

/// A hold workload in progress on one queue: the queue plus a cursor in the increments.
pub struct HoldRun<'a, Q> {
    pub queue: Q,
    incs: &'a [u64],
    cursor: usize,
    next_id: u64,
    /// Order-sensitive hash of every popped time so far.
    pub checksum: u64,
}

impl<'a, Q: HoldQueue> HoldRun<'a, Q> {
    /// Fills a new queue with `pending` events at times `incs[0..pending]` (from time zero).
    /// `incs` is cycled when exhausted.
    pub fn fill(pending: usize, incs: &'a [u64]) -> Self {
        assert!(!incs.is_empty(), "need at least one increment");
        let mut run = HoldRun { queue: Q::with_capacity(pending), incs, cursor: 0, next_id: 0, checksum: 0 };
        for _ in 0..pending {
            let inc = run.next_increment();
            let p = run.next_payload();
            run.queue.hold_push(inc, class_of(&p), p);
        }
        run
    }

    #[inline]
    fn next_increment(&mut self) -> u64 {
        let inc = self.incs[self.cursor];
        self.cursor += 1;
        if self.cursor == self.incs.len() {
            self.cursor = 0;
        }
        inc
    }

    #[inline]
    fn next_payload(&mut self) -> HoldPayload {
        self.next_id += 1;
        HoldPayload { id: self.next_id, kind: (self.next_id % 7) as u32, extra: self.next_id as u32 }
    }

    /// `ops` hold operations (pop the least, push at popped time + next increment).
    #[inline(never)]
    pub fn steps(&mut self, ops: u64) {
        for _ in 0..ops {
            let (t, p) = self.queue.hold_pop().expect("a hold queue never empties");
            self.checksum = (self.checksum.rotate_left(7) ^ t).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let inc = self.next_increment();
            let p = HoldPayload { id: p.id.wrapping_add(1), ..p };
            self.queue.hold_push(t + inc, class_of(&p), p);
        }
    }
}

#[inline]
fn class_of(p: &HoldPayload) -> u8 {
    (p.kind & 3) as u8
}

/// Cap on the pre-generated increments (64 MiB); longer runs cycle through them.
const MAX_INCREMENTS: usize = 1 << 23;

/// Runs fill + warm-up + timed hold on one queue type; returns (events/s, checksum).
fn measure<Q: HoldQueue>(pending: usize, warmup: u64, events: u64, incs: &[u64]) -> (f64, u64) {
    let mut run = HoldRun::<Q>::fill(pending, incs);
    run.steps(warmup);
    let start = Instant::now();
    run.steps(events);
    let secs = start.elapsed().as_secs_f64();
    let checksum = run.checksum;
    drop(black_box(run));
    (events as f64 / secs.max(1e-9), checksum)
}

/// The hold benchmark with the default increments ([`Increments::DEFAULT`]).
///
/// # Panics
/// If `pending == 0` or `events == 0` (the CLI validates both first), or if the three queues
/// pop different time sequences (an engine bug).
pub fn hold_benchmark(pending: usize, events: u64, seed: u64) -> HoldReport {
    hold_benchmark_with(pending, events, seed, Increments::DEFAULT)
}

/// The rate of domiso's queue alone in the [`hold_benchmark`] (same warm-up, increments
/// and panics), for a caller that compares the model with it and has no use for the other
/// queues' times.
pub fn queue_rate(pending: usize, events: u64, seed: u64) -> f64 {
    let (warmup, incs) = hold_setup(pending, events, seed, Increments::DEFAULT);
    measure::<EventQueue<HoldPayload>>(pending, warmup, events, &incs).0
}

/// The hold benchmark's warm-up count and increments: a warm-up of as many events as are
/// pending (at most `events`), so that the timed ones meet a queue in its steady state.
fn hold_setup(pending: usize, events: u64, seed: u64, increments: Increments) -> (u64, Vec<u64>) {
    assert!(pending > 0, "the hold benchmark needs at least one pending event");
    let warmup = events.min(pending as u64);
    let wanted = (pending as u64).saturating_add(warmup).saturating_add(events);
    let count = usize::try_from(wanted).unwrap_or(usize::MAX).min(MAX_INCREMENTS);
    (warmup, hold_increments(count, seed, increments))
}

/// The hold benchmark with a chosen increment distribution (same panics as
/// [`hold_benchmark`]).
pub fn hold_benchmark_with(pending: usize, events: u64, seed: u64, increments: Increments) -> HoldReport {
    let (warmup, incs) = hold_setup(pending, events, seed, increments);
    let (domiso, c1) = measure::<EventQueue<HoldPayload>>(pending, warmup, events, &incs);
    let (binary, c2) = measure::<StdBinaryHeap>(pending, warmup, events, &incs);
    let (radix, c3) = measure::<RadixHeap>(pending, warmup, events, &incs);
    assert_eq!(c1, c2, "domiso and BinaryHeap popped different time sequences");
    assert_eq!(c1, c3, "domiso and radix-heap popped different time sequences");

    HoldReport {
        pending,
        events,
        warmup_events: warmup,
        seed,
        increments,
        domiso_events_per_s: domiso,
        binary_heap_events_per_s: binary,
        radix_heap_events_per_s: radix,
        speedup_vs_binary_heap: domiso / binary,
        speedup_vs_radix_heap: domiso / radix,
        checksum: c1,
    }
}

/// Human-readable table of a [`HoldReport`].
pub fn render_text(r: &HoldReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hold benchmark: {} pending, {} timed events (+{} warm-up), seed {}",
        r.pending, r.events, r.warmup_events, r.seed
    );
    let _ = writeln!(s, "increments: {}", r.increments.describe());
    let _ = writeln!(s, "{:<28} {:>14} {:>12}", "queue", "events/s", "domiso is");
    let rows = [
        ("domiso EventQueue", r.domiso_events_per_s),
        ("std BinaryHeap", r.binary_heap_events_per_s),
        ("radix-heap RadixHeapMap", r.radix_heap_events_per_s),
    ];
    for (name, rate) in rows {
        let _ = writeln!(s, "{:<28} {:>12.2} M {:>11.2}x", name, rate / 1e6, r.domiso_events_per_s / rate);
    }
    let _ = writeln!(s, "checksum (same for all three): {:#018x}", r.checksum);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_hold_benchmark_agrees_across_queues() {
        let r = hold_benchmark(1000, 20_000, 3);
        assert_eq!(r.pending, 1000);
        assert!(r.domiso_events_per_s > 0.0);
        let text = render_text(&r);
        assert!(text.contains("std BinaryHeap"), "{text}");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"speedup_vs_radix_heap\""), "{json}");
    }

    #[test]
    fn increments_are_positive_and_seeded() {
        let a = hold_increments(100, 1, Increments::Exp { mean_ns: 1000 });
        let b = hold_increments(100, 1, Increments::Exp { mean_ns: 1000 });
        assert_eq!(a, b);
        assert!(a.iter().all(|&x| x >= 1));
        let c = hold_increments(100, 2, Increments::Exp { mean_ns: 1000 });
        assert_ne!(a, c);
    }
}
