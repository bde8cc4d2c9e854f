//! What the gateway's watchdog decides about a live session, from what the store says of it.
//!
//! Every 250 ms the watchdog (the gateway's `node/watchdog.rs`) reads, in one query, the grant and ticket state of every
//! live session of this node (see the gateway store's `live_checks`) and applies
//! [`review`]: warn the engineer 5 and 1 minutes before the grant ends, end the session
//! when it does, and at once when the grant is revoked, the ticket leaves the active
//! states, or someone asked to terminate it. Working from the store, not from timers in
//! memory, means a revocation from any node or the CLI reaches the session within a tick.
//!
//! **When the store is away** (PostgreSQL stopped, network cut), revocations, kills and
//! ticket closes made elsewhere cannot be seen. Ending every session at the first failed
//! read would turn a database blip into cut sessions on customers' firewalls, possibly
//! half-way through a change; going on for ever would let a revoked session run unseen.
//! So live sessions go on for a bounded grace, `[access] store_grace` (60 s by default),
//! counted from the first failed read: meanwhile the watchdog applies [`review`] to the
//! last state it read (the grant's end, the warnings still hold), and once the grace is
//! over it ends every live session with reason "store unavailable" ([`outage`]). A read
//! that succeeds again resets the clock. New sessions are refused all along (no decision
//! without the store), and session ends wait to be written until the store is back.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::ids::{SessionId, TicketId};
use crate::model::{EndReason, GrantState, TicketState};

/// What the watchdog knows about a live session, from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCheck {
    pub session: SessionId,
    pub ticket: TicketId,
    pub grant_state: GrantState,
    pub ends_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub ticket_state: TicketState,
    pub kill_requested_by: Option<String>,
}

/// What to do about a live session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Tell the engineer how long is left; `announced` thresholds have now been used.
    Warn {
        announced: u8,
        message: String,
    },
    End {
        reason: EndReason,
        message: String,
    },
}

/// Decides a live session's fate. `warn_before` lists how long before the end the engineer
/// is warned, longest first; `announced` is how many of them were already used.
pub fn review(c: &LiveCheck, now: DateTime<Utc>, tz: Tz, warn_before: &[Duration], announced: u8) -> Verdict {
    let at = |t: Option<DateTime<Utc>>| t.map_or_else(String::new, |t| crate::time::display_near(t, now, tz));
    if let Some(by) = &c.kill_requested_by {
        return Verdict::End { reason: EndReason::Killed, message: format!("session terminated by {by}") };
    }
    if !c.ticket_state.is_active() {
        return Verdict::End {
            reason: EndReason::TicketClosed,
            message: format!("ticket {} was {}", c.ticket, c.ticket_state.as_str().replace('_', " ")),
        };
    }
    match c.grant_state {
        GrantState::Revoked => {
            let by = c.revoked_by.clone().unwrap_or_else(|| "the system".into());
            return Verdict::End {
                reason: EndReason::Revoked,
                message: format!("access to {} was revoked by {by} at {}", c.ticket, at(c.revoked_at)),
            };
        }
        GrantState::Expired => {
            return Verdict::End {
                reason: EndReason::GrantExpired,
                message: format!("the grant for {} ended at {}", c.ticket, at(c.ends_at)),
            };
        }
        GrantState::Approved | GrantState::Pending | GrantState::Rejected => {}
    }
    let Some(ends) = c.ends_at else {
        return Verdict::End { reason: EndReason::Revoked, message: format!("{} has no approved grant", c.ticket) };
    };
    if now >= ends {
        return Verdict::End {
            reason: EndReason::GrantExpired,
            message: format!("the grant for {} ended at {}", c.ticket, at(Some(ends))),
        };
    }
    let left = ends - now;
    // The deepest threshold already reached; several passed at once give one warning.
    let reached = warn_before.iter().take_while(|w| left <= **w).count();
    match u8::try_from(reached) {
        Ok(reached) if reached > announced => Verdict::Warn {
            announced: reached,
            message: format!(
                "access to {} ends at {} (in {}); save your work",
                c.ticket,
                at(Some(ends)),
                crate::rules::format_duration(Duration::seconds(left.num_seconds().max(1)))
            ),
        },
        _ => Verdict::Continue,
    }
}

/// What an outage of `lost_for` so far means for the live sessions: nothing within the
/// `grace`, the end of all of them after it.
pub fn outage(lost_for: std::time::Duration, grace: std::time::Duration) -> Verdict {
    if lost_for < grace {
        return Verdict::Continue;
    }
    let grace = Duration::from_std(grace).unwrap_or(Duration::MAX);
    Verdict::End {
        reason: EndReason::StoreUnavailable,
        message: format!(
            "store unavailable for {}: access can no longer be checked",
            crate::rules::format_duration(grace)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::from_db(s).unwrap()
    }

    #[test]
    fn an_outage_ends_sessions_after_the_grace() {
        let s = std::time::Duration::from_secs;
        assert_eq!(outage(s(0), s(60)), Verdict::Continue);
        assert_eq!(outage(s(59), s(60)), Verdict::Continue);
        let Verdict::End { reason, message } = outage(s(60), s(60)) else { panic!("ends at the grace") };
        assert_eq!(reason, EndReason::StoreUnavailable);
        assert_eq!(message, "store unavailable for 1m: access can no longer be checked");
        assert!(matches!(outage(s(1), s(0)), Verdict::End { .. }), "no grace: the first failed read ends them");
    }

    #[test]
    fn the_watchdog_warns_then_ends() {
        let ends = t("2026-11-24T11:00:00.000000Z"); // 14:00 MSK
        let base = LiveCheck {
            session: SessionId(7),
            ticket: TicketId(1042),
            grant_state: GrantState::Approved,
            ends_at: Some(ends),
            revoked_by: None,
            revoked_at: None,
            ticket_state: TicketState::Open,
            kill_requested_by: None,
        };
        let tz = chrono_tz::Europe::Moscow;
        let warn = [Duration::minutes(5), Duration::minutes(1)];
        let at = |mins_before: i64, secs: i64| ends - Duration::minutes(mins_before) + Duration::seconds(secs);
        type Case = (&'static str, LiveCheck, DateTime<Utc>, u8, &'static str);
        let cases: Vec<Case> = vec![
            ("plenty of time", base.clone(), at(10, 0), 0, "continue"),
            ("5 minutes left", base.clone(), at(5, 0), 0, "warn 1: access to T-1042 ends at 14:00 MSK (in 5m)"),
            ("already warned at 5", base.clone(), at(4, 0), 1, "continue"),
            ("1 minute left", base.clone(), at(1, 0), 1, "warn 2: (in 1m)"),
            ("both thresholds passed at once warn once", base.clone(), at(1, 30), 0, "warn 2: (in 30s)"),
            ("after the last warning", base.clone(), at(1, 30), 2, "continue"),
            ("at the end", base.clone(), ends, 2, "end grant expired: the grant for T-1042 ended at 14:00 MSK"),
            (
                "revoked",
                LiveCheck {
                    grant_state: GrantState::Revoked,
                    revoked_by: Some("petrov".into()),
                    revoked_at: Some(t("2026-11-24T09:03:00.000000Z")),
                    ..base.clone()
                },
                at(60, 0),
                0,
                "end revoked: access to T-1042 was revoked by petrov at 12:03 MSK",
            ),
            (
                "expired by the expiry job",
                LiveCheck { grant_state: GrantState::Expired, ..base.clone() },
                at(60, 0),
                0,
                "end grant expired",
            ),
            (
                "ticket closed",
                LiveCheck { ticket_state: TicketState::Closed, ..base.clone() },
                at(60, 0),
                0,
                "end ticket closed: ticket T-1042 was closed",
            ),
            (
                "killed",
                LiveCheck { kill_requested_by: Some("admin".into()), ..base.clone() },
                at(60, 0),
                0,
                "end killed: session terminated by admin",
            ),
        ];
        for (name, check, now, warned, want) in cases {
            let got = match review(&check, now, tz, &warn, warned) {
                Verdict::Continue => "continue".to_string(),
                Verdict::Warn { announced, message } => format!("warn {announced}: {message}"),
                Verdict::End { reason, message } => format!("end {}: {message}", reason.as_str()),
            };
            let (head, tail) = want.split_once(": ").unwrap_or((want, ""));
            assert!(got.starts_with(head) && got.contains(tail), "{name}: got '{got}', want '{want}'");
        }
    }
}
