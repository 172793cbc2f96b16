//! The helpdesk: failures -> calls -> an M/M/c queue [DOMAIN 7, WP].
//!
//! This module owns four things:
//! - **Erlang C** as pure functions ([`erlang_b`], [`erlang_c`], [`mean_wait`],
//!   [`wait_tail`], [`wait_quantile`]): the stationary M/M/c answers a planner can compare a
//!   simulated day with.
//! - **The queue** ([`HelpdeskQueue`]): an exact, call-by-call FCFS multi-agent queue with
//!   opening hours and a per-day number of agents, kept across days so that a multi-month
//!   run is one continuous queue.
//! - **Baseline calls** ([`baseline_calls`]): the ~7,000 calls a month the campus helpdesk
//!   gets for all causes [WP], as a Poisson count per day spread over opening hours.
//! - **Call propensity** ([`call_probability`], [`Propensity`]): the probability that a user
//!   who meets a failure calls.
//!
//! # Contracts
//! - Pure: no I/O, no clock. Time is [`SimTime`]/[`SimDuration`] (u64 ns); `f64` seconds
//!   appear only in the Erlang formulas and when drawing a service time. Randomness comes
//!   only from the generator the caller passes (keyed per (entity, purpose, day) by the
//!   caller, see `model::streams`); the draw order is documented on each function.
//! - Weekdays are `0 = Monday .. 6 = Sunday`; 5 and 6 are the weekend. Larger values are
//!   taken modulo 7.
//! - Parameters ([`HelpdeskParams`], [`Propensity`]) are validated by the scenario layer,
//!   not here; odd values never panic. Negative or NaN weights, rates and factors count as
//!   zero; a closing time past 24:00 is 24:00; `open >= close` means the desk never opens
//!   (calls wait, and the reports show the queue growing).
//! - **Zero agents** is not an error: nobody answers, calls stay queued and are carried to
//!   the next day that has agents. A day's report shows them honestly (`waiting_at_close`,
//!   `oldest_waiting`), and their (long) waits enter the statistics of the day they are
//!   answered. Occupancy is `None` on a day with no available agent-time.
//! - Only [`HelpdeskQueue::push_day`] returns errors ([`HelpdeskError`]): days must be
//!   pushed consecutively and a day's calls must lie on that day, because anything else
//!   would silently break the FCFS order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::{Index, IndexMut};

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp1, Poisson};
use thiserror::Error;

use super::ids::UserId;
use crate::engine::{SimDuration, SimTime};

// ---------------------------------------------------------------------------------------
// Causes
// ---------------------------------------------------------------------------------------

/// Why a user calls the helpdesk.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// A connection blocked by IPsec policy (e.g. a non-domain-joined machine initiating to
    /// a Secure Request / Require host).
    IpsecBlocked,
    /// A connection slowed by IPsec (negotiation latency, fallback-to-clear waits).
    IpsecDelay,
    /// An NLB failover stall: the client keeps sending on an SA to a dead node.
    FailoverStall,
    /// A NAP notification (Deferred Enforcement): nothing is blocked, the user is puzzled.
    NapNotice,
    /// NAP enforcement: a non-compliant computer lost access until remediated.
    NapBlocked,
    /// Windows Firewall blocked something.
    Firewall,
    /// Everything else the helpdesk handles (the baseline).
    Other,
}

impl Cause {
    /// Number of causes (length of [`Cause::ALL`] and of a [`PerCause`]).
    pub const COUNT: usize = 7;

    /// Every cause, in declaration order (the order of [`Cause::index`]).
    pub const ALL: [Cause; Cause::COUNT] = [
        Cause::IpsecBlocked,
        Cause::IpsecDelay,
        Cause::FailoverStall,
        Cause::NapNotice,
        Cause::NapBlocked,
        Cause::Firewall,
        Cause::Other,
    ];

    /// Stable kebab-case name (CSV column suffixes and scenario keys depend on it).
    pub const fn name(self) -> &'static str {
        match self {
            Cause::IpsecBlocked => "ipsec-blocked",
            Cause::IpsecDelay => "ipsec-delay",
            Cause::FailoverStall => "failover-stall",
            Cause::NapNotice => "nap-notice",
            Cause::NapBlocked => "nap-blocked",
            Cause::Firewall => "firewall",
            Cause::Other => "other",
        }
    }

    /// Inverse of [`Cause::name`].
    pub fn from_name(name: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Position in [`Cause::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether the call counts as IPsec-related (the paper's "< 250 a month at peak"):
    /// blocked, delayed, and failover stalls.
    pub const fn is_ipsec_related(self) -> bool {
        matches!(self, Cause::IpsecBlocked | Cause::IpsecDelay | Cause::FailoverStall)
    }
}

/// One value per [`Cause`], indexed by cause.
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub struct PerCause<T>(pub [T; Cause::COUNT]);

impl<T: Copy> PerCause<T> {
    /// The same value for every cause.
    pub const fn splat(v: T) -> Self {
        PerCause([v; Cause::COUNT])
    }

    /// (cause, value) pairs in [`Cause::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Cause, T)> + '_ {
        Cause::ALL.into_iter().zip(self.0.iter().copied())
    }
}

impl<T> Index<Cause> for PerCause<T> {
    type Output = T;
    fn index(&self, c: Cause) -> &T {
        &self.0[c.index()]
    }
}

impl<T> IndexMut<Cause> for PerCause<T> {
    fn index_mut(&mut self, c: Cause) -> &mut T {
        &mut self.0[c.index()]
    }
}

// ---------------------------------------------------------------------------------------
// Erlang C
// ---------------------------------------------------------------------------------------

/// Erlang B: the blocking probability of `agents` servers with no queue under
/// `offered_load` erlangs, by the recurrence `B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1))`
/// (stable for any size; no factorials).
///
/// Edge cases: `offered_load <= 0` gives 0 (1 with zero agents); `+inf` gives 1; NaN gives
/// NaN.
pub fn erlang_b(agents: u32, offered_load: f64) -> f64 {
    let a = offered_load;
    if a.is_nan() {
        return f64::NAN;
    }
    if agents == 0 {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    if a.is_infinite() {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=agents {
        b = a * b / (f64::from(k) + a * b);
        if b == 0.0 {
            break; // underflowed: stays 0 for every larger k
        }
    }
    b
}

/// Erlang C: the probability that a call waits, for `agents` agents and `offered_load`
/// `A = lambda / mu` erlangs, computed from Erlang B as `C = c B / (c - A (1 - B))`.
///
/// When the queue is unstable (`A >= c`, including zero agents) every call waits: 1.
/// `A <= 0` gives 0 (with at least one agent); NaN gives NaN. For a stable queue with
/// `A > 0` the result is strictly between 0 and 1 (up to floating-point underflow for very
/// many idle agents).
pub fn erlang_c(agents: u32, offered_load: f64) -> f64 {
    let a = offered_load;
    if a.is_nan() {
        return f64::NAN;
    }
    let c = f64::from(agents);
    if a >= c {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    let b = erlang_b(agents, a);
    c * b / (c - a * (1.0 - b))
}

/// Offered load in erlangs: `A = lambda x mean service` (arrivals per second times seconds).
pub fn offered_load(arrival_rate_per_s: f64, mean_service: SimDuration) -> f64 {
    arrival_rate_per_s * mean_service.as_secs_f64()
}

/// `(C, decay rate c mu - lambda in 1/s)` of a stable queue with a valid rate, else `None`.
fn stable(agents: u32, arrival_rate_per_s: f64, mean_service: SimDuration) -> Option<(f64, f64)> {
    if !arrival_rate_per_s.is_finite() || arrival_rate_per_s < 0.0 {
        return None;
    }
    let a = offered_load(arrival_rate_per_s, mean_service);
    let c = f64::from(agents);
    if a >= c {
        return None;
    }
    let s = mean_service.as_secs_f64();
    if s == 0.0 {
        // Zero-length services: nobody ever waits (decay rate infinite).
        return Some((0.0, f64::INFINITY));
    }
    Some((erlang_c(agents, a), (c - a) / s))
}

/// Mean wait in queue `W_q = C / (c mu - lambda)` of an M/M/c queue.
///
/// `None` when the queue is unstable (`A >= c`, which includes zero agents) or the rate is
/// negative, NaN or infinite. A zero rate or zero service time gives `Some(0)`.
pub fn mean_wait(agents: u32, arrival_rate_per_s: f64, mean_service: SimDuration) -> Option<SimDuration> {
    let (c, decay) = stable(agents, arrival_rate_per_s, mean_service)?;
    Some(if c == 0.0 { SimDuration::ZERO } else { SimDuration::from_secs_f64(c / decay) })
}

/// Waiting-time tail of an M/M/c queue: `P(W > t) = C exp(-(c mu - lambda) t)`.
/// (`P(W > 0) = C`.) `None` under the same conditions as [`mean_wait`].
pub fn wait_tail(agents: u32, arrival_rate_per_s: f64, mean_service: SimDuration, t: SimDuration) -> Option<f64> {
    let (c, decay) = stable(agents, arrival_rate_per_s, mean_service)?;
    if c == 0.0 {
        return Some(0.0);
    }
    Some(c * (-decay * t.as_secs_f64()).exp())
}

/// The `q`-quantile of the wait (e.g. `q = 0.9` for the p90): the smallest `t` with
/// `P(W > t) <= 1 - q`, i.e. 0 when `C <= 1 - q`, else `ln(C / (1 - q)) / (c mu - lambda)`.
///
/// `None` under the same conditions as [`mean_wait`], and for `q` NaN or `q >= 1` while
/// some calls wait (the tail never reaches 0). `q <= 0` gives 0.
pub fn wait_quantile(agents: u32, arrival_rate_per_s: f64, mean_service: SimDuration, q: f64) -> Option<SimDuration> {
    let (c, decay) = stable(agents, arrival_rate_per_s, mean_service)?;
    if q.is_nan() {
        return None;
    }
    let tail = 1.0 - q;
    if c <= tail {
        return Some(SimDuration::ZERO);
    }
    if tail <= 0.0 {
        return None;
    }
    Some(SimDuration::from_secs_f64((c / tail).ln() / decay))
}

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

/// Days per month for the monthly baseline rate (the DESIGN's 30-day "month" windows).
pub const DAYS_PER_MONTH: f64 = 30.0;

/// Helpdesk staffing and baseline load. Filled (and validated) by the scenario layer.
#[derive(Clone, Debug, PartialEq)]
pub struct HelpdeskParams {
    /// Agents on duty during opening hours, Monday to Friday.
    pub agents_weekday: u32,
    /// Agents on duty during opening hours, Saturday and Sunday (0: closed at weekends).
    pub agents_weekend: u32,
    /// Opening time of day (since midnight). Same every day.
    pub open: SimDuration,
    /// Closing time of day (since midnight; `24 h` = midnight at the end of the day, values
    /// beyond it count as `24 h`). No call starts service at or after closing; a call in
    /// service at closing is finished (overtime, not counted as available time). Open 0,
    /// close 24 h means a continuous 24/7 desk.
    pub close: SimDuration,
    /// Mean handling time of a call; service times are exponential with this mean.
    pub mean_service: SimDuration,
    /// Baseline calls (all causes, [`Cause::Other`]) in a 30-day month [WP: ~7,000].
    pub baseline_calls_per_month: f64,
    /// Baseline call rate on Saturday and Sunday relative to a weekday.
    pub weekend_factor: f64,
    /// Relative baseline call rate by hour of day (index 0 = 00:00-01:00). Only the open part
    /// of each hour receives calls; the scale of the weights does not matter.
    pub hourly_profile: [f64; 24],
}

fn nonneg(x: f64) -> f64 {
    if x > 0.0 { x } else { 0.0 } // also maps NaN to 0
}

/// Whether `weekday` (0 = Monday) is Saturday or Sunday.
pub const fn is_weekend(weekday: u8) -> bool {
    weekday % 7 >= 5
}

impl HelpdeskParams {
    /// Agents on duty on a day with this weekday.
    pub fn agents_on(&self, weekday: u8) -> u32 {
        if is_weekend(weekday) { self.agents_weekend } else { self.agents_weekday }
    }

    /// The opening window `[open, close)` of `day` in absolute time, or `None` when the desk
    /// does not open that day (empty hours, or a day beyond the representable range).
    pub fn open_window(&self, day: u32) -> Option<(SimTime, SimTime)> {
        if day >= SimTime::MAX.day() {
            return None;
        }
        let start = SimTime::start_of_day(day);
        let open = start + self.open.min(SimDuration::DAY);
        let close = start + self.close.min(SimDuration::DAY);
        (open < close).then_some((open, close))
    }

    /// Expected baseline calls on a day with this weekday: the monthly rate spread over a
    /// 30-day month in which Saturday and Sunday weigh `weekend_factor` each, i.e. a
    /// weekday gets `monthly x 7 / (30 x (5 + 2 w))`. Averaged over whole weeks, 30 days
    /// hold exactly `baseline_calls_per_month`.
    pub fn baseline_daily_mean(&self, weekday: u8) -> f64 {
        let w = nonneg(self.weekend_factor);
        let monthly = nonneg(self.baseline_calls_per_month);
        let weekday_mean = monthly * 7.0 / (DAYS_PER_MONTH * (5.0 + 2.0 * w));
        let mean = if is_weekend(weekday) { weekday_mean * w } else { weekday_mean };
        if mean.is_finite() { mean } else { 0.0 } // never NaN or infinite
    }
}

// ---------------------------------------------------------------------------------------
// Baseline calls
// ---------------------------------------------------------------------------------------

/// One call to the helpdesk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// When the user calls (may be outside opening hours: the call then waits).
    pub at: SimTime,
    pub cause: Cause,
    /// The calling user, when known (baseline calls have none).
    pub user: Option<UserId>,
}

/// The day's baseline calls ([`Cause::Other`], no user), sorted by time.
///
/// The count is Poisson with mean [`HelpdeskParams::baseline_daily_mean`]; each call's
/// time is drawn from the hourly profile restricted to the opening window (hour `h` weighs
/// `profile[h] x` the open fraction of the hour), uniformly within the chosen hour's open
/// part. No calls on a day the desk does not open (open window empty) or whose open hours
/// all have zero weight.
///
/// Draws, in order: the count (one Poisson draw, skipped when the mean or the weights are
/// zero), then per call one `f64` for the hour and one `u64` for the instant. Pass a stream
/// keyed by the day so that one day's draws never shift another's.
pub fn baseline_calls(day: u32, weekday: u8, params: &HelpdeskParams, rng: &mut impl Rng) -> Vec<Call> {
    let Some((open, close)) = params.open_window(day) else { return Vec::new() };
    let mean = params.baseline_daily_mean(weekday);
    let start = SimTime::start_of_day(day);
    let hour_ns = SimDuration::HOUR.as_nanos() as f64;
    let mut segments: Vec<(SimTime, SimTime)> = Vec::with_capacity(24);
    let mut cumulative: Vec<f64> = Vec::with_capacity(24);
    let mut total = 0.0;
    for (h, &w) in params.hourly_profile.iter().enumerate() {
        let lo = (start + SimDuration::from_hours(h as u64)).max(open);
        let hi = (start + SimDuration::from_hours(h as u64 + 1)).min(close);
        let w = nonneg(w);
        if lo < hi && w > 0.0 && w.is_finite() {
            total += w * (hi - lo).as_nanos() as f64 / hour_ns;
            cumulative.push(total);
            segments.push((lo, hi));
        }
    }
    if mean <= 0.0 || total <= 0.0 || !total.is_finite() {
        return Vec::new();
    }
    let n = match Poisson::new(mean) {
        Ok(p) => p.sample(rng) as u64, // `as` saturates; the scenario layer bounds the rate
        Err(_) => 0,
    };
    let mut calls = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let u = rng.random::<f64>() * total;
        let i = cumulative.partition_point(|&c| c <= u).min(segments.len() - 1);
        let (lo, hi) = segments[i];
        let at = SimTime::from_nanos(rng.random_range(lo.as_nanos()..hi.as_nanos()));
        calls.push(Call { at, cause: Cause::Other, user: None });
    }
    calls.sort_by_key(|c| c.at);
    calls
}

// ---------------------------------------------------------------------------------------
// Call propensity
// ---------------------------------------------------------------------------------------

/// How likely a user who meets a failure is to call [DOMAIN 7; *assumption*, calibrated
/// by the scenario so the default lands in the paper's < 250 IPsec calls a month].
///
/// The probability is `base[cause]`, times `inconsistent` when the failure is inconsistent
/// (some peers of a service work, others don't), times `unannounced` when the change was not
/// announced, times `trained` when the helpdesk (and its flowcharts) is trained, times
/// `repeat` when the user met the same kind of failure on an earlier day (people call about
/// news, not about the same annoyance every morning); clamped to [0, 1]. So `base` is the
/// probability for a consistent, announced, first failure before training.
#[derive(Clone, Debug, PartialEq)]
pub struct Propensity {
    /// Probability of a call per failure, by cause, for a consistent, announced, first
    /// failure with an untrained helpdesk.
    pub base: PerCause<f64>,
    /// Multiplier when the failure is inconsistent (expected >= 1: it raises calls).
    pub inconsistent: f64,
    /// Multiplier when the change was not announced (expected >= 1: an announcement lowers
    /// calls by avoiding it).
    pub unannounced: f64,
    /// Multiplier once the helpdesk is trained (expected <= 1: it lowers calls).
    pub trained: f64,
    /// Multiplier when the user met this kind of failure before (expected <= 1).
    pub repeat: f64,
}

/// What surrounds a user's failure when they decide whether to call.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Circumstances {
    /// Some peers of the same service worked for this user today, others failed.
    pub inconsistent: bool,
    /// The change behind it was announced to users.
    pub announced: bool,
    /// The helpdesk was trained on the topic.
    pub trained: bool,
    /// The user met this kind of failure on an earlier day.
    pub repeated: bool,
}

/// Probability that a user who meets a failure of `cause` calls (see [`Propensity`]).
/// Always in [0, 1]; NaN parameters give 0.
pub fn call_probability(cause: Cause, c: Circumstances, p: &Propensity) -> f64 {
    let mut x = p.base[cause];
    if c.inconsistent {
        x *= p.inconsistent;
    }
    if !c.announced {
        x *= p.unannounced;
    }
    if c.trained {
        x *= p.trained;
    }
    if c.repeated {
        x *= p.repeat;
    }
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

// ---------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------

/// Errors of [`HelpdeskQueue::push_day`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HelpdeskError {
    #[error("helpdesk day {got} pushed after day {last}: days must be pushed consecutively (push empty days too)")]
    DayOutOfOrder { last: u32, got: u32 },
    #[error("helpdesk call {index} at {at} is not on day {day}")]
    CallOutsideDay { day: u32, index: usize, at: SimTime },
    #[error("helpdesk day {day} is beyond the simulated time range")]
    DayOutOfRange { day: u32 },
}

/// What happened to one answered call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    pub call: Call,
    /// When an agent picked it up.
    pub start: SimTime,
    /// `start - call.at`.
    pub wait: SimDuration,
    /// Handling time.
    pub service: SimDuration,
}

impl CallOutcome {
    /// When the call ended.
    pub fn end(&self) -> SimTime {
        self.start.saturating_add(self.service)
    }
}

/// One simulated day of the helpdesk.
#[derive(Clone, Debug, PartialEq)]
pub struct DayReport {
    pub day: u32,
    pub weekday: u8,
    /// Agents on duty (0 on a day the desk does not open).
    pub agents: u32,
    /// Calls that arrived this day (pushed with it), by cause.
    pub calls: PerCause<u32>,
    /// Calls an agent picked up this day, whatever day they arrived.
    pub answered: u32,
    /// Calls still waiting at the end of the day (carried to the next opening).
    pub waiting_at_close: u32,
    /// Age at the end of the day (24:00) of the oldest call still waiting.
    pub oldest_waiting: Option<SimDuration>,
    /// Mean wait of the calls answered this day (`None` if none was).
    pub mean_wait: Option<SimDuration>,
    /// 90th percentile (nearest rank) of the waits of the calls answered this day.
    pub p90_wait: Option<SimDuration>,
    /// Longest wait of the calls answered this day.
    pub max_wait: Option<SimDuration>,
    /// Busy agent-time of on-duty agents inside this day's opening window (a call running
    /// past closing counts up to closing; in a 24/7 desk a call crossing midnight counts on
    /// both days).
    pub busy: SimDuration,
    /// Available agent-time: agents x length of the opening window.
    pub available: SimDuration,
    /// The answered calls, in the order they were picked up (= arrival order, FCFS).
    pub outcomes: Vec<CallOutcome>,
}

impl DayReport {
    /// All calls that arrived this day.
    pub fn total_calls(&self) -> u32 {
        self.calls.0.iter().sum()
    }

    /// IPsec-related calls that arrived this day ([`Cause::is_ipsec_related`]).
    pub fn ipsec_calls(&self) -> u32 {
        self.calls.iter().filter(|(c, _)| c.is_ipsec_related()).map(|(_, n)| n).sum()
    }

    /// `busy / available`, in [0, 1]; `None` when no agent-time was available.
    pub fn occupancy(&self) -> Option<f64> {
        (!self.available.is_zero()).then(|| self.busy.as_nanos() as f64 / self.available.as_nanos() as f64)
    }
}

#[derive(Copy, Clone, Debug)]
struct Waiting {
    call: Call,
    service: SimDuration,
}

/// An exact FCFS multi-agent queue, fed one day at a time.
///
/// # Contract
/// - Push every day, consecutively from the first pushed day (any day number), with that
///   day's calls (any order; all with `at.day() == day`), even when there are none:
///   skipping a day would skip its agents. Each push returns that day's final
///   [`DayReport`].
/// - Calls are served first come, first served by arrival time (ties keep input order);
///   calls carried from earlier days go first. A call starts at the earliest instant at or
///   after its arrival when an on-duty agent is free and the desk is open; a call that
///   cannot start before closing waits for the next opening (never dropped). The agents are
///   identical: which one answers does not matter.
/// - On a day with `c` agents, the `c` agents that become free earliest are on duty; any
///   other agent still in a call finishes it off duty. Added agents start free at opening.
/// - Service times are drawn when a call is pushed, one draw per call in FCFS order
///   (exponential with mean [`HelpdeskParams::mean_service`]), so a day's draws depend only
///   on its calls, not on the staffing: two staffings compared on the same stream see the
///   same service times (common random numbers).
/// - Calls still waiting when the caller stops pushing are never answered; see
///   [`HelpdeskQueue::waiting`].
#[derive(Clone, Debug)]
pub struct HelpdeskQueue {
    params: HelpdeskParams,
    last_day: Option<u32>,
    waiting: VecDeque<Waiting>,
    /// Free-at instants of the agents that may still matter (at most the last day's count;
    /// agents free by the next opening are equivalent to fresh ones and may be absent).
    agents: Vec<SimTime>,
}

impl HelpdeskQueue {
    /// An empty queue: no call waiting, every agent free.
    pub fn new(params: HelpdeskParams) -> Self {
        HelpdeskQueue { params, last_day: None, waiting: VecDeque::new(), agents: Vec::new() }
    }

    pub fn params(&self) -> &HelpdeskParams {
        &self.params
    }

    /// The last day pushed, if any.
    pub fn last_day(&self) -> Option<u32> {
        self.last_day
    }

    /// Calls waiting now (after the last pushed day), oldest first.
    pub fn waiting(&self) -> impl ExactSizeIterator<Item = &Call> + '_ {
        self.waiting.iter().map(|w| &w.call)
    }

    /// Simulates `day` (weekday `weekday`, 0 = Monday) with its arriving `calls`, drawing
    /// one exponential service time per call from `rng` (see the type's contract).
    pub fn push_day(
        &mut self,
        day: u32,
        weekday: u8,
        calls: &[Call],
        rng: &mut impl Rng,
    ) -> Result<DayReport, HelpdeskError> {
        let mean_s = self.params.mean_service.as_secs_f64();
        self.push_day_with(day, weekday, calls, |_| {
            let x: f64 = Exp1.sample(rng);
            SimDuration::from_secs_f64(x * mean_s)
        })
    }

    /// [`HelpdeskQueue::push_day`] with service times from `service_time`, called once per
    /// call of this day in FCFS order (for other distributions, and for exact tests).
    pub fn push_day_with(
        &mut self,
        day: u32,
        weekday: u8,
        calls: &[Call],
        mut service_time: impl FnMut(&Call) -> SimDuration,
    ) -> Result<DayReport, HelpdeskError> {
        if let Some(last) = self.last_day {
            if last.checked_add(1) != Some(day) {
                return Err(HelpdeskError::DayOutOfOrder { last, got: day });
            }
        }
        if day >= SimTime::MAX.day() {
            return Err(HelpdeskError::DayOutOfRange { day });
        }
        if let Some((index, c)) = calls.iter().enumerate().find(|(_, c)| c.at.day() != day) {
            return Err(HelpdeskError::CallOutsideDay { day, index, at: c.at });
        }
        self.last_day = Some(day);

        let mut by_cause = PerCause::splat(0u32);
        let mut today: Vec<Call> = calls.to_vec();
        today.sort_by_key(|c| c.at); // stable: ties keep input order
        for call in today {
            by_cause[call.cause] += 1;
            let service = service_time(&call);
            self.waiting.push_back(Waiting { call, service });
        }

        let window = self.params.open_window(day);
        let c = if window.is_some() { self.params.agents_on(weekday) } else { 0 };
        let c_usize = usize::try_from(c).unwrap_or(usize::MAX);
        if self.agents.len() > c_usize {
            // The agents who become free earliest stay on duty.
            self.agents.sort_unstable();
            self.agents.truncate(c_usize);
        }

        let mut busy = SimDuration::ZERO;
        let mut available = SimDuration::ZERO;
        let mut outcomes = Vec::new();
        if let (Some((open, close)), true) = (window, c > 0) {
            available = (close - open).saturating_mul(u64::from(c));
            // Calls begun on earlier days and still running at opening.
            for &free in &self.agents {
                if free > open {
                    busy = busy.saturating_add(free.min(close) - open);
                }
            }
            // Only as many fresh agents as there are calls can ever be used today.
            let fresh = (c_usize - self.agents.len()).min(self.waiting.len());
            let mut free: BinaryHeap<Reverse<SimTime>> = self
                .agents
                .iter()
                .map(|&t| Reverse(t.max(open)))
                .chain(std::iter::repeat_n(Reverse(open), fresh))
                .collect();
            while let (Some(front), Some(&Reverse(agent_free))) = (self.waiting.front(), free.peek()) {
                // FCFS with identical agents: start times never decrease, so the first
                // call that cannot start before closing stops the day.
                let start = front.call.at.max(agent_free);
                if start >= close {
                    break;
                }
                let Waiting { call, service } = *front;
                self.waiting.pop_front();
                free.pop();
                let end = start.saturating_add(service);
                free.push(Reverse(end));
                busy = busy.saturating_add(end.min(close) - start);
                outcomes.push(CallOutcome { call, start, wait: start - call.at, service });
            }
            self.agents = free.into_iter().map(|Reverse(t)| t).collect();
        }

        let day_end = SimTime::start_of_day(day) + SimDuration::DAY;
        let mut waits: Vec<SimDuration> = outcomes.iter().map(|o| o.wait).collect();
        waits.sort_unstable();
        let n = waits.len();
        let mean_wait = (n > 0).then(|| {
            let sum: u128 = waits.iter().map(|w| u128::from(w.as_nanos())).sum();
            SimDuration::from_nanos((sum / n as u128) as u64)
        });
        // Nearest rank: the ceil(0.9 n)-th smallest.
        let p90_wait = (n > 0).then(|| waits[(n * 9).div_ceil(10) - 1]);
        Ok(DayReport {
            day,
            weekday,
            agents: c,
            calls: by_cause,
            answered: n as u32,
            waiting_at_close: self.waiting.len().try_into().unwrap_or(u32::MAX),
            oldest_waiting: self.waiting.front().map(|w| day_end - w.call.at),
            mean_wait,
            p90_wait,
            max_wait: waits.last().copied(),
            busy,
            available,
            outcomes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(agents: u32, open_h: u64, close_h: u64) -> HelpdeskParams {
        HelpdeskParams {
            agents_weekday: agents,
            agents_weekend: agents,
            open: SimDuration::from_hours(open_h),
            close: SimDuration::from_hours(close_h),
            mean_service: SimDuration::from_mins(5),
            baseline_calls_per_month: 7000.0,
            weekend_factor: 0.2,
            hourly_profile: [1.0; 24],
        }
    }

    fn call(day: u32, h: u64, m: u64) -> Call {
        Call {
            at: SimTime::start_of_day(day) + SimDuration::from_hours(h) + SimDuration::from_mins(m),
            cause: Cause::Other,
            user: None,
        }
    }

    /// Direct evaluation of the DOMAIN.md formula, for small c.
    fn erlang_c_direct(c: u32, a: f64) -> f64 {
        let mut term = 1.0;
        let mut sum = 0.0;
        for k in 0..c {
            sum += term;
            term *= a / f64::from(k + 1);
        }
        let top = term * f64::from(c) / (f64::from(c) - a);
        top / (sum + top)
    }

    #[test]
    fn erlang_c_matches_the_direct_formula() {
        for c in 1..=30 {
            for a in [0.1, 0.5, 1.0, 2.5, 7.3, 19.9, 29.5] {
                if a < f64::from(c) {
                    let (x, y) = (erlang_c(c, a), erlang_c_direct(c, a));
                    assert!((x - y).abs() < 1e-12, "c={c} a={a}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn erlang_edges() {
        assert_eq!(erlang_c(0, 1.0), 1.0);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        assert_eq!(erlang_c(3, 0.0), 0.0);
        assert_eq!(erlang_c(3, -1.0), 0.0);
        assert!(erlang_c(3, f64::NAN).is_nan());
        assert_eq!(erlang_c(3, f64::INFINITY), 1.0);
        assert_eq!(erlang_b(0, 2.0), 1.0);
        assert_eq!(erlang_b(1, 1.0), 0.5);
        assert_eq!(mean_wait(0, 0.0, SimDuration::from_mins(5)), None);
        assert_eq!(mean_wait(2, 0.0, SimDuration::from_mins(5)), Some(SimDuration::ZERO));
        assert_eq!(mean_wait(2, 1.0, SimDuration::ZERO), Some(SimDuration::ZERO));
        assert_eq!(mean_wait(2, -1.0, SimDuration::from_mins(5)), None);
        assert_eq!(mean_wait(2, f64::NAN, SimDuration::from_mins(5)), None);
        assert_eq!(wait_quantile(5, 30.0 / 3600.0, SimDuration::from_mins(5), 1.0), None);
        assert_eq!(wait_quantile(5, 30.0 / 3600.0, SimDuration::from_mins(5), 0.5), Some(SimDuration::ZERO));
        // 400 agents under 300 erlangs: finite, tiny, no overflow.
        let c = erlang_c(400, 300.0);
        assert!(c > 0.0 && c < 1e-6, "{c}");
        // Huge staffing terminates quickly (B underflows to 0).
        assert_eq!(erlang_c(u32::MAX, 10.0), 0.0);
    }

    #[test]
    fn call_at_night_waits_for_opening_and_closing_carries_over() {
        let mut q = HelpdeskQueue::new(params(1, 8, 18));
        let ten = SimDuration::from_mins(10);
        // 03:00 waits until 08:00; 17:55 starts at once and runs past closing;
        // 17:58 cannot start before 18:00 and is carried over to 08:00 next day.
        let calls = [call(0, 17, 58), call(0, 3, 0), call(0, 17, 55)];
        let r = q.push_day_with(0, 0, &calls, |_| ten).unwrap();
        assert_eq!(r.answered, 2);
        assert_eq!(r.outcomes[0].start, SimTime::start_of_day(0) + SimDuration::from_hours(8));
        assert_eq!(r.outcomes[0].wait, SimDuration::from_hours(5));
        assert_eq!(r.outcomes[1].wait, SimDuration::ZERO);
        assert_eq!(r.waiting_at_close, 1);
        assert_eq!(r.oldest_waiting, Some(SimDuration::from_hours(6) + SimDuration::from_mins(2)));
        // Busy: 10 min + 5 min up to closing, out of 10 h.
        assert_eq!(r.busy, SimDuration::from_mins(15));
        assert_eq!(r.available, SimDuration::from_hours(10));
        assert_eq!(r.p90_wait, Some(SimDuration::from_hours(5)));
        let r = q.push_day_with(1, 1, &[], |_| ten).unwrap();
        assert_eq!(r.answered, 1);
        assert_eq!(r.outcomes[0].wait, SimDuration::from_hours(14) + SimDuration::from_mins(2));
        assert_eq!(r.waiting_at_close, 0);
        assert_eq!(r.total_calls(), 0);
    }

    #[test]
    fn continuous_desk_counts_busy_time_across_midnight() {
        let mut q = HelpdeskQueue::new(params(1, 0, 24));
        let r = q.push_day_with(0, 0, &[call(0, 23, 50)], |_| SimDuration::from_mins(20)).unwrap();
        assert_eq!(r.busy, SimDuration::from_mins(10));
        // The next day's call at 00:05 waits for the running call to end at 00:10.
        let r = q.push_day_with(1, 1, &[call(1, 0, 5)], |_| SimDuration::from_mins(1)).unwrap();
        assert_eq!(r.outcomes[0].wait, SimDuration::from_mins(5));
        assert_eq!(r.busy, SimDuration::from_mins(11));
    }

    #[test]
    fn zero_agents_queue_grows_then_drains() {
        let mut p = params(2, 8, 18);
        p.agents_weekend = 0;
        let mut q = HelpdeskQueue::new(p);
        let one = |_: &Call| SimDuration::from_mins(1);
        let r = q.push_day_with(5, 5, &[call(5, 9, 0)], one).unwrap(); // Saturday
        assert_eq!((r.agents, r.answered, r.waiting_at_close, r.occupancy()), (0, 0, 1, None));
        let r = q.push_day_with(6, 6, &[call(6, 9, 0)], one).unwrap(); // Sunday
        assert_eq!((r.answered, r.waiting_at_close), (0, 2));
        assert_eq!(r.oldest_waiting, Some(SimDuration::from_hours(39)));
        let r = q.push_day_with(7, 0, &[], one).unwrap(); // Monday 08:00
        assert_eq!(r.answered, 2);
        assert_eq!(r.max_wait, Some(SimDuration::from_hours(47)));
        assert_eq!(r.mean_wait, Some(SimDuration::from_hours(35)));
    }

    #[test]
    fn push_errors() {
        let mut q = HelpdeskQueue::new(params(1, 8, 18));
        let s = |_: &Call| SimDuration::ZERO;
        assert_eq!(
            q.push_day_with(3, 3, &[call(4, 9, 0)], s),
            Err(HelpdeskError::CallOutsideDay { day: 3, index: 0, at: call(4, 9, 0).at })
        );
        q.push_day_with(3, 3, &[], s).unwrap();
        assert_eq!(q.push_day_with(5, 5, &[], s), Err(HelpdeskError::DayOutOfOrder { last: 3, got: 5 }));
        assert_eq!(q.push_day_with(3, 3, &[], s), Err(HelpdeskError::DayOutOfOrder { last: 3, got: 3 }));
        let mut q = HelpdeskQueue::new(params(1, 8, 18));
        assert_eq!(q.push_day_with(u32::MAX, 0, &[], s), Err(HelpdeskError::DayOutOfRange { day: u32::MAX }));
    }

    #[test]
    fn huge_staffing_does_not_allocate_per_agent() {
        let mut q = HelpdeskQueue::new(params(u32::MAX, 8, 18));
        let r = q.push_day_with(0, 0, &[call(0, 9, 0), call(0, 9, 0)], |_| SimDuration::from_mins(5)).unwrap();
        assert_eq!(r.answered, 2);
        assert_eq!(r.max_wait, Some(SimDuration::ZERO));
        assert!(r.occupancy().unwrap() < 1e-6);
    }

    #[test]
    fn shrinking_staff_keeps_the_earliest_free_agents() {
        let mut p = params(2, 0, 24);
        p.agents_weekend = 1;
        let mut q = HelpdeskQueue::new(p);
        // Friday 23:00: two calls, one of 3 h (crosses into Saturday) and one of 30 min.
        let mut lens = [SimDuration::from_hours(3), SimDuration::from_mins(30)].into_iter();
        q.push_day_with(4, 4, &[call(4, 23, 0), call(4, 23, 0)], |_| lens.next().unwrap()).unwrap();
        // Saturday, one agent: the one free at 23:30 stays; the 3-hour call finishes off duty.
        let r = q.push_day_with(5, 5, &[call(5, 0, 0)], |_| SimDuration::from_mins(1)).unwrap();
        assert_eq!(r.outcomes[0].wait, SimDuration::ZERO);
        assert_eq!(r.busy, SimDuration::from_mins(1));
    }

    #[test]
    fn names_are_stable_and_round_trip() {
        let names: Vec<_> = Cause::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            ["ipsec-blocked", "ipsec-delay", "failover-stall", "nap-notice", "nap-blocked", "firewall", "other"]
        );
        for c in Cause::ALL {
            assert_eq!(Cause::from_name(c.name()), Some(c));
            assert_eq!(Cause::ALL[c.index()], c);
        }
        let ipsec: Vec<_> = Cause::ALL.into_iter().filter(|c| c.is_ipsec_related()).collect();
        assert_eq!(ipsec, [Cause::IpsecBlocked, Cause::IpsecDelay, Cause::FailoverStall]);
    }

    #[test]
    fn baseline_daily_means_sum_to_the_month() {
        let p = params(5, 8, 18);
        let week: f64 = (0..7).map(|d| p.baseline_daily_mean(d)).sum();
        assert!((week * 30.0 / 7.0 - 7000.0).abs() < 1e-9);
        assert!((p.baseline_daily_mean(5) / p.baseline_daily_mean(0) - 0.2).abs() < 1e-12);
        let mut odd = p.clone();
        odd.baseline_calls_per_month = f64::NAN;
        odd.weekend_factor = -3.0;
        assert_eq!(odd.baseline_daily_mean(0), 0.0);
        let mut odd = p.clone();
        odd.weekend_factor = f64::INFINITY;
        assert_eq!(odd.baseline_daily_mean(0), 0.0);
        assert_eq!(odd.baseline_daily_mean(6), 0.0);
        odd.baseline_calls_per_month = f64::INFINITY;
        odd.weekend_factor = 1.0;
        assert_eq!(odd.baseline_daily_mean(2), 0.0);
    }
}
