//! `iks-agent run`: keep the control connection up, dial a data connection whenever the
//! gateway asks for one, and watch the customer's kill switch.
//!
//! Reconnecting uses exponential backoff with jitter (1 s doubling to 60 s, each wait
//! drawn from [½, 1½) of the step), reset once a connection is established, so a gateway
//! restart costs about a second while a gateway that is down for a while is not hammered
//! by every box at once. A changed gateway host key is refused every time (never re-pinned).
//!
//! Kill switch: `iks-agent disable` creates a file the loop looks at every half second.
//! The agent then reports it (the gateway ends the box's sessions with reason "remote
//! access disabled" and refuses new ones), refuses new tunnels itself, and — two seconds
//! later, so the gateway can record the reason first — closes any tunnel still open, so the
//! switch works even if the gateway did not cooperate.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use iks_proto::{AgentMsg, AgentState, AgentUser, CONTROL_COMMAND, DialRefusal, GatewayMsg, LineBuffer};
use russh::ChannelMsg;
use russh::keys::{PrivateKey, PublicKey};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{AgentConfig, ConfigDir};
use crate::connection::{self, Handler, HostKeyCheck, Tunnel, TunnelPhase};
use crate::status::{Connection, Status};
use crate::{AgentError, VERSION};

/// Tunables; the defaults are what `iks-agent run` uses.
#[derive(Debug, Clone)]
pub struct Options {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often the kill switch and version file are looked at.
    pub poll: Duration,
    /// How long after the kill switch the agent closes tunnels itself.
    pub disable_grace: Duration,
    /// Whether to keep `status.json` in the config dir current.
    pub write_status: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            disable_grace: Duration::from_secs(2),
            write_status: true,
        }
    }
}

/// How long a data connection may wait for the gateway to open its tunnel.
const TUNNEL_WAIT: Duration = Duration::from_secs(30);
/// How long the gateway may take to accept the control channel.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, step: min }
    }

    /// The next wait: the current step ±50 %, capped; the step then doubles.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let jitter = random_fraction();
        step.mul_f64(0.5 + jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// A number in [0, 1) that differs between calls and processes. Jitter only needs to
/// spread boxes apart, not to be unpredictable: the std hasher's random keys do that
/// without a random-number crate.
fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A running agent.
pub struct Agent {
    dir: ConfigDir,
    config: AgentConfig,
    key: Arc<PrivateKey>,
    gateway_key: PublicKey,
    options: Options,
    status: watch::Sender<Status>,
    /// The kill switch as last seen; data connections watch it.
    disabled: watch::Sender<bool>,
    /// Tunnels open now.
    sessions: Arc<AtomicUsize>,
    /// Data connections open or being opened now.
    data_connections: Arc<AtomicUsize>,
}

impl Agent {
    /// Loads an enrolled config dir.
    pub fn load(dir: ConfigDir, options: Options) -> Result<Self, AgentError> {
        let (config, key) = dir.load()?;
        let gateway_key = config.gateway_key(&dir.config_file())?;
        let status = Status {
            pid: std::process::id(),
            agent_version: VERSION.into(),
            gateway: config.gateway.clone(),
            box_name: config.box_name.clone(),
            org: config.org.clone(),
            connection: Connection::Connecting,
            since: Utc::now(),
            live_sessions: 0,
            remote_access_disabled: crate::status::remote_access_disabled(&dir),
            last_error: None,
        };
        Ok(Self {
            disabled: watch::channel(status.remote_access_disabled).0,
            status: watch::channel(status).0,
            dir,
            config,
            key: Arc::new(key),
            gateway_key,
            options,
            sessions: Arc::new(AtomicUsize::new(0)),
            data_connections: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Follows the agent's status as it changes.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    fn publish(&self, change: impl FnOnce(&mut Status)) {
        let changed = self.status.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            *s != before
        });
        if changed && self.options.write_status {
            let snapshot = self.status.borrow().clone();
            if let Err(e) = snapshot.write(&self.dir) {
                warn!(error = %e, "cannot write the status file");
            }
        }
    }

    fn set_connection(&self, connection: Connection, last_error: Option<String>) {
        self.publish(|s| {
            if s.connection != connection {
                s.connection = connection;
                s.since = Utc::now();
            }
            if last_error.is_some() || connection == Connection::Connected {
                s.last_error = last_error;
            }
        });
    }

    /// What to tell the gateway now: the kill switch and what the box runs.
    fn state(&self) -> AgentState {
        let release = crate::report::configured_release(&self.config);
        AgentState {
            agent_version: VERSION.into(),
            product: release.product,
            version: release.version,
            remote_access_disabled: crate::status::remote_access_disabled(&self.dir),
        }
    }

    /// Keeps the agent connected until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new(self.options.backoff_min, self.options.backoff_max);
        loop {
            self.set_connection(Connection::Connecting, None);
            let result = tokio::select! {
                r = self.control_connection(&mut backoff) => r,
                () = &mut shutdown => break,
            };
            let message = match &result {
                Ok(()) | Err(AgentError::Closed) => "the gateway closed the connection".to_string(),
                Err(e) => e.to_string(),
            };
            let wait = backoff.next_wait();
            match &result {
                Err(AgentError::HostKeyMismatch { .. } | AgentError::KeyRefused) => {
                    error!(gateway = %self.config.gateway, retry_in = ?wait, "{message}")
                }
                _ => warn!(gateway = %self.config.gateway, retry_in = ?wait, "{message}"),
            }
            self.set_connection(Connection::Disconnected, Some(message));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => break,
            }
        }
        self.set_connection(Connection::Stopped, None);
    }

    /// One control connection, from connecting until it ends.
    async fn control_connection(&self, backoff: &mut Backoff) -> Result<(), AgentError> {
        let gateway = &self.config.gateway;
        let handler = Handler::new(HostKeyCheck::Pinned(self.gateway_key.clone()), None);
        let mut handle = connection::connect(gateway, handler).await?;
        connection::authenticate(&mut handle, &AgentUser::Control, self.key.clone()).await?;
        let mut channel = handle.channel_open_session().await?;
        channel.exec(true, CONTROL_COMMAND).await?;
        let accepted = tokio::time::timeout(CONTROL_TIMEOUT, async {
            loop {
                match channel.wait().await {
                    Some(ChannelMsg::Success) => return true,
                    Some(ChannelMsg::Failure | ChannelMsg::Close) | None => return false,
                    Some(_) => {}
                }
            }
        })
        .await;
        if !matches!(accepted, Ok(true)) {
            return Err(AgentError::Invalid("the gateway refused the control channel".into()));
        }
        let mut state = self.state();
        self.disabled.send_replace(state.remote_access_disabled);
        channel.data_bytes(line(&AgentMsg::State(state.clone()))?).await?;
        backoff.reset();
        info!(%gateway, r#box = %self.config.box_name, "connected to the gateway");
        self.set_connection(Connection::Connected, None);
        self.publish(|s| s.remote_access_disabled = state.remote_access_disabled);
        let mut lines = LineBuffer::default();
        let mut tick = tokio::time::interval(self.options.poll);
        loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        for l in lines.push(&data).map_err(|e| AgentError::Invalid(e.to_string()))? {
                            match serde_json::from_slice::<GatewayMsg>(&l) {
                                Ok(GatewayMsg::Dial { id }) => {
                                    if let Some(refusal) = self.dial(&id) {
                                        channel.data_bytes(line(&AgentMsg::DialRefused { id, refusal })?).await?;
                                    }
                                }
                                Err(e) => warn!(error = %e, "ignored a message from the gateway"),
                            }
                        }
                    }
                    Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    let new = self.state();
                    if new != state {
                        channel.data_bytes(line(&AgentMsg::State(new.clone()))?).await?;
                        if new.remote_access_disabled != state.remote_access_disabled {
                            info!(disabled = new.remote_access_disabled, "the customer changed the kill switch");
                            self.disabled.send_replace(new.remote_access_disabled);
                        }
                        state = new;
                    }
                    let live = self.sessions.load(Ordering::Relaxed);
                    self.publish(|s| {
                        s.live_sessions = live;
                        s.remote_access_disabled = state.remote_access_disabled;
                    });
                }
            }
        }
        // The session's own error (keepalive timeout, …) says more than "closed".
        match tokio::time::timeout(Duration::from_secs(1), &mut handle).await {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(AgentError::Closed),
        }
    }

    /// The gateway asked for a data connection: open it in a task of its own, or say why not.
    fn dial(&self, id: &str) -> Option<DialRefusal> {
        if !iks_proto::valid_dial_id(id) {
            warn!("ignored a dial with a malformed id");
            return None;
        }
        if *self.disabled.borrow() {
            info!("refused a dial: remote access is disabled on this box");
            return Some(DialRefusal::RemoteAccessDisabled);
        }
        let limit = self.config.max_sessions;
        let open = self.data_connections.fetch_add(1, Ordering::SeqCst);
        if open >= limit as usize {
            self.data_connections.fetch_sub(1, Ordering::SeqCst);
            warn!(open, limit, "refused a dial: the box carries as many sessions as max_sessions allows");
            return Some(DialRefusal::TooManySessions { limit });
        }
        let (phase, phase_rx) = watch::channel(TunnelPhase::Waiting);
        let tunnel = Tunnel {
            sshd: self.config.sshd.clone(),
            disabled: self.disabled.subscribe(),
            phase,
            sessions: self.sessions.clone(),
        };
        let job = DataJob {
            gateway: self.config.gateway.clone(),
            gateway_key: self.gateway_key.clone(),
            key: self.key.clone(),
            id: id.to_string(),
            disabled: self.disabled.subscribe(),
            grace: self.options.disable_grace,
        };
        let count = self.data_connections.clone();
        tokio::spawn(async move {
            if let Err(e) = job.run(tunnel, phase_rx).await {
                warn!(error = %e, "data connection failed");
            }
            count.fetch_sub(1, Ordering::SeqCst);
        });
        None
    }
}

/// One data connection: log in, carry one tunnel, close.
struct DataJob {
    gateway: String,
    gateway_key: PublicKey,
    key: Arc<PrivateKey>,
    id: String,
    disabled: watch::Receiver<bool>,
    grace: Duration,
}

impl DataJob {
    async fn run(mut self, tunnel: Tunnel, mut phase: watch::Receiver<TunnelPhase>) -> Result<(), AgentError> {
        let handler = Handler::new(HostKeyCheck::Pinned(self.gateway_key.clone()), Some(tunnel));
        let mut handle = connection::connect(&self.gateway, handler).await?;
        connection::authenticate(&mut handle, &AgentUser::Data(self.id.clone()), self.key.clone()).await?;
        let opened = matches!(
            tokio::time::timeout(TUNNEL_WAIT, phase.wait_for(|p| *p != TunnelPhase::Waiting)).await,
            Ok(Ok(_))
        );
        if opened {
            tokio::select! {
                _ = &mut handle => {}
                _ = phase.wait_for(|p| *p == TunnelPhase::Done) => {}
                _ = async {
                    let _ = self.disabled.wait_for(|d| *d).await;
                    tokio::time::sleep(self.grace).await;
                } => info!("closing a session: remote access is disabled on this box"),
            }
        }
        let _ = handle.disconnect(russh::Disconnect::ByApplication, "tunnel closed", "en").await;
        Ok(())
    }
}

fn line(msg: &AgentMsg) -> Result<Vec<u8>, AgentError> {
    iks_proto::line(msg).map_err(|e| AgentError::Invalid(format!("cannot encode a control message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut steps = Vec::new();
        for _ in 0..10 {
            steps.push(b.next_wait());
        }
        for (i, w) in steps.iter().enumerate() {
            let step = Duration::from_secs(1 << i.min(6)).min(Duration::from_secs(60));
            assert!(*w >= step / 2 && *w <= step.mul_f64(1.5).min(Duration::from_secs(60)), "{i}: {w:?}");
        }
        b.reset();
        assert!(b.next_wait() < Duration::from_millis(1500));
    }
}
