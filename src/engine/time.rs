//! Simulated time: [`SimTime`] (an instant, nanoseconds since scenario start) and
//! [`SimDuration`] (a span of nanoseconds).
//!
//! Contract: both are plain `u64` nanoseconds. No `f64` seconds live inside the engine or
//! the model; conversions to and from floating point exist only for drawing random
//! durations (`from_secs_f64`) and for reporting (`as_secs_f64`). Arithmetic is checked in
//! every build, release included: `+`/`-` and the constructors (`start_of_day`,
//! `from_secs`, ...) panic on overflow or underflow (a model bug, never an input error:
//! inputs are range-checked in `scenario/`), and `checked_*`/`saturating_*` variants exist
//! where a caller can handle the edge.
//!
//! `u64` nanoseconds cover about 584 years, far beyond any rollout.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

use serde::{Deserialize, Serialize};

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_MIN: u64 = 60 * NS_PER_S;
const NS_PER_H: u64 = 60 * NS_PER_MIN;
const NS_PER_DAY: u64 = 24 * NS_PER_H;

/// `a * b`, panicking on overflow in every build (constructors share the `+` contract).
const fn checked(a: u64, b: u64, what: &str) -> u64 {
    match a.checked_mul(b) {
        Some(v) => v,
        None => panic!("{}", what),
    }
}

/// An instant of simulated time: nanoseconds since the scenario starts (day 0, 00:00).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimTime(u64);

/// A span of simulated time in nanoseconds.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimDuration(u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);

    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The instant `day` days after the start (00:00 of that day). Panics past `SimTime::MAX`
    /// (day 213,503); see [`checked_start_of_day`](Self::checked_start_of_day).
    pub const fn start_of_day(day: u32) -> Self {
        SimTime(checked(day as u64, NS_PER_DAY, "SimTime overflow"))
    }
    /// The instant `day` days after the start; `None` past `SimTime::MAX`.
    pub const fn checked_start_of_day(day: u32) -> Option<Self> {
        match (day as u64).checked_mul(NS_PER_DAY) {
            Some(ns) => Some(SimTime(ns)),
            None => None,
        }
    }
    /// Zero-based day index containing this instant.
    pub const fn day(self) -> u32 {
        (self.0 / NS_PER_DAY) as u32
    }
    /// Time of day since midnight.
    pub const fn time_of_day(self) -> SimDuration {
        SimDuration(self.0 % NS_PER_DAY)
    }
    pub fn checked_add(self, d: SimDuration) -> Option<SimTime> {
        self.0.checked_add(d.0).map(SimTime)
    }
    pub fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
    pub fn checked_sub(self, d: SimDuration) -> Option<SimTime> {
        self.0.checked_sub(d.0).map(SimTime)
    }
    /// The span from `earlier` to `self`; `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: SimTime) -> Option<SimDuration> {
        self.0.checked_sub(earlier.0).map(SimDuration)
    }
    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
    /// Seconds since start, for reporting only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);
    pub const MAX: SimDuration = SimDuration(u64::MAX);
    pub const NANOSECOND: SimDuration = SimDuration(1);
    pub const SECOND: SimDuration = SimDuration(NS_PER_S);
    pub const MINUTE: SimDuration = SimDuration(NS_PER_MIN);
    pub const HOUR: SimDuration = SimDuration(NS_PER_H);
    pub const DAY: SimDuration = SimDuration(NS_PER_DAY);

    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(checked(us, NS_PER_US, "SimDuration overflow"))
    }
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(checked(ms, NS_PER_MS, "SimDuration overflow"))
    }
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(checked(s, NS_PER_S, "SimDuration overflow"))
    }
    pub const fn from_mins(m: u64) -> Self {
        SimDuration(checked(m, NS_PER_MIN, "SimDuration overflow"))
    }
    pub const fn from_hours(h: u64) -> Self {
        SimDuration(checked(h, NS_PER_H, "SimDuration overflow"))
    }
    pub const fn from_days(d: u64) -> Self {
        SimDuration(checked(d, NS_PER_DAY, "SimDuration overflow"))
    }
    /// From floating-point seconds (used when drawing random durations). Negative and NaN
    /// give zero; values beyond the range saturate.
    pub fn from_secs_f64(s: f64) -> Self {
        let ns = s * NS_PER_S as f64;
        if ns.is_nan() || ns <= 0.0 {
            SimDuration(0)
        } else if ns >= u64::MAX as f64 {
            SimDuration(u64::MAX)
        } else {
            SimDuration(ns.round() as u64)
        }
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / NS_PER_MS as f64
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    pub fn checked_add(self, o: SimDuration) -> Option<SimDuration> {
        self.0.checked_add(o.0).map(SimDuration)
    }
    pub fn saturating_add(self, o: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(o.0))
    }
    pub fn saturating_sub(self, o: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_sub(o.0))
    }
    pub fn checked_mul(self, k: u64) -> Option<SimDuration> {
        self.0.checked_mul(k).map(SimDuration)
    }
    pub fn saturating_mul(self, k: u64) -> SimDuration {
        SimDuration(self.0.saturating_mul(k))
    }
    /// Scale by a non-negative factor (rounded to the nearest nanosecond, saturating).
    pub fn mul_f64(self, k: f64) -> SimDuration {
        SimDuration::from_secs_f64(self.as_secs_f64() * k)
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        self.checked_add(d).expect("SimTime overflow")
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        *self = *self + d;
    }
}

impl Sub<SimDuration> for SimTime {
    type Output = SimTime;
    fn sub(self, d: SimDuration) -> SimTime {
        self.checked_sub(d).expect("SimTime underflow")
    }
}

impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, earlier: SimTime) -> SimDuration {
        self.checked_duration_since(earlier).expect("SimTime subtraction: earlier instant is later")
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, o: SimDuration) -> SimDuration {
        self.checked_add(o).expect("SimDuration overflow")
    }
}

impl AddAssign for SimDuration {
    fn add_assign(&mut self, o: SimDuration) {
        *self = *self + o;
    }
}

impl Sub for SimDuration {
    type Output = SimDuration;
    fn sub(self, o: SimDuration) -> SimDuration {
        SimDuration(self.0.checked_sub(o.0).expect("SimDuration underflow"))
    }
}

/// `d+HH:MM:SS.mmm` (day index, then wall-clock time of that day).
impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.0 / NS_PER_DAY;
        let rem = self.0 % NS_PER_DAY;
        let h = rem / NS_PER_H;
        let m = (rem % NS_PER_H) / NS_PER_MIN;
        let s = (rem % NS_PER_MIN) / NS_PER_S;
        let ms = (rem % NS_PER_S) / NS_PER_MS;
        write!(f, "{day}+{h:02}:{m:02}:{s:02}.{ms:03}")
    }
}

/// The largest unit that divides the span exactly (`500 ms`, `2 h`, `1500 us`), so the
/// printed form parses back to the same value with the scenario unit parser.
impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 7] = [
            (NS_PER_DAY, "d"),
            (NS_PER_H, "h"),
            (NS_PER_MIN, "min"),
            (NS_PER_S, "s"),
            (NS_PER_MS, "ms"),
            (NS_PER_US, "us"),
            (1, "ns"),
        ];
        if self.0 == 0 {
            return write!(f, "0 s");
        }
        for (scale, unit) in UNITS {
            if self.0 % scale == 0 {
                return write!(f, "{} {unit}", self.0 / scale);
            }
        }
        unreachable!("every value is a multiple of 1 ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_picks_exact_unit() {
        assert_eq!(SimDuration::from_millis(500).to_string(), "500 ms");
        assert_eq!(SimDuration::from_hours(2).to_string(), "2 h");
        assert_eq!(SimDuration::from_micros(1500).to_string(), "1500 us");
        assert_eq!(SimDuration::from_secs(90).to_string(), "90 s");
        assert_eq!(SimDuration::ZERO.to_string(), "0 s");
    }

    #[test]
    fn time_display_and_day() {
        let t = SimTime::start_of_day(3) + SimDuration::from_hours(9) + SimDuration::from_millis(1);
        assert_eq!(t.to_string(), "3+09:00:00.001");
        assert_eq!(t.day(), 3);
        assert_eq!(t.time_of_day(), SimDuration::from_hours(9) + SimDuration::from_millis(1));
    }

    #[test]
    fn checked_ops_catch_overflow() {
        assert_eq!(SimTime::MAX.checked_add(SimDuration::NANOSECOND), None);
        assert_eq!(SimTime::ZERO.checked_duration_since(SimTime::from_nanos(1)), None);
        assert_eq!(SimDuration::from_secs_f64(-1.0), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(f64::NAN), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(1e30), SimDuration::MAX);
        assert_eq!(SimDuration::from_secs_f64(0.5), SimDuration::from_millis(500));
    }
}
