//! Tickets and their comments. The lifecycle rules (what is refused, which moves are
//! allowed, the SLA, auto-close) are [`crate::tickets`]'s and [`TicketState::next`]'s;
//! this is their persistence, each change with its audit event in one transaction.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::not_found;
use super::{Result, RowExt, Store, StoreError, Tx, parse_enum};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::{OrgId, PersonId, TicketId};
use iks_domain::model::{Comment, Move, NewComment, NewTicket, RefusalReason, Ticket, TicketState, Topic};
use iks_domain::time::{now, to_db};

const TICKET_COLUMNS: &str = "id, org_id, contact_name, contact_phone, contact_email, product, version, description, \
                              topic, state, priority, response_due_at, first_response_at, refusal_reason, \
                              close_reason, last_customer_activity_at, created_at, updated_at, closed_at";

const COMMENT_COLUMNS: &str = "id, ticket_id, author_id, author_name, from_customer, body, created_at";

fn ticket_from_row(r: &AnyRow) -> Result<Ticket> {
    Ok(Ticket {
        id: TicketId(r.int("id")?),
        org_id: OrgId(r.int("org_id")?),
        contact_name: r.text("contact_name")?,
        contact_phone: r.opt_text("contact_phone")?,
        contact_email: r.opt_text("contact_email")?,
        product: r.text("product")?,
        version: r.text("version")?,
        description: r.text("description")?,
        topic: r.opt_text("topic")?.map(|t| parse_enum("topic", &t, Topic::parse)).transpose()?,
        state: parse_enum("state", &r.text("state")?, TicketState::parse)?,
        priority: r.int("priority")?,
        response_due_at: r.opt_time("response_due_at")?,
        first_response_at: r.opt_time("first_response_at")?,
        refusal_reason: r
            .opt_text("refusal_reason")?
            .map(|v| parse_enum("refusal_reason", &v, RefusalReason::parse))
            .transpose()?,
        close_reason: r.opt_text("close_reason")?,
        last_customer_activity_at: r.time("last_customer_activity_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        closed_at: r.opt_time("closed_at")?,
    })
}

fn comment_from_row(r: &AnyRow) -> Result<Comment> {
    Ok(Comment {
        id: r.int("id")?,
        ticket_id: TicketId(r.int("ticket_id")?),
        author_id: r.opt_int("author_id")?.map(PersonId),
        author_name: r.text("author_name")?,
        from_customer: r.flag("from_customer")?,
        body: r.text("body")?,
        created_at: r.time("created_at")?,
    })
}

fn subjects(t: &Ticket) -> Subjects {
    Subjects { org: Some(t.org_id), ticket: Some(t.id), ..Default::default() }
}

/// Which tickets to list; every field narrows the selection.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub org: Option<OrgId>,
    pub state: Option<TicketState>,
    /// Only tickets being worked on (open, in progress, escalated).
    pub active: bool,
}

impl Store {
    /// Stores a new ticket; one refused as it is opened is stored `refused` with its reason,
    /// so the customer has a number to quote and the refusal is on record.
    pub async fn create_ticket(&self, actor: &Actor, new: &NewTicket) -> Result<Ticket> {
        self.org(new.org_id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO tickets (org_id, contact_name, contact_phone, contact_email, product, version, description, \
             topic, state, priority, response_due_at, last_customer_activity_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11, $11, $11) RETURNING {TICKET_COLUMNS}"
        ))
        .bind(new.org_id.get())
        .bind(&new.contact_name)
        .bind(new.contact_phone.as_deref())
        .bind(new.contact_email.as_deref())
        .bind(&new.product)
        .bind(&new.version)
        .bind(&new.description)
        .bind(new.topic.map(Topic::as_str))
        .bind(new.priority)
        .bind(new.response_due_at.map(to_db))
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await?;
        let t = ticket_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "ticket.open",
            subjects(&t),
            json!({ "contact": t.contact_name, "product": t.product, "version": t.version, "topic": t.topic,
                    "priority": t.priority, "response_due_at": t.response_due_at }),
        ))
        .await?;
        let t = match new.refusal {
            Some(reason) => apply_move(&mut tx, actor, &t, &Move::Refuse { reason }, None, None).await?.unwrap_or(t),
            None => t,
        };
        tx.commit().await?;
        Ok(t)
    }

    pub async fn ticket(&self, id: TicketId) -> Result<Ticket> {
        let row = sqlx::query(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("ticket", id))?;
        ticket_from_row(&row)
    }

    /// Tickets, newest first.
    pub async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<Ticket>> {
        sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR state = $2) \
             AND ($3 = 0 OR state IN ('open', 'in_progress', 'escalated')) ORDER BY id DESC"
        ))
        .bind(f.org.map(OrgId::get))
        .bind(f.state.map(TicketState::as_str))
        .bind(i64::from(f.active))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(ticket_from_row)
        .collect()
    }

    /// Moves a ticket to another state, or explains why it cannot. Leaving the active
    /// states revokes the ticket's pending and approved grants in the same transaction, so
    /// no session can start for it afterwards; live sessions notice and end.
    pub async fn move_ticket(&self, actor: &Actor, id: TicketId, m: &Move, note: Option<&str>) -> Result<Ticket> {
        let mut tx = self.begin().await?;
        let before = ticket_in(&mut tx, id).await?;
        let Some(after) = apply_move(&mut tx, actor, &before, m, note, None).await? else {
            // The guarded update found the ticket changed since it was read.
            return Err(StoreError::Conflict(format!("{id} was changed meanwhile; try again")));
        };
        tx.commit().await?;
        Ok(after)
    }

    /// Closes a ticket (see [`Store::move_ticket`]).
    pub async fn close_ticket(&self, actor: &Actor, id: TicketId, reason: &str) -> Result<Ticket> {
        self.move_ticket(actor, id, &Move::Close { reason: reason.to_string() }, None).await
    }

    /// Tickets not yet closed or refused whose customer has been silent since before `cutoff`.
    pub async fn silent_tickets(&self, cutoff: DateTime<Utc>) -> Result<Vec<TicketId>> {
        sqlx::query(
            "SELECT id FROM tickets WHERE state NOT IN ('closed', 'refused') AND last_customer_activity_at < $1 \
             ORDER BY id",
        )
        .bind(to_db(cutoff))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| r.int("id").map(TicketId))
        .collect()
    }

    /// Closes a ticket with `reason` if its customer is still silent since before `cutoff`
    /// and it is not closed or refused already: `None` when there was nothing to do (a
    /// comment came in meanwhile, or someone else closed it), so running it twice is harmless.
    pub async fn close_if_silent(
        &self,
        actor: &Actor,
        id: TicketId,
        reason: &str,
        cutoff: DateTime<Utc>,
    ) -> Result<Option<Ticket>> {
        let mut tx = self.begin().await?;
        let before = ticket_in(&mut tx, id).await?;
        if before.state.is_final() || before.last_customer_activity_at >= cutoff {
            return Ok(None);
        }
        let m = Move::Close { reason: reason.to_string() };
        let after = apply_move(&mut tx, actor, &before, &m, None, Some(cutoff)).await?;
        if after.is_some() {
            tx.commit().await?;
        }
        Ok(after)
    }

    /// Adds a comment. A customer's comment restarts the auto-close count; the first
    /// comment from support stops the first-response clock. Closed and refused tickets
    /// take no comments.
    pub async fn add_comment(&self, actor: &Actor, id: TicketId, c: &NewComment) -> Result<Comment> {
        let mut tx = self.begin().await?;
        let t = to_db(now());
        let row = sqlx::query(&format!(
            "UPDATE tickets SET updated_at = $2, \
             last_customer_activity_at = CASE WHEN $3 = 1 THEN $2 ELSE last_customer_activity_at END, \
             first_response_at = CASE WHEN $3 = 0 AND first_response_at IS NULL THEN $2 ELSE first_response_at END \
             WHERE id = $1 AND state NOT IN ('closed', 'refused') RETURNING {TICKET_COLUMNS}"
        ))
        .bind(id.get())
        .bind(&t)
        .bind(i64::from(c.from_customer))
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            let existing = ticket_in(&mut tx, id).await?;
            return Err(StoreError::Conflict(format!("{id} is {}: it takes no more comments", existing.state.words())));
        };
        let ticket = ticket_from_row(&row)?;
        let row = sqlx::query(&format!(
            "INSERT INTO ticket_comments (ticket_id, author_id, author_name, from_customer, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COMMENT_COLUMNS}"
        ))
        .bind(id.get())
        .bind(c.author_id.map(PersonId::get))
        .bind(&c.author_name)
        .bind(i64::from(c.from_customer))
        .bind(&c.body)
        .bind(&t)
        .fetch_one(tx.conn())
        .await?;
        let comment = comment_from_row(&row)?;
        let first_response = !c.from_customer && ticket.first_response_at == Some(comment.created_at);
        // The text stays in ticket_comments; the chain keeps its hash, so an edited
        // comment no longer matches its event.
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, c.body.as_bytes()));
        tx.audit(NewEvent::new(
            actor,
            "ticket.comment",
            subjects(&ticket),
            json!({ "comment": comment.id, "author": comment.author_name, "from_customer": comment.from_customer,
                    "first_response": first_response, "body_sha256": sha256 }),
        ))
        .await?;
        tx.commit().await?;
        Ok(comment)
    }

    /// A ticket's comments, oldest first.
    pub async fn comments(&self, id: TicketId) -> Result<Vec<Comment>> {
        sqlx::query(&format!("SELECT {COMMENT_COLUMNS} FROM ticket_comments WHERE ticket_id = $1 ORDER BY id"))
            .bind(id.get())
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(comment_from_row)
            .collect()
    }
}

/// Reads a ticket inside a write transaction.
async fn ticket_in(tx: &mut Tx, id: TicketId) -> Result<Ticket> {
    let row = sqlx::query(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"))
        .bind(id.get())
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("ticket", id))?;
    ticket_from_row(&row)
}

/// Applies `m` to `before` inside `tx`, with its event and, when the ticket leaves the
/// active states, the revocation of its grants. The update is guarded by the state read
/// (and by `silent_before`, the customer's silence, for auto-close): `None` means the
/// ticket changed in between and nothing was written.
async fn apply_move(
    tx: &mut Tx,
    actor: &Actor,
    before: &Ticket,
    m: &Move,
    note: Option<&str>,
    silent_before: Option<DateTime<Utc>>,
) -> Result<Option<Ticket>> {
    before.check_move(m).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let to = m.target();
    let (close_reason, refusal_reason) = match m {
        Move::Close { .. } => (m.reason(), None),
        Move::Refuse { .. } => (None, m.reason()),
        Move::Progress | Move::Escalate | Move::Resolve => (None, None),
    };
    let row = sqlx::query(&format!(
        "UPDATE tickets SET state = $2, updated_at = $3, close_reason = COALESCE($4, close_reason), \
         refusal_reason = COALESCE($5, refusal_reason), closed_at = CASE WHEN $6 = 1 THEN $3 ELSE closed_at END \
         WHERE id = $1 AND state = $7 AND ($8 IS NULL OR last_customer_activity_at < $8) RETURNING {TICKET_COLUMNS}"
    ))
    .bind(before.id.get())
    .bind(to.as_str())
    .bind(to_db(now()))
    .bind(close_reason)
    .bind(refusal_reason)
    .bind(i64::from(to.is_final()))
    .bind(before.state.as_str())
    .bind(silent_before.map(to_db))
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let after = ticket_from_row(&row)?;
    let mut details = json!({ "from": before.state, "to": after.state, "reason": m.reason(), "note": note });
    if silent_before.is_some() {
        details["customer_silent_since"] = json!(before.last_customer_activity_at);
    }
    tx.audit(NewEvent::new(actor, m.action(), subjects(&after), details)).await?;
    if !to.is_active() {
        super::grants::revoke_all_for_ticket(tx, actor, &after, &format!("ticket {}", m.verb())).await?;
    }
    Ok(Some(after))
}
