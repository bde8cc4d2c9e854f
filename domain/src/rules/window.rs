//! Grant windows: the period during which a customer lets an engineer in.
//!
//! A [`GrantWindow`] is half-open, `[start, end)`, like every interval in
//! these rules, so back-to-back windows neither overlap nor leave a gap.
//! It can only be built non-empty and within the caller's maximum length
//! (the regulations' 8 hours is configuration, not a constant here);
//! deserialization re-checks non-emptiness, the one invariant that needs no
//! configuration. A customer may approve a shorter window than requested,
//! never a longer one, hence [`GrantWindow::shortened_to`] and no extension.
//!
//! Durations are written the way people type them in the CLI and read them
//! in messages: `8h`, `1h30m`, `45m`, `90s`, `1d` ([`parse_duration`],
//! [`format_duration`]). Units go largest first, each at most once, so a
//! typo like `30m1h` is refused rather than guessed at.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// A non-empty period `[start, end)` of access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct GrantWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// The unchecked wire form of a [`GrantWindow`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawWindow> for GrantWindow {
    type Error = WindowError;

    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        if raw.end <= raw.start {
            return Err(WindowError::Empty);
        }
        Ok(GrantWindow { start: raw.start, end: raw.end })
    }
}

/// Why a grant window cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("a grant window must end after it starts")]
    Empty,
    #[error(
        "a grant may last at most {}, {} was requested",
        format_duration(*max),
        format_duration(*requested)
    )]
    TooLong { requested: TimeDelta, max: TimeDelta },
}

/// Where an instant lies relative to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPosition {
    /// Before the start.
    NotYet { starts_in: TimeDelta },
    /// Inside; `left` until the end.
    Open { left: TimeDelta },
    /// At or after the end.
    Ended { ago: TimeDelta },
}

impl GrantWindow {
    /// A window `[start, end)` no longer than `max_len`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, max_len: TimeDelta) -> Result<Self, WindowError> {
        if end <= start {
            return Err(WindowError::Empty);
        }
        let requested = end - start;
        if requested > max_len {
            return Err(WindowError::TooLong { requested, max: max_len });
        }
        Ok(GrantWindow { start, end })
    }

    /// First instant of access.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// First instant without access.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// The window's length; always positive.
    #[allow(clippy::len_without_is_empty)] // a window is never empty
    pub fn len(&self) -> TimeDelta {
        self.end - self.start
    }

    /// Whether `t` is inside (start inclusive, end exclusive).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// Where `t` lies relative to the window.
    pub fn position(&self, t: DateTime<Utc>) -> WindowPosition {
        if t < self.start {
            WindowPosition::NotYet { starts_in: self.start - t }
        } else if t < self.end {
            WindowPosition::Open { left: self.end - t }
        } else {
            WindowPosition::Ended { ago: t - self.end }
        }
    }

    /// Time left at `t`; Some only while the window is open.
    pub fn time_left(&self, t: DateTime<Utc>) -> Option<TimeDelta> {
        match self.position(t) {
            WindowPosition::Open { left } => Some(left),
            WindowPosition::NotYet { .. } | WindowPosition::Ended { .. } => None,
        }
    }

    /// Shortening (customer approves with a shorter window): returns a window
    /// ending at min(end, new_end); errors if that's empty.
    pub fn shortened_to(&self, new_end: DateTime<Utc>) -> Result<Self, WindowError> {
        let end = self.end.min(new_end);
        if end <= self.start {
            return Err(WindowError::Empty);
        }
        Ok(GrantWindow { start: self.start, end })
    }
}

const UNITS: [(char, i64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// A duration for messages: "8h", "1h30m", "45m", "1m30s", "1d2h".
/// Whole seconds only (fractions are dropped); zero is "0s"; negative gets a "-".
pub fn format_duration(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
    }
    let mut rest = secs.unsigned_abs();
    for (unit, size) in UNITS {
        // Sizes are positive constants, so the cast is lossless.
        let size = size as u64;
        let n = rest / size;
        rest %= size;
        if n > 0 {
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    #[error("no duration given (expected e.g. 2h, 90m, 1h30m, 45s or 1d)")]
    Empty,
    #[error("'{}' is negative; a duration must be positive", input.escape_debug())]
    Negative { input: String },
    #[error("'{}' is zero; a duration must be positive", input.escape_debug())]
    Zero { input: String },
    #[error("'{}' has a number without a unit (use d, h, m or s, e.g. 90m)", input.escape_debug())]
    MissingUnit { input: String },
    #[error("'{}' has a unit without a number before it (e.g. 2h)", input.escape_debug())]
    MissingNumber { input: String },
    #[error("unknown unit '{}' in '{}' (use d, h, m or s)", unit.escape_debug(), input.escape_debug())]
    UnknownUnit { input: String, unit: String },
    #[error(
        "unexpected '{}' in '{}' (expected e.g. 2h, 90m, 1h30m, 45s or 1d)",
        found.escape_debug(),
        input.escape_debug()
    )]
    UnexpectedChar { input: String, found: char },
    #[error(
        "'{}' repeats a unit or puts a smaller one first (write e.g. 1d2h30m)",
        input.escape_debug()
    )]
    UnitOrder { input: String },
    #[error("'{}' is too long a duration", input.escape_debug())]
    TooLarge { input: String },
}

/// Reads "2h", "90m", "1h30m", "45s", "1d", "1d 2h"; units are d, h, m, s
/// in any case, largest first, each at most once. Refuses empty, zero,
/// negative and overflowing input.
pub fn parse_duration(s: &str) -> Result<TimeDelta, DurationParseError> {
    let input = s.trim();
    let owned = || input.to_owned();
    if input.is_empty() {
        return Err(DurationParseError::Empty);
    }
    if input.starts_with('-') {
        return Err(DurationParseError::Negative { input: owned() });
    }
    let mut chars = input.chars().peekable();
    let mut total: i64 = 0;
    // Index into UNITS of the last unit seen: the next must come strictly later.
    let mut last_unit: Option<usize> = None;
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };

        let mut number: Option<i64> = None;
        while let Some(c) = chars.next_if(char::is_ascii_digit) {
            // An ASCII digit is a single byte in b'0'..=b'9'.
            let digit = i64::from(c as u8 - b'0');
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or_else(|| DurationParseError::TooLarge { input: owned() })?,
            );
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}

        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| c.is_alphabetic()) {
            word.push(c);
        }
        let Some(number) = number else {
            return Err(if word.is_empty() {
                DurationParseError::UnexpectedChar { input: owned(), found: first }
            } else {
                DurationParseError::MissingNumber { input: owned() }
            });
        };
        if word.is_empty() {
            return Err(match chars.peek() {
                None => DurationParseError::MissingUnit { input: owned() },
                Some(c) if c.is_ascii_digit() => DurationParseError::MissingUnit { input: owned() },
                Some(&found) => DurationParseError::UnexpectedChar { input: owned(), found },
            });
        }
        let lower = word.to_lowercase();
        let Some(index) = UNITS.iter().position(|(unit, _)| lower.len() == 1 && lower.starts_with(*unit)) else {
            return Err(DurationParseError::UnknownUnit { input: owned(), unit: word });
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(DurationParseError::UnitOrder { input: owned() });
        }
        last_unit = Some(index);
        total = number
            .checked_mul(UNITS[index].1)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| DurationParseError::TooLarge { input: owned() })?;
    }
    if total == 0 {
        return Err(DurationParseError::Zero { input: owned() });
    }
    TimeDelta::try_seconds(total).ok_or_else(|| DurationParseError::TooLarge { input: owned() })
}

#[cfg(test)]
mod tests {
    use super::super::test_value::{V, from};
    use super::*;
    use chrono::TimeZone;

    type Instant = DateTime<Utc>;
    /// The window's length, or why it was refused.
    type LenOrError = Result<TimeDelta, WindowError>;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 16, h, m, s).unwrap()
    }

    const fn hours(h: i64) -> TimeDelta {
        TimeDelta::hours(h)
    }

    const fn mins(m: i64) -> TimeDelta {
        TimeDelta::minutes(m)
    }

    const fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    /// The window 10:00–12:00 used by the position tables.
    fn ten_to_noon() -> GrantWindow {
        GrantWindow::new(t(10, 0, 0), t(12, 0, 0), hours(8)).unwrap()
    }

    #[test]
    fn new_table() {
        let cases: &[(&str, Instant, Instant, TimeDelta, LenOrError)] = &[
            ("two hours", t(10, 0, 0), t(12, 0, 0), hours(8), Ok(hours(2))),
            ("one second", t(10, 0, 0), t(10, 0, 1), hours(8), Ok(secs(1))),
            ("exactly the maximum", t(9, 0, 0), t(17, 0, 0), hours(8), Ok(hours(8))),
            (
                "maximum plus one second",
                t(9, 0, 0),
                t(17, 0, 1),
                hours(8),
                Err(WindowError::TooLong { requested: hours(8) + secs(1), max: hours(8) }),
            ),
            (
                "ten hours",
                t(8, 0, 0),
                t(18, 0, 0),
                hours(8),
                Err(WindowError::TooLong { requested: hours(10), max: hours(8) }),
            ),
            ("end equals start", t(10, 0, 0), t(10, 0, 0), hours(8), Err(WindowError::Empty)),
            ("end before start", t(12, 0, 0), t(10, 0, 0), hours(8), Err(WindowError::Empty)),
            ("empty wins over too long", t(12, 0, 0), t(10, 0, 0), TimeDelta::zero(), Err(WindowError::Empty)),
            (
                "zero maximum refuses everything",
                t(10, 0, 0),
                t(10, 0, 1),
                TimeDelta::zero(),
                Err(WindowError::TooLong { requested: secs(1), max: TimeDelta::zero() }),
            ),
        ];
        for (what, start, end, max, expected) in cases {
            let got = GrantWindow::new(*start, *end, *max);
            assert_eq!(got.clone().map(|w| w.len()), *expected, "{what}");
            if let Ok(w) = got {
                assert_eq!((w.start(), w.end()), (*start, *end), "{what} bounds");
            }
        }
    }

    #[test]
    fn contains_table() {
        let cases: &[(&str, DateTime<Utc>, bool)] = &[
            ("before", t(9, 59, 59), false),
            ("at start", t(10, 0, 0), true),
            ("middle", t(11, 0, 0), true),
            ("last second", t(11, 59, 59), true),
            ("at end", t(12, 0, 0), false),
            ("after", t(13, 0, 0), false),
        ];
        let w = ten_to_noon();
        for (what, at, expected) in cases {
            assert_eq!(w.contains(*at), *expected, "{what}");
        }
    }

    #[test]
    fn position_and_time_left_table() {
        use WindowPosition::*;
        let cases: &[(&str, DateTime<Utc>, WindowPosition, Option<TimeDelta>)] = &[
            ("an hour before", t(9, 0, 0), NotYet { starts_in: hours(1) }, None),
            ("a second before", t(9, 59, 59), NotYet { starts_in: secs(1) }, None),
            ("at start", t(10, 0, 0), Open { left: hours(2) }, Some(hours(2))),
            ("middle", t(11, 30, 0), Open { left: mins(30) }, Some(mins(30))),
            ("last second", t(11, 59, 59), Open { left: secs(1) }, Some(secs(1))),
            ("at end", t(12, 0, 0), Ended { ago: TimeDelta::zero() }, None),
            ("after", t(13, 15, 0), Ended { ago: mins(75) }, None),
        ];
        let w = ten_to_noon();
        for (what, at, position, left) in cases {
            assert_eq!(w.position(*at), *position, "{what} position");
            assert_eq!(w.time_left(*at), *left, "{what} time_left");
            assert_eq!(w.contains(*at), left.is_some(), "{what} contains");
        }
    }

    #[test]
    fn shortened_to_table() {
        let cases: &[(&str, Instant, Result<Instant, WindowError>)] = &[
            ("earlier end", t(11, 0, 0), Ok(t(11, 0, 0))),
            ("one second long", t(10, 0, 1), Ok(t(10, 0, 1))),
            ("same end", t(12, 0, 0), Ok(t(12, 0, 0))),
            ("later end does not extend", t(15, 0, 0), Ok(t(12, 0, 0))),
            ("end at start", t(10, 0, 0), Err(WindowError::Empty)),
            ("end before start", t(9, 0, 0), Err(WindowError::Empty)),
        ];
        let w = ten_to_noon();
        for (what, new_end, expected) in cases {
            let got = w.shortened_to(*new_end);
            assert_eq!(got.clone().map(|s| s.end()), *expected, "{what}");
            if let Ok(s) = got {
                assert_eq!(s.start(), w.start(), "{what} keeps the start");
            }
        }
    }

    #[test]
    fn window_error_messages_table() {
        let cases: &[(WindowError, &str)] = &[
            (WindowError::Empty, "a grant window must end after it starts"),
            (
                WindowError::TooLong { requested: hours(10), max: hours(8) },
                "a grant may last at most 8h, 10h was requested",
            ),
            (
                WindowError::TooLong { requested: hours(8) + secs(1), max: hours(8) },
                "a grant may last at most 8h, 8h1s was requested",
            ),
            (
                WindowError::TooLong { requested: mins(90), max: mins(45) },
                "a grant may last at most 45m, 1h30m was requested",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), *text, "{e:?}");
        }
    }

    #[test]
    fn format_duration_table() {
        const CASES: &[(&str, TimeDelta, &str)] = &[
            ("hours", hours(8), "8h"),
            ("hours and minutes", mins(90), "1h30m"),
            ("minutes", mins(45), "45m"),
            ("seconds over a minute", secs(90), "1m30s"),
            ("seconds", secs(59), "59s"),
            ("zero", TimeDelta::zero(), "0s"),
            ("a day", hours(24), "1d"),
            ("day and hours", hours(36), "1d12h"),
            ("all units", secs(86_400 + 3_600 + 60 + 1), "1d1h1m1s"),
            ("hour and second", secs(3_601), "1h1s"),
            ("fractions dropped", TimeDelta::milliseconds(1_500), "1s"),
            ("under a second", TimeDelta::milliseconds(999), "0s"),
            ("negative", mins(-90), "-1h30m"),
            ("largest", TimeDelta::MAX, "106751991167d7h12m55s"),
            ("smallest", TimeDelta::MIN, "-106751991167d7h12m55s"),
        ];
        for (what, d, text) in CASES {
            assert_eq!(format_duration(*d), *text, "{what}");
        }
    }

    #[test]
    fn parse_duration_table() {
        use DurationParseError::*;
        let s = |x: &str| x.to_owned();
        let cases: Vec<(&str, &str, Result<TimeDelta, DurationParseError>)> = vec![
            ("hours", "2h", Ok(hours(2))),
            ("minutes", "90m", Ok(mins(90))),
            ("hours and minutes", "1h30m", Ok(mins(90))),
            ("seconds", "45s", Ok(secs(45))),
            ("a day", "1d", Ok(hours(24))),
            ("all units", "1d2h3m4s", Ok(secs(86_400 + 7_200 + 180 + 4))),
            ("spaces between parts", "1h 30m", Ok(mins(90))),
            ("space before unit", "8 h", Ok(hours(8))),
            ("surrounding whitespace", "  8h\n", Ok(hours(8))),
            ("uppercase unit", "8H", Ok(hours(8))),
            ("leading zeros", "08h", Ok(hours(8))),
            ("skip units", "1d30s", Ok(secs(86_430))),
            ("one zero part is fine", "1h0m", Ok(hours(1))),
            ("empty", "", Err(Empty)),
            ("blank", "   ", Err(Empty)),
            ("zero", "0m", Err(Zero { input: s("0m") })),
            ("all zero parts", "0h0m", Err(Zero { input: s("0h0m") })),
            ("negative", "-2h", Err(Negative { input: s("-2h") })),
            ("no unit", "90", Err(MissingUnit { input: s("90") })),
            ("no unit on the last part", "1h30", Err(MissingUnit { input: s("1h30") })),
            ("two numbers", "1 30m", Err(MissingUnit { input: s("1 30m") })),
            ("no number", "h", Err(MissingNumber { input: s("h") })),
            ("units run together", "1hm", Err(UnknownUnit { input: s("1hm"), unit: s("hm") })),
            ("word unit", "90min", Err(UnknownUnit { input: s("90min"), unit: s("min") })),
            ("unknown unit", "5x", Err(UnknownUnit { input: s("5x"), unit: s("x") })),
            ("weeks are not a unit", "1w", Err(UnknownUnit { input: s("1w"), unit: s("w") })),
            ("Cyrillic unit", "2ч", Err(UnknownUnit { input: s("2ч"), unit: s("ч") })),
            ("garbage", "abc", Err(MissingNumber { input: s("abc") })),
            ("decimal", "1.5h", Err(UnexpectedChar { input: s("1.5h"), found: '.' })),
            ("plus sign", "+2h", Err(UnexpectedChar { input: s("+2h"), found: '+' })),
            ("negative part later", "1h-30m", Err(UnexpectedChar { input: s("1h-30m"), found: '-' })),
            ("out of order", "30m1h", Err(UnitOrder { input: s("30m1h") })),
            ("repeated unit", "1h1h", Err(UnitOrder { input: s("1h1h") })),
            ("overflowing number", "99999999999999999999s", Err(TooLarge { input: s("99999999999999999999s") })),
            ("overflowing product", "9223372036854775807d", Err(TooLarge { input: s("9223372036854775807d") })),
            ("beyond TimeDelta", "9223372036854776s", Err(TooLarge { input: s("9223372036854776s") })),
            ("largest accepted", "9223372036854775s", Ok(secs(9_223_372_036_854_775))),
            ("large but fine", "100000d", Ok(hours(2_400_000))),
        ];
        for (what, input, expected) in cases {
            assert_eq!(parse_duration(input), expected, "{what}: {input:?}");
        }
    }

    #[test]
    fn parse_format_round_trip_table() {
        const CASES: &[TimeDelta] = &[
            TimeDelta::seconds(1),
            TimeDelta::seconds(90),
            TimeDelta::minutes(45),
            TimeDelta::hours(8),
            TimeDelta::hours(36),
            TimeDelta::seconds(93_784),
        ];
        for d in CASES {
            let text = format_duration(*d);
            assert_eq!(parse_duration(&text), Ok(*d), "{text}");
        }
    }

    #[test]
    fn duration_error_messages_table() {
        use DurationParseError::*;
        let s = |x: &str| x.to_owned();
        let cases: Vec<(DurationParseError, &str)> = vec![
            (Empty, "no duration given (expected e.g. 2h, 90m, 1h30m, 45s or 1d)"),
            (Negative { input: s("-2h") }, "'-2h' is negative; a duration must be positive"),
            (Zero { input: s("0m") }, "'0m' is zero; a duration must be positive"),
            (MissingUnit { input: s("90") }, "'90' has a number without a unit (use d, h, m or s, e.g. 90m)"),
            (MissingNumber { input: s("h") }, "'h' has a unit without a number before it (e.g. 2h)"),
            (UnknownUnit { input: s("90min"), unit: s("min") }, "unknown unit 'min' in '90min' (use d, h, m or s)"),
            (
                UnexpectedChar { input: s("1.5h"), found: '.' },
                "unexpected '.' in '1.5h' (expected e.g. 2h, 90m, 1h30m, 45s or 1d)",
            ),
            (
                UnitOrder { input: s("30m1h") },
                "'30m1h' repeats a unit or puts a smaller one first (write e.g. 1d2h30m)",
            ),
            (TooLarge { input: s("9999999999d") }, "'9999999999d' is too long a duration"),
            (Zero { input: s("0\u{1b}m") }, "'0\\u{1b}m' is zero; a duration must be positive"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text, "{e:?}");
        }
    }

    #[test]
    fn deserialize_table() {
        let map = |start: &'static str, end: &'static str| V::Map(vec![("start", V::Str(start)), ("end", V::Str(end))]);
        let cases: Vec<(&str, V, Result<GrantWindow, &str>)> = vec![
            ("valid", map("2026-03-16T10:00:00Z", "2026-03-16T12:00:00Z"), Ok(ten_to_noon())),
            (
                "offsets are normalised to UTC",
                map("2026-03-16T13:00:00+03:00", "2026-03-16T15:00:00+03:00"),
                Ok(ten_to_noon()),
            ),
            (
                "empty window refused",
                map("2026-03-16T12:00:00Z", "2026-03-16T10:00:00Z"),
                Err("a grant window must end after it starts"),
            ),
            (
                "unknown field refused",
                V::Map(vec![
                    ("start", V::Str("2026-03-16T10:00:00Z")),
                    ("end", V::Str("2026-03-16T12:00:00Z")),
                    ("max", V::Str("8h")),
                ]),
                Err("unknown field `max`"),
            ),
        ];
        for (what, input, expected) in cases {
            let got = from::<GrantWindow>(input);
            match expected {
                Ok(w) => assert_eq!(got, Ok(w), "{what}"),
                Err(fragment) => {
                    let err = got.expect_err(what);
                    assert!(err.contains(fragment), "{what}: {err}");
                }
            }
        }
    }
}
