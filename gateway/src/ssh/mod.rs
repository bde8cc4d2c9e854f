//! The SSH front: engineers connect with a stock OpenSSH client to `T-1042@gateway`.
//!
//! One task per connection runs russh's server session. Its layers, each importing only
//! those below it:
//! - [`front`]: russh's handler; its state moves once, at authentication, to an engineer's
//!   connection or an agent's;
//! - [`engineer`] (the engineer's connection, its session's channels; the session opened
//!   by [`opening`]) and [`agent`] (enrolment, control, data);
//! - [`bridge`]: each channel bridged to a channel on the box by two pumps, one per
//!   direction, so typing (Ctrl-C) never waits behind output and every buffer on the way
//!   is bounded, each terminal or command channel's content fed to the session's
//!   recording by its [`tap`]; [`established`]: the session that passed every rule, and
//!   its end;
//! - the rules with no connection behind them: [`peer`] (who is connected, what each kind
//!   of peer may ask), [`session`] (a session's channels), [`policy`], [`target`]; and the
//!   client to the box, [`upstream`].

pub mod admission;
pub(crate) mod agent;
pub mod agent_audit;
mod bridge;
mod engineer;
mod established;
mod front;
mod opening;
mod peer;
mod policy;
mod session;
pub mod tap;
pub mod upstream;

pub use session::ENDING_WITHIN;

use std::sync::Arc;
use std::time::Duration;

use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use admission::Admission;
use agent_audit::AgentAudit;

use crate::datadir::KeyRole;
use crate::state::Gateway;
use iks_domain::model::EndReason;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("SSH host key: {0}")]
    HostKey(#[from] crate::datadir::DataDirError),
    #[error("SSH listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("[ssh] ciphers: {0}")]
    Ciphers(String),
}

/// How long shutdown waits for sessions to write their end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the port's connections share besides the node's [`Gateway`], made once by
/// [`serve`]: so every connection counts against the same caps, and an agent's audit
/// budget holds across all its connections to this node.
struct Port {
    /// russh's settings for every connection.
    config: Arc<Config>,
    /// The connections that have not authenticated yet: caps and deadlines.
    admission: Arc<Admission>,
    /// How many audit events each agent's reports and reconnects may still cause.
    agent_audit: Arc<AgentAudit>,
}

fn server_config(app: &Arc<Gateway>) -> Result<Config, SshError> {
    Ok(Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-iks-gateway_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH probes with `none` first and then offers every agent key: answer at once.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![app.data_dir.key(KeyRole::Host)?],
        // Sessions are bounded by their grant, not by idleness; dead clients and agents are
        // found by keepalives within a minute (agents also ping from their side).
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: crate::ciphers::engineer_leg(&app.config.ssh.ciphers).map_err(SshError::Ciphers)?.into(),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Accepts engineers' connections until the node stops ([`crate::state::Gateway::shutdown`]),
/// then closes every live session with reason "gateway shutdown" and waits (briefly) for
/// their ends to be written.
pub async fn serve(app: Arc<Gateway>, listener: TcpListener) -> Result<(), SshError> {
    let limits = &app.config.ssh;
    let port = Arc::new(Port {
        config: Arc::new(server_config(&app)?),
        admission: Arc::new(Admission::new(limits)),
        agent_audit: Arc::new(AgentAudit::new(limits.agent_audit_window(), limits.agent_audit_events)),
    });
    let mut stop = app.shutdown.subscribe();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (app, port) = (app.clone(), port.clone());
                    connections.spawn(admission::guard(port.admission.clone(), stream, peer, move |stream, severer| {
                        front::run(app, port, stream, severer, peer)
                    }));
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the sessions we have.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
            () = crate::sync::until_set(&mut stop) => break,
        }
    }
    drop(listener);
    let live = app.live.all();
    info!(sessions = live.len(), "closing live sessions for shutdown");
    for s in &live {
        s.close(EndReason::GatewayShutdown, "the gateway is shutting down");
    }
    crate::tunnel::disconnect_all(&app).await;
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(left = connections.len(), "connections still open after the shutdown grace period");
    }
    debug!("SSH front stopped");
    Ok(())
}
