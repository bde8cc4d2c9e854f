//! The transcript index: the lines of each ended session's recording, for search.
//!
//! It is derived data (rebuilt from the recording at any time), so writing it appends no
//! audit event; searching it is audited by the caller, like any look at a recording.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Result, RowExt, Store};
use iks_domain::ids::{BoxId, OrgId, SessionId, TicketId};
use iks_domain::time::{now, to_db};

/// One line of a session's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptLine {
    /// Milliseconds into the recording.
    pub offset_ms: i64,
    /// Typed by the engineer (after line editing), rather than shown on the screen.
    pub input: bool,
    pub text: String,
}

/// What to search for: `text` anywhere in a line, ignoring case, narrowed by the filters.
#[derive(Debug, Clone, Default)]
pub struct TranscriptQuery {
    pub text: String,
    pub org: Option<OrgId>,
    pub ticket: Option<TicketId>,
    /// The engineer's login.
    pub engineer: Option<String>,
    pub box_id: Option<BoxId>,
    /// Sessions started at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Sessions started before this.
    pub to: Option<DateTime<Utc>>,
    /// At most this many hits (1..=500; 0 means 100).
    pub limit: u32,
}

/// A line that matched, with the session it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptHit {
    pub session: SessionId,
    pub ticket: TicketId,
    pub org: OrgId,
    pub org_name: String,
    pub engineer: String,
    pub box_id: BoxId,
    pub box_name: String,
    pub started_at: DateTime<Utc>,
    /// Seconds into the recording: where the player should start.
    pub offset: f64,
    pub line: String,
    pub input: bool,
}

/// Rows per INSERT: well under SQLite's limit on bound parameters.
const BATCH: usize = 200;

impl Store {
    /// Replaces the session's transcript lines.
    pub async fn save_transcript(&self, session: SessionId, lines: &[TranscriptLine]) -> Result<()> {
        let mut tx = self.begin().await?;
        for table in ["transcript_lines", "transcripts"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1"))
                .bind(session.get())
                .execute(tx.conn())
                .await?;
        }
        for batch in lines.chunks(BATCH) {
            let values: Vec<String> = (0..batch.len())
                .map(|i| format!("($1, ${}, ${}, ${}, ${})", 4 * i + 2, 4 * i + 3, 4 * i + 4, 4 * i + 5))
                .collect();
            let sql = format!(
                "INSERT INTO transcript_lines (session_id, offset_ms, source, line, folded) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(session.get());
            for l in batch {
                q = q
                    .bind(l.offset_ms)
                    .bind(if l.input { "input" } else { "output" })
                    .bind(&l.text)
                    .bind(l.text.to_lowercase());
            }
            q.execute(tx.conn()).await?;
        }
        sqlx::query("INSERT INTO transcripts (session_id, indexed_at, lines) VALUES ($1, $2, $3)")
            .bind(session.get())
            .bind(to_db(now()))
            .bind(i64::try_from(lines.len()).unwrap_or(i64::MAX))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Ended sessions with a recording but no transcript yet, newest first.
    pub async fn unindexed_sessions(&self, limit: u32) -> Result<Vec<SessionId>> {
        sqlx::query(
            "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND recording IS NOT NULL \
             AND id NOT IN (SELECT session_id FROM transcripts) ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok(SessionId(r.int("id")?)))
        .collect()
    }

    /// Lines containing the query's text, newest session first, latest moment first.
    pub async fn search_transcripts(&self, q: &TranscriptQuery) -> Result<Vec<TranscriptHit>> {
        let limit = match q.limit {
            0 => 100,
            n => n.min(500),
        };
        let mut pattern = String::from("%");
        for c in q.text.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        sqlx::query(
            "SELECT l.session_id, s.ticket_id, b.org_id, o.name AS org_name, p.login, s.box_id, \
             b.name AS box_name, s.started_at, l.offset_ms, l.source, l.line \
             FROM transcript_lines l JOIN sessions s ON s.id = l.session_id JOIN boxes b ON b.id = s.box_id \
             JOIN organisations o ON o.id = b.org_id JOIN people p ON p.id = s.operator_id \
             WHERE l.folded LIKE $1 ESCAPE '\\' AND ($2 IS NULL OR b.org_id = $2) \
             AND ($3 IS NULL OR s.ticket_id = $3) AND ($4 IS NULL OR p.login = $4) \
             AND ($5 IS NULL OR s.box_id = $5) AND ($6 IS NULL OR s.started_at >= $6) \
             AND ($7 IS NULL OR s.started_at < $7) \
             ORDER BY s.started_at DESC, s.id DESC, l.offset_ms DESC, l.id DESC LIMIT $8",
        )
        .bind(pattern)
        .bind(q.org.map(OrgId::get))
        .bind(q.ticket.map(TicketId::get))
        .bind(q.engineer.as_deref())
        .bind(q.box_id.map(BoxId::get))
        .bind(q.from.map(to_db))
        .bind(q.to.map(to_db))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok(TranscriptHit {
                session: SessionId(r.int("session_id")?),
                ticket: TicketId(r.int("ticket_id")?),
                org: OrgId(r.int("org_id")?),
                org_name: r.text("org_name")?,
                engineer: r.text("login")?,
                box_id: BoxId(r.int("box_id")?),
                box_name: r.text("box_name")?,
                started_at: r.time("started_at")?,
                offset: r.int("offset_ms")? as f64 / 1000.0,
                line: r.text("line")?,
                input: r.text("source")? == "input",
            })
        })
        .collect()
    }
}
