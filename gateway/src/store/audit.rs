//! Reading the audit log back.

use sqlx::any::AnyRow;

use super::{Result, RowExt, Store, StoreError};
use crate::audit::{Actor, ActorKind, Event, Subjects};
use crate::ids::{BoxId, GrantId, OrgId, SessionId, TicketId};

const EVENT_COLUMNS: &str = "seq, at, actor_kind, actor_id, actor_name, action, org_id, ticket_id, box_id, \
                             grant_id, session_id, details, prev_hash, hash";

/// Which events to read; every field narrows the selection.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after_seq: Option<i64>,
    pub org: Option<OrgId>,
    pub ticket: Option<TicketId>,
    pub session: Option<SessionId>,
    pub limit: Option<i64>,
}

fn event_from_row(r: &AnyRow) -> Result<Event> {
    let kind = r.text("actor_kind")?;
    Ok(Event {
        seq: r.int("seq")?,
        at: r.time("at")?,
        actor: Actor {
            kind: ActorKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("actor_kind = '{kind}' is not a known value")))?,
            id: r.opt_int("actor_id")?,
            name: r.text("actor_name")?,
        },
        action: r.text("action")?,
        subjects: Subjects {
            org: r.opt_int("org_id")?.map(OrgId),
            ticket: r.opt_int("ticket_id")?.map(TicketId),
            box_: r.opt_int("box_id")?.map(BoxId),
            grant: r.opt_int("grant_id")?.map(GrantId),
            session: r.opt_int("session_id")?.map(SessionId),
        },
        details: r.text("details")?,
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

impl Store {
    /// Events in chain order.
    pub async fn audit_events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > $1 AND ($2 IS NULL OR org_id = $2) \
             AND ($3 IS NULL OR ticket_id = $3) AND ($4 IS NULL OR session_id = $4) ORDER BY seq LIMIT $5"
        ))
        .bind(f.after_seq.unwrap_or(0))
        .bind(f.org.map(OrgId::get))
        .bind(f.ticket.map(TicketId::get))
        .bind(f.session.map(SessionId::get))
        .bind(f.limit.unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }
}
