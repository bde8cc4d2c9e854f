//! russh's server callbacks. They run inside the connection's loop, so they never wait
//! for anything slow: channel work goes to tasks ([`super::bridge`]), and every request
//! that asks for a reply gets one here. Agents share the port; their connections are
//! told apart by the user name and handled by [`super::agent`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tracing::{debug, info, warn};

use super::agent::{self, AgentPeer};
use super::conn::Conn;
use super::policy;

pub struct Front {
    pub conn: Arc<Conn>,
}

impl Front {
    /// What the connection is for, when it is an agent's.
    fn agent(&self) -> Option<&AgentPeer> {
        self.conn.agent.get()
    }

    /// Whether `key` may authenticate: it is an enabled operator's (then remembered when
    /// `verified`), or the store cannot say. Without the store nobody is recognised: the
    /// connection is let in as no one ([`Conn::store_down`]), so its channels can be
    /// refused with "store unavailable" rather than a bare "Permission denied".
    async fn operator_key(&self, user: &str, key: &russh::keys::PublicKey, verified: bool) -> bool {
        if self.conn.store_down.load(Ordering::SeqCst) {
            return true;
        }
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        match self.conn.app.store.operator_by_key_fingerprint(&fingerprint).await {
            Ok(Some(operator)) => {
                if verified {
                    info!(operator = %operator.login, user, "operator authenticated");
                    let _ = self.conn.user.set(user.to_string());
                    let _ = self.conn.operator.set(operator);
                    let _ = self.conn.key_fingerprint.set(fingerprint);
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(error = %e, "cannot look up an offered key: store unavailable");
                self.conn.store_down.store(true, Ordering::SeqCst);
                true
            }
        }
    }

    /// The client's first authentication request: its key exchange is done.
    fn began_authentication(&self) {
        self.conn.app.admission.authenticating(self.conn.peer);
    }

    /// Keeps a refused request's notice for the engineer's first channel. An agent's
    /// connection prints nothing, so its requests leave nothing behind; an engineer's
    /// notices are few and short ([`Conn::add_notice`] keeps the first ones).
    fn notice(&self, text: String) {
        if self.agent().is_some() {
            debug!(notice = %text, "agent request refused");
        } else {
            // Shown as the client sent it, controls visible (it may carry any bytes).
            self.conn.add_notice(crate::text::one_line(&text));
        }
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
            Some(agent_user) => agent::offered(&self.conn, &agent_user, offer.public_key).await,
            None => self.operator_key(user, offer.public_key, false).await,
        };
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if let Some(agent_user) = iks_proto::AgentUser::parse(user) {
            let ok = agent::authenticated(&self.conn, agent_user, key.public_key).await;
            return Ok(if ok { Auth::Accept } else { Auth::reject() });
        }
        Ok(if self.operator_key(user, key.public_key, true).await { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        agent::succeeded(&self.conn, session.handle());
        // Anyone may log in to enrol (any key), and a connection let in while the store is
        // down can do nothing: neither leaves the unauthenticated count or its deadline.
        let working = match self.agent() {
            Some(peer) => !matches!(peer, AgentPeer::Enrolling(_)),
            None => self.conn.operator.get().is_some(),
        };
        if working {
            self.conn.app.admission.authenticated(self.conn.peer);
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let _ = self.conn.handle.set(session.handle());
        if let Some(peer) = self.agent() {
            if agent::channel_opened(&self.conn, peer, channel) {
                reply.accept().await;
            } else {
                reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            }
            return Ok(());
        }
        reply.accept().await;
        tokio::spawn(super::bridge::session_channel(self.conn.clone(), channel));
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
        if self.agent().is_some() {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        let target = super::bridge::Forward {
            host: host.to_string(),
            port,
            originator: originator.to_string(),
            originator_port,
        };
        // Deciding needs the store and maybe the box: never inside the callback.
        tokio::spawn(super::bridge::direct_tcpip(self.conn.clone(), channel, target, reply));
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
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
        if self.agent().is_some() {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.agent().is_none() && policy::env_allowed(&self.conn.app.config.ssh, name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        if self.agent().is_some() {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.agent() {
            Some(peer) if !agent::exec_allowed(peer, data) => session.channel_failure(channel),
            _ => session.channel_success(channel),
        }
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if policy::subsystem_allowed(name) && self.agent().is_none() {
            session.channel_success(channel)
        } else {
            debug!(subsystem = name, "refused subsystem");
            session.channel_failure(channel)
        }
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
        self.notice("X11 forwarding is refused by the gateway".into());
        session.channel_failure(channel)
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        // The engineer's agent must never be reachable from a customer's box.
        self.notice("agent forwarding is refused by the gateway".into());
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.notice(format!("remote port forwarding ({}:{port}) is refused by the gateway", shorten(address)));
        Ok(false)
    }

    async fn streamlocal_forward(&mut self, path: &str, _session: &mut Session) -> Result<bool, Self::Error> {
        self.notice(format!("remote socket forwarding ({}) is refused by the gateway", shorten(path)));
        Ok(false)
    }
}

/// What a client asked for, cut to a length worth printing back.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
