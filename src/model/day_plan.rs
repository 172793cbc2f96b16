//! A day's session draws made ahead of the event loop.
//!
//! A host's sessions of a day are a pure function of (seed, host, day, seq)
//! ([`arrival_step`]): nothing the simulation does changes them. So they can be drawn
//! before the day is simulated, on another core, while the loop replays the previous day;
//! the loop then reads each arrival's next time and session instead of drawing them. This
//! takes the random-number work (ChaCha blocks, the application and peer choices, the
//! exponential gaps) off the loop's critical path without changing a single draw.
//!
//! Contract:
//! - [`DayPlan::step`] returns exactly what [`arrival_step`] returns for the same host,
//!   `seq` and day, or `None` when the plan does not hold that step; callers then draw it
//!   themselves. The plan never holds a wrong step, so using it or not cannot change a run.
//! - Memory is bounded: a plan holds at most `budget` steps (hosts in index order, each
//!   with a prefix of its day), whatever the scenario's traffic; the rest is drawn inline.

use super::campus::Campus;
use super::ids::HostId;
use super::traffic::{Session, TrafficModel};
use super::world::{arrival_step, first_arrival};
use crate::engine::SimTime;
use crate::engine::rng::RngStreams;

/// Steps a plan holds at most by default: about 70 MB of draws (a weekday of the default
/// scenario's 1% traffic sample is about 0.24 M), so a plan being drawn and one being
/// replayed stay well inside the memory target.
pub const DEFAULT_BUDGET: usize = 1 << 20;

/// One arrival's draws, as [`arrival_step`] returns them: when the host's next session
/// arrives (none after midnight), and the session itself (none when no peer was found).
pub type Step = (Option<SimTime>, Option<Session>);

/// Where a step sits in its plan; [`NO_SLOT`] when the plan does not hold it.
pub type Slot = u32;
pub const NO_SLOT: Slot = Slot::MAX;

/// A step as held, with whose it is (checked on every read, so a slot can never hand
/// over another host's draws) and the slot of the host's next step.
#[derive(Debug)]
struct Held {
    /// `SimTime::MAX` for no next arrival (arrivals lie within their day, so it is never
    /// a real one).
    next: SimTime,
    session: Option<Session>,
    host: u32,
    seq: u32,
    next_slot: Slot,
}

/// The sessions of every sampled host on one day, in the order the loop meets them.
///
/// Steps are stored sorted by arrival time, so the loop reads the plan front to back (a
/// stream the processor prefetches) instead of jumping between hosts; each arrival event
/// carries its step's slot, and each step the slot of the host's next one.
#[derive(Debug)]
pub struct DayPlan {
    day: u32,
    /// Per host: the slot of its first step.
    first: Vec<Slot>,
    steps: Vec<Held>,
}

impl DayPlan {
    /// Draws the day's steps of the hosts `sampled` marks, up to `budget` steps in all;
    /// `expected` (a guess at the count, 0 if none) only sizes the buffers.
    pub fn draw(
        campus: &Campus,
        traffic: &TrafficModel,
        streams: &RngStreams,
        sampled: &[bool],
        day: u32,
        budget: usize,
        expected: usize,
    ) -> DayPlan {
        // Slots are u32 (NO_SLOT aside): a budget past that would not fit them.
        let budget = budget.min(NO_SLOT as usize - 1);
        // Drawn host by host (a host's chain is sequential), with each step's arrival time.
        // Sized for the expected count (e.g. the day before's), not by doubling, whose slack
        // could be most of a plan again.
        let expected = expected.min(budget);
        let mut drawn: Vec<Held> = Vec::with_capacity(expected + expected / 16);
        let mut times: Vec<SimTime> = Vec::with_capacity(expected + expected / 16);
        for (h, _) in sampled.iter().enumerate().take(campus.hosts.len()).filter(|(_, s)| **s) {
            let host = HostId::from_index(h);
            let mut at = first_arrival(campus, traffic, streams, host, day);
            let mut seq = 1;
            while let Some(now) = at {
                if drawn.len() >= budget {
                    break;
                }
                let (next, session) = arrival_step(campus, traffic, streams, host, seq, now);
                drawn.push(Held { next: next.unwrap_or(SimTime::MAX), session, host: host.0, seq, next_slot: NO_SLOT });
                times.push(now);
                at = next;
                seq += 1;
            }
        }
        // Time order; a stable sort keeps (host, seq) order among equal times.
        let mut order: Vec<u32> = (0..drawn.len() as u32).collect();
        order.sort_by_key(|&i| times[i as usize]);
        drop(times);
        let mut slot_of = vec![NO_SLOT; drawn.len()];
        for (slot, &i) in order.iter().enumerate() {
            slot_of[i as usize] = slot as Slot;
        }
        let mut first = vec![NO_SLOT; campus.hosts.len()];
        for i in 0..drawn.len() {
            if drawn[i].seq == 1 {
                first[drawn[i].host as usize] = slot_of[i];
            }
            // The host's next step is the next one drawn, if the plan holds it.
            if let Some(n) = drawn.get(i + 1).filter(|n| n.host == drawn[i].host) {
                debug_assert_eq!(n.seq, drawn[i].seq + 1);
                drawn[i].next_slot = slot_of[i + 1];
            }
        }
        drop(slot_of);
        permute_in_place(&mut drawn, &mut order);
        drawn.shrink_to_fit();
        DayPlan { day, first, steps: drawn }
    }

    pub fn day(&self) -> u32 {
        self.day
    }

    /// Steps held, over all hosts.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The slot of `host`'s first step of the day ([`NO_SLOT`] if not held).
    pub fn first_slot(&self, host: HostId) -> Slot {
        self.first.get(host.index()).copied().unwrap_or(NO_SLOT)
    }

    /// The step in `slot` if it is the `seq`-th step (seq >= 1) of `host`, and the slot
    /// of the host's next step; `None` when the plan does not hold it there.
    pub fn step(&self, host: HostId, seq: u32, slot: Slot) -> Option<(Step, Slot)> {
        let held = self.steps.get(slot as usize).filter(|s| s.host == host.0 && s.seq == seq)?;
        Some((((held.next != SimTime::MAX).then_some(held.next), held.session), held.next_slot))
    }
}

/// Reorders `items` so that `items[k]` becomes the old `items[order[k]]`, by following the
/// permutation's cycles with swaps: no second copy of a plan that may be tens of MB.
/// `order` is used up (every entry becomes [`NO_SLOT`]).
fn permute_in_place<T>(items: &mut [T], order: &mut [u32]) {
    for start in 0..order.len() {
        let mut k = start;
        while order[k] != NO_SLOT {
            let src = order[k] as usize;
            order[k] = NO_SLOT;
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
        let mut sc = build::builtin();
        sc.campus.clients = 600;
        sc.campus.users = 400;
        sc.campus.sites = 6;
        sc.campus.regions = 2;
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
        let mut by_slot: Vec<(Slot, SimTime)> = Vec::new();
        for (h, &in_sample) in sampled.iter().enumerate() {
            let host = HostId::from_index(h);
            let mut at = first_arrival(campus, traffic, streams, host, plan.day());
            let mut seq = 1;
            let mut slot = plan.first_slot(host);
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
                        by_slot.push((slot, now));
                        held += 1;
                        slot = next_slot;
                    }
                    None => {
                        // Not held: then no later step of the host is either.
                        assert_eq!(slot, NO_SLOT, "host {h} seq {seq}: a slot that does not hold its step");
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
            let plan = DayPlan::draw(&campus, &traffic, &streams, &sampled, day, usize::MAX, 0);
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
        let whole = DayPlan::draw(&campus, &traffic, &streams, &sampled, 1, usize::MAX, 0);
        for budget in [0, 1, 777, whole.len() - 1] {
            let plan = DayPlan::draw(&campus, &traffic, &streams, &sampled, 1, budget, whole.len());
            assert_eq!(plan.len(), budget);
            assert_eq!(check(&campus, &traffic, &streams, &plan, &sampled), (budget, whole.len()));
        }
    }
}
