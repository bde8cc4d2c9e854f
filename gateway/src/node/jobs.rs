//! The node's jobs, one function each (the watchdog has a file of its own), and what they
//! share: the audit signer that checkpoints and retention take turns with, and the queue of
//! sessions to index.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use russh::keys::PrivateKey;
use tokio::sync::{Mutex, mpsc};

use crate::audit::checkpoint::Checkpoint;
use crate::audit::retention;
use crate::config::AuditConfig;
use crate::datadir::fingerprint;
use crate::state::Gateway;
use crate::store::{Signing, Store};
use iks_domain::audit::Actor;
use iks_domain::ids::SessionId;

use super::{Every, Job};

/// The agents' `last_seen` is kept this fresh.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Approved grants whose window ended are marked expired within this.
pub(super) const EXPIRE_EVERY: Duration = Duration::from_secs(5);
/// Auto-close works from stored times, so any period does: a ticket closes within it.
pub(super) const AUTOCLOSE_EVERY: Duration = Duration::from_secs(60);
pub(super) const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// A session's transcript is searchable this soon after it ends.
pub(super) const INDEX_EVERY: Duration = Duration::from_secs(1);
/// The checkpoint job looks whether a checkpoint is due at least this often.
const CHECKPOINT_LOOK_MAX: Duration = Duration::from_secs(5);

/// How often the checkpoint job looks: a quarter of `[audit] checkpoint_interval`, so a
/// checkpoint comes well before the previous one's promise runs out. Never zero: the
/// configured interval is at least a second.
pub(super) fn checkpoint_period(config: &AuditConfig) -> Duration {
    let interval = config.checkpoint_interval().to_std().unwrap_or(CHECKPOINT_LOOK_MAX);
    (interval / 4).min(CHECKPOINT_LOOK_MAX)
}

/// What the jobs share.
pub(super) struct Context {
    pub(super) app: Arc<Gateway>,
    /// Each only when a job that needs it runs.
    signer: Option<Mutex<Signer>>,
    to_index: Option<Mutex<mpsc::UnboundedReceiver<SessionId>>>,
}

impl Context {
    pub(super) fn new(
        app: Arc<Gateway>,
        signer: Option<Signer>,
        to_index: Option<mpsc::UnboundedReceiver<SessionId>>,
    ) -> Self {
        Self { app, signer: signer.map(Mutex::new), to_index: to_index.map(Mutex::new) }
    }
}

/// Runs `job` until the node stops.
pub(super) async fn run(job: Job, cx: Arc<Context>, every: Every) {
    let (app, store, system) = (&cx.app, &cx.app.store, Actor::system());
    match job {
        Job::Watchdog => super::watchdog::run(app, every).await,
        Job::RevokedAgents => {
            rounds(every, "cannot check for revoked agents", || crate::tunnel::drop_revoked(app)).await
        }
        Job::AgentHeartbeat => {
            rounds(every, "cannot record the agents' heartbeat", || crate::tunnel::heartbeat(app)).await
        }
        Job::GrantExpiry => rounds(every, "cannot expire grants", || store.expire_grants(&system)).await,
        Job::AutoClose => {
            let close = || crate::tickets::autoclose(store, &app.config, iks_domain::time::now());
            rounds(every, "cannot auto-close silent tickets", close).await;
        }
        Job::Checkpoints => checkpoints(&cx, every).await,
        Job::Retention => retention(&cx, every).await,
        Job::Indexing => indexing(&cx, every).await,
    }
}

/// Runs `round` on each tick of `every`; a failure is logged, and the next round is the retry.
async fn rounds<T, E: Display, F: Future<Output = Result<T, E>>>(
    mut every: Every,
    failed: &str,
    mut round: impl FnMut() -> F,
) {
    while every.next().await {
        if let Err(e) = round().await {
            tracing::warn!(error = %e, "{failed}");
        }
    }
}

/// A checkpoint whenever `[audit] checkpoint_every` events have accumulated or
/// `checkpoint_interval` has passed since the newest (each promising the next).
async fn checkpoints(cx: &Context, mut every: Every) {
    // Set by `Node::start` whenever this job runs.
    let Some(signer) = &cx.signer else { return };
    let config = &cx.app.config.audit;
    while every.next().await {
        signer.lock().await.sign(&cx.app.store, config, serving(config)).await;
    }
}

/// After the last session's end is written: whatever happened since the last checkpoint
/// is signed, and the last promise is replaced by none.
pub(super) async fn final_checkpoint(cx: &Context) {
    if let Some(signer) = &cx.signer {
        signer.lock().await.sign(&cx.app.store, &cx.app.config.audit, Signing::Final).await;
    }
}

/// Deletes the events older than `[audit] retention_days`, if set.
async fn retention(cx: &Context, mut every: Every) {
    let Some(signer) = &cx.signer else { return };
    let config = &cx.app.config.audit;
    while every.next().await {
        if let Some(cutoff) = retention::cutoff(config.retention_days, iks_domain::time::now()) {
            signer.lock().await.retention(&cx.app.store, config, cutoff, serving(config)).await;
        }
    }
}

fn serving(config: &AuditConfig) -> Signing {
    Signing::Serving { every: config.checkpoint_every, interval: config.checkpoint_interval() }
}

/// Indexes the transcripts of the sessions that ended here. One that fails, or is still
/// queued when the node stops, is left to a later search ([`crate::search::search`]).
async fn indexing(cx: &Context, mut every: Every) {
    let Some(queue) = &cx.to_index else { return };
    let mut queue = queue.lock().await;
    let dir = cx.app.data_dir.recordings_dir();
    while every.next().await {
        while !every.stopping()
            && let Ok(id) = queue.try_recv()
        {
            index(&cx.app.store, &dir, id).await;
        }
    }
}

async fn index(store: &Store, dir: &Path, id: SessionId) {
    match crate::search::index_session(store, dir, id).await {
        Ok(lines) => tracing::debug!(session.id = %id, lines, "transcript indexed"),
        Err(e) => tracing::warn!(session.id = %id, error = %e, "cannot index the transcript"),
    }
}

/// The serving node's audit signer: remembers the last checkpoint it signed, so that one
/// deleted from the database stops it signing (see [`Store::checkpoint_audit`]). Every
/// checkpoint is copied to `[audit] checkpoint_log` when one is configured.
pub(super) struct Signer {
    key: PrivateKey,
    last: Option<Checkpoint>,
}

impl Signer {
    pub(super) fn new(key: PrivateKey) -> Self {
        Self { key, last: None }
    }

    async fn sign(&mut self, store: &Store, config: &AuditConfig, signing: Signing) {
        match store.checkpoint_audit_if_due(&self.key, signing, self.last.as_ref()).await {
            Ok(Some(c)) => {
                tracing::info!(
                    checkpoint = c.id,
                    seq = c.signed.seq,
                    key = %fingerprint(&self.key),
                    "audit checkpoint signed"
                );
                self.signed(config, c);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "audit checkpoint failed"),
        }
    }

    async fn retention(&mut self, store: &Store, config: &AuditConfig, cutoff: DateTime<Utc>, signing: Signing) {
        match store.apply_audit_retention(&Actor::system(), &self.key, cutoff, signing.promise()).await {
            Ok(Some(r)) => {
                tracing::info!(
                    deleted = r.details.deleted,
                    first = r.details.first_seq,
                    checkpoint = r.checkpoint.id,
                    "audit retention applied"
                );
                self.signed(config, r.checkpoint);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "audit retention failed"),
        }
    }

    fn signed(&mut self, config: &AuditConfig, c: Checkpoint) {
        if let Some(log) = config.checkpoint_log()
            && let Err(e) = log.append(&c)
        {
            tracing::error!(checkpoint = c.id, log = %config.checkpoint_log, error = %e, "audit checkpoint log failed");
        }
        self.last = Some(c);
    }
}
