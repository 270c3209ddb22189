//! Standard 5-field cron expressions (`minute hour day-of-month month day-of-week`) read in an
//! IANA time zone, for recurring FlashSale windows.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`, lists `a,b`, and names
//! (`JAN`–`DEC`, `SUN`–`SAT`, any case). Day of week is `0`–`7` with both `0` and `7` Sunday,
//! as in Vixie cron, POSIX crontab and Kubernetes CronJobs (not Quartz's `1`–`7`). When both
//! day of month and day of week are restricted, a day matches if **either** matches (the
//! classic cron rule); a field that starts with `*` counts as unrestricted.
//!
//! ## Wall-clock times that do not exist or exist twice (DST)
//! Each matching wall-clock time gives exactly one instant, resolved like RFC 5545 and
//! Temporal's `compatible` disambiguation:
//! - **gap** (spring forward; `02:30` does not exist in Europe/Berlin on the last Sunday of
//!   March): the instant moves forward by the length of the gap, so `30 2 * * *` starts at
//!   03:30 CEST that day — the sale still happens, an hour of wall clock later;
//! - **fold** (fall back; `01:30` happens twice in America/New_York on the first Sunday of
//!   November): the first (earlier, daylight-time) `01:30` only; the sale never runs twice.
//!
//! Searching is by calendar day (at most ~5 years ahead or back, enough for `29 2`). On a day
//! without an offset change (all but a couple a year) wall-clock times map to instants by
//! arithmetic, in order, so a lookup converts only until it finds its answer; the days with a
//! change are resolved time by time with the rules above.

use std::{fmt, str::FromStr};

use jiff::{
    Timestamp,
    civil::{Date, DateTime},
    tz::{Offset, TimeZone},
};

/// How far [`Cron::next_after`] and [`Cron::last_at_or_before`] search, in days.
const SEARCH_DAYS: i32 = 5 * 366 + 1;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bit `d` for day of month `d` (1..=31).
    days: u32,
    /// Bit `m` for month `m` (1..=12).
    months: u16,
    /// Bit `0` Sunday … bit `6` Saturday.
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// What is wrong with a cron expression; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// First value `names[0]` stands for.
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Field {
    fn value(&self, s: &str) -> Result<u32, CronError> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.names_from + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            CronError(format!(
                "{} field: {s:?} is not a number{}",
                self.name,
                if self.names.is_empty() {
                    String::new()
                } else {
                    format!(" or a name ({}..)", self.names[0].to_ascii_uppercase())
                }
            ))
        })?;
        if v < self.min || v > self.max {
            return Err(CronError(format!(
                "{} field: {v} is out of range {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    /// The set of values of one field as a bit mask.
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        CronError(format!(
                            "{} field: step {s:?} must be a positive number",
                            self.name
                        ))
                    })?;
                    (r, step)
                }
                None => (item, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let a = self.value(range)?;
                // `a/n` means from `a` to the end in steps of `n`.
                (a, if step > 1 { self.max } else { a })
            };
            if lo > hi {
                return Err(CronError(format!(
                    "{} field: range {range:?} runs backwards",
                    self.name
                )));
            }
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(expr: &str) -> Result<Self, CronError> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let [min, hour, dom, month, dow] = parts[..] else {
            return Err(CronError(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                parts.len()
            )));
        };
        let weekdays = FIELDS[4].parse(dow)?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Cron {
            minutes: FIELDS[0].parse(min)?,
            hours: FIELDS[1].parse(hour)? as u32,
            days: FIELDS[2].parse(dom)? as u32,
            months: FIELDS[3].parse(month)? as u16,
            weekdays: weekdays as u8,
            days_restricted: !dom.starts_with('*'),
            weekdays_restricted: !dow.starts_with('*'),
        })
    }
}

impl Cron {
    /// Whether the cron fires on calendar day `d` (at some time of day).
    pub fn matches_date(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The wall-clock times of day the cron fires at, in order.
    fn times(&self) -> impl DoubleEndedIterator<Item = (i8, i8)> + '_ {
        (0..24i8)
            .filter(|h| self.hours & (1 << h) != 0)
            .flat_map(move |h| {
                (0..60i8)
                    .filter(move |m| self.minutes & (1 << m) != 0)
                    .map(move |m| (h, m))
            })
    }

    /// Every instant the cron fires on day `d` in `tz`, in time order (see the DST rules).
    /// Used on the rare days with an offset change; other days use [`Cron::on_uniform_day`].
    fn starts_on(&self, d: Date, tz: &TimeZone) -> Vec<Timestamp> {
        let mut out: Vec<Timestamp> = self
            .times()
            .filter_map(|(h, m)| {
                let civil = DateTime::from_parts(d, jiff::civil::time(h, m, 0, 0));
                // `compatible`: gap → later by the gap, fold → the earlier instant.
                tz.to_ambiguous_zoned(civil)
                    .compatible()
                    .ok()
                    .map(|z| z.timestamp())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The one UTC offset of day `d` in `tz`, when the offset does not change that day (so
    /// wall-clock times map to instants by arithmetic, in order).
    fn uniform_offset(d: Date, tz: &TimeZone) -> Option<Offset> {
        let noon = |d: Date| {
            tz.to_ambiguous_zoned(d.at(12, 0, 0, 0))
                .compatible()
                .ok()
                .map(|z| z.timestamp())
        };
        let (from, to) = (noon(d.yesterday().ok()?)?, noon(d.tomorrow().ok()?)?);
        let changes = tz
            .following(from)
            .next()
            .is_some_and(|t| t.timestamp() < to);
        (!changes).then(|| tz.to_offset(from))
    }

    fn at(d: Date, (h, m): (i8, i8), offset: Offset) -> Option<Timestamp> {
        offset
            .to_timestamp(DateTime::from_parts(d, jiff::civil::time(h, m, 0, 0)))
            .ok()
    }

    /// The first instant after `t` on day `d` (`after`), or the last at or before `t`.
    fn on_day(&self, d: Date, tz: &TimeZone, t: Timestamp, after: bool) -> Option<Timestamp> {
        if !self.matches_date(d) {
            return None;
        }
        let Some(offset) = Self::uniform_offset(d, tz) else {
            let starts = self.starts_on(d, tz);
            return if after {
                starts.into_iter().find(|s| *s > t)
            } else {
                starts.into_iter().rev().find(|s| *s <= t)
            };
        };
        if after {
            self.times()
                .filter_map(|hm| Self::at(d, hm, offset))
                .find(|s| *s > t)
        } else {
            self.times()
                .rev()
                .filter_map(|hm| Self::at(d, hm, offset))
                .find(|s| *s <= t)
        }
    }

    /// The first instant strictly after `t` at which the cron fires in `tz`.
    pub fn next_after(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        // Start a day early: a gap can move the previous day's wall-clock time past midnight.
        let mut day = tz.to_datetime(t).date().yesterday().ok()?;
        for _ in 0..SEARCH_DAYS {
            if let Some(s) = self.on_day(day, tz, t, true) {
                return Some(s);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The last instant at or before `t` at which the cron fires in `tz`.
    pub fn last_at_or_before(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        let mut day = tz.to_datetime(t).date().tomorrow().ok()?;
        for _ in 0..SEARCH_DAYS {
            if let Some(s) = self.on_day(day, tz, t, false) {
                return Some(s);
            }
            day = day.yesterday().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn parses_standard_fields_and_names() {
        let c: Cron = "0 20 * * FRI".parse().unwrap();
        // 2026-11-27 is a Friday.
        assert_eq!(
            c.next_after(&TimeZone::UTC, at("2026-11-27T12:00:00Z")),
            Some(at("2026-11-27T20:00:00Z"))
        );
        assert_eq!(
            c.next_after(&TimeZone::UTC, at("2026-11-27T20:00:00Z")),
            Some(at("2026-12-04T20:00:00Z"))
        );
        let every: Cron = "*/15 9-17 * jan-mar 1-5".parse().unwrap();
        assert_eq!(
            every.next_after(&TimeZone::UTC, at("2027-01-01T17:50:00Z")),
            // Friday Jan 1st ended; Saturday and Sunday do not match; Monday 09:00.
            Some(at("2027-01-04T09:00:00Z"))
        );
    }

    #[test]
    fn sunday_is_0_and_7_and_weekday_numbers_are_vixie_not_quartz() {
        let zero: Cron = "0 0 * * 0".parse().unwrap();
        let seven: Cron = "0 0 * * 7".parse().unwrap();
        let sun: Cron = "0 0 * * sun".parse().unwrap();
        assert_eq!(zero, seven);
        assert_eq!(zero, sun);
        // 5 is Friday.
        let five: Cron = "0 0 * * 5".parse().unwrap();
        assert_eq!(
            five.next_after(&TimeZone::UTC, at("2026-11-23T00:00:00Z")),
            Some(at("2026-11-27T00:00:00Z"))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 1st of the month OR any Monday.
        let c: Cron = "0 0 1 * mon".parse().unwrap();
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert!(c.matches_date(d("2026-12-01"))); // a Tuesday, the 1st
        assert!(c.matches_date(d("2026-12-07"))); // a Monday
        assert!(!c.matches_date(d("2026-12-08")));
        // With `*` day of month, only Mondays.
        let mondays: Cron = "0 0 * * mon".parse().unwrap();
        assert!(!mondays.matches_date(d("2026-12-01")));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, needle) in [
            ("0 20 * *", "expected 5 fields"),
            ("61 * * * *", "minute field: 61 is out of range 0-59"),
            ("0 24 * * *", "hour field: 24"),
            ("0 0 0 * *", "day of month field: 0"),
            ("0 0 * 13 *", "month field: 13"),
            ("0 0 * * 8", "day of week field: 8"),
            (
                "0 0 * * funday",
                "day of week field: \"funday\" is not a number",
            ),
            ("0 10-2 * * *", "runs backwards"),
            ("*/0 * * * *", "step \"0\" must be a positive number"),
        ] {
            let err = expr.parse::<Cron>().unwrap_err().0;
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }

    #[test]
    fn leap_day_and_impossible_dates() {
        let c: Cron = "0 12 29 2 *".parse().unwrap();
        assert_eq!(
            c.next_after(&TimeZone::UTC, at("2026-11-27T00:00:00Z")),
            Some(at("2028-02-29T12:00:00Z"))
        );
        let never: Cron = "0 0 30 2 *".parse().unwrap();
        assert_eq!(
            never.next_after(&TimeZone::UTC, at("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn spring_forward_gap_moves_the_start_forward_by_the_gap() {
        // Europe/Berlin 2026-03-29: 02:00 CET → 03:00 CEST; 02:30 does not exist.
        let c: Cron = "30 2 * * *".parse().unwrap();
        let berlin = tz("Europe/Berlin");
        assert_eq!(
            c.next_after(&berlin, at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:30:00Z")) // 03:30 CEST
        );
        // And the day after, 02:30 CEST again.
        assert_eq!(
            c.next_after(&berlin, at("2026-03-29T01:30:00Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // Searching backwards finds the same instant.
        assert_eq!(
            c.last_at_or_before(&berlin, at("2026-03-29T12:00:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn fall_back_fold_fires_once_at_the_first_occurrence() {
        // America/New_York 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice.
        let c: Cron = "30 1 * * *".parse().unwrap();
        let ny = tz("America/New_York");
        let first = c.next_after(&ny, at("2026-10-31T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-11-01T05:30:00Z")); // 01:30 EDT (-04:00)
        // The second 01:30 (EST, 06:30Z) is not a start: the next one is the day after.
        assert_eq!(
            c.next_after(&ny, first),
            Some(at("2026-11-02T06:30:00Z")) // 01:30 EST (-05:00)
        );
        assert_eq!(
            c.last_at_or_before(&ny, at("2026-11-01T07:00:00Z")),
            Some(first)
        );
    }

    #[test]
    fn last_at_or_before_includes_the_instant_itself() {
        let c: Cron = "0 * * * *".parse().unwrap();
        assert_eq!(
            c.last_at_or_before(&TimeZone::UTC, at("2026-11-27T10:00:00Z")),
            Some(at("2026-11-27T10:00:00Z"))
        );
        assert_eq!(
            c.last_at_or_before(&TimeZone::UTC, at("2026-11-27T10:59:59Z")),
            Some(at("2026-11-27T10:00:00Z"))
        );
    }
}
