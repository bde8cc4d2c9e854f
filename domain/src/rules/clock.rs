//! The working-hours clock: SLA deadlines counted in working time.
//!
//! The regulations count some reaction times in working hours of the support
//! office (by default Mon–Fri 09:00–18:00 Moscow time, minus public holidays,
//! plus transferred working Saturdays) and others in plain calendar hours.
//! [`WorkingHours`] answers both on `DateTime<Utc>` instants, the form stored
//! everywhere else; local time exists only inside this module.
//!
//! # Design decisions
//!
//! * **Intervals.** Each working day contributes one interval
//!   `[start, end)` of local time on that date, converted to UTC. Working
//!   hours do not cross midnight; a round-the-clock service is counted with
//!   [`WorkingHours::add_calendar_hours`] instead.
//! * **Day kind.** A date listed in `extra_working_days` works even on a
//!   weekend; otherwise a date listed in `holidays` does not; otherwise the
//!   production calendar ([`super::calendar`]) decides where it lists the date,
//!   and else its weekday. (A validated config never lists a date as both.) A
//!   pre-holiday day the calendar marks shortened closes an hour early.
//! * **Deadlines at closing time.** Adding exactly the working time left in
//!   a day ends at that day's closing time (Fri 17:00 + 1 h = Fri 18:00), not
//!   at the next opening, because "by the end of the day" is what people mean.
//!   Adding zero (or a negative amount) returns `t` unchanged.
//! * **DST.** A local opening or closing time that is skipped by a clock
//!   change is moved forward to the first local minute that exists (the
//!   moment the clocks jumped); a repeated local time opens at its earliest
//!   and closes at its latest occurrence, so the longer day is counted.
//! * **Termination.** Every loop advances a date and stops at chrono's last
//!   date. If no working time occurs for [`MAX_IDLE_DAYS`] consecutive days
//!   (e.g. an unvalidated config without working days) the deadline is
//!   unreachable and [`DateTime::<Utc>::MAX_UTC`] is returned; results beyond
//!   chrono's range saturate the same way.
//! * **Very long spans.** Beyond the last listed holiday or extra day the
//!   schedule repeats weekly, so spans of more than about ten years are
//!   crossed in whole weeks of nominal working time (days × (end − start))
//!   instead of day by day, keeping the last five years exact. This would
//!   only be off if a DST change fell inside working hours within the
//!   skipped years, which no office schedule meets in practice.

use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, DayKind};

/// Consecutive days without working time after which a deadline is deemed unreachable.
pub const MAX_IDLE_DAYS: u32 = 3660;

/// Spans longer than this many nominal weeks are fast-forwarded…
const FAST_FORWARD_WEEKS: i64 = 530;
/// …down to this many weeks, which are then walked day by day.
const EXACT_TAIL_WEEKS: i64 = 265;

/// The longest clock jump searched when a local time does not exist
/// (a whole skipped day, as Samoa did in 2011).
const MAX_GAP_MINUTES: i64 = 24 * 60 + 60;

/// When the support office works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkingHours {
    /// Timezone of the office; default Europe/Moscow.
    pub timezone: Tz,
    /// Working weekdays; default Mon–Fri. Serialized as `["mon", "tue", …]`.
    #[serde(with = "weekday_names")]
    pub days: Vec<Weekday>,
    /// Opening time (inclusive); default 09:00. Serialized as "09:00".
    #[serde(with = "time_of_day")]
    pub start: NaiveTime,
    /// Closing time (exclusive); default 18:00. Serialized as "18:00".
    #[serde(with = "time_of_day")]
    pub end: NaiveTime,
    /// Non-working dates even if their weekday is a working day.
    pub holidays: Vec<NaiveDate>,
    /// Working dates even if their weekday is not (e.g. transferred working Saturdays).
    pub extra_working_days: Vec<NaiveDate>,
    /// The production calendar: "" for the Russian one shipped with the gateway, "none" for
    /// none, or a file of the same format (`domain/calendar/ru.toml`) that replaces it. The
    /// dates above are the office's own and take precedence.
    pub calendar: String,
    /// The calendar `calendar` names, installed by whoever reads the configuration.
    #[serde(skip, default = "Calendar::russia")]
    pub production: Calendar,
}

/// A working-hours configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "working hours must start before they end (start {}, end {})",
        format_time(*start),
        format_time(*end)
    )]
    StartNotBeforeEnd { start: NaiveTime, end: NaiveTime },
    #[error("working hours need at least one working weekday")]
    NoWorkingDays,
    #[error("{date} is listed both as a holiday and as an extra working day")]
    HolidayAndWorkingDay { date: NaiveDate },
}

// NaiveTime::from_hms_opt is only None for out-of-range arguments; these are constants in range.
const NINE: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
const EIGHTEEN: NaiveTime = match NaiveTime::from_hms_opt(18, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

impl Default for WorkingHours {
    /// Mon–Fri 09:00–18:00 Moscow time, no holidays listed.
    fn default() -> Self {
        WorkingHours {
            timezone: chrono_tz::Europe::Moscow,
            days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            start: NINE,
            end: EIGHTEEN,
            holidays: Vec::new(),
            extra_working_days: Vec::new(),
            calendar: String::new(),
            production: Calendar::russia(),
        }
    }
}

#[derive(Clone, Copy)]
enum Pick {
    Earliest,
    Latest,
}

impl WorkingHours {
    /// Checks the configuration: start before end, at least one working
    /// weekday, and no date both a holiday and an extra working day.
    pub fn validate(&self) -> Result<(), ClockError> {
        if self.start >= self.end {
            return Err(ClockError::StartNotBeforeEnd { start: self.start, end: self.end });
        }
        if self.days.is_empty() {
            return Err(ClockError::NoWorkingDays);
        }
        if let Some(date) = self.holidays.iter().find(|d| self.extra_working_days.contains(d)) {
            return Err(ClockError::HolidayAndWorkingDay { date: *date });
        }
        Ok(())
    }

    /// Whether the office works on this local date.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.extra_working_days.contains(&date) {
            return true;
        }
        if self.holidays.contains(&date) {
            return false;
        }
        match self.production.day(date) {
            Some(DayKind::Off) => false,
            Some(DayKind::Working) => true,
            Some(DayKind::Shortened) | None => self.days.contains(&date.weekday()),
        }
    }

    /// The closing time of a working date: an hour early on a pre-holiday day (Labour Code
    /// art. 95) unless that would leave no working time.
    fn closing(&self, date: NaiveDate) -> NaiveTime {
        let short = self.end - TimeDelta::hours(1);
        match self.production.day(date) {
            Some(DayKind::Shortened) if short > self.start && !self.extra_working_days.contains(&date) => short,
            _ => self.end,
        }
    }

    /// Whether `t` falls within working hours (opening inclusive, closing exclusive).
    pub fn is_working_time(&self, t: DateTime<Utc>) -> bool {
        self.interval(self.local_date(t)).is_some_and(|(open, close)| open <= t && t < close)
    }

    /// The instant `hours` working hours after `t`, counting only time
    /// inside working hours (if t is outside, counting starts at the next opening).
    pub fn add_working_hours(&self, t: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        self.add_working(t, TimeDelta::hours(i64::from(hours)))
    }

    /// The instant `amount` of working time after `t`; see the module docs
    /// for closing time, zero, DST and unreachable deadlines.
    pub fn add_working(&self, t: DateTime<Utc>, amount: TimeDelta) -> DateTime<Utc> {
        if amount <= TimeDelta::zero() {
            return t;
        }
        let first_date = self.local_date(t);
        // Start a day early so no interval containing `t` can be missed.
        let mut date = first_date.pred_opt().unwrap_or(first_date);
        let mut cursor = t;
        let mut remaining = amount;
        let mut idle_days = 0;
        loop {
            if date > first_date
                && let Some((weeks, skipped)) = self.skippable_weeks(date, remaining)
            {
                let Some(next) = date.checked_add_days(Days::new(weeks * 7)) else {
                    return DateTime::<Utc>::MAX_UTC;
                };
                date = next;
                remaining -= skipped;
                cursor = DateTime::<Utc>::MIN_UTC;
                continue;
            }
            match self.interval(date) {
                Some((open, close)) if close > cursor => {
                    idle_days = 0;
                    let from = open.max(cursor);
                    let available = close - from;
                    if remaining <= available {
                        return from + remaining;
                    }
                    remaining -= available;
                }
                _ => {
                    idle_days += 1;
                    if idle_days > MAX_IDLE_DAYS {
                        return DateTime::<Utc>::MAX_UTC;
                    }
                }
            }
            let Some(next) = date.succ_opt() else {
                return DateTime::<Utc>::MAX_UTC;
            };
            date = next;
        }
    }

    /// Calendar hours: plain elapsed time, regardless of working hours.
    /// Saturates at chrono's last instant.
    pub fn add_calendar_hours(&self, t: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        t.checked_add_signed(TimeDelta::hours(i64::from(hours))).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Working time elapsed between two instants (for "time left until the
    /// SLA deadline" displays), `TimeDelta::zero()` if b <= a.
    pub fn working_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> TimeDelta {
        let mut total = TimeDelta::zero();
        if b <= a {
            return total;
        }
        let first_date = self.local_date(a);
        let last_date = self.local_date(b);
        let mut date = first_date.pred_opt().unwrap_or(first_date);
        let end_date = last_date.succ_opt().unwrap_or(last_date);
        while date <= end_date {
            if date > first_date {
                let calendar = (last_date - date).num_days();
                if let Some((weeks, skipped)) = self.skippable_span(date, calendar / 7)
                    && let Some(next) = date.checked_add_days(Days::new(weeks * 7))
                {
                    date = next;
                    total += skipped;
                    continue;
                }
            }
            if let Some((open, close)) = self.interval(date) {
                let from = open.max(a);
                let to = close.min(b);
                if from < to {
                    total += to - from;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        total
    }

    /// The office's local date at `t`. Unlike `DateTime::date_naive` this
    /// cannot panic at the ends of chrono's range, where the local date may
    /// not exist; it then falls back to the UTC date (a day off at most, and
    /// the loops look one day either side anyway).
    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        let utc = t.naive_utc();
        let offset = self.timezone.offset_from_utc_datetime(&utc).fix();
        utc.checked_add_offset(offset).map_or(utc.date(), |local| local.date())
    }

    /// The UTC instant of a local date and time, skipping forward over a DST gap.
    fn local_instant(&self, date: NaiveDate, time: NaiveTime, pick: Pick) -> Option<DateTime<Utc>> {
        let local = date.and_time(time);
        for minutes in 0..=MAX_GAP_MINUTES {
            let probe = local.checked_add_signed(TimeDelta::minutes(minutes))?;
            let mapped = self.timezone.from_local_datetime(&probe);
            let found = match pick {
                Pick::Earliest => mapped.earliest(),
                Pick::Latest => mapped.latest(),
            };
            if let Some(instant) = found {
                return Some(instant.with_timezone(&Utc));
            }
        }
        None
    }

    /// The working interval `[open, close)` of a local date, if it works.
    fn interval(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(date) {
            return None;
        }
        let open = self.local_instant(date, self.start, Pick::Earliest)?;
        let close = self.local_instant(date, self.closing(date), Pick::Latest)?;
        (open < close).then_some((open, close))
    }

    /// Working time of an ordinary week: working weekdays × (end − start).
    fn nominal_week(&self) -> TimeDelta {
        if self.start >= self.end {
            return TimeDelta::zero();
        }
        let day = self.end - self.start;
        let weekdays =
            [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let count = weekdays.iter().filter(|w| self.days.contains(w)).count();
        // count <= 7, so the cast is lossless.
        day * count as i32
    }

    /// Whether `date` lies past every listed holiday and extra working day,
    /// from where the schedule repeats weekly.
    fn past_listed_dates(&self, date: NaiveDate) -> bool {
        self.holidays.iter().chain(&self.extra_working_days).all(|listed| *listed < date)
            && self.production.last_year().is_none_or(|year| year < date.year())
    }

    /// Whole weeks (and their working time) that may be skipped from `date`
    /// when `remaining` working time is still to be added.
    fn skippable_weeks(&self, date: NaiveDate, remaining: TimeDelta) -> Option<(u64, TimeDelta)> {
        let week_ms = self.nominal_week().num_milliseconds();
        if week_ms <= 0 {
            return None;
        }
        self.skippable_span(date, remaining.num_milliseconds() / week_ms)
    }

    /// Skips all but [`EXACT_TAIL_WEEKS`] of `span_weeks` when the span is long
    /// enough and the schedule is periodic from `date` on.
    fn skippable_span(&self, date: NaiveDate, span_weeks: i64) -> Option<(u64, TimeDelta)> {
        if span_weeks <= FAST_FORWARD_WEEKS || !self.past_listed_dates(date) {
            return None;
        }
        let weeks = i32::try_from(span_weeks - EXACT_TAIL_WEEKS).unwrap_or(i32::MAX);
        let skipped = self.nominal_week().checked_mul(weeks)?;
        Some((u64::try_from(weeks).ok()?, skipped))
    }
}

/// "09:00", or "09:00:30" when seconds matter.
fn format_time(t: NaiveTime) -> String {
    if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .map_err(|_| format!("'{}' is not a time of day (use HH:MM, e.g. 09:00)", s.escape_debug()))
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Accepts "mon", "Mon", "monday", any case, as chrono does.
fn parse_weekday(s: &str) -> Result<Weekday, String> {
    s.trim().parse::<Weekday>().map_err(|_| {
        format!("'{}' is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)", s.escape_debug())
    })
}

/// Serde for working weekdays as lowercase short names.
mod weekday_names {
    use chrono::Weekday;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(days.iter().map(|d| super::weekday_name(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|name| super::parse_weekday(name).map_err(D::Error::custom)).collect()
    }
}

/// Serde for times of day as "HH:MM".
mod time_of_day {
    use chrono::NaiveTime;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        super::parse_time(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl fmt::Display for WorkingHours {
    /// A one-line summary, e.g. "mon-fri 09:00-18:00 Europe/Moscow".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = self.days.iter().map(|d| weekday_name(*d)).collect();
        write!(f, "{} {}-{} {}", days.join(","), format_time(self.start), format_time(self.end), self.timezone.name())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_value::{V, from};
    use super::*;

    const fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        match NaiveDate::from_ymd_opt(y, m, day) {
            Some(date) => date,
            None => panic!("invalid test date"),
        }
    }

    /// A local (y, m, d, h, min) in a zone.
    type Local = (i32, u32, u32, u32, u32);

    /// Builds the configuration a table row runs against.
    type Config = fn() -> WorkingHours;
    type Instant = DateTime<Utc>;

    fn at(tz: Tz, (y, m, day, h, min): Local) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, m, day, h, min, 0)
            .single()
            .unwrap_or_else(|| panic!("ambiguous or missing local time {y}-{m}-{day} {h}:{min}"))
            .with_timezone(&Utc)
    }

    fn utc((y, m, day, h, min): Local) -> DateTime<Utc> {
        at(chrono_tz::UTC, (y, m, day, h, min))
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    /// The rules' own tables run without a production calendar: each lists what it needs.
    fn plain() -> WorkingHours {
        WorkingHours { production: Calendar::default(), ..WorkingHours::default() }
    }

    fn moscow() -> WorkingHours {
        plain()
    }

    /// Russian New Year holidays 2027 (Jan 1–8), Jan 9–10 is a weekend anyway.
    fn new_year() -> WorkingHours {
        WorkingHours { holidays: (1..=8).map(|day| d(2027, 1, day)).collect(), ..plain() }
    }

    /// Saturday 2026-11-07 is a transferred working day; Friday 2026-11-06 a holiday.
    fn transfer() -> WorkingHours {
        WorkingHours { holidays: vec![d(2026, 11, 6)], extra_working_days: vec![d(2026, 11, 7)], ..plain() }
    }

    fn yekaterinburg() -> WorkingHours {
        WorkingHours { timezone: chrono_tz::Asia::Yekaterinburg, ..plain() }
    }

    fn berlin() -> WorkingHours {
        WorkingHours { timezone: chrono_tz::Europe::Berlin, ..plain() }
    }

    /// Sunday-only 00:00–04:00 in Berlin, to put DST changes inside working hours.
    fn berlin_night() -> WorkingHours {
        WorkingHours {
            timezone: chrono_tz::Europe::Berlin,
            days: vec![Weekday::Sun],
            start: hm(0, 0),
            end: hm(4, 0),
            ..plain()
        }
    }

    /// Berlin Sundays opening at 02:30, a time skipped on 2026-03-29.
    fn berlin_gap_open() -> WorkingHours {
        WorkingHours { start: hm(2, 30), end: hm(5, 0), ..berlin_night() }
    }

    /// No working days at all (fails validation): nothing is ever reached.
    fn never() -> WorkingHours {
        WorkingHours { days: vec![], ..plain() }
    }

    struct AddCase {
        what: &'static str,
        hours: Config,
        from: Local,
        add: u32,
        expected: Local,
    }

    const ADD_CASES: &[AddCase] = &[
        AddCase {
            what: "Fri 17:00 + 10h: 1h Fri, 9h Mon",
            hours: moscow,
            from: (2026, 3, 13, 17, 0),
            add: 10,
            expected: (2026, 3, 16, 18, 0),
        },
        AddCase {
            what: "Fri 17:00 + 1h ends at closing",
            hours: moscow,
            from: (2026, 3, 13, 17, 0),
            add: 1,
            expected: (2026, 3, 13, 18, 0),
        },
        AddCase {
            what: "Fri 17:00 + 2h",
            hours: moscow,
            from: (2026, 3, 13, 17, 0),
            add: 2,
            expected: (2026, 3, 16, 10, 0),
        },
        AddCase {
            what: "Fri 17:00 + 11h",
            hours: moscow,
            from: (2026, 3, 13, 17, 0),
            add: 11,
            expected: (2026, 3, 17, 10, 0),
        },
        AddCase {
            what: "from Saturday + 1h",
            hours: moscow,
            from: (2026, 3, 14, 12, 0),
            add: 1,
            expected: (2026, 3, 16, 10, 0),
        },
        AddCase {
            what: "from Saturday + 9h",
            hours: moscow,
            from: (2026, 3, 14, 12, 0),
            add: 9,
            expected: (2026, 3, 16, 18, 0),
        },
        AddCase {
            what: "from Sunday 23:59 + 1h",
            hours: moscow,
            from: (2026, 3, 15, 23, 59),
            add: 1,
            expected: (2026, 3, 16, 10, 0),
        },
        AddCase {
            what: "08:00 before opening + 1h",
            hours: moscow,
            from: (2026, 3, 16, 8, 0),
            add: 1,
            expected: (2026, 3, 16, 10, 0),
        },
        AddCase {
            what: "09:00 opening + 9h",
            hours: moscow,
            from: (2026, 3, 16, 9, 0),
            add: 9,
            expected: (2026, 3, 16, 18, 0),
        },
        AddCase {
            what: "exactly 18:00 + 1h",
            hours: moscow,
            from: (2026, 3, 16, 18, 0),
            add: 1,
            expected: (2026, 3, 17, 10, 0),
        },
        AddCase {
            what: "17:59 + 1h",
            hours: moscow,
            from: (2026, 3, 16, 17, 59),
            add: 1,
            expected: (2026, 3, 17, 9, 59),
        },
        AddCase {
            what: "evening 22:00 + 4h",
            hours: moscow,
            from: (2026, 3, 16, 22, 0),
            add: 4,
            expected: (2026, 3, 17, 13, 0),
        },
        AddCase {
            what: "night 03:00 + 4h",
            hours: moscow,
            from: (2026, 3, 17, 3, 0),
            add: 4,
            expected: (2026, 3, 17, 13, 0),
        },
        AddCase {
            what: "a working week is 45h",
            hours: moscow,
            from: (2026, 3, 16, 9, 0),
            add: 45,
            expected: (2026, 3, 20, 18, 0),
        },
        AddCase { what: "45h + 1h", hours: moscow, from: (2026, 3, 16, 9, 0), add: 46, expected: (2026, 3, 23, 10, 0) },
        AddCase {
            what: "zero hours on a weekend is the same instant",
            hours: moscow,
            from: (2026, 3, 14, 12, 0),
            add: 0,
            expected: (2026, 3, 14, 12, 0),
        },
        AddCase {
            what: "across New Year holidays",
            hours: new_year,
            from: (2026, 12, 31, 17, 0),
            add: 2,
            expected: (2027, 1, 11, 10, 0),
        },
        AddCase {
            what: "from inside the holidays",
            hours: new_year,
            from: (2027, 1, 5, 12, 0),
            add: 9,
            expected: (2027, 1, 11, 18, 0),
        },
        AddCase {
            what: "last day before holidays, ending at closing",
            hours: new_year,
            from: (2026, 12, 31, 9, 0),
            add: 9,
            expected: (2026, 12, 31, 18, 0),
        },
        AddCase {
            what: "holiday Friday skipped, extra Saturday worked",
            hours: transfer,
            from: (2026, 11, 5, 17, 0),
            add: 2,
            expected: (2026, 11, 7, 10, 0),
        },
        AddCase {
            what: "extra Saturday then Monday",
            hours: transfer,
            from: (2026, 11, 7, 17, 0),
            add: 2,
            expected: (2026, 11, 9, 10, 0),
        },
        AddCase {
            what: "Yekaterinburg Fri 17:00 + 10h",
            hours: yekaterinburg,
            from: (2026, 3, 13, 17, 0),
            add: 10,
            expected: (2026, 3, 16, 18, 0),
        },
        AddCase {
            what: "Yekaterinburg evening + 1h",
            hours: yekaterinburg,
            from: (2026, 3, 16, 20, 0),
            add: 1,
            expected: (2026, 3, 17, 10, 0),
        },
        AddCase {
            what: "Berlin Fri 17:00 CET + 2h over the spring change",
            hours: berlin,
            from: (2026, 3, 27, 17, 0),
            add: 2,
            expected: (2026, 3, 30, 10, 0),
        },
        AddCase {
            what: "Berlin Fri 17:00 CEST + 2h over the autumn change",
            hours: berlin,
            from: (2026, 10, 23, 17, 0),
            add: 2,
            expected: (2026, 10, 26, 10, 0),
        },
        AddCase {
            what: "Berlin week with the spring change is 45h",
            hours: berlin,
            from: (2026, 3, 23, 9, 0),
            add: 46,
            expected: (2026, 3, 30, 10, 0),
        },
    ];

    #[test]
    fn add_working_hours_table() {
        for c in ADD_CASES {
            let h = (c.hours)();
            assert_eq!(h.validate(), Ok(()), "{}: config", c.what);
            let got = h.add_working_hours(at(h.timezone, c.from), c.add);
            let expected = at(h.timezone, c.expected);
            assert_eq!(got.with_timezone(&h.timezone), expected.with_timezone(&h.timezone), "{}", c.what);
        }
    }

    /// The same computations pinned to UTC, so a wrong offset cannot hide
    /// behind a symmetric conversion in the test.
    #[test]
    fn add_working_utc_table() {
        let cases: &[(&str, Config, Local, TimeDelta, Local)] = &[
            ("Moscow is UTC+3", moscow, (2026, 3, 13, 14, 0), TimeDelta::hours(10), (2026, 3, 16, 15, 0)),
            ("Yekaterinburg is UTC+5", yekaterinburg, (2026, 3, 13, 12, 0), TimeDelta::hours(10), (2026, 3, 16, 13, 0)),
            (
                "Berlin winter UTC+1 to summer UTC+2",
                berlin,
                (2026, 3, 27, 16, 0),
                TimeDelta::hours(2),
                (2026, 3, 30, 8, 0),
            ),
            (
                "Berlin summer UTC+2 to winter UTC+1",
                berlin,
                (2026, 10, 23, 15, 0),
                TimeDelta::hours(2),
                (2026, 10, 26, 9, 0),
            ),
            (
                "Berlin spring night has 3 real hours",
                berlin_night,
                (2026, 3, 28, 23, 0),
                TimeDelta::hours(3),
                (2026, 3, 29, 2, 0),
            ),
            (
                "Berlin spring night: the 4th hour is next Sunday",
                berlin_night,
                (2026, 3, 28, 23, 0),
                TimeDelta::hours(4),
                (2026, 4, 4, 23, 0),
            ),
            (
                "Berlin autumn night has 5 real hours",
                berlin_night,
                (2026, 10, 24, 22, 0),
                TimeDelta::hours(5),
                (2026, 10, 25, 3, 0),
            ),
            (
                "opening in the spring gap moves to the jump",
                berlin_gap_open,
                (2026, 3, 28, 12, 0),
                TimeDelta::minutes(1),
                (2026, 3, 29, 1, 1),
            ),
            ("minutes", moscow, (2026, 3, 16, 6, 0), TimeDelta::minutes(90), (2026, 3, 16, 7, 30)),
            ("negative is the same instant", moscow, (2026, 3, 14, 12, 0), TimeDelta::hours(-5), (2026, 3, 14, 12, 0)),
        ];
        for (what, hours, from, add, expected) in cases {
            let h = hours();
            assert_eq!(h.add_working(utc(*from), *add), utc(*expected), "{what}");
        }
    }

    #[test]
    fn add_working_extremes_table() {
        let mon = at(chrono_tz::Europe::Moscow, (2026, 1, 5, 9, 0));
        let cases: &[(&str, WorkingHours, Instant, TimeDelta, Instant)] = &[
            // 50000h = 1111 weeks of 45h + 5h; crosses the fast-forward path.
            (
                "fast-forwarded weeks stay exact",
                moscow(),
                mon,
                TimeDelta::hours(50_000),
                at(chrono_tz::Europe::Moscow, (2047, 4, 22, 14, 0)),
            ),
            (
                "Berlin fast-forward over 21 DST changes",
                berlin(),
                at(chrono_tz::Europe::Berlin, (2026, 1, 5, 9, 0)),
                TimeDelta::hours(50_000),
                at(chrono_tz::Europe::Berlin, (2047, 4, 22, 14, 0)),
            ),
            ("no working days: never", never(), mon, TimeDelta::hours(1), DateTime::<Utc>::MAX_UTC),
            (
                "beyond chrono's range saturates",
                moscow(),
                mon,
                TimeDelta::hours(i64::from(u32::MAX)),
                DateTime::<Utc>::MAX_UTC,
            ),
            ("largest duration saturates", moscow(), mon, TimeDelta::MAX, DateTime::<Utc>::MAX_UTC),
            (
                "near the end of time saturates",
                moscow(),
                DateTime::<Utc>::MAX_UTC - TimeDelta::days(2),
                TimeDelta::hours(100),
                DateTime::<Utc>::MAX_UTC,
            ),
        ];
        for (what, h, from, add, expected) in cases {
            assert_eq!(h.add_working(*from, *add), *expected, "{what}");
        }
        assert_eq!(moscow().add_working_hours(mon, u32::MAX), DateTime::<Utc>::MAX_UTC, "u32::MAX hours");
    }

    #[test]
    fn add_calendar_hours_table() {
        let tz = chrono_tz::Europe::Moscow;
        let cases: &[(&str, Local, u32, Local)] = &[
            ("24h across a weekend", (2026, 3, 13, 17, 0), 24, (2026, 3, 14, 17, 0)),
            ("72h Fri to Mon", (2026, 3, 13, 17, 0), 72, (2026, 3, 16, 17, 0)),
            ("zero", (2026, 3, 13, 17, 0), 0, (2026, 3, 13, 17, 0)),
            ("across New Year", (2026, 12, 31, 20, 0), 8, (2027, 1, 1, 4, 0)),
        ];
        let h = new_year();
        for (what, from, add, expected) in cases {
            assert_eq!(h.add_calendar_hours(at(tz, *from), *add), at(tz, *expected), "{what}");
        }
        assert_eq!(h.add_calendar_hours(at(tz, (2026, 1, 1, 0, 0)), u32::MAX), DateTime::<Utc>::MAX_UTC, "saturates");
        // Calendar hours ignore DST: 24 real hours, so the local clock moves 25.
        let b = berlin();
        assert_eq!(
            b.add_calendar_hours(at(b.timezone, (2026, 3, 28, 12, 0)), 24),
            at(b.timezone, (2026, 3, 29, 13, 0)),
            "Berlin spring change"
        );
    }

    #[test]
    fn working_time_between_table() {
        let cases: &[(&str, Config, Local, Local, TimeDelta)] = &[
            ("Fri 17:00 to Mon 10:00", moscow, (2026, 3, 13, 17, 0), (2026, 3, 16, 10, 0), TimeDelta::hours(2)),
            ("same instant", moscow, (2026, 3, 16, 10, 0), (2026, 3, 16, 10, 0), TimeDelta::zero()),
            ("reversed", moscow, (2026, 3, 16, 12, 0), (2026, 3, 16, 10, 0), TimeDelta::zero()),
            ("around a whole day", moscow, (2026, 3, 16, 8, 0), (2026, 3, 16, 20, 0), TimeDelta::hours(9)),
            ("inside a day", moscow, (2026, 3, 16, 10, 15), (2026, 3, 16, 11, 0), TimeDelta::minutes(45)),
            ("evening to morning", moscow, (2026, 3, 16, 19, 0), (2026, 3, 17, 8, 0), TimeDelta::zero()),
            ("weekend only", moscow, (2026, 3, 14, 0, 0), (2026, 3, 16, 0, 0), TimeDelta::zero()),
            ("a calendar week", moscow, (2026, 3, 16, 0, 0), (2026, 3, 23, 0, 0), TimeDelta::hours(45)),
            ("over the New Year holidays", new_year, (2026, 12, 31, 17, 0), (2027, 1, 11, 10, 0), TimeDelta::hours(2)),
            (
                "extra Saturday counts, holiday Friday does not",
                transfer,
                (2026, 11, 5, 0, 0),
                (2026, 11, 9, 0, 0),
                TimeDelta::hours(18),
            ),
            ("Yekaterinburg day", yekaterinburg, (2026, 3, 16, 8, 0), (2026, 3, 16, 20, 0), TimeDelta::hours(9)),
            (
                "Berlin week with the spring change",
                berlin,
                (2026, 3, 23, 0, 0),
                (2026, 3, 30, 0, 0),
                TimeDelta::hours(45),
            ),
            ("Berlin spring night", berlin_night, (2026, 3, 28, 12, 0), (2026, 3, 29, 12, 0), TimeDelta::hours(3)),
        ];
        for (what, hours, a, b, expected) in cases {
            let h = hours();
            assert_eq!(h.working_time_between(at(h.timezone, *a), at(h.timezone, *b)), *expected, "{what}");
        }
        // The autumn night is 5 real hours, but 02:00-03:00 happens twice locally.
        let h = berlin_night();
        assert_eq!(
            h.working_time_between(utc((2026, 10, 24, 12, 0)), utc((2026, 10, 25, 12, 0))),
            TimeDelta::hours(5),
            "Berlin autumn night"
        );
    }

    /// add_working and working_time_between agree, including on the fast-forward path.
    #[test]
    fn add_and_between_agree_table() {
        let cases: &[(&str, Config, Local, i64)] = &[
            ("Moscow 10h", moscow, (2026, 3, 13, 17, 0), 10),
            ("New Year 30h", new_year, (2026, 12, 28, 10, 0), 30),
            ("transfer 20h", transfer, (2026, 11, 2, 12, 0), 20),
            ("Berlin 100h", berlin, (2026, 3, 20, 12, 0), 100),
            ("Moscow 50000h (fast-forward)", moscow, (2026, 1, 5, 9, 0), 50_000),
            ("Yekaterinburg 1,000,000h (fast-forward)", yekaterinburg, (2026, 1, 7, 11, 30), 1_000_000),
        ];
        for (what, hours, from, add) in cases {
            let h = hours();
            let a = at(h.timezone, *from);
            let b = h.add_working(a, TimeDelta::hours(*add));
            assert_eq!(h.working_time_between(a, b), TimeDelta::hours(*add), "{what}");
        }
        // The whole representable range terminates.
        let total = moscow().working_time_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert!(total > TimeDelta::days(365 * 100_000), "full range: {total}");
        assert_eq!(
            never().working_time_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
            TimeDelta::zero(),
            "never"
        );
    }

    #[test]
    fn is_working_time_table() {
        let cases: &[(&str, Config, Local, u32, bool)] = &[
            ("Mon 09:00 opening", moscow, (2026, 3, 16, 9, 0), 0, true),
            ("Mon 08:59:59", moscow, (2026, 3, 16, 8, 59), 59, false),
            ("Mon 17:59:59", moscow, (2026, 3, 16, 17, 59), 59, true),
            ("Mon 18:00 closing", moscow, (2026, 3, 16, 18, 0), 0, false),
            ("Mon midnight", moscow, (2026, 3, 16, 0, 0), 0, false),
            ("Fri noon", moscow, (2026, 3, 13, 12, 0), 0, true),
            ("Sat noon", moscow, (2026, 3, 14, 12, 0), 0, false),
            ("Sun noon", moscow, (2026, 3, 15, 12, 0), 0, false),
            ("holiday Monday noon", new_year, (2027, 1, 4, 12, 0), 0, false),
            ("day after holidays", new_year, (2027, 1, 11, 12, 0), 0, true),
            ("extra Saturday", transfer, (2026, 11, 7, 10, 0), 0, true),
            ("holiday Friday", transfer, (2026, 11, 6, 10, 0), 0, false),
            ("Yekaterinburg 09:00", yekaterinburg, (2026, 3, 16, 9, 0), 0, true),
            ("Yekaterinburg 18:00", yekaterinburg, (2026, 3, 16, 18, 0), 0, false),
            ("Berlin Monday after the change", berlin, (2026, 3, 30, 9, 0), 0, true),
            ("no working days", never, (2026, 3, 16, 12, 0), 0, false),
        ];
        for (what, hours, local, secs, expected) in cases {
            let h = hours();
            let t = at(h.timezone, *local) + TimeDelta::seconds(i64::from(*secs));
            assert_eq!(h.is_working_time(t), *expected, "{what}");
        }
        // Moscow 09:00 is 06:00 UTC; Yekaterinburg 09:00 is 04:00 UTC.
        assert!(moscow().is_working_time(utc((2026, 3, 16, 6, 0))), "Moscow UTC");
        assert!(!moscow().is_working_time(utc((2026, 3, 16, 5, 59))), "Moscow UTC before");
        assert!(yekaterinburg().is_working_time(utc((2026, 3, 16, 4, 0))), "Yekaterinburg UTC");
        assert!(!yekaterinburg().is_working_time(utc((2026, 3, 16, 13, 0))), "Yekaterinburg UTC after");
    }

    #[test]
    fn is_working_day_table() {
        let cases: &[(&str, Config, NaiveDate, bool)] = &[
            ("Monday", moscow, d(2026, 3, 16), true),
            ("Friday", moscow, d(2026, 3, 20), true),
            ("Saturday", moscow, d(2026, 3, 21), false),
            ("Sunday", moscow, d(2026, 3, 22), false),
            ("New Year holiday Friday", new_year, d(2027, 1, 1), false),
            ("New Year holiday Monday", new_year, d(2027, 1, 4), false),
            ("last holiday", new_year, d(2027, 1, 8), false),
            ("first day back", new_year, d(2027, 1, 11), true),
            ("extra Saturday", transfer, d(2026, 11, 7), true),
            ("ordinary Saturday", transfer, d(2026, 11, 14), false),
            ("holiday Friday", transfer, d(2026, 11, 6), false),
            ("no working days", never, d(2026, 3, 16), false),
        ];
        for (what, hours, date, expected) in cases {
            assert_eq!(hours().is_working_day(*date), *expected, "{what}");
        }
    }

    #[test]
    fn validate_table() {
        let cases: Vec<(&str, WorkingHours, Result<(), ClockError>)> = vec![
            ("default", plain(), Ok(())),
            ("holidays and transfers", transfer(), Ok(())),
            (
                "start equals end",
                WorkingHours { end: hm(9, 0), ..plain() },
                Err(ClockError::StartNotBeforeEnd { start: hm(9, 0), end: hm(9, 0) }),
            ),
            (
                "start after end",
                WorkingHours { start: hm(18, 0), end: hm(9, 0), ..plain() },
                Err(ClockError::StartNotBeforeEnd { start: hm(18, 0), end: hm(9, 0) }),
            ),
            ("no working days", never(), Err(ClockError::NoWorkingDays)),
            (
                "a date both holiday and extra day",
                WorkingHours {
                    holidays: vec![d(2026, 11, 6), d(2026, 11, 7)],
                    extra_working_days: vec![d(2026, 11, 7)],
                    ..plain()
                },
                Err(ClockError::HolidayAndWorkingDay { date: d(2026, 11, 7) }),
            ),
        ];
        for (what, h, expected) in cases {
            assert_eq!(h.validate(), expected, "{what}");
        }
    }

    #[test]
    fn clock_error_messages_table() {
        let cases: &[(ClockError, &str)] = &[
            (
                ClockError::StartNotBeforeEnd { start: hm(18, 0), end: hm(9, 0) },
                "working hours must start before they end (start 18:00, end 09:00)",
            ),
            (ClockError::NoWorkingDays, "working hours need at least one working weekday"),
            (
                ClockError::HolidayAndWorkingDay { date: d(2026, 11, 7) },
                "2026-11-07 is listed both as a holiday and as an extra working day",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), *text, "{e:?}");
        }
    }

    #[test]
    fn parse_weekday_table() {
        let cases: &[(&str, Result<Weekday, &str>)] = &[
            ("mon", Ok(Weekday::Mon)),
            ("tue", Ok(Weekday::Tue)),
            ("wed", Ok(Weekday::Wed)),
            ("thu", Ok(Weekday::Thu)),
            ("fri", Ok(Weekday::Fri)),
            ("sat", Ok(Weekday::Sat)),
            ("sun", Ok(Weekday::Sun)),
            ("Mon", Ok(Weekday::Mon)),
            ("SUNDAY", Ok(Weekday::Sun)),
            ("saturday", Ok(Weekday::Sat)),
            ("funday", Err("'funday' is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)")),
            ("mo", Err("'mo' is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)")),
            ("", Err("'' is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)")),
            ("пн", Err("'пн' is not a day of the week (use mon, tue, wed, thu, fri, sat or sun)")),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_weekday(input), expected.map_err(str::to_owned), "{input:?}");
        }
        for day in [Weekday::Mon, Weekday::Wed, Weekday::Sun] {
            assert_eq!(parse_weekday(weekday_name(day)), Ok(day), "round trip {day}");
        }
    }

    #[test]
    fn parse_and_format_time_table() {
        let cases: &[(&str, Result<NaiveTime, &str>, &str)] = &[
            ("09:00", Ok(hm(9, 0)), "09:00"),
            ("9:00", Ok(hm(9, 0)), "09:00"),
            ("18:00", Ok(hm(18, 0)), "18:00"),
            ("00:00", Ok(hm(0, 0)), "00:00"),
            ("23:59", Ok(hm(23, 59)), "23:59"),
            ("18:30:15", Ok(NaiveTime::from_hms_opt(18, 30, 15).unwrap()), "18:30:15"),
            ("9am", Err("'9am' is not a time of day (use HH:MM, e.g. 09:00)"), ""),
            ("24:00", Err("'24:00' is not a time of day (use HH:MM, e.g. 09:00)"), ""),
            ("12:60", Err("'12:60' is not a time of day (use HH:MM, e.g. 09:00)"), ""),
            ("", Err("'' is not a time of day (use HH:MM, e.g. 09:00)"), ""),
        ];
        for (input, expected, formatted) in cases {
            let got = parse_time(input);
            assert_eq!(got, expected.map_err(str::to_owned), "{input:?}");
            if let Ok(t) = got {
                assert_eq!(format_time(t), *formatted, "format {input:?}");
            }
        }
    }

    #[test]
    fn deserialize_table() {
        let full = V::Map(vec![
            ("timezone", V::Str("Asia/Yekaterinburg")),
            ("days", V::List(vec![V::Str("mon"), V::Str("Tue"), V::Str("sat")])),
            ("start", V::Str("10:00")),
            ("end", V::Str("19:30")),
            ("holidays", V::List(vec![V::Str("2027-01-01")])),
            ("extra_working_days", V::List(vec![V::Str("2026-11-07")])),
        ]);
        let cases: Vec<(&str, V, Result<WorkingHours, &str>)> = vec![
            ("empty table gives the defaults", V::Map(vec![]), Ok(WorkingHours::default())),
            (
                "every field",
                full,
                Ok(WorkingHours {
                    timezone: chrono_tz::Asia::Yekaterinburg,
                    days: vec![Weekday::Mon, Weekday::Tue, Weekday::Sat],
                    start: hm(10, 0),
                    end: hm(19, 30),
                    holidays: vec![d(2027, 1, 1)],
                    extra_working_days: vec![d(2026, 11, 7)],
                    ..WorkingHours::default()
                }),
            ),
            (
                "only holidays",
                V::Map(vec![("holidays", V::List(vec![V::Str("2027-01-01")]))]),
                Ok(WorkingHours { holidays: vec![d(2027, 1, 1)], ..WorkingHours::default() }),
            ),
            ("unknown field", V::Map(vec![("timezon", V::Str("UTC"))]), Err("unknown field `timezon`")),
            (
                "bad weekday",
                V::Map(vec![("days", V::List(vec![V::Str("funday")]))]),
                Err("'funday' is not a day of the week"),
            ),
            ("bad time", V::Map(vec![("start", V::Str("9am"))]), Err("'9am' is not a time of day")),
            ("bad zone", V::Map(vec![("timezone", V::Str("Mars/Olympus"))]), Err("Mars/Olympus")),
        ];
        for (what, input, expected) in cases {
            let got = from::<WorkingHours>(input);
            match expected {
                Ok(h) => assert_eq!(got, Ok(h), "{what}"),
                Err(fragment) => {
                    let err = got.expect_err(what);
                    assert!(err.contains(fragment), "{what}: {err}");
                }
            }
        }
    }

    #[test]
    fn display_summary() {
        assert_eq!(plain().to_string(), "mon,tue,wed,thu,fri 09:00-18:00 Europe/Moscow");
    }
}
