//! The agent's SSH client side: connecting to the gateway with its host key pinned, and
//! the channel policy.
//!
//! russh runs these callbacks inside the connection's loop and, on the client side,
//! *accepts* channels the server opens unless a callback says otherwise. So every
//! channel-open callback is overridden here and rejects, except `forwarded-tcpip` on a
//! data connection, and only when it is addressed to `sshd:22` ([`iks_proto::TUNNEL_ADDRESS`]),
//! it is the connection's first channel, and the customer has not disabled remote access.
//! The channel then goes to the sshd address in the agent's own configuration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use iks_proto::read_ahead::ReadAhead;
use iks_proto::{AgentUser, TUNNEL_ADDRESS, TUNNEL_PORT};
use russh::client::{self, ChannelOpenHandle, Msg, Session};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::AgentError;

/// How long the TCP connect and the SSH handshake may take, each.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the box's sshd may take to accept the tunnel's TCP connection.
const SSHD_TIMEOUT: Duration = Duration::from_secs(10);
/// Copy buffer per direction between a tunnel channel and the box's sshd.
const COPY: usize = 32 * 1024;

/// Keepalives both ways: the agent pings after 15 s of silence and gives up after 4 missed
/// answers; inactivity above that also ends the connection.
pub fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        inactivity_timeout: Some(Duration::from_secs(90)),
        nodelay: true,
        // Every byte of a session crosses this connection: AES-GCM (AES-NI through ring)
        // costs the agent and the gateway less CPU per byte than russh's default ChaCha20.
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(&[
                russh::cipher::AES_128_GCM,
                russh::cipher::AES_256_GCM,
                russh::cipher::CHACHA20_POLY1305,
            ]),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// How the gateway's host key is checked.
#[derive(Debug, Clone)]
pub enum HostKeyCheck {
    /// The key pinned at enrolment: anything else is refused.
    Pinned(PublicKey),
    /// Enrolment with `--expect-host-key SHA256:…`.
    Fingerprint(String),
    /// Enrolment without it: trust on first use (the key is then pinned).
    FirstUse,
}

/// Where a tunnel channel goes, on a data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelPhase {
    /// Waiting for the gateway to open the channel.
    Waiting,
    Open,
    Done,
}

/// What a data connection's one tunnel needs.
pub struct Tunnel {
    /// The configured sshd address: the only place a tunnel goes.
    pub sshd: String,
    /// The customer's kill switch, as the running agent last saw it.
    pub disabled: watch::Receiver<bool>,
    pub phase: watch::Sender<TunnelPhase>,
    /// Tunnels open right now, across the agent (for `iks-agent status`).
    pub sessions: Arc<AtomicUsize>,
}

/// The agent's client callbacks.
pub struct Handler {
    check: HostKeyCheck,
    /// The key the gateway presented, for the message on a mismatch.
    seen: Arc<Mutex<Option<PublicKey>>>,
    /// Set on data connections only: control and enrolment connections accept no channel.
    tunnel: Option<Tunnel>,
}

impl Handler {
    pub fn new(check: HostKeyCheck, tunnel: Option<Tunnel>) -> Self {
        Self { check, seen: Arc::new(Mutex::new(None)), tunnel }
    }

    /// Where the key the gateway presents is kept (enrolment pins it).
    pub(crate) fn seen(&self) -> Arc<Mutex<Option<PublicKey>>> {
        self.seen.clone()
    }

    fn refuse(what: &str, reply: ChannelOpenHandle) -> impl Future<Output = ()> {
        warn!(channel = what, "refused a channel the gateway tried to open");
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited)
    }
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = key.public_key();
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(presented.clone());
        Ok(match &self.check {
            HostKeyCheck::Pinned(pinned) => pinned.key_data() == presented.key_data(),
            HostKeyCheck::Fingerprint(fp) => presented.fingerprint(HashAlg::Sha256).to_string() == *fp,
            HostKeyCheck::FirstUse => true,
        })
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        _originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(tunnel) = &self.tunnel else {
            Self::refuse("forwarded-tcpip on a control connection", reply).await;
            return Ok(());
        };
        if connected_address != TUNNEL_ADDRESS || connected_port != TUNNEL_PORT {
            warn!(
                address = %connected_address.chars().take(100).collect::<String>(),
                port = connected_port,
                "refused a tunnel to anything but this box's sshd"
            );
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        if *tunnel.phase.borrow() != TunnelPhase::Waiting {
            Self::refuse("a second tunnel on one data connection", reply).await;
            return Ok(());
        }
        if *tunnel.disabled.borrow() {
            info!("refused a session: remote access is disabled on this box");
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        tunnel.phase.send_replace(TunnelPhase::Open);
        let (sshd, phase, sessions) = (tunnel.sshd.clone(), tunnel.phase.clone(), tunnel.sessions.clone());
        // Connecting to sshd takes time: never inside the callback.
        tokio::spawn(async move {
            match tokio::time::timeout(SSHD_TIMEOUT, TcpStream::connect(&sshd)).await {
                Ok(Ok(mut tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    reply.accept().await;
                    sessions.fetch_add(1, Ordering::Relaxed);
                    info!(session = originator_port, %sshd, "session tunnel open");
                    let mut stream = channel.into_stream();
                    // A channel packet carries at most 32 KiB: tokio's default 8 KiB copy
                    // buffers would split each into four writes (and reads from sshd).
                    let moved = tokio::io::copy_bidirectional_with_sizes(&mut stream, &mut tcp, COPY, COPY).await;
                    sessions.fetch_sub(1, Ordering::Relaxed);
                    let (up, down) = moved.unwrap_or_default();
                    info!(session = originator_port, bytes_to_box = up, bytes_from_box = down, "session tunnel closed");
                }
                Ok(Err(e)) => {
                    warn!(%sshd, error = %e, "cannot reach the box's sshd");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                }
                Err(_) => {
                    warn!(%sshd, "the box's sshd did not accept the connection in time");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                }
            }
            phase.send_replace(TunnelPhase::Done);
        });
        Ok(())
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("session", reply).await;
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host: &str,
        _port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("direct-tcpip", reply).await;
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("x11", reply).await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("auth-agent", reply).await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("forwarded-streamlocal", reply).await;
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse("direct-streamlocal", reply).await;
        Ok(())
    }
}

/// Connects to the gateway and runs the SSH handshake with its host key checked.
pub async fn connect(gateway: &str, handler: Handler) -> Result<client::Handle<Handler>, AgentError> {
    let timeout = || AgentError::Timeout { gateway: gateway.to_string(), secs: CONNECT_TIMEOUT.as_secs() };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(gateway))
        .await
        .map_err(|_| timeout())?
        .map_err(|source| AgentError::Connect { gateway: gateway.to_string(), source })?;
    let _ = tcp.set_nodelay(true);
    let seen = handler.seen.clone();
    let expected = match &handler.check {
        HostKeyCheck::Pinned(k) => Some(k.fingerprint(HashAlg::Sha256).to_string()),
        HostKeyCheck::Fingerprint(fp) => Some(fp.clone()),
        HostKeyCheck::FirstUse => None,
    };
    let stream = ReadAhead::new(tcp);
    match tokio::time::timeout(CONNECT_TIMEOUT, client::connect_stream(client_config(), stream, handler)).await {
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(e)) => {
            let presented = seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|k| k.fingerprint(HashAlg::Sha256).to_string());
            match (expected, presented) {
                (Some(expected), Some(presented)) if expected != presented => {
                    Err(AgentError::HostKeyMismatch { expected, presented })
                }
                _ => Err(e.into()),
            }
        }
        Err(_) => Err(timeout()),
    }
}

/// Logs in as `user` with the agent's key.
pub async fn authenticate(
    handle: &mut client::Handle<Handler>,
    user: &AgentUser,
    key: Arc<PrivateKey>,
) -> Result<(), AgentError> {
    let result = handle.authenticate_publickey(user.user_name(), PrivateKeyWithHashAlg::new(key, None)).await?;
    if result.success() { Ok(()) } else { Err(AgentError::KeyRefused) }
}
