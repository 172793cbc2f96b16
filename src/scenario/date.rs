//! Calendar dates of a rollout: day 0 of a run is `rollout.start_date`, and reports label
//! each simulated day with its date. Proleptic Gregorian, via days since 1970-01-01
//! (Howard Hinnant's civil-date algorithms), so no date crate is needed for three
//! conversions.

use std::fmt;

/// A civil date (year, month 1-12, day 1-31), always valid once constructed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilDate {
    year: i32,
    month: u32,
    day: u32,
}

impl CivilDate {
    /// Parses `"YYYY-MM-DD"`; `None` unless it names a real date.
    pub fn parse(s: &str) -> Option<CivilDate> {
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
            return None;
        }
        if !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let year: i32 = parts[0].parse().ok()?;
        let month: u32 = parts[1].parse().ok()?;
        let day: u32 = parts[2].parse().ok()?;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        ((1..=12).contains(&month) && day >= 1 && day <= days[(month - 1) as usize]).then_some(CivilDate {
            year,
            month,
            day,
        })
    }

    /// Days since 1970-01-01.
    fn epoch_days(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn from_epoch_days(days: i64) -> CivilDate {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        CivilDate { year, month, day }
    }

    /// The date `days` later.
    pub fn plus_days(self, days: u32) -> CivilDate {
        CivilDate::from_epoch_days(self.epoch_days() + i64::from(days))
    }

    /// Day of the week, Monday = 0 ... Sunday = 6 (1970-01-01 was a Thursday).
    pub fn weekday(self) -> u8 {
        (self.epoch_days() + 3).rem_euclid(7) as u8
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::CivilDate;

    #[test]
    fn known_dates() {
        let d = CivilDate::parse("2007-01-08").unwrap();
        assert_eq!(d.weekday(), 0, "8 January 2007 was a Monday");
        assert_eq!(d.plus_days(365).to_string(), "2008-01-08");
        assert_eq!(CivilDate::parse("2008-02-28").unwrap().plus_days(1).to_string(), "2008-02-29");
        assert_eq!(CivilDate::parse("2100-02-28").unwrap().plus_days(1).to_string(), "2100-03-01");
        assert_eq!(CivilDate::parse("1970-01-01").unwrap().weekday(), 3);
        for bad in ["2007-02-29", "2007-13-01", "2007-1-01", "07-01-01", "2007-01-00", "2007-0a-01", "+007-01-01"] {
            assert_eq!(CivilDate::parse(bad), None, "{bad}");
        }
    }
}
