//! Session draws made ahead of the event loop, a piece of a day at a time.
//!
//! A host's sessions of a day are a pure function of (seed, host, day, seq)
//! ([`arrival_step`]): nothing the simulation does changes them. So they can be drawn
//! before they are simulated, on another core, while the loop replays the piece before;
//! the loop then reads each arrival's next time and session instead of drawing them. This
//! takes the random-number work (ChaCha blocks, the application and peer choices, the
//! exponential gaps) off the loop's critical path without changing a single draw, and it
//! tells the loop an arrival's peer a few events ahead, so that the peer's records can be
//! fetched before they are needed.
//!
//! A [`PlanDrawer`] cuts the run into consecutive time windows and draws, for each, a
//! [`DayPlan`]: the steps of every sampled host that arrive in the window. It follows each
//! host's chain of arrivals across windows, so every step is drawn once. Each window is
//! as long as the sampled hosts are expected to fill half a budget in (from the traffic
//! model's hourly rates, so windows shorten through the morning rise and lengthen at
//! night): a 1% sample's weekday in a few dozen, a full-traffic day in a few thousand.
//!
//! Contract:
//! - [`DayPlan::step`] returns exactly what [`arrival_step`] returns for the same host,
//!   `seq` and day, or `None` when the plan does not hold that step; callers then draw it
//!   themselves. The plan never holds a wrong step, so using it or not cannot change a run.
//! - Memory is bounded: a piece holds at most `budget` steps whatever the traffic (a
//!   burst past it is drawn, to follow the chains, but left to the loop).
//! - An arrival finds its step through a [`Slot`]: the step's place in the plan when the
//!   host's step before it was held in the same piece, else the host's rank among the
//!   sampled hosts ([`sampled_hosts`] order), which indexes each piece's table of the
//!   hosts' first steps. That table has an entry per sampled host, not per host: a 1%
//!   sample's is a few KB, read without a cache miss, where one of every host was a MB.

use super::campus::{Campus, Endpoint};
use super::ids::HostId;
use super::traffic::{Session, TrafficModel, spend_expected};
use super::world::{arrival_step, first_arrival};
use crate::engine::rng::RngStreams;
use crate::engine::{SimDuration, SimTime};

/// Steps a piece holds at most by default (80 bytes each): windows are cut for half of
/// it, so a piece of about 0.7 MB stays in the last-level cache while it is replayed, and the
/// pieces in flight with the arrays per sampled host (its first step in the window, and
/// its chain's cursor) take about 10 MB on the full campus at full traffic. Measured on
/// the full-traffic day: 2^14 ran 5% faster and 1% leaner than 2^15, and 2^13 no faster
/// than 2^14.
pub const DEFAULT_BUDGET: usize = 1 << 14;

/// One arrival's draws, as [`arrival_step`] returns them: when the host's next session
/// arrives (none after midnight), and the session itself (none when no peer was found).
pub type Step = (Option<SimTime>, Option<Session>);

/// How far ahead of an arrival's step [`DayPlan::prefetch_beyond`] asks for the plan: a
/// few events' worth of steps, 10 cache lines.
const STEPS_AHEAD: usize = 8;

/// Where an arrival looks for its step in the plan of its window (see the module doc).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Slot(u32);

/// The tag of a [`Slot`] that names a host's rank rather than a place in a plan.
const RANK_TAG: u32 = 1 << 31;
/// No place in a plan (internal indices).
const NO_PLACE: u32 = u32::MAX;

impl Slot {
    /// Nothing known: no plan holds a step under it, so the loop draws the step, and the
    /// host's later steps of the day. Only a place that missed its step, a bug that the
    /// loop asserts against in debug builds, comes to this.
    const NONE: Slot = Slot(NO_PLACE);

    /// The first step in its window of the host of this rank among the sampled hosts.
    pub fn first_of(rank: usize) -> Slot {
        debug_assert!(rank < (RANK_TAG - 1) as usize);
        Slot(RANK_TAG | rank as u32)
    }

    /// A step's place in its plan.
    fn at(index: u32) -> Slot {
        debug_assert!(index < RANK_TAG);
        Slot(index)
    }

    /// Whether this names a place in a plan (not a host's first step of a window).
    pub fn is_place(self) -> bool {
        self.0 < RANK_TAG
    }

    /// What an arrival whose step the loop drew itself hands on to the host's next one:
    /// the host's rank, which finds the step in any later window (a place belongs to one
    /// plan, and one that missed is a bug).
    pub fn handed_on(self) -> Slot {
        if self.is_place() { Slot::NONE } else { self }
    }
}

/// The sampled hosts in rank order: a host's rank is its place in this sequence.
pub fn sampled_hosts(sampled: &[bool]) -> impl Iterator<Item = HostId> + '_ {
    sampled.iter().enumerate().filter(|(_, s)| **s).map(|(h, _)| HostId::from_index(h))
}

/// A step as held, with whose it is (checked on every read, so a slot can never hand
/// over another host's draws) and the slot of the host's next step.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
struct Held {
    /// `SimTime::MAX` for no next arrival (arrivals lie within their day, so it is never
    /// a real one).
    next: SimTime,
    session: Option<Session>,
    host: u32,
    seq: u32,
    /// The host's rank among the sampled hosts.
    rank: u32,
    next_slot: Slot,
}

// The budget's memory figure counts on this size.
const _: () = assert!(std::mem::size_of::<Held>() == 80);

/// The sessions of every sampled host that arrive in one time window of one day, in the
/// order the loop meets them.
///
/// Steps are stored sorted by arrival time, so the loop reads the plan front to back (a
/// stream, asked for a few steps ahead: see [`DayPlan::prefetch_beyond`]) instead of
/// jumping between hosts; each arrival event
/// carries its step's slot, and each step the slot of the host's next one: its place if the
/// window holds it, else the host's rank.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct DayPlan {
    /// The window: arrivals at `from <= t < to`.
    from: SimTime,
    to: SimTime,
    /// Per sampled host, by rank: the place of its first step in the window ([`NO_PLACE`]
    /// if none).
    first: Vec<u32>,
    steps: Vec<Held>,
}

/// Where a sampled host's chain of arrivals stands: its next arrival (`SimTime::MAX` for
/// none today) and that arrival's `seq`.
#[derive(Copy, Clone, Debug)]
struct Cursor {
    host: u32,
    seq: u32,
    at: SimTime,
}

/// Draws a run's plans in time order, one window after another, each day from midnight to
/// midnight (see the module doc).
pub struct PlanDrawer<'a> {
    campus: &'a Campus,
    traffic: &'a TrafficModel,
    streams: RngStreams,
    /// Every sampled host, in index order (a cursor's index is its host's rank), and where
    /// its chain stands.
    cursors: Vec<Cursor>,
    days: u32,
    budget: usize,
    /// The day the next window belongs to.
    day: u32,
    /// The next window starts here; `None` before the day's first window.
    from: Option<SimTime>,
    /// Sessions the sampled hosts are expected to start in each hour of a weekday.
    hourly: [f64; 24],
    /// Expected sessions a window is cut for.
    target: f64,
    /// Buffers of replayed plans, to draw the next pieces into: reused by the thread that
    /// allocated them, they neither fragment the allocator nor fault in fresh pages.
    spare: Vec<(Vec<Held>, Vec<u32>)>,
    /// Scratch of the sort, reused from piece to piece.
    scratch: Scratch,
}

/// The sort's working arrays (see [`DayPlan::sorted`]).
#[derive(Debug, Default)]
struct Scratch {
    times: Vec<SimTime>,
    order: Vec<u32>,
    slot_of: Vec<u32>,
}

/// Steps reserved for a piece up front at most (a plan of a whole day with no budget
/// grows past it as it is drawn).
const MAX_RESERVE: usize = 1 << 16;
/// Windows are at least this long.
const MIN_WINDOW: SimDuration = SimDuration::from_millis(10);

impl<'a> PlanDrawer<'a> {
    /// A drawer of days `0..days` for the hosts `sampled` marks, at most `budget` steps a
    /// piece.
    pub fn new(
        campus: &'a Campus,
        traffic: &'a TrafficModel,
        streams: RngStreams,
        sampled: &[bool],
        days: u32,
        budget: usize,
    ) -> PlanDrawer<'a> {
        // In rank order: a cursor's index is its host's rank. The loop numbers the hosts
        // of the same `sampled` alike (`sampled_hosts`), and a rank must stay under the tag.
        assert_eq!(sampled.len(), campus.hosts.len(), "a sample flag per host");
        let cursors: Vec<Cursor> =
            sampled_hosts(sampled).map(|h| Cursor { host: h.0, seq: 1, at: SimTime::MAX }).collect();
        assert!(cursors.len() < (RANK_TAG - 1) as usize, "more sampled hosts than ranks");
        let mut hourly = [0.0; 24];
        for c in &cursors {
            for (sum, rate) in hourly.iter_mut().zip(traffic.hourly_rates(campus.hosts[c.host as usize].kind)) {
                *sum += rate;
            }
        }
        // A place in a plan is a u32 under the rank tag: a budget past that would not fit
        // them. A budget of nothing is one of a single step (windows cut for half a step
        // would be 10 ms long and millions a day).
        let budget = budget.clamp(1, RANK_TAG as usize - 1);
        PlanDrawer {
            campus,
            traffic,
            streams,
            cursors,
            days,
            budget,
            day: 0,
            from: None,
            hourly,
            // Half the budget: a window's count is Poisson around it (a few hundred
            // either way), far from the budget.
            target: (budget / 2).max(1) as f64,
            spare: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// Takes back a replayed plan's buffers for the pieces to come (two are kept: the
    /// piece being drawn and the one handed over need no more).
    pub fn recycle(&mut self, plan: DayPlan) {
        let DayPlan { mut first, steps, .. } = plan;
        // Only a budget's worth of capacity is kept (a whole-day plan may be far bigger).
        if self.spare.len() < 2 && steps.capacity() <= self.budget {
            // The table is cleared where the plan's hosts set it, not rewritten whole: a
            // full-traffic piece's hosts are a few thousand of hundreds of thousands.
            for s in &steps {
                first[s.rank as usize] = NO_PLACE;
            }
            self.spare.push((steps, first));
        }
    }

    /// Draws the next window's plan; `None` after the last day.
    pub fn next_piece(&mut self) -> Option<DayPlan> {
        if self.day >= self.days {
            return None;
        }
        let (campus, traffic, streams, day) = (self.campus, self.traffic, &self.streams, self.day);
        let from = match self.from {
            Some(t) => t,
            None => {
                for c in &mut self.cursors {
                    let host = HostId(c.host);
                    *c = Cursor {
                        host: c.host,
                        seq: 1,
                        at: first_arrival(campus, traffic, streams, host, day).unwrap_or(SimTime::MAX),
                    };
                }
                SimTime::start_of_day(day)
            }
        };
        let day_end = SimTime::start_of_day(day + 1);
        let to = self.window_end(from, day_end);
        // Drawn host by host (a host's chain is sequential), with each step's arrival time.
        let (mut drawn, first) = self
            .spare
            .pop()
            .unwrap_or_else(|| (Vec::with_capacity(self.budget.min(MAX_RESERVE)), vec![NO_PLACE; self.cursors.len()]));
        drawn.clear();
        let times = &mut self.scratch.times;
        times.clear();
        for (rank, c) in self.cursors.iter_mut().enumerate() {
            let host = HostId(c.host);
            while c.at < to {
                let (next, session) = arrival_step(campus, traffic, streams, host, c.seq, c.at);
                // Past the budget a step is still drawn (the chain goes on from it) but
                // left to the loop.
                if drawn.len() < self.budget {
                    drawn.push(Held {
                        next: next.unwrap_or(SimTime::MAX),
                        session,
                        host: c.host,
                        seq: c.seq,
                        rank: rank as u32,
                        // Unless the plan holds the next step too (set when sorted).
                        next_slot: Slot::first_of(rank),
                    });
                    times.push(c.at);
                }
                c.at = next.unwrap_or(SimTime::MAX);
                c.seq += 1;
            }
        }
        if to == day_end {
            self.day += 1;
            self.from = None;
        } else {
            self.from = Some(to);
        }
        Some(DayPlan::sorted((from, to), drawn, first, &mut self.scratch))
    }

    /// Where a window from `from` should end so that the sampled hosts are expected to
    /// start [`PlanDrawer::target`] sessions in it: the hourly rates integrated from
    /// `from`, as [`TrafficModel::next_arrival`] draws them; at most the day's end.
    fn window_end(&self, from: SimTime, day_end: SimTime) -> SimTime {
        let day_start = SimTime::start_of_day(self.day);
        let factor = self.traffic.day_factor(self.day);
        match spend_expected(&self.hourly, factor, from - day_start, self.target) {
            Some((at, _)) => (day_start + SimDuration::from_nanos(at as u64)).max(from + MIN_WINDOW).min(day_end),
            None => day_end,
        }
    }
}

impl DayPlan {
    /// Draws the steps of one whole day of the hosts `sampled` marks, up to `budget` steps
    /// in all (one window from midnight to midnight).
    #[cfg(test)]
    pub fn draw(
        campus: &Campus,
        traffic: &TrafficModel,
        streams: &RngStreams,
        sampled: &[bool],
        day: u32,
        budget: usize,
    ) -> DayPlan {
        let mut drawer = PlanDrawer::new(campus, traffic, streams.clone(), sampled, day + 1, budget);
        drawer.day = day;
        drawer.target = f64::INFINITY;
        drawer.next_piece().expect("a day to draw")
    }

    /// Sorts drawn steps (in host and seq order, their arrival times in
    /// `scratch.times`) into the plan of `window`; `first` is a per-rank buffer to reuse,
    /// [`NO_PLACE`] throughout.
    fn sorted(
        (from, to): (SimTime, SimTime),
        mut drawn: Vec<Held>,
        mut first: Vec<u32>,
        scratch: &mut Scratch,
    ) -> DayPlan {
        let Scratch { times, order, slot_of } = scratch;
        // Time order, then (host, seq) order among equal times (drawn is in that order).
        order.clear();
        order.extend(0..drawn.len() as u32);
        order.sort_unstable_by_key(|&i| (times[i as usize], i));
        slot_of.clear();
        slot_of.resize(drawn.len(), NO_PLACE);
        for (slot, &i) in order.iter().enumerate() {
            slot_of[i as usize] = slot as u32;
        }
        debug_assert!(first.iter().all(|&f| f == NO_PLACE));
        for i in 0..drawn.len() {
            if i == 0 || drawn[i - 1].host != drawn[i].host {
                first[drawn[i].rank as usize] = slot_of[i];
            }
            // The host's next step is the next one drawn, if the plan holds it.
            if let Some(n) = drawn.get(i + 1).filter(|n| n.host == drawn[i].host) {
                debug_assert_eq!(n.seq, drawn[i].seq + 1);
                drawn[i].next_slot = Slot::at(slot_of[i + 1]);
            }
        }
        permute_in_place(&mut drawn, order);
        DayPlan { from, to, first, steps: drawn }
    }

    #[cfg(test)]
    pub fn day(&self) -> u32 {
        self.from.day()
    }

    /// The peer of the `seq`-th session of `host`, if the plan holds it where `slot`
    /// says: what a prefetch needs, a few events before the session is handled.
    #[inline]
    pub fn peer_of(&self, host: HostId, seq: u32, slot: Slot) -> Option<Endpoint> {
        self.held(host, seq, slot)?.session.as_ref().map(|s| s.peer)
    }

    /// The `seq`-th step of `host` if the plan holds it where `slot` says: at its place,
    /// or as the first step in the window of the host of its rank.
    #[inline]
    fn held(&self, host: HostId, seq: u32, slot: Slot) -> Option<&Held> {
        self.steps.get(self.place(slot)? as usize).filter(|s| s.host == host.0 && s.seq == seq)
    }

    /// Asks the CPU for the step `STEPS_AHEAD` (8) places after `slot`'s, when `slot` is a
    /// place: the loop meets the steps in order, but between two of them it reads so much
    /// else at random that the processor's own stream prefetch loses the plan (a piece
    /// written by the drawing thread is in the other core's cache or beyond).
    #[inline]
    pub fn prefetch_beyond(&self, slot: Slot) {
        if slot.is_place()
            && let Some(s) = self.steps.get(slot.0 as usize + STEPS_AHEAD)
        {
            crate::engine::prefetch_span(s);
        }
    }

    /// The place `slot` points at: itself, or the first step of its rank's host.
    #[inline]
    fn place(&self, slot: Slot) -> Option<u32> {
        if slot.is_place() {
            Some(slot.0)
        } else {
            self.first.get((slot.0 & !RANK_TAG) as usize).copied().filter(|&p| p != NO_PLACE)
        }
    }

    /// Sampled hosts the plan has ranks for.
    pub fn ranks(&self) -> usize {
        self.first.len()
    }

    /// The window: the plan holds the arrivals at `from <= t < to`.
    #[cfg(test)]
    pub fn window(&self) -> (SimTime, SimTime) {
        (self.from, self.to)
    }

    /// Whether the plan's window holds time `t`.
    pub fn covers(&self, t: SimTime) -> bool {
        self.from <= t && t < self.to
    }

    /// Whether the plan's window ends at or before `t` (a later piece holds `t`).
    pub fn ends_by(&self, t: SimTime) -> bool {
        self.to <= t
    }

    /// Steps held, over all hosts.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The `seq`-th step (seq >= 1) of `host` if the plan holds it where `slot` says, and
    /// the slot of the host's next step; `None` when the plan does not hold it there.
    pub fn step(&self, host: HostId, seq: u32, slot: Slot) -> Option<(Step, Slot)> {
        let held = self.held(host, seq, slot)?;
        Some((((held.next != SimTime::MAX).then_some(held.next), held.session), held.next_slot))
    }
}

/// Reorders `items` so that `items[k]` becomes the old `items[order[k]]`, by following the
/// permutation's cycles with swaps: no second copy of a plan that may be tens of MB.
/// `order` is used up (every entry becomes [`NO_PLACE`]).
fn permute_in_place<T>(items: &mut [T], order: &mut [u32]) {
    for start in 0..order.len() {
        let mut k = start;
        while order[k] != NO_PLACE {
            let src = order[k] as usize;
            order[k] = NO_PLACE;
            if src == start {
                break;
            }
            items.swap(k, src);
            k = src;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn permuting_in_place_equals_gathering(mut order in Just((0..200u32).collect::<Vec<_>>()).prop_shuffle()) {
            let items: Vec<u64> = (0..order.len() as u64).map(|i| i * 7 + 1).collect();
            let want: Vec<u64> = order.iter().map(|&i| items[i as usize]).collect();
            let mut got = items.clone();
            permute_in_place(&mut got, &mut order);
            prop_assert_eq!(got, want);
        }
    }
    use crate::scenario::build;

    fn small() -> (build::Scenario, Campus) {
        let sc = build::builtin_small(600, 400, 6, Some(2));
        let campus = Campus::generate(&sc, 3).unwrap();
        (sc, campus)
    }

    /// Replays every host's day following the plan's slots as the world does, checks each
    /// step the plan holds against a fresh draw, and returns (steps held, steps of sampled
    /// hosts).
    fn check(
        campus: &Campus,
        traffic: &TrafficModel,
        streams: &RngStreams,
        plan: &DayPlan,
        sampled: &[bool],
    ) -> (usize, usize) {
        let (mut held, mut total) = (0, 0);
        let mut last_time = SimTime::ZERO;
        let mut by_slot: Vec<(u32, SimTime)> = Vec::new();
        let mut rank = 0;
        for (h, &in_sample) in sampled.iter().enumerate() {
            let host = HostId::from_index(h);
            let mut at = first_arrival(campus, traffic, streams, host, plan.day());
            let mut seq = 1;
            // A host outside the sample is looked up under the next sampled host's rank (or
            // one past the last): no plan holds it under any.
            let mut slot = Slot::first_of(rank);
            rank += usize::from(in_sample);
            while let Some(now) = at {
                let (next, session) = arrival_step(campus, traffic, streams, host, seq, now);
                total += usize::from(in_sample);
                match plan.step(host, seq, slot) {
                    Some((step, next_slot)) => {
                        assert!(in_sample, "a step of a host outside the sample");
                        assert_eq!(step, (next, session), "host {h} seq {seq}");
                        // The slot hands over this step only.
                        assert!(plan.step(host, seq + 1, slot).is_none());
                        assert!(plan.step(HostId(host.0 ^ 1), seq, slot).is_none());
                        by_slot.push((plan.place(slot).expect("held"), now));
                        held += 1;
                        slot = next_slot;
                    }
                    None => {
                        // Not held: then no later step of the host is either, and a place
                        // handed over always holds its step.
                        assert!(!slot.is_place(), "host {h} seq {seq}: a slot that does not hold its step");
                        slot = slot.handed_on();
                    }
                }
                at = next;
                seq += 1;
            }
        }
        // Slots are in time order.
        by_slot.sort_unstable();
        for &(_, t) in &by_slot {
            assert!(t >= last_time, "slots out of time order");
            last_time = t;
        }
        (held, total)
    }

    #[test]
    fn plan_steps_are_the_draws_of_the_loop() {
        let (sc, campus) = small();
        let traffic = TrafficModel::new(&sc);
        let streams = RngStreams::new(11);
        let sampled: Vec<bool> = (0..campus.hosts.len()).map(|h| h % 3 != 1).collect();
        for day in [0, 5] {
            let plan = DayPlan::draw(&campus, &traffic, &streams, &sampled, day, usize::MAX);
            assert!(plan.len() > 1000, "a plan of {} steps", plan.len());
            assert_eq!(check(&campus, &traffic, &streams, &plan, &sampled), (plan.len(), plan.len()));
        }
    }

    #[test]
    fn a_budget_bounds_the_plan_and_the_rest_is_left_to_the_loop() {
        let (sc, campus) = small();
        let traffic = TrafficModel::new(&sc);
        let streams = RngStreams::new(11);
        let sampled = vec![true; campus.hosts.len()];
        let whole = DayPlan::draw(&campus, &traffic, &streams, &sampled, 1, usize::MAX);
        for budget in [1, 777, whole.len() - 1] {
            let plan = DayPlan::draw(&campus, &traffic, &streams, &sampled, 1, budget);
            assert_eq!(plan.len(), budget);
            assert_eq!(check(&campus, &traffic, &streams, &plan, &sampled), (budget, whole.len()));
        }
    }

    /// Draws two days in pieces of at most `budget` steps, windows cut for `target`
    /// expected steps, and checks what every piece must satisfy: at most `budget` steps,
    /// windows tiling each day, only exact draws, slots handed over the way the world
    /// reads them (and the peer a prefetch reads, that of the held session). Returns
    /// (pieces, steps held, steps of sampled hosts).
    fn draw_in_pieces(budget: usize, target: Option<f64>) -> (usize, usize, usize) {
        let (sc, campus) = small();
        let traffic = TrafficModel::new(&sc);
        let streams = RngStreams::new(11);
        let sampled: Vec<bool> = (0..campus.hosts.len()).map(|h| h % 4 != 1).collect();
        let mut drawer = PlanDrawer::new(&campus, &traffic, streams.clone(), &sampled, 2, budget);
        if let Some(t) = target {
            drawer.target = t;
        }
        let mut pieces: Vec<DayPlan> = Vec::new();
        while let Some(p) = drawer.next_piece() {
            assert!(p.len() <= budget, "a piece of {} steps", p.len());
            // Buffers given back are drawn into again (their rank tables cleared).
            if let Some(done) = pieces.len().checked_sub(2) {
                drawer.recycle(pieces[done].clone());
            }
            pieces.push(p);
        }
        // Windows tile each day from midnight to midnight, in order.
        let mut at = SimTime::ZERO;
        for p in &pieces {
            let (from, to) = p.window();
            assert_eq!(from, at);
            assert!(to > from && to <= SimTime::start_of_day(p.day() + 1));
            assert_eq!(from.day(), p.day());
            at = to;
        }
        assert_eq!(at, SimTime::start_of_day(2));
        // Each host's chain, read as the world reads it.
        let (mut held, mut total) = (0usize, 0usize);
        for (rank, host) in sampled_hosts(&sampled).enumerate() {
            let h = host.index();
            for day in 0..2 {
                let mut at = first_arrival(&campus, &traffic, &streams, host, day);
                let (mut seq, mut slot) = (1, Slot::first_of(rank));
                while let Some(now) = at {
                    let want = arrival_step(&campus, &traffic, &streams, host, seq, now);
                    let k = pieces.partition_point(|p| p.ends_by(now));
                    let piece = &pieces[k];
                    assert!(piece.covers(now));
                    total += 1;
                    slot = match piece.step(host, seq, slot) {
                        Some((step, next_slot)) => {
                            assert_eq!(step, want, "host {h} day {day} seq {seq}");
                            assert_eq!(piece.peer_of(host, seq, slot), want.1.map(|s| s.peer));
                            held += 1;
                            next_slot
                        }
                        None => {
                            assert!(!slot.is_place(), "host {h} day {day} seq {seq}: a place without its step");
                            slot.handed_on()
                        }
                    };
                    at = want.0;
                    seq += 1;
                }
            }
        }
        assert_eq!(held, pieces.iter().map(DayPlan::len).sum::<usize>(), "a held step the loop never reads");
        (pieces.len(), held, total)
    }

    /// Cut for half the budget, no window overflows (a Poisson count of mean 200 passing
    /// 400), so the pieces hold every step.
    #[test]
    fn pieces_tile_the_days_and_hold_every_draw_of_the_loop() {
        let (pieces, held, total) = draw_in_pieces(400, None);
        assert!(pieces > 20, "{pieces} pieces");
        assert_eq!(held, total);
    }

    /// Windows cut for three budgets overflow: the steps past the budget are left to the
    /// loop, and the chains go on exactly in the next windows.
    #[test]
    fn overflowing_pieces_leave_the_rest_to_the_loop_and_keep_the_chains() {
        let (pieces, held, total) = draw_in_pieces(400, Some(1200.0));
        assert!(pieces > 5, "{pieces} pieces");
        assert!(held < total * 2 / 3, "{held} of {total} steps held");
        assert!(held > total / 4, "{held} of {total} steps held");
    }
}
