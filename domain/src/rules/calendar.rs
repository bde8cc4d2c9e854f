//! The production calendar: which weekdays are days off, which weekend days work, and
//! which working days are one hour shorter, year by year. The Russian one ships inside the
//! gateway (`domain/calendar/ru.toml`); a file of the same format replaces it.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

/// How complete a year of the calendar is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// With the government's transfers of days off for the year.
    Decree,
    /// Only what the Labour Code fixes; the year's transfers are still to be added.
    Statutory,
}

/// One year of the calendar.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Year {
    pub source: Source,
    pub days_off: Vec<NaiveDate>,
    pub working: Vec<NaiveDate>,
    pub shortened: Vec<NaiveDate>,
}

/// A production calendar, by year.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    years: BTreeMap<i32, Year>,
}

/// What a calendar's day is, where the calendar says anything about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    Off,
    Working,
    Shortened,
}

/// A calendar file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{0}")]
    Format(String),
    #[error("[{year}] is not a year")]
    NotAYear { year: String },
    #[error("[{year}] lists {date}, which is in another year")]
    WrongYear { year: i32, date: NaiveDate },
    #[error("{date} is listed twice (as {first} and as {second})")]
    Twice { date: NaiveDate, first: &'static str, second: &'static str },
}

const SHIPPED: &str = include_str!("../../calendar/ru.toml");

impl Calendar {
    /// The Russian production calendar shipped with the gateway.
    pub fn russia() -> Self {
        Self::parse(SHIPPED).unwrap_or_else(|e| panic!("domain/calendar/ru.toml: {e}"))
    }

    /// A calendar file's content: a table per year (see `domain/calendar/ru.toml`).
    pub fn parse(text: &str) -> Result<Self, CalendarError> {
        let raw: BTreeMap<String, Year> =
            toml::from_str(text).map_err(|e| CalendarError::Format(e.message().into()))?;
        let mut years = BTreeMap::new();
        for (name, year) in raw {
            let number: i32 = name.parse().map_err(|_| CalendarError::NotAYear { year: name.clone() })?;
            let mut seen: BTreeMap<NaiveDate, &'static str> = BTreeMap::new();
            for (list, dates) in
                [("a day off", &year.days_off), ("working", &year.working), ("shortened", &year.shortened)]
            {
                for date in dates {
                    if date.year() != number {
                        return Err(CalendarError::WrongYear { year: number, date: *date });
                    }
                    if let Some(first) = seen.insert(*date, list) {
                        return Err(CalendarError::Twice { date: *date, first, second: list });
                    }
                }
            }
            years.insert(number, year);
        }
        Ok(Self { years })
    }

    /// What the calendar says of `date`, if anything.
    pub fn day(&self, date: NaiveDate) -> Option<DayKind> {
        let year = self.years.get(&date.year())?;
        if year.days_off.contains(&date) {
            Some(DayKind::Off)
        } else if year.working.contains(&date) {
            Some(DayKind::Working)
        } else if year.shortened.contains(&date) {
            Some(DayKind::Shortened)
        } else {
            None
        }
    }

    /// The last year the calendar covers.
    pub fn last_year(&self) -> Option<i32> {
        self.years.keys().next_back().copied()
    }

    /// Why deadlines in `year` may be counted wrongly, if they may: the year is missing or
    /// holds only the statutory holidays.
    pub fn gap(&self, year: i32) -> Option<String> {
        match self.years.get(&year) {
            None => Some(format!("the production calendar has no {year}: its holidays count as working days")),
            Some(y) if y.source == Source::Statutory => Some(format!(
                "the production calendar's {year} holds only the statutory holidays: add the government's transfers of days off"
            )),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_shipped_calendar_follows_the_2026_decree() {
        let c = Calendar::russia();
        let table = [
            ("New Year", "2026-01-01", Some(DayKind::Off)),
            ("3 January moved to Friday 9 January", "2026-01-09", Some(DayKind::Off)),
            ("4 January moved to Thursday 31 December", "2026-12-31", Some(DayKind::Off)),
            ("8 March, a Sunday, moved to Monday", "2026-03-09", Some(DayKind::Off)),
            ("9 May, a Saturday, moved to Monday 11 May", "2026-05-11", Some(DayKind::Off)),
            ("before 1 May", "2026-04-30", Some(DayKind::Shortened)),
            ("before 4 November", "2026-11-03", Some(DayKind::Shortened)),
            ("an ordinary day", "2026-12-30", None),
            ("8 January 2027 is a holiday", "2027-01-08", Some(DayKind::Off)),
            ("a year not listed", "2030-01-01", None),
        ];
        for (what, date, kind) in table {
            assert_eq!(c.day(d(date)), kind, "{what}");
        }
        assert_eq!(c.gap(2026), None);
        assert!(c.gap(2027).unwrap().contains("only the statutory holidays"), "2027's decree is not in the file");
        assert!(c.gap(2028).unwrap().contains("has no 2028"));
        assert_eq!(c.last_year(), Some(2027));
    }

    #[test]
    fn a_bad_calendar_is_named() {
        let year = |body: &str| format!("[2026]\nsource = \"decree\"\n{body}");
        let table = [
            ("[twenty]\nsource = \"decree\"\ndays_off = []\nworking = []\nshortened = []", "[twenty] is not a year"),
            (
                &*year("days_off = [\"2027-01-01\"]\nworking = []\nshortened = []"),
                "[2026] lists 2027-01-01, which is in another year",
            ),
            (
                &*year("days_off = [\"2026-05-01\"]\nworking = []\nshortened = [\"2026-05-01\"]"),
                "2026-05-01 is listed twice (as a day off and as shortened)",
            ),
        ];
        for (text, message) in table {
            assert_eq!(Calendar::parse(text).unwrap_err().to_string(), message);
        }
        assert!(Calendar::parse("[2026]\nsource = \"rumour\"").is_err());
    }
}
