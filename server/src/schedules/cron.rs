//! Cron expressions (`minute hour day-of-month month day-of-week`, as crontab(5) has them: `*`, lists,
//! ranges, steps, month and day names, `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`) and when one next
//! fires in a time zone.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

/// A parsed expression: for each field, which values fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month and day-of-week both restricted: either matching fires (crontab's rule).
    either_day: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err("needs five fields: minute hour day-of-month month day-of-week (or @daily, @hourly, …)".into());
        };
        let weekdays = field(weekday, 0, 7, &DAYS, "day-of-week")?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Self {
            minutes: field(minute, 0, 59, &[], "minute")?,
            hours: field(hour, 0, 23, &[], "hour")?,
            days: field(day, 1, 31, &[], "day-of-month")?,
            months: field(month, 1, 12, &MONTHS, "month")?,
            weekdays,
            either_day: !day.starts_with('*') && !weekday.starts_with('*'),
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.either_day { day || weekday } else { day && weekday }
    }

    /// The first time after `after` (to the minute) that it fires in `zone`; `None` if it never does (the 31st
    /// of February). A local time skipped by a clock change fires at the first instant after the gap.
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(zone.clone()).datetime();
        let start = local.date();
        // Eight years find every date that exists (a leap day falls in any eight-year stretch but 2100's).
        for offset in 0..(8 * 366) {
            let date = start.checked_add(offset.days()).ok()?;
            if self.months & (1 << date.month()) == 0 || !self.day_matches(date) {
                continue;
            }
            for hour in 0..24i8 {
                if self.hours & (1 << hour) == 0 {
                    continue;
                }
                for minute in 0..60i8 {
                    if self.minutes & (1 << minute) == 0 {
                        continue;
                    }
                    let time = Time::new(hour, minute, 0, 0).ok()?;
                    let candidate = DateTime::from_parts(date, time);
                    if candidate <= local {
                        continue;
                    }
                    let fires = zone.to_ambiguous_zoned(candidate).compatible().ok()?.timestamp();
                    if fires > after {
                        return Some(fires);
                    }
                }
            }
        }
        None
    }
}

/// One field's values as bits.
fn field(text: &str, min: u32, max: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let value = |part: &str| -> Result<u32, String> {
        let lower = part.to_ascii_lowercase();
        if let Some(index) = names.iter().position(|name| *name == lower) {
            return Ok(index as u32 + if names.len() == 12 { 1 } else { 0 });
        }
        let number: u32 = part.parse().map_err(|_| format!("{what}: `{part}` is not a number or a name"))?;
        if !(min..=max).contains(&number) {
            return Err(format!("{what}: {number} is outside {min}-{max}"));
        }
        Ok(number)
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 =
                    step.parse().ok().filter(|s| *s > 0).ok_or_else(|| format!("{what}: bad step in `{item}`"))?;
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            range => match range.split_once('-') {
                Some((low, high)) => (value(low)?, value(high)?),
                // `5/15` runs from 5 to the end.
                None if item.contains('/') => (value(range)?, max),
                None => {
                    let single = value(range)?;
                    (single, single)
                }
            },
        };
        if low > high {
            return Err(format!("{what}: `{range}` runs backwards"));
        }
        for n in (low..=high).step_by(step as usize) {
            bits |= 1 << n;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn expressions_fire_when_crontab_says() {
        let utc = TimeZone::UTC;
        let daily = Cron::parse("30 4 * * *").expect("parses");
        assert_eq!(daily.next_after(at("2026-12-01T04:29:00Z"), &utc), Some(at("2026-12-01T04:30:00Z")));
        assert_eq!(daily.next_after(at("2026-12-01T04:30:00Z"), &utc), Some(at("2026-12-02T04:30:00Z")));
        let every = Cron::parse("*/15 * * * *").expect("parses");
        assert_eq!(every.next_after(at("2026-12-01T10:07:13Z"), &utc), Some(at("2026-12-01T10:15:00Z")));
        // Day-of-month or day-of-week: either fires.
        let either = Cron::parse("0 0 13 * fri").expect("parses");
        assert_eq!(either.next_after(at("2026-12-01T00:00:00Z"), &utc), Some(at("2026-12-04T00:00:00Z")));
        let weekly = Cron::parse("@weekly").expect("parses");
        assert_eq!(weekly.next_after(at("2026-12-01T00:00:00Z"), &utc), Some(at("2026-12-06T00:00:00Z")));
        assert_eq!(Cron::parse("0 0 31 2 *").expect("parses").next_after(at("2026-01-01T00:00:00Z"), &utc), None);
    }

    #[test]
    fn the_servers_time_zone_is_followed_through_clock_changes() {
        let berlin = TimeZone::get("Europe/Berlin").expect("the zone database");
        let morning = Cron::parse("0 6 * * *").expect("parses");
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(morning.next_after(at("2026-12-01T00:00:00Z"), &berlin), Some(at("2026-12-01T05:00:00Z")));
        assert_eq!(morning.next_after(at("2026-07-01T00:00:00Z"), &berlin), Some(at("2026-07-01T04:00:00Z")));
        // 02:30 does not exist on 29 March 2026 in Berlin: it fires when the clock jumps.
        let gap = Cron::parse("30 2 * * *").expect("parses");
        assert_eq!(gap.next_after(at("2026-03-29T00:00:00Z"), &berlin), Some(at("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn mistakes_name_the_field() {
        for (text, field) in [
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day-of-month"),
            ("* * * foo *", "month"),
            ("* * * * 8", "day-of-week"),
            ("*/0 * * * *", "minute"),
        ] {
            let error = Cron::parse(text).expect_err(text);
            assert!(error.starts_with(field), "{text}: {error}");
        }
        assert!(Cron::parse("* * *").is_err());
    }
}
