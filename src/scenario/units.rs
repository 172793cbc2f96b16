//! Unit strings in scenario files: `"500 ms"`, `"100000 KB"`, `"1.544 Mbps"`.
//!
//! This module is the only place in domiso that parses a unit string (DESIGN.md convention 1).
//! It owns three quantities, each as a free parse function and as a serde newtype that raw
//! scenario structs (`scenario/file.rs`) use as field types:
//!
//! | newtype | value | units |
//! |---|---|---|
//! | [`Duration`] | [`SimDuration`] (u64 ns) | `ns`, `us` (`µs`), `ms`, `s`, `min`, `h`, `d` |
//! | [`ByteSize`] | u64 bytes | `B`, SI `KB MB GB TB` (x1000), IEC `KiB MiB GiB TiB` (x1024) |
//! | [`Bitrate`] | u64 bits per second | SI `bps kbps Mbps Gbps Tbps` (x1000) |
//!
//! Contracts:
//! - Grammar: optional surrounding whitespace, a non-negative decimal number (digits,
//!   optionally `.` and more digits; `_` allowed between digits as in TOML; an optional `+`),
//!   optional whitespace, then a unit. A unit is always required, also for zero: a bare
//!   `"500"` is ambiguous and rejected. Exponents, negatives, NaN and infinities are rejected.
//! - Decimals are computed exactly (integer arithmetic, no `f64`), and the result must be a
//!   *whole* number of the base unit (ns, bytes, bits/s). `"1.5 s"` and `"1.544 Mbps"` are
//!   fine; `"0.1 KiB"` (102.4 bytes) or `"1.0000000001 s"` is an error rather than silently
//!   rounded, so what the file says is exactly what the simulation uses. At most 18
//!   significant decimal places are accepted.
//! - Overflow beyond `u64` of the base unit (about 584 years of ns) is an error.
//! - `KB` is SI (1000 bytes), like `kB`; the binary units are spelled `KiB`, `MiB`, ... This
//!   follows SI/IEC 80000-13 rather than the JEDEC/Windows habit of KB = 1024, so that the
//!   same letters mean the same factor in byte sizes and bitrates (`kbps` is always 1000).
//! - Duration units are case-insensitive (no unit is ambiguous by case). Byte-size and
//!   bitrate units are case-sensitive, because `Mb` (megabit) vs `MB` (megabyte) is an 8x
//!   difference; a unit that only differs in case gets a "did you mean" hint.
//! - `Display` prints the largest unit that divides the value exactly (`"1500 ms"`,
//!   `"64 KiB"`), so every printed value parses back to the same value (proptested).
//! - Deserialization accepts only a string. A TOML integer or float is a clear error that
//!   asks for a unit string, with an example; it is never guessed to be seconds or bytes.
//! - Nothing here panics on any input.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::engine::SimDuration;

/// Which kind of unit string was expected; selects the unit table and the wording of errors.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum Quantity {
    Duration,
    ByteSize,
    Bitrate,
}

impl Quantity {
    /// "a duration", used as `expected a duration like "500 ms"`.
    pub fn noun(self) -> &'static str {
        match self {
            Quantity::Duration => "a duration",
            Quantity::ByteSize => "a byte size",
            Quantity::Bitrate => "a bitrate",
        }
    }

    /// A typical valid string, quoted in every error message.
    pub fn example(self) -> &'static str {
        match self {
            Quantity::Duration => "500 ms",
            Quantity::ByteSize => "64 KiB",
            Quantity::Bitrate => "1 Gbps",
        }
    }

    /// The canonical units, as listed in "unknown unit" errors.
    pub fn accepted(self) -> &'static str {
        match self {
            Quantity::Duration => "ns, us, ms, s, min, h, d",
            Quantity::ByteSize => "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
            Quantity::Bitrate => "bps, kbps, Mbps, Gbps, Tbps",
        }
    }

    fn base_unit(self) -> &'static str {
        match self {
            Quantity::Duration => "nanoseconds",
            Quantity::ByteSize => "bytes",
            Quantity::Bitrate => "bits per second",
        }
    }

    fn max_text(self) -> &'static str {
        match self {
            Quantity::Duration => "18446744073709551615 ns (about 584 years)",
            Quantity::ByteSize => "18446744073709551615 B (16 EiB)",
            Quantity::Bitrate => "18446744073709551615 bps",
        }
    }

    /// Accepted spellings and their factor to the base unit.
    fn table(self) -> &'static [(&'static str, u64)] {
        match self {
            Quantity::Duration => DURATION_UNITS,
            Quantity::ByteSize => BYTE_UNITS,
            Quantity::Bitrate => BITRATE_UNITS,
        }
    }

    /// Units used by `Display`, largest factor first, and the unit printed for zero.
    fn display_units(self) -> (&'static [(&'static str, u64)], &'static str) {
        match self {
            // Same choice as SimDuration's Display, so logs and scenario files agree.
            Quantity::Duration => (DURATION_DISPLAY, "s"),
            Quantity::ByteSize => (BYTE_DISPLAY, "B"),
            Quantity::Bitrate => (BITRATE_DISPLAY, "bps"),
        }
    }
}

const NS_US: u64 = 1_000;
const NS_MS: u64 = 1_000_000;
const NS_S: u64 = 1_000_000_000;
const NS_MIN: u64 = 60 * NS_S;
const NS_H: u64 = 60 * NS_MIN;
const NS_D: u64 = 24 * NS_H;

/// Matched case-insensitively (after `to_lowercase`), so only lowercase spellings here.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("nsec", 1),
    ("us", NS_US),
    ("µs", NS_US), // U+00B5 MICRO SIGN
    ("μs", NS_US), // U+03BC GREEK SMALL LETTER MU (what many keyboards produce)
    ("usec", NS_US),
    ("ms", NS_MS),
    ("msec", NS_MS),
    ("s", NS_S),
    ("sec", NS_S),
    ("secs", NS_S),
    ("second", NS_S),
    ("seconds", NS_S),
    ("min", NS_MIN),
    ("mins", NS_MIN),
    ("minute", NS_MIN),
    ("minutes", NS_MIN),
    ("h", NS_H),
    ("hr", NS_H),
    ("hrs", NS_H),
    ("hour", NS_H),
    ("hours", NS_H),
    ("d", NS_D),
    ("day", NS_D),
    ("days", NS_D),
];

const DURATION_DISPLAY: &[(&str, u64)] =
    &[("d", NS_D), ("h", NS_H), ("min", NS_MIN), ("s", NS_S), ("ms", NS_MS), ("us", NS_US), ("ns", 1)];

const KB: u64 = 1_000;
const KIB: u64 = 1_024;

/// Matched case-sensitively: see the module doc.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("byte", 1),
    ("bytes", 1),
    ("KB", KB),
    ("kB", KB),
    ("MB", KB * KB),
    ("GB", KB * KB * KB),
    ("TB", KB * KB * KB * KB),
    ("KiB", KIB),
    ("MiB", KIB * KIB),
    ("GiB", KIB * KIB * KIB),
    ("TiB", KIB * KIB * KIB * KIB),
];

/// Largest factor first; picking the largest exact factor gives the shortest mantissa.
const BYTE_DISPLAY: &[(&str, u64)] = &[
    ("TiB", KIB * KIB * KIB * KIB),
    ("TB", KB * KB * KB * KB),
    ("GiB", KIB * KIB * KIB),
    ("GB", KB * KB * KB),
    ("MiB", KIB * KIB),
    ("MB", KB * KB),
    ("KiB", KIB),
    ("KB", KB),
    ("B", 1),
];

/// Matched case-sensitively. `Kbps` is accepted because it is common and unambiguous.
const BITRATE_UNITS: &[(&str, u64)] = &[
    ("bps", 1),
    ("bit/s", 1),
    ("kbps", KB),
    ("Kbps", KB),
    ("kbit/s", KB),
    ("Mbps", KB * KB),
    ("Mbit/s", KB * KB),
    ("Gbps", KB * KB * KB),
    ("Gbit/s", KB * KB * KB),
    ("Tbps", KB * KB * KB * KB),
    ("Tbit/s", KB * KB * KB * KB),
];

const BITRATE_DISPLAY: &[(&str, u64)] =
    &[("Tbps", KB * KB * KB * KB), ("Gbps", KB * KB * KB), ("Mbps", KB * KB), ("kbps", KB), ("bps", 1)];

/// Beyond this many significant decimal places the exact computation could overflow `u128`
/// (10^18 * largest factor < 2^107); no realistic input comes close.
const MAX_DECIMALS: usize = 18;

/// A unit string that could not be parsed. Its message reads well after a key path:
/// `expected a duration like "500 ms", found "5 parsecs": unknown unit "parsecs" (use ns, us, ms, s, min, h, d)`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{}", render(*.quantity, .input, .reason))]
pub struct UnitError {
    /// What was expected.
    pub quantity: Quantity,
    /// The offending input as written (for [`UnitErrorKind::NotAString`], the number).
    pub input: String,
    /// Why it was rejected.
    pub reason: UnitErrorKind,
}

/// Why a unit string was rejected. Its `Display` is the part after the colon.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum UnitErrorKind {
    /// Only whitespace.
    Empty,
    /// A number without a unit.
    MissingUnit,
    /// The unit is not one we know; `suggestion` is a close accepted spelling.
    UnknownUnit { unit: String, suggestion: Option<&'static str> },
    /// Starts with `-`.
    Negative,
    /// `nan`, `inf`, `infinity`.
    NotFinite,
    /// Does not start with a digit.
    NoNumber,
    /// Digits, `.` and `_` in an invalid arrangement (`1..2`, `_1`, `.5`, `5.`).
    Malformed { number: String },
    /// `1e3 ms`.
    Exponent,
    /// More than `u64` of the base unit.
    TooLarge,
    /// The value is a fraction of the base unit (`0.5 ns`, `0.1 KiB`).
    NotWhole,
    /// More than 18 significant decimal places.
    TooManyDecimals,
    /// The TOML value was a number (or other non-string scalar) instead of a unit string;
    /// `found` names the TOML type ("integer", "float").
    NotAString { found: &'static str },
}

fn render(quantity: Quantity, input: &str, reason: &UnitErrorKind) -> String {
    let noun = quantity.noun();
    let example = quantity.example();
    let found = match reason {
        UnitErrorKind::NotAString { found } => format!("the bare {found} {input}"),
        _ => format!("{input:?}"),
    };
    let why = match reason {
        UnitErrorKind::Empty => "the string is empty".to_owned(),
        UnitErrorKind::MissingUnit => format!("{noun} needs a unit, e.g. \"{example}\""),
        UnitErrorKind::UnknownUnit { unit, suggestion } => {
            let mut s = format!("unknown unit {unit:?} (use {})", quantity.accepted());
            if let Some(sugg) = suggestion {
                s.push_str(&format!("; did you mean \"{sugg}\"?"));
            }
            if quantity == Quantity::Bitrate && unit.contains('B') {
                s.push_str(" (B means bytes; bitrates are in bits per second)");
            }
            s
        }
        UnitErrorKind::Negative => format!("{noun} cannot be negative"),
        UnitErrorKind::NotFinite => "not a finite number".to_owned(),
        UnitErrorKind::NoNumber => "it does not start with a number".to_owned(),
        UnitErrorKind::Malformed { number } => format!("malformed number {number:?}"),
        UnitErrorKind::Exponent => "exponents are not supported; write the number out in a smaller unit".to_owned(),
        UnitErrorKind::TooLarge => format!("too large; the maximum is {}", quantity.max_text()),
        UnitErrorKind::NotWhole => {
            format!("not a whole number of {}; use fewer decimals or a smaller unit", quantity.base_unit())
        }
        UnitErrorKind::TooManyDecimals => {
            format!("too many decimal places (at most {MAX_DECIMALS})")
        }
        UnitErrorKind::NotAString { .. } => {
            format!("a string with a unit is expected, e.g. \"{example}\"")
        }
    };
    format!("expected {noun} like \"{example}\", found {found}: {why}")
}

/// Parses a duration string (`"500 ms"`, `"1.5 s"`, `"2 h"`) into a [`SimDuration`].
pub fn parse_duration(s: &str) -> Result<SimDuration, UnitError> {
    parse_quantity(Quantity::Duration, s).map(SimDuration::from_nanos)
}

/// Parses a byte-size string (`"1500 B"`, `"100000 KB"`, `"64 KiB"`) into bytes.
pub fn parse_byte_size(s: &str) -> Result<u64, UnitError> {
    parse_quantity(Quantity::ByteSize, s)
}

/// Parses a bitrate string (`"1 Gbps"`, `"1.544 Mbps"`, `"64 kbps"`) into bits per second.
pub fn parse_bitrate(s: &str) -> Result<u64, UnitError> {
    parse_quantity(Quantity::Bitrate, s)
}

/// The shared grammar (see the module doc). Returns the value in the base unit.
pub fn parse_quantity(quantity: Quantity, s: &str) -> Result<u64, UnitError> {
    let fail = |reason| UnitError { quantity, input: s.to_owned(), reason };
    let t = s.trim();
    if t.is_empty() {
        return Err(fail(UnitErrorKind::Empty));
    }
    if t.starts_with('-') {
        return Err(fail(UnitErrorKind::Negative));
    }
    let t = t.strip_prefix('+').unwrap_or(t);

    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(t.len());
    let (number, rest) = t.split_at(num_end);
    if number.is_empty() {
        let word: String = t.chars().take_while(|c| c.is_alphabetic()).collect::<String>().to_lowercase();
        return Err(fail(match word.as_str() {
            "nan" | "inf" | "infinity" => UnitErrorKind::NotFinite,
            _ => UnitErrorKind::NoNumber,
        }));
    }
    let mut after = rest.chars();
    if matches!(after.next(), Some('e' | 'E'))
        && matches!(after.next(), Some(c) if c.is_ascii_digit() || c == '+' || c == '-')
    {
        return Err(fail(UnitErrorKind::Exponent));
    }
    let (int_digits, frac_digits) =
        split_number(number).ok_or_else(|| fail(UnitErrorKind::Malformed { number: number.to_owned() }))?;

    let unit = rest.trim_start();
    if unit.is_empty() {
        return Err(fail(UnitErrorKind::MissingUnit));
    }
    let factor = lookup_unit(quantity, unit)
        .map_err(|suggestion| fail(UnitErrorKind::UnknownUnit { unit: unit.to_owned(), suggestion }))?;

    exact_value(&int_digits, &frac_digits, factor).map_err(fail)
}

/// Splits `12_345.6_7` into ("12345", "67"); `None` if malformed. Both parts must be
/// non-empty when a `.` is present (TOML's float rule), underscores only between digits.
fn split_number(number: &str) -> Option<(String, String)> {
    fn digits(part: &str) -> Option<String> {
        let ok = !part.is_empty()
            && !part.starts_with('_')
            && !part.ends_with('_')
            && !part.contains("__")
            && part.chars().all(|c| c.is_ascii_digit() || c == '_');
        ok.then(|| part.replace('_', ""))
    }
    let mut parts = number.split('.');
    let int = digits(parts.next()?)?;
    let frac = match parts.next() {
        Some(f) => digits(f)?,
        None => String::new(),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((int, frac))
}

/// The factor for `unit`, or `Err(suggestion)`.
fn lookup_unit(quantity: Quantity, unit: &str) -> Result<u64, Option<&'static str>> {
    let table = quantity.table();
    if quantity == Quantity::Duration {
        let lower = unit.to_lowercase();
        return table.iter().find(|(name, _)| *name == lower).map(|&(_, f)| f).ok_or(None);
    }
    if let Some(&(_, f)) = table.iter().find(|(name, _)| *name == unit) {
        return Ok(f);
    }
    Err(table.iter().find(|(name, _)| name.eq_ignore_ascii_case(unit)).map(|&(name, _)| name))
}

/// `int.frac * factor`, exactly, as a whole `u64`.
fn exact_value(int_digits: &str, frac_digits: &str, factor: u64) -> Result<u64, UnitErrorKind> {
    let factor = u128::from(factor);
    let int_digits = int_digits.trim_start_matches('0');
    // u64::MAX has 20 digits; anything longer overflows even with factor 1.
    if int_digits.len() > 20 {
        return Err(UnitErrorKind::TooLarge);
    }
    let int: u128 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| UnitErrorKind::TooLarge)? };
    let frac_digits = frac_digits.trim_end_matches('0');
    if frac_digits.len() > MAX_DECIMALS {
        return Err(UnitErrorKind::TooManyDecimals);
    }
    let (frac, scale) = if frac_digits.is_empty() {
        (0u128, 1u128)
    } else {
        let f: u128 = frac_digits.parse().map_err(|_| UnitErrorKind::TooManyDecimals)?;
        (f, 10u128.pow(frac_digits.len() as u32))
    };
    // Fits: frac < 10^18 < 2^60 and factor < 2^47; int < 10^20 < 2^67.
    let frac_scaled = frac * factor;
    if frac_scaled % scale != 0 {
        return Err(UnitErrorKind::NotWhole);
    }
    let total =
        int.checked_mul(factor).and_then(|v| v.checked_add(frac_scaled / scale)).ok_or(UnitErrorKind::TooLarge)?;
    u64::try_from(total).map_err(|_| UnitErrorKind::TooLarge)
}

/// The largest display unit dividing `value` exactly, e.g. `1500 ms`.
fn format_exact(quantity: Quantity, value: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (units, zero_unit) = quantity.display_units();
    if value == 0 {
        return write!(f, "0 {zero_unit}");
    }
    for &(name, factor) in units {
        if value % factor == 0 {
            return write!(f, "{} {name}", value / factor);
        }
    }
    // Every table ends with factor 1, so this is only reached if a table is edited wrongly.
    write!(f, "{value} {}", units.last().map_or("", |u| u.0))
}

/// A span of simulated time written as a unit string (`"500 ms"`, `"2 h"`).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Duration(pub SimDuration);

/// A size in bytes written as a unit string (`"1500 B"`, `"100000 KB"`, `"64 KiB"`).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct ByteSize(pub u64);

/// A rate in bits per second written as a unit string (`"1 Gbps"`, `"1.544 Mbps"`).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Bitrate(pub u64);

impl From<Duration> for SimDuration {
    fn from(d: Duration) -> SimDuration {
        d.0
    }
}

/// The three newtypes share parsing, printing and serde through this.
trait UnitNewtype: Sized {
    const QUANTITY: Quantity;
    fn from_base(v: u64) -> Self;
    fn to_base(&self) -> u64;
}

impl UnitNewtype for Duration {
    const QUANTITY: Quantity = Quantity::Duration;
    fn from_base(v: u64) -> Self {
        Duration(SimDuration::from_nanos(v))
    }
    fn to_base(&self) -> u64 {
        self.0.as_nanos()
    }
}

impl UnitNewtype for ByteSize {
    const QUANTITY: Quantity = Quantity::ByteSize;
    fn from_base(v: u64) -> Self {
        ByteSize(v)
    }
    fn to_base(&self) -> u64 {
        self.0
    }
}

impl UnitNewtype for Bitrate {
    const QUANTITY: Quantity = Quantity::Bitrate;
    fn from_base(v: u64) -> Self {
        Bitrate(v)
    }
    fn to_base(&self) -> u64 {
        self.0
    }
}

macro_rules! unit_newtype_impls {
    ($($t:ty),*) => {$(
        impl FromStr for $t {
            type Err = UnitError;
            fn from_str(s: &str) -> Result<Self, UnitError> {
                parse_quantity(<$t>::QUANTITY, s).map(<$t>::from_base)
            }
        }

        /// The largest unit dividing the value exactly; parses back to the same value.
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_exact(<$t>::QUANTITY, self.to_base(), f)
            }
        }

        /// As its display string, so a serialized scenario reads like a hand-written one.
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // `deserialize_any` so that a number reaches our visitor and gets the
                // "a string with a unit is expected" message instead of serde's generic one.
                deserializer.deserialize_any(UnitVisitor::<$t>(PhantomData))
            }
        }
    )*};
}

unit_newtype_impls!(Duration, ByteSize, Bitrate);

struct UnitVisitor<T>(PhantomData<T>);

impl<T: UnitNewtype> UnitVisitor<T> {
    fn not_a_string<E: de::Error>(found: &'static str, shown: String) -> E {
        E::custom(UnitError { quantity: T::QUANTITY, input: shown, reason: UnitErrorKind::NotAString { found } })
    }
}

impl<T: UnitNewtype> Visitor<'_> for UnitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} string like \"{}\"", T::QUANTITY.noun(), T::QUANTITY.example())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        parse_quantity(T::QUANTITY, v).map(T::from_base).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(Self::not_a_string("integer", v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Err(Self::not_a_string("integer", v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        Err(Self::not_a_string("integer", v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        Err(Self::not_a_string("integer", v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(Self::not_a_string("float", v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimals() {
        assert_eq!(parse_duration("1.5 s").unwrap(), SimDuration::from_millis(1500));
        assert_eq!(parse_duration("0.000000001 s").unwrap().as_nanos(), 1);
        assert_eq!(parse_bitrate("1.544 Mbps").unwrap(), 1_544_000);
        assert_eq!(parse_byte_size("1.5 KiB").unwrap(), 1536);
        // Trailing zeros beyond 18 places do not count as precision.
        assert_eq!(parse_duration("1.500000000000000000000000 s").unwrap(), SimDuration::from_millis(1500));
    }

    #[test]
    fn fractions_of_the_base_unit_are_rejected() {
        let e = parse_byte_size("0.1 KiB").unwrap_err();
        assert_eq!(e.reason, UnitErrorKind::NotWhole);
        let e = parse_duration("0.5 ns").unwrap_err();
        assert_eq!(e.reason, UnitErrorKind::NotWhole);
    }

    #[test]
    fn limits() {
        assert_eq!(parse_duration("18446744073709551615 ns").unwrap(), SimDuration::MAX);
        assert_eq!(parse_duration("18446744073709551616 ns").unwrap_err().reason, UnitErrorKind::TooLarge);
        assert_eq!(parse_duration("213504 d").unwrap_err().reason, UnitErrorKind::TooLarge);
        assert_eq!(parse_duration(&format!("{} s", "9".repeat(400))).unwrap_err().reason, UnitErrorKind::TooLarge);
        assert_eq!(
            parse_duration(&format!("1.{}1 s", "0".repeat(40))).unwrap_err().reason,
            UnitErrorKind::TooManyDecimals
        );
        // Leading zeros do not count towards the size limit.
        assert_eq!(parse_duration(&format!("{}5 s", "0".repeat(100))).unwrap(), SimDuration::from_secs(5));
    }

    #[test]
    fn display_picks_shortest_exact_unit() {
        assert_eq!(ByteSize(1536).to_string(), "1536 B");
        assert_eq!(ByteSize(100_000_000).to_string(), "100 MB");
        assert_eq!(ByteSize(65_536).to_string(), "64 KiB");
        assert_eq!(ByteSize(0).to_string(), "0 B");
        assert_eq!(Bitrate(1_544_000).to_string(), "1544 kbps");
        assert_eq!(Duration(SimDuration::ZERO).to_string(), "0 s");
        assert_eq!(Duration(SimDuration::from_secs(5400)).to_string(), "90 min");
    }
}
