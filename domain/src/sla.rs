//! The first-response clock, as pure functions over a ticket and an instant.
//!
//! The regulations give categories 1 and 2 ten *working* hours for the first response,
//! category 3 twenty-four *calendar* hours, and category 4 no limit. The clock starts
//! when the ticket is opened and stops at the first comment from support (not at a
//! state change: moving a ticket tells the customer nothing). A ticket that is not
//! answered yet is flagged *due soon* when less than the configured warning is left on
//! its own clock (working time for categories 1–2, calendar time for 3) and *breached*
//! once its deadline has passed.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::model::Ticket;
use crate::rules::{Category, WorkingHours};

/// Working hours support has for a first response to categories 1 and 2.
pub const FIRST_RESPONSE_WORKING_HOURS: u32 = 10;
/// Calendar hours support has for a first response to category 3.
pub const FIRST_RESPONSE_CALENDAR_HOURS: u32 = 24;

/// When support must first answer a ticket opened at `opened` by an organisation of `category`.
pub fn first_response_due(category: Category, opened: DateTime<Utc>, hours: &WorkingHours) -> Option<DateTime<Utc>> {
    match category {
        Category::One | Category::Two => Some(hours.add_working_hours(opened, FIRST_RESPONSE_WORKING_HOURS)),
        Category::Three => Some(hours.add_calendar_hours(opened, FIRST_RESPONSE_CALENDAR_HOURS)),
        Category::Four => None,
    }
}

/// Where a ticket's first-response clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No deadline: category 4, or a refused ticket.
    NoDeadline,
    /// Not answered yet, with more than the warning left.
    Running,
    /// Not answered yet, and less than the warning left.
    DueSoon,
    /// Not answered, and the deadline has passed.
    Breached,
    Answered,
    /// Answered after the deadline.
    AnsweredLate,
    /// Resolved or closed without a comment from support: nothing is due any more.
    Stopped,
}

impl Status {
    /// The flag a queue shows, if any.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Self::DueSoon => Some("DUE SOON"),
            Self::Breached => Some("BREACHED"),
            Self::NoDeadline | Self::Running | Self::Answered | Self::AnsweredLate | Self::Stopped => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoDeadline => "no deadline",
            Self::Running => "running",
            Self::DueSoon => "due soon",
            Self::Breached => "breached",
            Self::Answered => "answered",
            Self::AnsweredLate => "answered late",
            Self::Stopped => "stopped",
        }
    }
}

/// A ticket's first-response clock at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sla {
    pub status: Status,
    pub due: Option<DateTime<Utc>>,
    /// While unanswered: time left on the ticket's own clock (working time for
    /// categories 1–2), negative once overdue.
    pub left_secs: Option<i64>,
}

impl Sla {
    /// The deadline still to be met, for ordering a queue: `None` once answered or stopped.
    pub fn pending_due(&self) -> Option<DateTime<Utc>> {
        match self.status {
            Status::Running | Status::DueSoon | Status::Breached => self.due,
            Status::NoDeadline | Status::Answered | Status::AnsweredLate | Status::Stopped => None,
        }
    }
}

/// The clock of `t` at `now`: `warning` is how much time left counts as "due soon".
pub fn sla(t: &Ticket, now: DateTime<Utc>, hours: &WorkingHours, warning: TimeDelta) -> Sla {
    let Some(due) = t.response_due_at else {
        return Sla { status: Status::NoDeadline, due: None, left_secs: None };
    };
    if let Some(at) = t.first_response_at {
        let status = if at > due { Status::AnsweredLate } else { Status::Answered };
        return Sla { status, due: Some(due), left_secs: None };
    }
    if !t.state.is_active() {
        return Sla { status: Status::Stopped, due: Some(due), left_secs: None };
    }
    // The priority is the category at opening, so it says which clock the deadline runs on.
    let working = t.priority <= 2;
    let between = |a, b| if working { hours.working_time_between(a, b) } else { b - a };
    let left = if now <= due { between(now, due) } else { -between(due, now) };
    let status = if now > due {
        Status::Breached
    } else if left < warning {
        Status::DueSoon
    } else {
        Status::Running
    };
    Sla { status, due: Some(due), left_secs: Some(left.num_seconds()) }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::ids::{OrgId, TicketId};
    use crate::model::TicketState;

    fn at(s: &str) -> DateTime<Utc> {
        crate::time::from_db(s).unwrap()
    }

    /// Moscow office hours on the shipped production calendar, plus a working Saturday of
    /// the office's own.
    fn hours() -> WorkingHours {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        WorkingHours { extra_working_days: vec![d("2026-11-28")], ..WorkingHours::default() }
    }

    #[test]
    fn the_deadline_depends_on_the_category() {
        // Times are UTC; Moscow is UTC+3 all year (no DST), the office works 09:00–18:00.
        type Case = (&'static str, Category, &'static str, Option<&'static str>);
        let cases: &[Case] = &[
            (
                "Tue 10:00 + 10 working hours = Wed 11:00",
                Category::One,
                "2026-11-24T07:00:00Z",
                Some("2026-11-25T08:00:00Z"),
            ),
            ("category 2 runs on the same clock", Category::Two, "2026-11-24T07:00:00Z", Some("2026-11-25T08:00:00Z")),
            (
                "opened in the evening: counting starts next morning",
                Category::One,
                "2026-11-24T17:00:00Z",
                Some("2026-11-26T07:00:00Z"),
            ),
            (
                "opened at 03:00 MSK: counts from 09:00",
                Category::One,
                "2026-11-24T00:00:00Z",
                Some("2026-11-25T07:00:00Z"),
            ),
            ("Fri 17:00 crosses the weekend", Category::One, "2026-11-20T14:00:00Z", Some("2026-11-23T15:00:00Z")),
            (
                "a transferred working Saturday counts",
                Category::One,
                "2026-11-27T14:00:00Z",
                Some("2026-11-28T15:00:00Z"),
            ),
            (
                "31 December (a day off by the 2026 decree) and 1–10 January are skipped",
                Category::Two,
                "2026-12-30T14:00:00Z",
                Some("2027-01-11T15:00:00Z"),
            ),
            (
                "a pre-holiday day closes at 17:00: 1 h on 3 Nov, 4 Nov off, 9 h on 5 Nov",
                Category::One,
                "2026-11-03T13:00:00Z",
                Some("2026-11-05T15:00:00Z"),
            ),
            (
                "category 3: 24 calendar hours, weekend or not",
                Category::Three,
                "2026-11-27T17:30:00Z",
                Some("2026-11-28T17:30:00Z"),
            ),
            ("category 3 ignores holidays", Category::Three, "2026-12-31T20:00:00Z", Some("2027-01-01T20:00:00Z")),
            ("category 4: no deadline", Category::Four, "2026-11-24T07:00:00Z", None),
        ];
        for (name, category, opened, want) in cases {
            let got = first_response_due(*category, at(opened), &hours());
            assert_eq!(got, want.map(at), "{name}");
        }
    }

    fn ticket(priority: i64, opened: &str) -> Ticket {
        let opened = at(opened);
        let category = Category::try_from(priority).unwrap();
        Ticket {
            id: TicketId(1001),
            org_id: OrgId(1),
            contact_name: "Пётр".into(),
            contact_phone: Some("+7 495 000-00-00".into()),
            contact_email: None,
            product: "iks-standard".into(),
            version: "7".into(),
            description: "VPN".into(),
            topic: None,
            state: TicketState::Open,
            priority,
            response_due_at: first_response_due(category, opened, &hours()),
            first_response_at: None,
            refusal_reason: None,
            close_reason: None,
            last_customer_activity_at: opened,
            created_at: opened,
            updated_at: opened,
            closed_at: None,
        }
    }

    #[test]
    fn flags_at_a_frozen_now() {
        let warn = TimeDelta::hours(2);
        // Category 1 opened Fri 2026-11-20 15:00 MSK: due Mon 2026-11-23 16:00 MSK (3 h Fri + 7 h Mon).
        let p1 = ticket(1, "2026-11-20T12:00:00Z");
        assert_eq!(p1.response_due_at, Some(at("2026-11-23T13:00:00Z")));
        // Category 3 opened Fri 15:00 MSK: due Sat 15:00 MSK.
        let p3 = ticket(3, "2026-11-20T12:00:00Z");
        let answered = |t: &Ticket, when: &str| Ticket { first_response_at: Some(at(when)), ..t.clone() };
        let state = |t: &Ticket, s| Ticket { state: s, ..t.clone() };
        type Case = (&'static str, Ticket, &'static str, Status, Option<i64>);
        let cases: Vec<Case> = vec![
            ("just opened", p1.clone(), "2026-11-20T12:00:00Z", Status::Running, Some(10 * 3600)),
            (
                "Fri 17:59: 7h01m of working time left",
                p1.clone(),
                "2026-11-20T14:59:00Z",
                Status::Running,
                Some(7 * 3600 + 60),
            ),
            (
                "the weekend does not run the clock down",
                p1.clone(),
                "2026-11-22T12:00:00Z",
                Status::Running,
                Some(7 * 3600),
            ),
            (
                "Mon 14:00: exactly 2 working hours left is not yet due soon",
                p1.clone(),
                "2026-11-23T11:00:00Z",
                Status::Running,
                Some(2 * 3600),
            ),
            ("Mon 14:01: due soon", p1.clone(), "2026-11-23T11:01:00Z", Status::DueSoon, Some(2 * 3600 - 60)),
            ("at the deadline: still on time", p1.clone(), "2026-11-23T13:00:00Z", Status::DueSoon, Some(0)),
            ("a minute late: breached", p1.clone(), "2026-11-23T13:01:00Z", Status::Breached, Some(-60)),
            (
                "overdue counts working time: Mon 16:00 to Tue 10:00 is 3 h",
                p1.clone(),
                "2026-11-24T07:00:00Z",
                Status::Breached,
                Some(-3 * 3600),
            ),
            (
                "the first support comment stops the clock",
                answered(&p1, "2026-11-23T08:00:00Z"),
                "2026-11-30T00:00:00Z",
                Status::Answered,
                None,
            ),
            (
                "an answer after the deadline is late",
                answered(&p1, "2026-11-23T14:00:00Z"),
                "2026-11-30T00:00:00Z",
                Status::AnsweredLate,
                None,
            ),
            (
                "closed unanswered: nothing is due",
                state(&p1, TicketState::Closed),
                "2026-11-30T00:00:00Z",
                Status::Stopped,
                None,
            ),
            (
                "escalated unanswered still runs",
                state(&p1, TicketState::Escalated),
                "2026-11-23T13:01:00Z",
                Status::Breached,
                Some(-60),
            ),
            (
                "category 3 runs through the weekend: Sat 13:30 MSK",
                p3.clone(),
                "2026-11-21T10:30:00Z",
                Status::DueSoon,
                Some(90 * 60),
            ),
            ("category 3 at Sat 12:00 MSK", p3.clone(), "2026-11-21T09:00:00Z", Status::Running, Some(3 * 3600)),
            ("category 3 breached Sat 16:00 MSK", p3.clone(), "2026-11-21T13:00:00Z", Status::Breached, Some(-3600)),
            (
                "category 4 has no deadline",
                ticket(4, "2026-11-20T12:00:00Z"),
                "2027-01-01T00:00:00Z",
                Status::NoDeadline,
                None,
            ),
        ];
        for (name, t, now, status, left) in cases {
            let got = sla(&t, at(now), &hours(), warn);
            assert_eq!((got.status, got.left_secs), (status, left), "{name}");
        }
        assert_eq!(Status::Breached.flag(), Some("BREACHED"));
        assert_eq!(Status::DueSoon.flag(), Some("DUE SOON"));
        assert_eq!(Status::Running.flag(), None);
    }
}
