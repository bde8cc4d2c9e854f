//! The top of the SSH front: one task per connection runs russh's server session with
//! [`Front`] as its handler, whose state moves once, at authentication, from
//! [`Peer::Authenticating`] to an engineer's connection ([`EngineerConn`]) or an agent's
//! ([`AgentConn`]); each kind sees only its own state.
//!
//! russh's callbacks run inside the connection's loop, so they never wait for anything
//! slow: channel work goes to tasks, and every request that asks for a reply gets one here
//! from the rules in [`super::peer`].

use std::net::SocketAddr;
use std::sync::Arc;

use iks_proto::read_ahead::ReadAhead;
use russh::keys::HashAlg;
use russh::server::{
    self, Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, RunningSession, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use super::Port;
use super::agent::{self, AgentConn};
use super::engineer::EngineerConn;
use super::peer::{self, Authenticating, Forward, Identity, KeyLookup, Open, Request};
use crate::sever::Severer;
use crate::state::Gateway;

/// What a connection became, told to its task ([`run`]) so it can end it properly.
enum Settled {
    Engineer(Arc<EngineerConn>),
    Agent(Arc<AgentConn>),
}

/// What the connection's handler knows before authentication, and what it needs to
/// become either kind of peer.
struct Pending {
    auth: Authenticating,
    severer: Severer,
    ended: watch::Receiver<bool>,
    settled: oneshot::Sender<Settled>,
}

/// The handler's state: it moves by value, once.
enum Peer {
    Authenticating(Box<Pending>),
    Engineer(Arc<EngineerConn>),
    Agent(Arc<AgentConn>),
    /// Authentication succeeded with nothing accepted (not expected): nothing is allowed.
    Nobody,
}

pub struct Front {
    app: Arc<Gateway>,
    port: Arc<Port>,
    peer_addr: SocketAddr,
    peer: Peer,
}

/// Serves one TCP connection until it ends, then ends what it carried.
pub(super) async fn run(
    app: Arc<Gateway>,
    port: Arc<Port>,
    stream: TcpStream,
    severer: Severer,
    peer_addr: SocketAddr,
) {
    let (ended, ended_rx) = watch::channel(false);
    let (settled_tx, settled_rx) = oneshot::channel();
    let pending = Pending { auth: Authenticating::default(), severer, ended: ended_rx, settled: settled_tx };
    let config = port.config.clone();
    let front = Front { app, port, peer_addr, peer: Peer::Authenticating(Box::new(pending)) };
    async {
        let settled = match server::run_stream(config, ReadAhead::new(stream), front).await {
            Ok(running) => drive(running, settled_rx).await,
            Err(e) => {
                debug!(error = %e, "SSH handshake failed");
                None
            }
        };
        // Gone before the session's end is written: every pump still waiting stops now.
        ended.send_replace(true);
        match settled {
            Some(Settled::Engineer(conn)) => conn.finish().await,
            Some(Settled::Agent(conn)) => conn.ended().await,
            None => {}
        }
    }
    .instrument(info_span!("ssh", peer = %peer_addr))
    .await;
}

/// Runs the session to its end; an engineer's is also ended when his session is closed.
async fn drive(mut running: RunningSession<Front>, mut settled: oneshot::Receiver<Settled>) -> Option<Settled> {
    let first = tokio::select! {
        _ = &mut running => return settled.try_recv().ok(),
        s = &mut settled => s,
    };
    let Ok(peer) = first else {
        // The handler is gone without settling: so is the session.
        let _ = running.await;
        return None;
    };
    match &peer {
        Settled::Engineer(conn) => conn.serve(running).await,
        Settled::Agent(_) => {
            let _ = running.await;
        }
    }
    Some(peer)
}

impl Front {
    fn authenticating(&mut self) -> Option<&mut Authenticating> {
        match &mut self.peer {
            Peer::Authenticating(pending) => Some(&mut pending.auth),
            _ => None,
        }
    }

    /// The client's first authentication request: its key exchange is done.
    fn began_authentication(&self) {
        self.port.admission.authenticating(Some(self.peer_addr));
    }

    /// Whether an engineer's `key` may authenticate: it is an enabled operator's, or the
    /// store cannot say. Without the store nobody is recognised: the connection is let in
    /// as no one ([`peer::Login::StoreDown`]), so its channels can be refused with "store
    /// unavailable" rather than a bare "Permission denied".
    async fn engineer_key(&mut self, user: &str, key: &russh::keys::PublicKey, verified: bool) -> bool {
        let Some(store_down) = self.authenticating().map(|auth| auth.store_down()) else { return false };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let lookup = if store_down {
            KeyLookup::StoreDown
        } else {
            match self.app.store.operator_by_key_fingerprint(&fingerprint).await {
                Ok(Some(operator)) => {
                    if verified {
                        info!(operator = %operator.login, user, "operator authenticated");
                    }
                    KeyLookup::Operator(operator)
                }
                Ok(None) => KeyLookup::Unknown,
                Err(e) => {
                    warn!(error = %e, "cannot look up an offered key: store unavailable");
                    KeyLookup::StoreDown
                }
            }
        };
        self.authenticating().is_some_and(|auth| auth.engineer_key(user, fingerprint, lookup, verified))
    }

    /// Authentication succeeded: the connection becomes what its accepted key said.
    fn settle(&mut self, handle: server::Handle) {
        let Peer::Authenticating(pending) = std::mem::replace(&mut self.peer, Peer::Nobody) else { return };
        let Pending { auth, severer, ended, settled } = *pending;
        let Some(identity) = auth.settle() else { return };
        if identity.is_working() {
            self.port.admission.authenticated(Some(self.peer_addr));
        }
        let (peer, told) = match identity {
            Identity::Engineer(login) => {
                let conn = Arc::new(EngineerConn::new(self.app.clone(), self.peer_addr, login, handle, ended, severer));
                (Peer::Engineer(conn.clone()), Settled::Engineer(conn))
            }
            Identity::Agent(agent_peer) => {
                let conn = AgentConn::start(
                    self.app.clone(),
                    self.port.agent_audit.clone(),
                    agent_peer,
                    handle,
                    ended,
                    severer,
                );
                (Peer::Agent(conn.clone()), Settled::Agent(conn))
            }
        };
        let _ = settled.send(told);
        self.peer = peer;
    }

    /// Answers a request from the peer's rules; a refused one the gateway refuses everyone
    /// is told to an engineer on his next channel.
    fn answer(&self, request: Request<'_>) -> bool {
        let granted = match &self.peer {
            Peer::Engineer(_) => peer::engineer_may(&self.app.config.ssh, &request),
            Peer::Agent(conn) => conn.may(&request),
            Peer::Authenticating(_) | Peer::Nobody => false,
        };
        if !granted {
            match (&self.peer, request.notice()) {
                (Peer::Engineer(conn), Some(notice)) => conn.note(notice),
                (_, Some(notice)) => debug!(%notice, "agent request refused"),
                (_, None) => debug!(?request, "request refused"),
            }
        }
        granted
    }

    fn reply(&self, channel: ChannelId, request: Request<'_>, session: &mut Session) -> Result<(), russh::Error> {
        if self.answer(request) { session.channel_success(channel) } else { session.channel_failure(channel) }
    }
}

impl Handler for Front {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.began_authentication();
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.began_authentication();
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        self.began_authentication();
        let known = match iks_proto::AgentUser::parse(user) {
            Some(agent_user) => agent::offered(&self.app, &agent_user, offer.public_key).await,
            None => self.engineer_key(user, offer.public_key, false).await,
        };
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let known = match iks_proto::AgentUser::parse(user) {
            Some(agent_user) => {
                let peer = agent::authenticated(&self.app, agent_user, key.public_key).await;
                self.authenticating().is_some_and(|auth| auth.agent(peer))
            }
            None => self.engineer_key(user, key.public_key, true).await,
        };
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.settle(session.handle());
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channel_open(Open::Session, channel, reply).await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let to = Forward { host: host.to_string(), port, originator: originator.to_string(), originator_port };
        self.channel_open(Open::DirectTcpip(to), channel, reply).await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        channel: Channel<Msg>,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channel_open(Open::X11, channel, reply).await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.reply(channel, Request::Pty, session)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.reply(channel, Request::Env(name), session)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.reply(channel, Request::Shell, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.reply(channel, Request::Exec(data), session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.reply(channel, Request::Subsystem(name), session)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.reply(channel, Request::X11, session)
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        Ok(self.answer(Request::AgentForwarding))
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.answer(Request::RemoteForward { address, port: *port }))
    }

    async fn streamlocal_forward(&mut self, path: &str, _session: &mut Session) -> Result<bool, Self::Error> {
        Ok(self.answer(Request::SocketForward(path)))
    }
}

impl Front {
    /// A channel the peer opens: accepted, refused, or (a forward) decided in a task once
    /// the session is known — deciding needs the store and maybe the box, never inside the
    /// callback.
    async fn channel_open(&self, open: Open, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        match (&self.peer, open) {
            (Peer::Engineer(conn), Open::Session) => {
                reply.accept().await;
                tokio::spawn(conn.clone().session_channel(channel));
            }
            (Peer::Engineer(conn), Open::DirectTcpip(to)) => {
                tokio::spawn(conn.clone().direct_tcpip(channel, to, reply));
            }
            (Peer::Agent(conn), open) if conn.channel_opened(&open, channel) => reply.accept().await,
            _ => reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
        }
    }
}
