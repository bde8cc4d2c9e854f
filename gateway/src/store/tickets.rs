//! Tickets. The lifecycle rules (refusals, SLA, auto-close) are the tickets module's;
//! this is their persistence.

use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::not_found;
use super::{Result, RowExt, Store, parse_enum};
use crate::audit::{Actor, NewEvent, Subjects};
use crate::ids::{OrgId, TicketId};
use crate::model::{NewTicket, Ticket, TicketState};
use crate::time::{now, to_db};

const TICKET_COLUMNS: &str = "id, org_id, contact_name, contact_phone, contact_email, product, version, description, \
                              state, priority, response_due_at, first_response_at, refusal_reason, close_reason, \
                              last_customer_activity_at, created_at, updated_at, closed_at";

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
        state: parse_enum("state", &r.text("state")?, TicketState::parse)?,
        priority: r.int("priority")?,
        response_due_at: r.opt_time("response_due_at")?,
        first_response_at: r.opt_time("first_response_at")?,
        refusal_reason: r.opt_text("refusal_reason")?,
        close_reason: r.opt_text("close_reason")?,
        last_customer_activity_at: r.time("last_customer_activity_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
        closed_at: r.opt_time("closed_at")?,
    })
}

impl Store {
    pub async fn create_ticket(&self, actor: &Actor, new: &NewTicket) -> Result<Ticket> {
        self.org(new.org_id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO tickets (org_id, contact_name, contact_phone, contact_email, product, version, description, \
             state, priority, response_due_at, last_customer_activity_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $10, $10) RETURNING {TICKET_COLUMNS}"
        ))
        .bind(new.org_id.get())
        .bind(&new.contact_name)
        .bind(new.contact_phone.as_deref())
        .bind(new.contact_email.as_deref())
        .bind(&new.product)
        .bind(&new.version)
        .bind(&new.description)
        .bind(new.priority)
        .bind(new.response_due_at.map(to_db))
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await?;
        let t = ticket_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "ticket.open",
            Subjects { org: Some(t.org_id), ticket: Some(t.id), ..Default::default() },
            json!({ "contact": t.contact_name, "product": t.product, "version": t.version, "priority": t.priority,
                    "response_due_at": t.response_due_at }),
        ))
        .await?;
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

    /// Tickets of one organisation or all, newest first.
    pub async fn list_tickets(&self, org: Option<OrgId>) -> Result<Vec<Ticket>> {
        sqlx::query(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE ($1 IS NULL OR org_id = $1) ORDER BY id DESC"))
            .bind(org.map(OrgId::get))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(ticket_from_row)
            .collect()
    }

    /// Closes a ticket: its approved and pending grants are revoked in the same
    /// transaction, so no session can start for it afterwards. Live sessions notice the
    /// revocation and end.
    pub async fn close_ticket(&self, actor: &Actor, id: TicketId, reason: &str) -> Result<Ticket> {
        let mut tx = self.begin().await?;
        let t = now();
        let row = sqlx::query(&format!(
            "UPDATE tickets SET state = 'closed', close_reason = $2, closed_at = $3, updated_at = $3 \
             WHERE id = $1 AND state NOT IN ('closed', 'refused') RETURNING {TICKET_COLUMNS}"
        ))
        .bind(id.get())
        .bind(reason)
        .bind(to_db(t))
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            drop(tx);
            let existing = self.ticket(id).await?;
            return Err(super::StoreError::Conflict(format!("{id} is already {}", existing.state.as_str())));
        };
        let ticket = ticket_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "ticket.close",
            Subjects { org: Some(ticket.org_id), ticket: Some(id), ..Default::default() },
            json!({ "reason": reason }),
        ))
        .await?;
        super::grants::revoke_all_for_ticket(&mut tx, actor, &ticket, "ticket closed").await?;
        tx.commit().await?;
        Ok(ticket)
    }
}
