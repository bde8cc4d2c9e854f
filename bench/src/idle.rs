//! Many idle interactive sessions from one process: russh client connections (one TCP
//! connection, one PTY and one shell each), so that the bench needs no thousand `ssh`
//! processes and no multiplexing that would make them one session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, client};
use tokio::task::JoinSet;

/// How many sessions are being set up at once (sshd's MaxStartups and the gateway's
/// store see at most this many handshakes in flight).
const IN_FLIGHT: usize = 16;

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    // Loopback only, to a gateway the bench started itself.
    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Open sessions; dropping them disconnects.
pub struct Sessions {
    handles: Vec<client::Handle<Client>>,
    drains: JoinSet<()>,
}

impl Sessions {
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Disconnects every session.
    pub async fn close(mut self) {
        for h in &self.handles {
            let _ = h.disconnect(russh::Disconnect::ByApplication, "bench done", "en").await;
        }
        self.handles.clear();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), async { while self.drains.join_next().await.is_some() {} })
                .await;
        self.drains.abort_all();
    }
}

/// Opens up to `count` sessions as `user` at `port` within `limit`; a session counts once
/// the box's shell has written something (its prompt) through the route.
pub async fn open(port: u16, user: &str, key: PrivateKey, count: usize, limit: Duration) -> (Sessions, Vec<String>) {
    let key = Arc::new(key);
    let deadline = Instant::now() + limit;
    let mut pending = JoinSet::new();
    let mut sessions = Sessions { handles: Vec::with_capacity(count), drains: JoinSet::new() };
    let mut errors = Vec::new();
    let mut started = 0;
    while sessions.count() + errors.len() < count {
        while started < count && pending.len() < IN_FLIGHT && Instant::now() < deadline {
            let (user, key) = (user.to_string(), key.clone());
            pending.spawn(tokio::time::timeout_at(deadline.into(), one(port, user, key)));
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(Ok((handle, drain))))) => {
                sessions.handles.push(handle);
                sessions.drains.spawn(drain);
            }
            Some(Ok(Ok(Err(e)))) => errors.push(format!("{e:#}")),
            Some(Ok(Err(_))) => errors.push(format!("not up within {limit:?}")),
            Some(Err(e)) => errors.push(e.to_string()),
            None => break,
        }
    }
    (sessions, errors)
}

type Drain = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn one(port: u16, user: String, key: Arc<PrivateKey>) -> anyhow::Result<(client::Handle<Client>, Drain)> {
    let config = Arc::new(client::Config::default());
    let mut h = client::connect(config, ("127.0.0.1", port), Client).await.context("connect")?;
    let auth = h.authenticate_publickey(&user, PrivateKeyWithHashAlg::new(key, None)).await?;
    if !auth.success() {
        bail!("authentication refused");
    }
    let mut ch = h.channel_open_session().await.context("open session")?;
    ch.request_pty(false, "xterm", 80, 24, 0, 0, &[]).await?;
    ch.request_shell(true).await?;
    // The gateway's notices arrive on stderr; a refusal is one, followed by the close.
    let mut said = String::new();
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Data { .. }) => break,
            Some(ChannelMsg::ExtendedData { data, .. }) => said = String::from_utf8_lossy(&data).trim().to_string(),
            Some(ChannelMsg::Close | ChannelMsg::Eof) | None => bail!("the session closed: {said}"),
            Some(_) => {}
        }
    }
    // Keep reading so russh's per-channel queue never fills and stalls the connection.
    let drain: Drain = Box::pin(async move { while ch.wait().await.is_some() {} });
    Ok((h, drain))
}
