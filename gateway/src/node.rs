//! A gateway node's life: [`Node::open`] builds the shared state on a store and cleans up
//! what the node's previous run left behind, [`Node::start`] runs the listeners and the
//! periodic jobs asked for, and [`Running::shutdown`] stops them all.
//!
//! One signal stops everything: [`Gateway::shutdown`]. Listeners stop accepting and
//! end the live sessions, each job stops before its next round. Shutdown then waits in
//! this order, as each step needs the previous one done: the listeners (so every
//! session's end is written), the jobs, a last audit checkpoint covering those ends, the
//! agents marked offline, the store closed.
//!
//! Each job ([`Job`]) is a loop of rounds on its own period; a round that fails is logged
//! and the job tries again next period, and a job that panics is started again, so no job
//! takes the node down or silently stops.

mod jobs;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use crate::config::Config;
use crate::datadir::{DataDir, DataDirError, KeyRole};
use crate::state::Gateway;
use crate::store::{SessionFilter, Store, StoreError};
use iks_domain::ids::SessionId;
use iks_domain::model::EndReason;

/// How long shutdown waits for the jobs to finish their round; then they are cut.
const JOBS_STOP_WITHIN: Duration = Duration::from_secs(10);
/// A job that panicked starts again after its period, and never sooner than this.
const RESTART_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] DataDirError),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("the {listener} listener failed: {source}")]
    Panicked { listener: &'static str, source: tokio::task::JoinError },
}

/// What a node is made of.
pub struct NodeParts {
    pub store: Store,
    pub config: Arc<Config>,
    pub data_dir: DataDir,
    /// Signs the certificates the gateway presents to boxes.
    pub user_ca: PrivateKey,
    /// The node's name in the store: each node watches its own sessions and agents.
    pub name: String,
}

/// The listeners a node serves on, bound by the caller (a configured address, or port 0).
#[derive(Debug, Default)]
pub struct Listeners {
    pub ssh: Option<TcpListener>,
    pub http: Option<TcpListener>,
}

/// The periodic work of a node besides serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Warns and ends live sessions as their grants, tickets and rules change.
    Watchdog,
    /// Disconnects agents revoked from anywhere.
    RevokedAgents,
    /// Keeps the held agents' `last_seen` fresh.
    AgentHeartbeat,
    /// Marks approved grants whose window ended as expired.
    GrantExpiry,
    /// Closes tickets the customer left silent ([`crate::tickets::autoclose`]).
    AutoClose,
    /// Signs audit checkpoints as they fall due, and a last one at shutdown.
    Checkpoints,
    /// Applies `[audit] retention_days`.
    Retention,
    /// Indexes the transcripts of the sessions that ended here.
    Indexing,
}

impl Job {
    /// Everything `serve` runs.
    pub const ALL: [Job; 8] = [
        Job::Watchdog,
        Job::RevokedAgents,
        Job::AgentHeartbeat,
        Job::GrantExpiry,
        Job::AutoClose,
        Job::Checkpoints,
        Job::Retention,
        Job::Indexing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::Watchdog => "watchdog",
            Job::RevokedAgents => "revoked agents",
            Job::AgentHeartbeat => "agent heartbeat",
            Job::GrantExpiry => "grant expiry",
            Job::AutoClose => "auto-close",
            Job::Checkpoints => "audit checkpoints",
            Job::Retention => "audit retention",
            Job::Indexing => "transcript indexing",
        }
    }

    /// The time between two rounds: the first comes at once.
    fn period(self, config: &Config) -> Duration {
        match self {
            Job::Watchdog | Job::RevokedAgents => watchdog::TICK,
            Job::AgentHeartbeat => jobs::HEARTBEAT_EVERY,
            Job::GrantExpiry => jobs::EXPIRE_EVERY,
            Job::AutoClose => jobs::AUTOCLOSE_EVERY,
            Job::Checkpoints => jobs::checkpoint_period(&config.audit),
            Job::Retention => jobs::RETENTION_EVERY,
            Job::Indexing => jobs::INDEX_EVERY,
        }
    }

    fn signs(self) -> bool {
        matches!(self, Job::Checkpoints | Job::Retention)
    }
}

/// A job's clock: a round at once, then one every period, until the node stops.
struct Every {
    tick: tokio::time::Interval,
    stop: watch::Receiver<bool>,
}

impl Every {
    fn new(period: Duration, stop: watch::Receiver<bool>) -> Self {
        let mut tick = tokio::time::interval(period);
        // A slow round delays the next rather than causing a burst to catch up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { tick, stop }
    }

    /// Waits for the next round; `false` once the node is stopping.
    async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            () = crate::sync::until_set(&mut self.stop) => false,
            _ = self.tick.tick() => true,
        }
    }

    /// Whether the node is stopping: a round working through a queue ends early.
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// What [`Node::open`] cleaned up after a previous run of the node that crashed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Sessions left open, now ended with reason "gateway crashed".
    pub sessions: usize,
    /// Agents left marked online here; they reconnect on their own.
    pub agents: usize,
}

/// A node on its store, not serving yet.
pub struct Node {
    app: Arc<Gateway>,
    to_index: mpsc::UnboundedReceiver<SessionId>,
    recovered: Recovered,
}

impl Node {
    /// Builds the node's state and ends what the node's previous run left open when it
    /// stopped without saying so.
    pub async fn open(parts: NodeParts) -> Result<Self, NodeError> {
        let (to_index, indexing) = mpsc::unbounded_channel();
        let NodeParts { store, config, data_dir, user_ca, name } = parts;
        let app = Arc::new(Gateway::new(store, config, data_dir, user_ca, name, to_index));
        let sessions = end_crashed(&app).await?;
        let agents = app.store.agents_offline_on_node(&app.node, "gateway restarted").await?;
        Ok(Self { app, to_index: indexing, recovered: Recovered { sessions, agents } })
    }

    pub fn app(&self) -> &Arc<Gateway> {
        &self.app
    }

    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// Serves on `listeners` and runs `jobs` until [`Running::shutdown`].
    pub fn start(self, listeners: Listeners, jobs: &[Job]) -> Result<Running, NodeError> {
        let app = self.app;
        let signer = if jobs.iter().any(|j| j.signs()) {
            Some(jobs::Signer::new(app.data_dir.key(KeyRole::Audit)?))
        } else {
            None
        };
        // Without the indexing job nothing reads the queue: it is dropped, so it cannot grow,
        // and ended sessions are indexed by a later search.
        let to_index = jobs.contains(&Job::Indexing).then_some(self.to_index);
        let cx = Arc::new(jobs::Context::new(app.clone(), signer, to_index));
        let mut running = JoinSet::new();
        for &job in jobs {
            running.spawn(supervise(job, cx.clone()));
        }
        let ssh = listeners.ssh.map(|l| {
            let app = app.clone();
            tokio::spawn(async move { crate::ssh::serve(app, l).await.map_err(NodeError::from) })
        });
        let http = listeners.http.map(|l| {
            let app = app.clone();
            tokio::spawn(async move { crate::http::serve(app, l).await.map_err(NodeError::Http) })
        });
        let final_checkpoint = jobs.contains(&Job::Checkpoints);
        Ok(Running { app, cx, ssh, http, jobs: running, final_checkpoint })
    }
}

/// A node serving.
pub struct Running {
    app: Arc<Gateway>,
    cx: Arc<jobs::Context>,
    ssh: Option<JoinHandle<Result<(), NodeError>>>,
    http: Option<JoinHandle<Result<(), NodeError>>>,
    jobs: JoinSet<()>,
    final_checkpoint: bool,
}

impl Running {
    pub fn app(&self) -> &Arc<Gateway> {
        &self.app
    }

    /// Stops the node (see the module's documentation for the order). Every step runs even
    /// when one before failed; the first failure is returned.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.app.shutdown.send_replace(true);
        let mut result = Ok(());
        // SSH first: it ends the live sessions and waits for their ends to be written.
        for (listener, task) in [("SSH", self.ssh.take()), ("HTTP", self.http.take())] {
            let Some(task) = task else { continue };
            let outcome = task.await.unwrap_or_else(|source| Err(NodeError::Panicked { listener, source }));
            if let Err(e) = outcome {
                tracing::error!(listener, error = %e, "listener failed");
                result = result.and(Err(e));
            }
        }
        let jobs = async { while self.jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(JOBS_STOP_WITHIN, jobs).await.is_err() {
            tracing::warn!(left = self.jobs.len(), "jobs still running after {JOBS_STOP_WITHIN:?}; cutting them");
            self.jobs.shutdown().await;
        }
        if self.final_checkpoint {
            jobs::final_checkpoint(&self.cx).await;
        }
        let store = &self.app.store;
        if let Err(e) = store.agents_offline_on_node(&self.app.node, "gateway shutdown").await {
            tracing::warn!(error = %e, "cannot mark the agents offline");
        }
        store.close().await;
        result
    }
}

/// Runs `job` until the node stops, starting it again after a panic.
async fn supervise(job: Job, cx: Arc<jobs::Context>) {
    let period = job.period(&cx.app.config);
    let span = tracing::info_span!("job", name = job.name());
    loop {
        let every = Every::new(period, cx.app.shutdown.subscribe());
        // Its own task, so that a panic is caught; cut with this one at a late shutdown.
        let task = AbortOnDrop(tokio::spawn(jobs::run(job, cx.clone(), every).instrument(span.clone())));
        let Err(panic) = task.join().await else { return };
        tracing::error!(parent: &span, error = %panic, "the job panicked; starting it again");
        let mut stop = cx.app.shutdown.subscribe();
        if tokio::time::timeout(period.max(RESTART_AFTER), crate::sync::until_set(&mut stop)).await.is_ok() {
            return;
        }
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sessions this node was carrying when it stopped without ending them (a crash): each
/// is ended with reason "gateway crashed" and its recording hashed as it was left.
async fn end_crashed(app: &Arc<Gateway>) -> Result<usize, StoreError> {
    let filter = SessionFilter { live: true, node: Some(app.node.clone()), ..Default::default() };
    let orphans = app.store.list_sessions(&filter).await?;
    for s in &orphans {
        let sha256 = s.recording.as_ref().and_then(|r| {
            std::fs::read(app.data_dir.recordings_dir().join(r))
                .ok()
                .map(|bytes| hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)))
        });
        let org = app.store.get_box(s.box_id).await?.org_id;
        let end = iks_domain::model::SessionEnd {
            reason: EndReason::GatewayCrashed,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            recording: None,
            recording_sha256: sha256,
        };
        app.store.end_session(&iks_domain::audit::Actor::system(), s.id, org, &end).await?;
        crate::search::index_later(app, s.id);
        tracing::warn!(session.id = %s.id, "session ended: the gateway had crashed");
    }
    Ok(orphans.len())
}

#[cfg(test)]
mod tests;
