//! Sessions, what happens inside them, and refused connections.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::not_found;
use super::{Result, RowExt, Store, StoreError};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::{BoxId, GrantId, OrgId, PersonId, SessionId, TicketId};
use iks_domain::model::{EndReason, NewSession, Session, SessionEnd, SessionEvent};
use iks_domain::time::{now, to_db};

const SESSION_COLUMNS: &str = "id, grant_id, ticket_id, box_id, operator_id, client_addr, node, started_at, ended_at, \
                               end_reason, bytes_in, bytes_out, recording, recording_sha256";

fn session_from_row(r: &AnyRow) -> Result<Session> {
    let end_reason =
        r.opt_text("end_reason")?.map(|s| super::parse_enum("end_reason", &s, EndReason::parse)).transpose()?;
    Ok(Session {
        id: SessionId(r.int("id")?),
        grant_id: GrantId(r.int("grant_id")?),
        ticket_id: TicketId(r.int("ticket_id")?),
        box_id: BoxId(r.int("box_id")?),
        operator_id: PersonId(r.int("operator_id")?),
        client_addr: r.opt_text("client_addr")?,
        node: r.text("node")?,
        started_at: r.time("started_at")?,
        ended_at: r.opt_time("ended_at")?,
        end_reason,
        bytes_in: r.int("bytes_in")?,
        bytes_out: r.int("bytes_out")?,
        recording: r.opt_text("recording")?,
        recording_sha256: r.opt_text("recording_sha256")?,
    })
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub live: bool,
    pub org: Option<OrgId>,
    pub ticket: Option<TicketId>,
    pub operator: Option<PersonId>,
    pub node: Option<String>,
    pub box_id: Option<BoxId>,
    /// Sessions started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Sessions started before this instant.
    pub until: Option<DateTime<Utc>>,
    pub end_reason: Option<EndReason>,
    /// Only sessions older than this one: the next page after it.
    pub before: Option<SessionId>,
    pub limit: Option<i64>,
}

impl Store {
    /// Records a session's start; `recording` names its file under `recordings/`.
    pub async fn start_session(&self, actor: &Actor, new: &NewSession, org: OrgId) -> Result<Session> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO sessions (grant_id, ticket_id, box_id, operator_id, client_addr, node, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SESSION_COLUMNS}"
        ))
        .bind(new.grant_id.get())
        .bind(new.ticket_id.get())
        .bind(new.box_id.get())
        .bind(new.operator_id.get())
        .bind(new.client_addr.as_deref())
        .bind(&new.node)
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await?;
        let s = session_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "session.start",
            session_subjects(&s, org),
            json!({ "operator": s.operator_id, "client": s.client_addr, "node": s.node }),
        ))
        .await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Names the session's recording file once it exists.
    pub async fn set_session_recording(&self, id: SessionId, recording: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET recording = $2 WHERE id = $1")
            .bind(id.get())
            .bind(recording)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Records a session's end, once: the recording's hash enters the audit chain here.
    pub async fn end_session(&self, actor: &Actor, id: SessionId, org: OrgId, end: &SessionEnd) -> Result<Session> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET ended_at = $2, end_reason = $3, bytes_in = $4, bytes_out = $5, \
             recording = COALESCE($6, recording), recording_sha256 = $7 \
             WHERE id = $1 AND ended_at IS NULL RETURNING {SESSION_COLUMNS}"
        ))
        .bind(id.get())
        .bind(to_db(now()))
        .bind(end.reason.as_str())
        .bind(end.bytes_in)
        .bind(end.bytes_out)
        .bind(end.recording.as_deref())
        .bind(end.recording_sha256.as_deref())
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            drop(tx);
            self.session(id).await?;
            return Err(StoreError::Conflict(format!("{id} has already ended")));
        };
        let s = session_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "session.end",
            session_subjects(&s, org),
            json!({ "reason": end.reason.as_str(), "bytes_in": s.bytes_in, "bytes_out": s.bytes_out,
                    "recording": s.recording, "recording_sha256": s.recording_sha256 }),
        ))
        .await?;
        tx.commit().await?;
        Ok(s)
    }

    pub async fn session(&self, id: SessionId) -> Result<Session> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("session", id))?;
        session_from_row(&row)
    }

    /// Sessions, newest first.
    pub async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<Session>> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE ($1 = 0 OR ended_at IS NULL) \
             AND ($2 IS NULL OR box_id IN (SELECT id FROM boxes WHERE org_id = $2)) \
             AND ($3 IS NULL OR ticket_id = $3) AND ($4 IS NULL OR operator_id = $4) AND ($5 IS NULL OR node = $5) \
             AND ($6 IS NULL OR box_id = $6) AND ($7 IS NULL OR started_at >= $7) AND ($8 IS NULL OR started_at < $8) \
             AND ($9 IS NULL OR end_reason = $9) AND ($10 IS NULL OR id < $10) ORDER BY id DESC LIMIT $11"
        ))
        .bind(i64::from(f.live))
        .bind(f.org.map(OrgId::get))
        .bind(f.ticket.map(TicketId::get))
        .bind(f.operator.map(PersonId::get))
        .bind(f.node.as_deref())
        .bind(f.box_id.map(BoxId::get))
        .bind(f.since.map(to_db))
        .bind(f.until.map(to_db))
        .bind(f.end_reason.map(EndReason::as_str))
        .bind(f.before.map(SessionId::get))
        .bind(f.limit.unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(session_from_row)
        .collect()
    }

    /// Adds an event inside a session (exec, exit status, file transfer).
    pub async fn add_session_event(&self, e: &SessionEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO session_events (session_id, at, channel, kind, details) VALUES ($1, $2, $3, $4, $5)")
            .bind(e.session_id.get())
            .bind(to_db(e.at))
            .bind(e.channel)
            .bind(&e.kind)
            .bind(e.details.to_string())
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    pub async fn session_events(&self, id: SessionId) -> Result<Vec<SessionEvent>> {
        sqlx::query(
            "SELECT session_id, at, channel, kind, details FROM session_events WHERE session_id = $1 ORDER BY id",
        )
        .bind(id.get())
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            let details = r.text("details")?;
            Ok(SessionEvent {
                session_id: SessionId(r.int("session_id")?),
                at: r.time("at")?,
                channel: r.opt_int("channel")?,
                kind: r.text("kind")?,
                details: serde_json::from_str(&details)
                    .map_err(|e| StoreError::Corrupt(format!("session event details: {e}")))?,
            })
        })
        .collect()
    }

    /// The state behind every live session of `node`, for the watchdog: one query.
    pub async fn live_checks(&self, node: &str) -> Result<Vec<iks_domain::review::LiveCheck>> {
        sqlx::query(
            "SELECT s.id, s.ticket_id, s.kill_requested_by, g.state AS grant_state, g.ends_at, g.revoked_at, \
             p.login AS revoked_by, t.state AS ticket_state FROM sessions s \
             JOIN grants g ON g.id = s.grant_id JOIN tickets t ON t.id = s.ticket_id \
             LEFT JOIN people p ON p.id = g.revoked_by WHERE s.ended_at IS NULL AND s.node = $1",
        )
        .bind(node)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok(iks_domain::review::LiveCheck {
                session: SessionId(r.int("id")?),
                ticket: TicketId(r.int("ticket_id")?),
                grant_state: super::parse_enum(
                    "grant_state",
                    &r.text("grant_state")?,
                    iks_domain::model::GrantState::parse,
                )?,
                ends_at: r.opt_time("ends_at")?,
                revoked_by: r.opt_text("revoked_by")?,
                revoked_at: r.opt_time("revoked_at")?,
                ticket_state: super::parse_enum(
                    "ticket_state",
                    &r.text("ticket_state")?,
                    iks_domain::model::TicketState::parse,
                )?,
                kill_requested_by: r.opt_text("kill_requested_by")?,
            })
        })
        .collect()
    }

    /// Asks the node carrying a live session to end it.
    pub async fn request_kill(&self, actor: &Actor, id: SessionId) -> Result<Session> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET kill_requested_at = $2, kill_requested_by = $3 \
             WHERE id = $1 AND ended_at IS NULL RETURNING {SESSION_COLUMNS}"
        ))
        .bind(id.get())
        .bind(to_db(now()))
        .bind(&actor.name)
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            drop(tx);
            self.session(id).await?;
            return Err(StoreError::Conflict(format!("{id} has already ended")));
        };
        let s = session_from_row(&row)?;
        let org = self.get_box(s.box_id).await?.org_id;
        tx.audit(NewEvent::new(actor, "session.kill", session_subjects(&s, org), json!({}))).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Records a refused connection with the rule that refused it.
    pub async fn record_refusal(
        &self,
        actor: &Actor,
        subjects: Subjects,
        rule: &str,
        message: &str,
        client: Option<&str>,
    ) -> Result<()> {
        let details = json!({ "rule": rule, "message": message, "client": client });
        self.append_event(NewEvent::new(actor, "session.refuse", subjects, details)).await
    }

    /// Appends an event that records an act rather than a change (a refusal, a replay).
    pub async fn append_event(&self, event: NewEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.audit(event).await?;
        tx.commit().await
    }
}

fn session_subjects(s: &Session, org: OrgId) -> Subjects {
    Subjects {
        org: Some(org),
        ticket: Some(s.ticket_id),
        box_: Some(s.box_id),
        grant: Some(s.grant_id),
        session: Some(s.id),
    }
}
