//! The gateway's SSH client to a box: pinned host key, certificate (or per-box static
//! key) authentication. The engineer never sees any of this. It runs over any byte
//! stream — a TCP connection to a box the gateway reaches directly, or a channel through
//! the box's agent — so host-key pinning, certificates and recording are the same both ways.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use iks_domain::decision::Refusal;
use iks_domain::model::{BoxAuth, IksBox};

/// How long a box may take to answer before the session is refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The client side's callbacks: accept only the pinned host key, refuse every channel
/// the box might try to open towards the gateway.
pub struct Upstream {
    pinned: PublicKey,
    /// The key the box presented, for the error message on a mismatch.
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Upstream {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = key.public_key();
        *crate::sync::lock(&self.seen) = Some(presented.fingerprint(HashAlg::Sha256).to_string());
        Ok(presented.key_data() == self.pinned.key_data())
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<client::Msg>,
        _host: &str,
        _port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<client::Msg>,
        _address: &str,
        _port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<client::Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<client::Msg>,
        _originator: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }
}

/// How the gateway proves itself to the box.
pub enum Credential {
    Certificate(PrivateKey, Box<russh::keys::Certificate>),
    StaticKey(PrivateKey),
}

fn gateway_refusal(rule: &'static str, message: String) -> Refusal {
    Refusal::gateway(rule, message)
}

/// Opens the TCP connection to a box the gateway reaches directly.
pub async fn dial(b: &IksBox, address: &str) -> Result<TcpStream, Refusal> {
    let name = &b.name;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| gateway_refusal("upstream", format!("box {name} did not answer at {address}")))?
        .map_err(|e| gateway_refusal("upstream", format!("cannot reach box {name} at {address}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The box's pinned host key: without one there is nothing to connect to.
pub fn pinned_key(b: &IksBox) -> Result<PublicKey, Refusal> {
    b.host_key.as_deref().and_then(|k| PublicKey::from_openssh(k).ok()).ok_or_else(|| {
        gateway_refusal("host-key", format!("box {} has no pinned host key; an admin must set one", b.name))
    })
}

/// Runs the SSH handshake with the box's sshd over `stream`, accepting only `pinned`,
/// and authenticates.
pub async fn connect<S>(
    b: &IksBox,
    pinned: PublicKey,
    credential: Credential,
    stream: S,
) -> Result<client::Handle<Upstream>, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = &b.name;
    let config = Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(crate::ciphers::CLIENT),
            ..Default::default()
        },
        ..Default::default()
    });
    let seen = Arc::new(Mutex::new(None));
    let handler = Upstream { pinned: pinned.clone(), seen: seen.clone() };
    let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, client::connect_stream(config, stream, handler)).await
    {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            if let Some(got) = crate::sync::lock(&seen).clone() {
                let want = pinned.fingerprint(HashAlg::Sha256);
                if got != want.to_string() {
                    return Err(gateway_refusal(
                        "host-key",
                        format!(
                            "the host key of box {name} does not match the pinned key (pinned {want}, box presented {got}); \
                             the box may have been replaced or the connection intercepted"
                        ),
                    ));
                }
            }
            return Err(gateway_refusal("upstream", format!("SSH handshake with box {name} failed: {e}")));
        }
        Err(_) => return Err(gateway_refusal("upstream", format!("SSH handshake with box {name} timed out"))),
    };
    let login = &b.login;
    let result = match credential {
        Credential::Certificate(key, cert) => handle.authenticate_openssh_cert(login, Arc::new(key), *cert).await,
        Credential::StaticKey(key) => {
            handle.authenticate_publickey(login, PrivateKeyWithHashAlg::new(Arc::new(key), None)).await
        }
    }
    .map_err(|e| gateway_refusal("upstream", format!("authentication to box {name} failed: {e}")))?;
    if !result.success() {
        let how = match b.auth {
            BoxAuth::Certificate => "does the box trust the gateway's CA (TrustedUserCAKeys)?",
            BoxAuth::StaticKey => "is the box's static key in the login's authorized_keys?",
        };
        return Err(gateway_refusal("upstream", format!("box {name} refused the gateway's login as {login}: {how}")));
    }
    Ok(handle)
}
