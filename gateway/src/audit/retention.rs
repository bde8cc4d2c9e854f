//! Where a chain starts: at event #1 after [`GENESIS_HASH`](super::GENESIS_HASH), or, once
//! the retention policy has deleted old events, at the anchor its newest `audit.retention`
//! event recorded.
//!
//! Deleting a prefix of the log would otherwise look exactly like an attacker deleting
//! it. The retention event names the first event kept and the hash it must link to, and
//! is itself a link of the chain (and covered by the checkpoint written right after it),
//! so verification starts from the anchor and still detects any other deletion: a
//! retained event missing, a prefix longer than the policy's, or the retention event cut.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use iks_domain::audit::{Event, GENESIS_HASH};

/// The action of the event a deletion by policy writes.
pub const ACTION: &str = "audit.retention";

/// The first event a chain (as stored now) must contain, and what it links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStart {
    /// The first event kept.
    pub seq: i64,
    /// The `prev_hash` that event must have: the hash of the last event deleted.
    pub prev_hash: String,
    /// The `audit.retention` event that recorded this start; `None` for a chain that
    /// starts at event #1.
    pub retention_event: Option<i64>,
}

impl ChainStart {
    /// A chain nothing was ever deleted from.
    pub fn genesis() -> Self {
        Self { seq: 1, prev_hash: GENESIS_HASH.to_string(), retention_event: None }
    }

    /// The start recorded by an `audit.retention` event; `None` for any other event.
    pub fn from_retention_event(e: &Event) -> Option<Self> {
        if e.action != ACTION {
            return None;
        }
        let d: RetentionDetails = serde_json::from_str(&e.details).ok()?;
        Some(Self { seq: d.first_seq, prev_hash: d.first_prev_hash, retention_event: Some(e.seq) })
    }
}

/// The cutoff of a retention policy of `days` days at `now`; `None` when it is off (0).
pub fn cutoff(days: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(days.into()))
}

/// The details of an `audit.retention` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDetails {
    /// Events before this instant were eligible for deletion.
    #[serde(with = "iks_domain::time::db_text")]
    pub cutoff: DateTime<Utc>,
    /// How many events were deleted.
    pub deleted: i64,
    /// The first event kept.
    pub first_seq: i64,
    /// The hash of the last event deleted, which the first event kept links to.
    pub first_prev_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use iks_domain::audit::{Actor, Subjects};

    #[test]
    fn a_retention_event_names_the_new_start() {
        let details = RetentionDetails {
            cutoff: iks_domain::time::from_db("2026-01-01T00:00:00.000000Z").unwrap(),
            deleted: 41,
            first_seq: 42,
            first_prev_hash: "ab".repeat(32),
        };
        let mut e = Event {
            seq: 100,
            at: iks_domain::time::now(),
            actor: Actor::system(),
            action: ACTION.into(),
            subjects: Subjects::default(),
            details: serde_json::to_string(&details).unwrap(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            ChainStart::from_retention_event(&e),
            Some(ChainStart { seq: 42, prev_hash: "ab".repeat(32), retention_event: Some(100) })
        );
        assert!(e.details.contains(r#""cutoff":"2026-01-01T00:00:00.000000Z""#), "{}", e.details);
        e.action = "org.create".into();
        assert_eq!(ChainStart::from_retention_event(&e), None);
    }
}
