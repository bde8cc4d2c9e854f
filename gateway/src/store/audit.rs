//! The audit log beyond appending: reading it back, signed checkpoints, deletion by the
//! retention policy, and verification of the whole stored chain.
//!
//! The rules live in [`crate::audit`]; this module only gathers their inputs from the
//! database and writes their outputs. Verification pages through the events in chain
//! order, so memory stays bounded however long the chain is.

use std::path::Path;

use chrono::{DateTime, Utc};
use russh::keys::{PrivateKey, PublicKey};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, RowExt, Store, StoreError};
use crate::audit::checkpoint::{self, Checkpoint, SignedCheckpoint};
use crate::audit::export::ExportFilter;
use crate::audit::retention::{self, ChainStart, RetentionDetails};
use crate::audit::verify::{self, ChainVerifier, Coverage, Expectations, Problem, RecordingState, Summary};
use iks_domain::audit::{Actor, ActorKind, Event, NewEvent, Subjects};
use iks_domain::ids::{BoxId, GrantId, OrgId, SessionId, TicketId};

const EVENT_COLUMNS: &str = "seq, at, actor_kind, actor_id, actor_name, action, org_id, ticket_id, box_id, \
                             grant_id, session_id, details, prev_hash, hash";
const CHECKPOINT_COLUMNS: &str = "id, seq, hash, at, next_due, key_fingerprint, signature";

/// How many events verification and export read at a time.
pub const PAGE: i64 = 1000;

/// Which events to read; every field narrows the selection.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after_seq: Option<i64>,
    pub through_seq: Option<i64>,
    pub org: Option<OrgId>,
    pub ticket: Option<TicketId>,
    pub session: Option<SessionId>,
    /// Events at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Events before this instant.
    pub until: Option<DateTime<Utc>>,
    pub action: Option<String>,
    /// The actor's name as recorded (a login, `cli`, a token's name).
    pub actor: Option<String>,
    pub limit: Option<i64>,
    /// Newest first (for reading the log page by page) instead of chain order.
    pub newest_first: bool,
}

/// What a deletion by the retention policy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// What the `audit.retention` event records: the cutoff, the count, the new start.
    pub details: RetentionDetails,
    /// The `audit.retention` event.
    pub event: i64,
    /// The checkpoint covering it, signed in the same transaction.
    pub checkpoint: Checkpoint,
}

/// When the gateway signs a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// While serving: once `every` events are unsigned, or the newest checkpoint is
    /// `interval` old (also with nothing new: a heartbeat). Each promises the next within
    /// twice the interval, so that a cut back to it shows once the promise is broken.
    Serving { every: u64, interval: chrono::Duration },
    /// At shutdown: when anything is unsigned or the newest checkpoint promised a successor.
    /// It promises nothing: no checkpoint is expected while the gateway is stopped.
    Final,
}

impl Signing {
    /// How long after it a checkpoint promises the next.
    pub fn promise(self) -> Option<chrono::Duration> {
        match self {
            Self::Serving { interval, .. } => Some(interval * 2),
            Self::Final => None,
        }
    }
}

/// Why the gateway did not sign a checkpoint: signing vouches for the chain, so it first
/// checks what it is about to vouch for.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "refusing to sign a checkpoint: checkpoint #{0}, signed by this gateway, is no longer in the database \
         (run `iks-gateway audit verify`)"
    )]
    Vanished(i64),
    #[error("refusing to sign a checkpoint: {0} (run `iks-gateway audit verify`)")]
    Chain(#[from] Problem),
    #[error(
        "refusing to sign a checkpoint: retention event #{0} was not signed when it was written \
         (run `iks-gateway audit verify`)"
    )]
    ForeignRetention(i64),
}

impl From<sqlx::Error> for CheckpointError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<VerifyError> for CheckpointError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Store(e) => Self::Store(e),
            VerifyError::Problem(p) => Self::Chain(p),
        }
    }
}

/// What `audit verify` holds the stored chain to beyond its links and signatures.
#[derive(Debug, Clone, Default)]
pub struct Held<'a> {
    /// The configuration and the time (see [`Expectations`]).
    pub expectations: Option<Expectations>,
    /// Checkpoints kept outside the database (`[audit] checkpoint_log`): each must still
    /// be in it.
    pub logged: &'a [Checkpoint],
}

/// Why the stored chain does not verify: it could not be read, or it was tampered with.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Problem(#[from] Problem),
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

fn checkpoint_from_row(r: &AnyRow) -> Result<Checkpoint> {
    Ok(Checkpoint {
        id: r.int("id")?,
        signed: SignedCheckpoint {
            seq: r.int("seq")?,
            hash: r.text("hash")?,
            at: r.time("at")?,
            next: r.opt_time("next_due")?,
            key_fingerprint: r.text("key_fingerprint")?,
            signature: r.text("signature")?,
        },
    })
}

/// The single integer a `SELECT MIN(…)`/`MAX(…)` returns, `None` on an empty table.
fn opt_aggregate(r: &AnyRow) -> Result<Option<i64>> {
    Ok(r.try_get(0)?)
}

impl Store {
    /// Events in chain order (or newest first, when the filter says so).
    pub async fn audit_events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let order = if f.newest_first { "DESC" } else { "ASC" };
        sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 \
             AND ($3 IS NULL OR org_id = $3) AND ($4 IS NULL OR ticket_id = $4) AND ($5 IS NULL OR session_id = $5) \
             AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) AND ($9 IS NULL OR action = $9) \
             AND ($10 IS NULL OR actor_name = $10) ORDER BY seq {order} LIMIT $8"
        ))
        .bind(f.after_seq.unwrap_or(0))
        .bind(f.through_seq.unwrap_or(i64::MAX))
        .bind(f.org.map(OrgId::get))
        .bind(f.ticket.map(TicketId::get))
        .bind(f.session.map(SessionId::get))
        .bind(f.since.map(iks_domain::time::to_db))
        .bind(f.until.map(iks_domain::time::to_db))
        .bind(f.limit.unwrap_or(i64::MAX))
        .bind(f.action.as_deref())
        .bind(f.actor.as_deref())
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
    }

    /// The newest `n` events, in chain order.
    pub async fn latest_audit_events(&self, n: i64) -> Result<Vec<Event>> {
        let mut events = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT $1"))
            .bind(n)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    /// Checkpoints covering events up to `through_seq` (all when `None`), oldest first.
    pub async fn audit_checkpoints(&self, through_seq: Option<i64>) -> Result<Vec<Checkpoint>> {
        sqlx::query(&format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq <= $1 ORDER BY id"))
            .bind(through_seq.unwrap_or(i64::MAX))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(checkpoint_from_row)
            .collect()
    }

    /// The checkpoint covering the highest event (the newest of those).
    async fn furthest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        sqlx::query(&format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq DESC, id DESC LIMIT 1"))
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }

    /// The newest checkpoint by signing time.
    async fn newest_checkpoint(&self) -> Result<Option<Checkpoint>> {
        sqlx::query(&format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY id DESC LIMIT 1"))
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(checkpoint_from_row)
            .transpose()
    }

    /// Signs and stores a checkpoint of the chain's newest event, promising the next within
    /// `promise`; `None` if the log is empty. It first checks what it vouches for (see
    /// [`Store::check_unsigned`]); `remembered` is the last checkpoint this process signed.
    pub async fn checkpoint_audit(
        &self,
        key: &PrivateKey,
        promise: Option<chrono::Duration>,
        remembered: Option<&Checkpoint>,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        self.check_unsigned(key.public_key(), remembered).await?;
        let Some(head) = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let signed = sign(key, head.int("seq")?, &head.text("hash")?, promise)?;
        let mut tx = self.begin().await?;
        let id = insert_checkpoint(&mut tx, &signed).await?;
        tx.commit().await?;
        Ok(Some(Checkpoint { id, signed }))
    }

    /// Signs a checkpoint when `signing` says one is due: what the gateway calls while it
    /// serves, and once at shutdown.
    pub async fn checkpoint_audit_if_due(
        &self,
        key: &PrivateKey,
        signing: Signing,
        remembered: Option<&Checkpoint>,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let head = opt_aggregate(&sqlx::query("SELECT MAX(seq) FROM audit_events").fetch_one(&self.read).await?)?;
        let Some(head) = head else { return Ok(None) };
        let covered = self.furthest_checkpoint().await?.map_or(0, |c| c.signed.seq);
        let newest = self.newest_checkpoint().await?;
        let now = iks_domain::time::now();
        let due = match signing {
            Signing::Serving { every, interval } => {
                head - covered >= i64::try_from(every).unwrap_or(i64::MAX)
                    || newest.is_none_or(|c| now - c.signed.at >= interval)
            }
            Signing::Final => head > covered || newest.is_some_and(|c| c.signed.next.is_some()),
        };
        if !due {
            return Ok(None);
        }
        self.checkpoint_audit(key, signing.promise(), remembered).await
    }

    /// What a new checkpoint would vouch for must hold: the last checkpoint this process
    /// signed is still stored, the event the furthest checkpoint covers still has its hash,
    /// the events after it link, and none of them is a retention (the gateway signs its own
    /// in the same transaction). So a gateway never signs over a cut, a rewrite or a forged
    /// retention, and keeps refusing until someone looks.
    async fn check_unsigned(
        &self,
        trusted: &PublicKey,
        remembered: Option<&Checkpoint>,
    ) -> Result<(), CheckpointError> {
        if let Some(r) = remembered {
            let stored = sqlx::query("SELECT signature FROM audit_checkpoints WHERE id = $1")
                .bind(r.id)
                .fetch_optional(&self.read)
                .await?;
            if stored.map(|s| s.text("signature")).transpose()?.as_deref() != Some(r.signed.signature.as_str()) {
                return Err(CheckpointError::Vanished(r.id));
            }
        }
        let (start, checkpoints) = match self.furthest_checkpoint().await? {
            Some(c) => {
                let prev = sqlx::query("SELECT prev_hash FROM audit_events WHERE seq = $1")
                    .bind(c.signed.seq)
                    .fetch_optional(&self.read)
                    .await?;
                // A missing covered event is reported by the verifier as a cut tail.
                let prev_hash = prev.map(|r| r.text("prev_hash")).transpose()?.unwrap_or_default();
                (ChainStart { seq: c.signed.seq, prev_hash, retention_event: None }, vec![c])
            }
            None => (self.audit_chain_start().await?, Vec::new()),
        };
        if let Some(r) = start.retention_event {
            return Err(CheckpointError::ForeignRetention(r));
        }
        let from = start.seq;
        let verifier = ChainVerifier::new(Coverage::Complete { start, through: None }, checkpoints, Some(trusted))
            .map_err(VerifyError::from)?;
        self.walk(verifier, from - 1, None).await?.finish().map_err(VerifyError::from)?;
        let foreign = sqlx::query("SELECT MIN(seq) FROM audit_events WHERE action = $1 AND seq > $2")
            .bind(retention::ACTION)
            .bind(from)
            .fetch_one(&self.read)
            .await?;
        match opt_aggregate(&foreign)? {
            Some(r) => Err(CheckpointError::ForeignRetention(r)),
            None => Ok(()),
        }
    }

    /// The newest `audit.retention` event, which says where the stored chain starts.
    async fn latest_retention_event(&self) -> Result<Option<Event>> {
        sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE action = $1 ORDER BY seq DESC LIMIT 1"))
            .bind(retention::ACTION)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(event_from_row)
            .transpose()
    }

    /// Where the stored chain starts: event #1, or the anchor of the newest retention.
    pub async fn audit_chain_start(&self) -> Result<ChainStart> {
        let latest = self.latest_retention_event().await?;
        Ok(latest.as_ref().and_then(ChainStart::from_retention_event).unwrap_or_else(ChainStart::genesis))
    }

    /// Deletes the events before `cutoff` (always a prefix of the chain: an event is kept
    /// with everything after it, and the newest is always kept), records the deletion and the chain's new start as an
    /// `audit.retention` event, and signs a checkpoint covering that event. `None` when
    /// nothing is old enough.
    pub async fn apply_audit_retention(
        &self,
        actor: &Actor,
        key: &PrivateKey,
        cutoff: DateTime<Utc>,
        promise: Option<chrono::Duration>,
    ) -> Result<Option<Retained>, CheckpointError> {
        // The checkpoint below vouches for the new start: only over an intact chain.
        self.check_unsigned(key.public_key(), None).await?;
        let mut tx = self.begin().await?;
        tx.lock_chain().await?;
        let bounds = sqlx::query("SELECT MIN(seq), MAX(seq) FROM audit_events").fetch_one(tx.conn()).await?;
        let (Some(first), Some(head)) = (bounds.try_get::<Option<i64>, _>(0)?, bounds.try_get::<Option<i64>, _>(1)?)
        else {
            return Ok(None);
        };
        let young = sqlx::query("SELECT MIN(seq) FROM audit_events WHERE at >= $1")
            .bind(iks_domain::time::to_db(cutoff))
            .fetch_one(tx.conn())
            .await?;
        // Everything before the first young event goes, but never the newest event: the
        // chain's next link is computed from it.
        let keep_from = opt_aggregate(&young)?.unwrap_or(head).min(head);
        if keep_from <= first {
            return Ok(None);
        }
        let prev_hash = sqlx::query("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(keep_from - 1)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "audit event #{} is missing; run `iks-gateway audit verify`",
                    keep_from - 1
                ))
            })?
            .text("hash")?;
        // The permit lets the append-only trigger allow exactly this deletion; it never
        // outlives the transaction.
        sqlx::query("INSERT INTO audit_retention_permit (below_seq) VALUES ($1)")
            .bind(keep_from)
            .execute(tx.conn())
            .await?;
        let deleted = sqlx::query("DELETE FROM audit_events WHERE seq < $1")
            .bind(keep_from)
            .execute(tx.conn())
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM audit_retention_permit").execute(tx.conn()).await?;
        let details = RetentionDetails {
            cutoff,
            deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
            first_seq: keep_from,
            first_prev_hash: prev_hash,
        };
        let value = serde_json::to_value(&details).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let event = tx.audit(NewEvent::new(actor, retention::ACTION, Subjects::default(), value)).await?;
        // Signed in the same transaction: a retention event without its checkpoint was not
        // written by the gateway, and no later checkpoint will vouch for it.
        let signed = sign(key, event.seq, &event.hash, promise)?;
        let id = insert_checkpoint(&mut tx, &signed).await?;
        tx.commit().await?;
        Ok(Some(Retained { details, event: event.seq, checkpoint: Checkpoint { id, signed } }))
    }

    /// Records who exported what, before the export is written.
    pub async fn record_audit_export(
        &self,
        actor: &Actor,
        filter: &ExportFilter,
        format: &str,
        output: &str,
    ) -> Result<Event> {
        let mut tx = self.begin().await?;
        let subjects =
            Subjects { org: filter.org, ticket: filter.ticket, session: filter.session, ..Default::default() };
        let details = json!({ "filter": filter, "format": format, "output": output });
        let event = tx.audit(NewEvent::new(actor, "audit.export", subjects, details)).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Verifies the whole stored chain against the checkpoints (signed by `trusted`) and,
    /// when `recordings` is given, every ended session's recording file in it.
    pub async fn verify_audit(
        &self,
        trusted: Option<&PublicKey>,
        recordings: Option<&Path>,
    ) -> Result<Summary, VerifyError> {
        self.verify_audit_held(trusted, recordings, &Held::default()).await
    }

    /// [`Store::verify_audit`], also holding the chain to `held`: the configuration, the
    /// time and the checkpoints kept outside the database.
    pub async fn verify_audit_held(
        &self,
        trusted: Option<&PublicKey>,
        recordings: Option<&Path>,
        held: &Held<'_>,
    ) -> Result<Summary, VerifyError> {
        let checkpoints = self.audit_checkpoints(None).await?;
        verify::cross_check(held.logged, &checkpoints)?;
        let start = match self.latest_retention_event().await? {
            // The start is taken from this event before the walk reaches it: it must be intact.
            Some(e) if e.recomputed_hash() != e.hash => return Err(Problem::Edited { seq: e.seq }.into()),
            Some(e) => ChainStart::from_retention_event(&e).unwrap_or_else(ChainStart::genesis),
            None => ChainStart::genesis(),
        };
        let mut verifier = ChainVerifier::new(Coverage::Complete { start, through: None }, checkpoints, trusted)?;
        if let Some(x) = &held.expectations {
            verifier = verifier.expecting(x.clone());
        }
        // From the lowest possible number, so that no stray event escapes the walk.
        Ok(self.walk(verifier, i64::MIN, recordings).await?.finish()?)
    }

    /// Feeds the events after `after` to `verifier` a page at a time, hashing the
    /// recordings they vouch for when `recordings` is given.
    async fn walk(
        &self,
        mut verifier: ChainVerifier,
        mut after: i64,
        recordings: Option<&Path>,
    ) -> Result<ChainVerifier, VerifyError> {
        loop {
            let next = EventFilter { after_seq: Some(after), limit: Some(PAGE), ..Default::default() };
            let page = self.audit_events(&next).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Some(claim) = verifier.push(e)?
                    && let Some(dir) = recordings
                {
                    let (dir, file) = (dir.to_path_buf(), claim.file.clone());
                    let found = tokio::task::spawn_blocking(move || crate::audit::verify::recording_state(&dir, &file))
                        .await
                        .unwrap_or_else(|e| RecordingState::Unreadable(claim.file.clone(), e.to_string()));
                    verifier.check_recording(&claim, found)?;
                }
            }
        }
        Ok(verifier)
    }
}

/// Signs a checkpoint of event #`seq` now, promising the next within `promise`.
fn sign(key: &PrivateKey, seq: i64, hash: &str, promise: Option<chrono::Duration>) -> Result<SignedCheckpoint> {
    let at = iks_domain::time::now();
    Ok(checkpoint::sign(key, seq, hash, at, promise.map(|p| at + p))?)
}

/// Stores a signed checkpoint as part of `tx`; its row ID.
async fn insert_checkpoint(tx: &mut super::Tx, signed: &SignedCheckpoint) -> Result<i64> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, at, next_due, key_fingerprint, signature) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(signed.seq)
    .bind(&signed.hash)
    .bind(iks_domain::time::to_db(signed.at))
    .bind(signed.next.map(iks_domain::time::to_db))
    .bind(&signed.key_fingerprint)
    .bind(&signed.signature)
    .fetch_one(tx.conn())
    .await?
    .int("id")
}
