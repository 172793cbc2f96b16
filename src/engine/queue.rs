//! The event queue: a monotone priority queue of pending events under the total order
//! `(time, class, seq)`.
//!
//! # Contract
//! - `time` is a [`SimTime`] (u64 nanoseconds). `class: u8` breaks ties between events at the
//!   same time: lower class first. `seq` is the queue's own insertion counter, so events with
//!   the same `(time, class)` pop in the order they were pushed (FIFO).
//! - [`EventQueue::pop`] returns the least event *currently queued* under that order.
//! - The queue is monotone: [`EventQueue::now`] is the time of the last popped event
//!   ([`SimTime::ZERO`] before any pop) and [`EventQueue::push`] panics if `time < now()`
//!   (scheduling into the past is a model bug, never an input error). Pushing at exactly
//!   `now()` is allowed, with any class. Popped times therefore never go backwards.
//!
//! # Same-time pushes (the subtle case)
//! While a handler processes an event popped at `(t, 5)` it may push at time `t`:
//! - `(t, 1)`: accepted; it is the least queued event (every other queued event is at
//!   `(t, >= 5)` or later), so it pops **next**, before the remaining `(t, 5..)` events and
//!   before anything later. The popped sequence is then `(t,5) (t,1) (t,5') ...`: classes are
//!   ordered among the events queued at the same time, not retroactively across pops.
//! - `(t, 5)`: pops after every already-queued `(t, 5)` event (larger seq), before `(t, 6..)`.
//! - `(t, 9)`: pops after the already-queued `(t, 5..=8)` and `(t, 9)` events.
//!
//! # Design (why it is fast)
//! A multi-level radix queue on the u64 time (a radix heap with 64-way digits) in front of a
//! small sorted run:
//! - **Near events.** Every pending event with `time <= near_last` sits in `near`, a
//!   `VecDeque` sorted by `(time, class, seq)`; pop is `pop_front`. A push into that range is
//!   usually an append (later than everything near, FIFO among equals) or a short sorted
//!   insert; one that would shift more than `SHIFT_LIMIT` entries goes to `overflow`, a binary
//!   heap (usually empty) whose top is compared with `near`'s front when popping.
//! - **Levels.** Any other event is filed relative to a reference time `r` (`<= now`): level
//!   `l` = index of the highest 6-bit digit in which its time differs from `r`, slot = that
//!   digit of its time (11 levels x 64 slots). Events of one level share the digits above `l`
//!   with `r`, so the lowest non-empty slot of the lowest non-empty level (two bit scans)
//!   holds the minimum; each slot tracks its minimum, so [`EventQueue::peek_time`] is O(1).
//! - **Refill.** When the near events run out, `pop` takes that lowest slot and moves `r` to
//!   its minimum (the other slots stay valid). A slot of at most `SMALL` events is sorted and
//!   becomes the near run, which then owns the slot's whole time range; a bigger slot is
//!   redistributed to strictly lower levels. Each event is thus moved a handful of times
//!   (2-3 in the hold benchmark), each move a sequential read and an append, where a binary
//!   radix heap moves it ~10 times and a binary heap does ~2 log2(n) unpredictable
//!   compare-and-swaps per operation.
//! - **Spill.** If a model keeps pushing into a wide near range, the near events would grow
//!   into a big sorted structure; past `SPILL` of them, the range shrinks to `now` and the
//!   later ones go back into the levels (each spill moves events to strictly lower levels, so
//!   the work stays bounded per event).
//! - **Storage.** Slots hold entries (16 bytes + payload) in fixed-size chunks of `CHUNK`
//!   entries drawn from a shared free list (LIFO, so reused memory is warm), so memory stays
//!   ~ `len * entry size` plus one partly filled chunk per non-empty slot; per-slot growable
//!   vectors would each keep their peak capacity (hundreds of MB at 1M pending). No `unsafe`.
//!
//! Constants were picked by measuring the hold workload at 1M pending (see `domiso::bench`).
//!
//! `seq` is packed with `class` into one u64 (class in the top 8 bits, seq in the low 56),
//! which caps a queue's lifetime at 2^56 pushes (~7e16); exceeding it panics.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use super::time::SimTime;

/// Bits of the time consumed per level; 2^DIGIT_BITS slots per level.
const DIGIT_BITS: u32 = 6;
const SLOTS: usize = 1 << DIGIT_BITS;
const LEVELS: usize = 64_usize.div_ceil(DIGIT_BITS as usize);
const WORDS: usize = SLOTS / 64;
/// Entries per storage chunk (8 KiB for 16-byte payloads: long sequential runs for the
/// hardware prefetcher when a big slot is read back).
const CHUNK: usize = 256;
/// Slots with at most this many events (and at most one chunk) move whole into the sorted
/// near events instead of being redistributed.
const SMALL: usize = 256;
/// The near events spill back into the levels above this count.
const SPILL: usize = 4096;
/// Sorted insertion into `near` moves at most about this many entries; else `overflow`.
const SHIFT_LIMIT: usize = 32;
const SEQ_BITS: u32 = 56;
const SEQ_LIMIT: u64 = 1 << SEQ_BITS;

const _: () = assert!(SLOTS >= 64 && SLOTS % 64 == 0);
const _: () = assert!(LEVELS <= 32);

/// An event taken off the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled<E> {
    pub time: SimTime,
    pub class: u8,
    pub event: E,
}

/// A stored event. `key` = class << 56 | seq. Ordered so that `BinaryHeap` (a max-heap) yields
/// the least `(time, key)` first.
struct Entry<E> {
    time: u64,
    key: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time && self.key == other.key
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.key).cmp(&(self.time, self.key))
    }
}

impl<E> Entry<E> {
    /// `(time, key)` as one integer, so comparisons are branch-light.
    #[inline(always)]
    fn sort_key(&self) -> u128 {
        (u128::from(self.time) << 64) | u128::from(self.key)
    }

    #[inline]
    fn into_scheduled(self) -> Scheduled<E> {
        Scheduled { time: SimTime::from_nanos(self.time), class: (self.key >> SEQ_BITS) as u8, event: self.event }
    }
}

type Chunk<E> = Vec<Entry<E>>;

/// One slot of one level. Invariant: `min` is the least time in the slot (u64::MAX if empty).
struct Slot<E> {
    /// Chunk being filled; capacity CHUNK, or 0 when the slot holds no chunk.
    tail: Chunk<E>,
    /// Full chunks, oldest first.
    full: Vec<Chunk<E>>,
    min: u64,
}

impl<E> Slot<E> {
    fn new() -> Self {
        Slot { tail: Vec::new(), full: Vec::new(), min: u64::MAX }
    }
}

/// Monotone priority queue of events ordered by `(time, class, seq)`. See the module docs.
pub struct EventQueue<E> {
    /// Time of the last popped event.
    now: u64,
    /// Radix reference of the levels (`<= now`).
    reference: u64,
    /// Every pending event with `time <= near_last` is in `near` or `overflow`; every other
    /// one is in a slot.
    near_last: u64,
    /// The nearest events, sorted ascending by `(time, key)`.
    near: VecDeque<Entry<E>>,
    /// Near events whose sorted position was far from both ends of `near` (bursts); a
    /// min-heap, usually empty.
    overflow: BinaryHeap<Entry<E>>,
    /// The near events are spilled back into the levels when they grow past this.
    spill_at: usize,
    next_seq: u64,
    len: usize,
    /// `LEVELS * SLOTS` slots, level-major.
    slots: Box<[Slot<E>]>,
    /// Bit `d` of `occupied[l]` is set iff slot `(l, d)` is non-empty.
    occupied: [[u64; WORDS]; LEVELS],
    /// Bit `l` set iff level `l` has a non-empty slot.
    level_mask: u32,
    /// Empty chunks (capacity CHUNK), reused LIFO so recently freed memory is hot in cache.
    pool: Vec<Chunk<E>>,
    /// Scratch buffer for sorting (kept to avoid reallocating).
    scratch: Vec<Entry<E>>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventQueue")
            .field("now", &self.now())
            .field("len", &self.len)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue {
            now: 0,
            reference: 0,
            near_last: 0,
            near: VecDeque::new(),
            overflow: BinaryHeap::new(),
            spill_at: SPILL,
            next_seq: 0,
            len: 0,
            slots: (0..LEVELS * SLOTS).map(|_| Slot::new()).collect(),
            occupied: [[0; WORDS]; LEVELS],
            level_mask: 0,
            pool: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// A queue with storage pre-allocated for about `n` pending events.
    pub fn with_capacity(n: usize) -> Self {
        let mut q = Self::new();
        let chunks = n.div_ceil(CHUNK);
        q.pool.reserve(chunks);
        q.pool.extend((0..chunks).map(|_| Vec::with_capacity(CHUNK)));
        q
    }

    /// Number of pending events.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Time of the last popped event ([`SimTime::ZERO`] before any pop).
    #[inline]
    pub fn now(&self) -> SimTime {
        SimTime::from_nanos(self.now)
    }

    /// Schedules `event` at `time` with tie-break `class` (lower first).
    ///
    /// # Panics
    /// If `time < self.now()` (a model bug), or after 2^56 pushes.
    #[inline]
    pub fn push(&mut self, time: SimTime, class: u8, event: E) {
        let t = time.as_nanos();
        if t < self.now {
            push_in_past(time, self.now());
        }
        let seq = self.next_seq;
        assert!(seq < SEQ_LIMIT, "EventQueue: more than 2^56 pushes");
        self.next_seq = seq + 1;
        let e = Entry { time: t, key: (u64::from(class) << SEQ_BITS) | seq, event };
        self.len += 1;
        if t <= self.near_last {
            self.push_near(e);
        } else {
            self.insert(e);
        }
    }

    /// Time of the least pending event, without removing it. O(1).
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        let near = match (self.near.front(), self.overflow.peek()) {
            (Some(a), Some(b)) => Some(a.time.min(b.time)),
            (Some(a), None) => Some(a.time),
            (None, Some(b)) => Some(b.time),
            (None, None) => None,
        };
        near.or_else(|| self.lowest_slot().map(|i| self.slots[i].min)).map(SimTime::from_nanos)
    }

    /// The least pending event if it is among the near events (the usual case), else
    /// `None` (finding it would take a refill). For looking ahead, e.g. to prefetch what
    /// the next event will touch.
    #[inline]
    pub fn peek_near(&self) -> Option<&E> {
        match (self.near.front(), self.overflow.peek()) {
            (Some(a), Some(b)) => Some(if a.sort_key() <= b.sort_key() { &a.event } else { &b.event }),
            (a, b) => a.or(b).map(|e| &e.event),
        }
    }

    /// The event `k` places behind the front of the sorted near events (0: the front), if
    /// there are that many: usually the one that pops `k + 1` pops from now, but events
    /// pushed meanwhile or waiting in the overflow heap can come first. For looking
    /// further ahead than [`EventQueue::peek_near`], as a hint.
    #[inline]
    pub fn peek_near_at(&self, k: usize) -> Option<&E> {
        self.near.get(k).map(|e| &e.event)
    }

    /// Removes and returns the least pending event under `(time, class, seq)`.
    #[inline]
    pub fn pop(&mut self) -> Option<Scheduled<E>> {
        let e = if self.overflow.is_empty() {
            match self.near.pop_front() {
                Some(e) => e,
                None => self.refill()?,
            }
        } else {
            self.pop_near_with_overflow()
        };
        debug_assert!(e.time >= self.now, "popped time went backwards");
        self.now = e.time;
        self.len -= 1;
        Some(e.into_scheduled())
    }

    /// Pops the least event only if its time is strictly before `limit`.
    #[inline]
    pub fn pop_before(&mut self, limit: SimTime) -> Option<Scheduled<E>> {
        match self.peek_time() {
            Some(t) if t < limit => self.pop(),
            _ => None,
        }
    }

    /// Index of the lowest non-empty slot of the lowest non-empty level.
    #[inline]
    fn lowest_slot(&self) -> Option<usize> {
        if self.level_mask == 0 {
            return None;
        }
        let level = self.level_mask.trailing_zeros() as usize;
        let words = &self.occupied[level];
        for (w, &bits) in words.iter().enumerate() {
            if bits != 0 {
                return Some(level * SLOTS + w * 64 + bits.trailing_zeros() as usize);
            }
        }
        unreachable!("level_mask says level {level} is occupied but its bitmap is empty")
    }

    /// Files an entry with `time > reference` (and `> near_last`) into its slot.
    #[inline(always)]
    fn insert(&mut self, e: Entry<E>) {
        debug_assert!(e.time > self.reference);
        let diff = e.time ^ self.reference;
        let level = (63 - diff.leading_zeros()) / DIGIT_BITS;
        let digit = (e.time >> (level * DIGIT_BITS)) as usize & (SLOTS - 1);
        let level = level as usize;
        let slot = &mut self.slots[level * SLOTS + digit];
        slot.min = slot.min.min(e.time);
        if slot.tail.len() == slot.tail.capacity() {
            // Tail full (or absent): retire it and start a fresh chunk from the pool.
            let fresh = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
            let old = std::mem::replace(&mut slot.tail, fresh);
            if !old.is_empty() {
                slot.full.push(old);
            }
        }
        slot.tail.push(e);
        self.occupied[level][digit / 64] |= 1 << (digit % 64);
        self.level_mask |= 1 << level;
    }

    /// Adds an event with `time <= near_last` to the near events.
    #[inline]
    fn push_near(&mut self, e: Entry<E>) {
        let n = self.near.len();
        match self.near.back() {
            // Common case: later than every near event (FIFO among equals).
            Some(last) if (last.time, last.key) < (e.time, e.key) => self.near.push_back(e),
            None => self.near.push_back(e),
            Some(_) => self.insert_near_sorted(e, n),
        }
        if n + 1 + self.overflow.len() > self.spill_at {
            self.spill();
        }
    }

    /// Sorted insertion, if the position is within `SHIFT_LIMIT` of an end of `near`
    /// (bounded memmove); otherwise the event goes to `overflow`.
    #[cold]
    #[inline(never)]
    fn insert_near_sorted(&mut self, e: Entry<E>, n: usize) {
        let k = (e.time, e.key);
        let pos = self.near.partition_point(|x| (x.time, x.key) < k);
        if n - pos <= SHIFT_LIMIT || pos <= SHIFT_LIMIT {
            self.near.insert(pos, e);
        } else {
            self.overflow.push(e);
        }
    }

    /// Pop when `overflow` is non-empty: the least of the two fronts.
    #[cold]
    #[inline(never)]
    fn pop_near_with_overflow(&mut self) -> Entry<E> {
        let from_near = match (self.near.front(), self.overflow.peek()) {
            (Some(a), Some(b)) => (a.time, a.key) < (b.time, b.key),
            _ => false,
        };
        if from_near {
            self.near.pop_front().expect("checked non-empty")
        } else {
            self.overflow.pop().expect("checked non-empty")
        }
    }

    /// The near events are exhausted: take the slot holding the least pending event and
    /// return that event. A small slot moves whole into `near` (which then covers the
    /// slot's time range); a big one is redistributed to lower levels around its minimum.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) -> Option<Entry<E>> {
        debug_assert!(self.near.is_empty() && self.overflow.is_empty());
        let idx = self.lowest_slot()?;
        self.spill_at = SPILL;
        let level = idx / SLOTS;
        let digit = idx % SLOTS;

        // Detach the slot's contents and mark it empty.
        let slot = &mut self.slots[idx];
        let min = slot.min;
        slot.min = u64::MAX;
        let mut tail = std::mem::take(&mut slot.tail);
        let mut full = std::mem::take(&mut slot.full);
        self.occupied[level][digit / 64] &= !(1 << (digit % 64));
        if self.occupied[level].iter().all(|&w| w == 0) {
            self.level_mask &= !(1 << level);
        }
        debug_assert!(min > self.reference && min >= self.now);
        // Every other slot's events differ from `min` in the same digit as from the old
        // reference, so moving the reference to `min` leaves them where they are.
        self.reference = min;

        if full.is_empty() && tail.len() == 1 {
            // Single event: return it, `near` stays empty.
            self.near_last = min;
            let e = tail.pop().expect("len checked");
            self.pool.push(tail);
            self.slots[idx].full = full;
            return Some(e);
        }

        if full.is_empty() && tail.len() <= SMALL {
            // `near` takes over the slot's whole range: times sharing the digits >= `level`
            // with `min`. Later pushes into that range go to `near` as well.
            self.near_last = min | ((1u64 << (level as u32 * DIGIT_BITS)) - 1);
            tail.sort_unstable_by_key(Entry::sort_key);
            self.near.extend(tail.drain(..));
            self.pool.push(tail);
        } else {
            // Every entry shares the digits >= `level` with `min`, so it lands on a strictly
            // lower level, or among the near events if its time is `min`.
            self.near_last = min;
            let mut at_min = std::mem::take(&mut self.scratch);
            for mut chunk in full.drain(..).chain(std::iter::once(tail)) {
                for e in chunk.drain(..) {
                    if e.time == min {
                        at_min.push(e);
                    } else {
                        self.insert(e);
                    }
                }
                self.pool.push(chunk);
            }
            at_min.sort_unstable_by_key(|e| e.key);
            self.near.extend(at_min.drain(..));
            self.scratch = at_min;
        }
        // Keep the (now empty) list of full chunks' allocation for the slot's next use.
        self.slots[idx].full = full;
        self.near.pop_front()
    }

    /// The near events grew too many (their range is wide and the model keeps pushing into
    /// it): shrink the range to `now` and move the later events back into the levels,
    /// relative to `now`. `now` lies in the range the near events took over, so the other
    /// slots stay valid.
    #[cold]
    #[inline(never)]
    fn spill(&mut self) {
        let now = self.now;
        self.reference = now;
        self.near_last = now;
        let mut keep = std::mem::take(&mut self.scratch);
        let near = std::mem::take(&mut self.near);
        let overflow = std::mem::take(&mut self.overflow);
        for e in near.into_iter().chain(overflow.into_vec()) {
            if e.time == now {
                keep.push(e);
            } else {
                self.insert(e);
            }
        }
        keep.sort_unstable_by_key(|e| e.key);
        self.near.extend(keep.drain(..));
        self.scratch = keep;
        // Many events exactly at `now` cannot be spilled; don't retry on every push.
        self.spill_at = SPILL.max(2 * self.near.len());
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn push_in_past(time: SimTime, now: SimTime) -> ! {
    panic!(
        "EventQueue::push: event scheduled in the past at {time} ({} ns) while now is {now} ({} ns); \
         this is a model bug",
        time.as_nanos(),
        now.as_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: u64) -> SimTime {
        SimTime::from_nanos(ns)
    }

    fn drain<E>(q: &mut EventQueue<E>) -> Vec<(u64, u8, E)> {
        std::iter::from_fn(|| q.pop().map(|s| (s.time.as_nanos(), s.class, s.event))).collect()
    }

    #[test]
    fn empty_queue() {
        let mut q: EventQueue<u32> = EventQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.peek_time(), None);
        assert_eq!(q.pop(), None);
        assert_eq!(q.now(), SimTime::ZERO);
    }

    #[test]
    fn orders_by_time_then_class_then_seq() {
        let mut q = EventQueue::new();
        q.push(t(10), 2, "c");
        q.push(t(10), 1, "b");
        q.push(t(5), 9, "a");
        q.push(t(10), 2, "d");
        q.push(t(10), 1, "b2");
        q.push(t(1 << 40), 0, "z");
        assert_eq!(q.len(), 6);
        assert_eq!(q.peek_time(), Some(t(5)));
        let out: Vec<_> = drain(&mut q).into_iter().map(|x| x.2).collect();
        assert_eq!(out, ["a", "b", "b2", "c", "d", "z"]);
        assert_eq!(q.now(), t(1 << 40));
    }

    #[test]
    fn same_time_lower_class_pushed_during_handling_pops_next() {
        let mut q = EventQueue::new();
        q.push(t(100), 5, "first5");
        q.push(t(100), 5, "second5");
        q.push(t(100), 7, "seven");
        q.push(t(200), 0, "later");
        let s = q.pop().unwrap();
        assert_eq!((s.time, s.class, s.event), (t(100), 5, "first5"));
        // Handler pushes at the same time with a lower and a higher class.
        q.push(t(100), 9, "nine");
        q.push(t(100), 1, "one");
        q.push(t(100), 5, "third5");
        let out: Vec<_> = drain(&mut q).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(out, [(1, "one"), (5, "second5"), (5, "third5"), (7, "seven"), (9, "nine"), (0, "later")]);
    }

    #[test]
    fn push_at_now_after_advance() {
        let mut q = EventQueue::new();
        q.push(t(7), 3, 1);
        assert_eq!(q.pop().unwrap().time, t(7));
        q.push(t(7), 3, 2);
        q.push(t(7), 0, 3);
        assert_eq!(q.peek_time(), Some(t(7)));
        let out: Vec<_> = drain(&mut q).into_iter().map(|x| x.2).collect();
        assert_eq!(out, [3, 2]);
    }

    #[test]
    fn extreme_times() {
        let mut q = EventQueue::new();
        q.push(SimTime::MAX, 0, 3);
        q.push(t(0), 0, 0);
        q.push(t(u64::MAX - 1), 0, 2);
        q.push(t(1), 0, 1);
        let out: Vec<_> = drain(&mut q).into_iter().map(|x| x.2).collect();
        assert_eq!(out, [0, 1, 2, 3]);
        assert_eq!(q.now(), SimTime::MAX);
        q.push(SimTime::MAX, 0, 4);
        assert_eq!(q.pop().unwrap().event, 4);
    }

    #[test]
    fn many_ties_in_one_slot() {
        let mut q = EventQueue::new();
        for i in 0..1000u32 {
            q.push(t(1_000_000 + u64::from(i % 3)), (i % 4) as u8, i);
        }
        let out = drain(&mut q);
        let mut expected: Vec<_> = (0..1000u32).map(|i| (1_000_000 + u64::from(i % 3), (i % 4) as u8, i)).collect();
        expected.sort();
        assert_eq!(out, expected);
    }

    #[test]
    #[should_panic(expected = "scheduled in the past")]
    fn push_in_the_past_panics() {
        let mut q = EventQueue::new();
        q.push(t(10), 0, ());
        q.pop();
        q.push(t(9), 0, ());
    }

    #[test]
    fn with_capacity_and_debug() {
        let mut q = EventQueue::with_capacity(100);
        q.push(t(3), 0, 'x');
        assert!(format!("{q:?}").contains("len: 1"));
        assert_eq!(q.pop().unwrap().event, 'x');
    }
}
