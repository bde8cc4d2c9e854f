//! Access requests and grants.

use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::not_found;
use super::{Result, RowExt, Store, StoreError, Tx, parse_enum};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::{BoxId, GrantId, PersonId, TicketId};
use iks_domain::model::{Approval, Grant, GrantState, NewAccessRequest, Ticket};
use iks_domain::time::{now, to_db};

const GRANT_COLUMNS: &str = "id, ticket_id, box_id, requested_by, operator_id, reason, requested_secs, state, \
                             starts_at, ends_at, decided_by, decided_at, decision_note, revoked_by, revoked_at, \
                             created_at, updated_at";

fn grant_from_row(r: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        id: GrantId(r.int("id")?),
        ticket_id: TicketId(r.int("ticket_id")?),
        box_id: BoxId(r.int("box_id")?),
        requested_by: PersonId(r.int("requested_by")?),
        operator_id: r.opt_int("operator_id")?.map(PersonId),
        reason: r.text("reason")?,
        requested_secs: r.int("requested_secs")?,
        state: parse_enum("state", &r.text("state")?, GrantState::parse)?,
        starts_at: r.opt_time("starts_at")?,
        ends_at: r.opt_time("ends_at")?,
        decided_by: r.opt_int("decided_by")?.map(PersonId),
        decided_at: r.opt_time("decided_at")?,
        decision_note: r.opt_text("decision_note")?,
        revoked_by: r.opt_int("revoked_by")?.map(PersonId),
        revoked_at: r.opt_time("revoked_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub ticket: Option<TicketId>,
    pub box_: Option<BoxId>,
    pub state: Option<GrantState>,
    pub org: Option<iks_domain::ids::OrgId>,
}

fn subjects(ticket: &Ticket, g: &Grant) -> Subjects {
    Subjects {
        org: Some(ticket.org_id),
        ticket: Some(g.ticket_id),
        box_: Some(g.box_id),
        grant: Some(g.id),
        session: None,
    }
}

impl Store {
    /// Files an operator's request for access; it waits for the customer.
    pub async fn request_access(&self, actor: &Actor, req: &NewAccessRequest) -> Result<Grant> {
        let ticket = self.ticket(req.ticket_id).await?;
        let mut tx = self.begin().await?;
        let t = to_db(now());
        let row = sqlx::query(&format!(
            "INSERT INTO grants (ticket_id, box_id, requested_by, reason, requested_secs, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) RETURNING {GRANT_COLUMNS}"
        ))
        .bind(req.ticket_id.get())
        .bind(req.box_id.get())
        .bind(req.requested_by.get())
        .bind(&req.reason)
        .bind(req.duration.num_seconds())
        .bind(&t)
        .fetch_one(tx.conn())
        .await?;
        let g = grant_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "access.request",
            subjects(&ticket, &g),
            json!({ "operator": g.requested_by, "reason": g.reason, "duration_secs": g.requested_secs }),
        ))
        .await?;
        tx.commit().await?;
        Ok(g)
    }

    /// Approves a pending request for the given window.
    pub async fn approve_grant(&self, actor: &Actor, id: GrantId, by: PersonId, a: &Approval) -> Result<Grant> {
        let g = self
            .transition(
                actor,
                id,
                GrantState::Pending,
                "access.approve",
                "state = 'approved', starts_at = $3, ends_at = $4, operator_id = $5, decided_by = $6, \
                 decided_at = $2, decision_note = $7",
                |q| {
                    q.bind(to_db(a.starts_at))
                        .bind(to_db(a.ends_at))
                        .bind(a.operator_id.map(PersonId::get))
                        .bind(by.get())
                        .bind(a.note.clone())
                },
            )
            .await?;
        Ok(g)
    }

    /// Rejects a pending request.
    pub async fn reject_grant(&self, actor: &Actor, id: GrantId, by: PersonId, note: &str) -> Result<Grant> {
        let note = note.to_string();
        self.transition(
            actor,
            id,
            GrantState::Pending,
            "access.reject",
            "state = 'rejected', decided_by = $3, decided_at = $2, decision_note = $4",
            |q| q.bind(by.get()).bind(note),
        )
        .await
    }

    /// Revokes an approved grant; live sessions under it end.
    pub async fn revoke_grant(&self, actor: &Actor, id: GrantId, by: PersonId) -> Result<Grant> {
        self.transition(
            actor,
            id,
            GrantState::Approved,
            "access.revoke",
            "state = 'revoked', revoked_by = $3, revoked_at = $2",
            |q| q.bind(by.get()),
        )
        .await
    }

    /// Marks approved grants whose window has ended as expired, one event each.
    pub async fn expire_grants(&self, actor: &Actor) -> Result<Vec<Grant>> {
        let t = to_db(now());
        let due: Vec<i64> = sqlx::query("SELECT id FROM grants WHERE state = 'approved' AND ends_at <= $1")
            .bind(&t)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| r.int("id"))
            .collect::<Result<_>>()?;
        let mut expired = Vec::new();
        for id in due {
            match self
                .transition(actor, GrantId(id), GrantState::Approved, "access.expire", "state = 'expired'", |q| q)
                .await
            {
                Ok(g) => expired.push(g),
                // Revoked or expired by someone else meanwhile: nothing to do.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    pub async fn grant(&self, id: GrantId) -> Result<Grant> {
        let row = sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("access request", id))?;
        grant_from_row(&row)
    }

    pub async fn list_grants(&self, f: &GrantFilter) -> Result<Vec<Grant>> {
        sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE ($1 IS NULL OR ticket_id = $1) AND ($2 IS NULL OR box_id = $2) \
             AND ($3 IS NULL OR state = $3) \
             AND ($4 IS NULL OR ticket_id IN (SELECT id FROM tickets WHERE org_id = $4)) ORDER BY id"
        ))
        .bind(f.ticket.map(TicketId::get))
        .bind(f.box_.map(BoxId::get))
        .bind(f.state.map(GrantState::as_str))
        .bind(f.org.map(iks_domain::ids::OrgId::get))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    /// Moves a grant from `from` to the state `set` writes, with its event, or explains
    /// why it cannot (`G-3 is revoked, not pending`). `$1` is the ID, `$2` the time.
    async fn transition(
        &self,
        actor: &Actor,
        id: GrantId,
        from: GrantState,
        action: &'static str,
        set: &str,
        bind: impl for<'q> FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<Grant> {
        let before = self.grant(id).await?;
        let ticket = self.ticket(before.ticket_id).await?;
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE grants SET {set}, updated_at = $2 WHERE id = $1 AND state = '{}' RETURNING {GRANT_COLUMNS}",
            from.as_str()
        );
        let query = bind(sqlx::query(&sql).bind(id.get()).bind(to_db(now())));
        let Some(row) = query.fetch_optional(tx.conn()).await? else {
            drop(tx);
            let current = self.grant(id).await?;
            return Err(StoreError::Conflict(format!("{id} is {}, not {}", current.state.as_str(), from.as_str())));
        };
        let g = grant_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            action,
            subjects(&ticket, &g),
            json!({ "state": g.state, "starts_at": g.starts_at, "ends_at": g.ends_at, "operator": g.operator_id,
                    "note": g.decision_note }),
        ))
        .await?;
        tx.commit().await?;
        Ok(g)
    }
}

/// Revokes every pending or approved grant of a ticket inside `tx` (closing or refusing it).
pub(super) async fn revoke_all_for_ticket(tx: &mut Tx, actor: &Actor, ticket: &Ticket, why: &str) -> Result<()> {
    let rows = sqlx::query(&format!(
        "UPDATE grants SET state = 'revoked', revoked_at = $2, updated_at = $2 \
         WHERE ticket_id = $1 AND state IN ('pending', 'approved') RETURNING {GRANT_COLUMNS}"
    ))
    .bind(ticket.id.get())
    .bind(to_db(now()))
    .fetch_all(tx.conn())
    .await?;
    for row in rows {
        let g = grant_from_row(&row)?;
        tx.audit(NewEvent::new(actor, "access.revoke", subjects(ticket, &g), json!({ "state": g.state, "why": why })))
            .await?;
    }
    Ok(())
}
