//! How instants and dates are written to the store and shown to people.
//!
//! The store keeps times as fixed-width RFC 3339 UTC text (`2026-11-24T14:27:05.123456Z`):
//! the same text works on SQLite and PostgreSQL, sorts chronologically as text, and is
//! exactly what the audit chain hashes, so a round trip through either database never
//! changes an event's bytes.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;

/// Stored text of an instant. Microsecond precision: what PostgreSQL would keep anyway.
pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads an instant written by [`to_db`].
pub fn from_db(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Now, truncated to what the store keeps, so values compare equal after a round trip.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    // Infallible: dropping sub-microsecond digits of a valid instant stays valid.
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Stored text of a calendar date.
pub fn date_to_db(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Reads a date written by [`date_to_db`], or typed by a person (`2026-10-01`).
pub fn parse_date(s: &str) -> Result<NaiveDate, chrono::ParseError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
}

/// The first instant of `d` in the zone `tz` (midnight, or the first time after a gap).
pub fn start_of_day(d: NaiveDate, tz: Tz) -> DateTime<Utc> {
    use chrono::TimeZone as _;
    let midnight = d.and_time(chrono::NaiveTime::MIN);
    // A zone may skip midnight (a DST change at 00:00): then the day starts an hour later.
    let local = tz
        .from_local_datetime(&midnight)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(midnight + chrono::Duration::hours(1))).earliest());
    local.map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// An instant as people read it: in the configured zone, with the zone's abbreviation.
pub fn display(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// An instant relative to `now` as people say it: `14:00 MSK` today, with the date otherwise.
pub fn display_near(t: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let (local, today) = (t.with_timezone(&tz), now.with_timezone(&tz).date_naive());
    if local.date_naive() == today { local.format("%H:%M %Z").to_string() } else { display(t, tz) }
}

/// An instant as people read it, to the second: for logs where order within a minute matters.
pub fn display_seconds(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// Serde in the store's text form ([`to_db`]), for files whose bytes must match the store's.
pub mod db_text {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_db(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::from_db(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_round_trip_and_sort_as_text() {
        let a = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.000001Z").unwrap().with_timezone(&Utc);
        let b = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.1Z").unwrap().with_timezone(&Utc);
        assert_eq!(to_db(a), "2026-01-02T03:04:05.000001Z");
        assert_eq!(to_db(b), "2026-01-02T03:04:05.100000Z");
        assert!(to_db(a) < to_db(b));
        assert_eq!(from_db(&to_db(b)).unwrap(), b);
        let n = now();
        assert_eq!(from_db(&to_db(n)).unwrap(), n);
    }

    #[test]
    fn display_uses_the_zone() {
        let t = from_db("2026-11-24T11:00:00.000000Z").unwrap();
        assert_eq!(display(t, chrono_tz::Europe::Moscow), "2026-11-24 14:00 MSK");
        assert_eq!(display_seconds(t, chrono_tz::Europe::Moscow), "2026-11-24 14:00:00 MSK");
        let day = parse_date("2026-11-24").unwrap();
        assert_eq!(to_db(start_of_day(day, chrono_tz::Europe::Moscow)), "2026-11-23T21:00:00.000000Z");
        // Havana springs forward at midnight: 2027-03-14 begins at 01:00 local.
        let gap = parse_date("2027-03-14").unwrap();
        assert_eq!(to_db(start_of_day(gap, chrono_tz::America::Havana)), "2027-03-14T05:00:00.000000Z");
    }
}
