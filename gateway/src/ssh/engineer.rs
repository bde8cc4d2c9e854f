//! One engineer's connection, settled at authentication: who he is ([`Login`]), what his
//! channels share ([`Channels`]), and — from the first channel on — the session: opened
//! once ([`super::opening`]), ended with both legs cut, its end written when the
//! connection goes.
//!
//! Without the store there is no decision: when the store cannot be reached while an
//! engineer authenticates, the connection is let in knowing no one ([`Login::StoreDown`])
//! and its first channel is refused with one line, "access refused: store unavailable: …",
//! instead of a bare "Permission denied" that would send the engineer hunting for a key
//! problem.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::server::{self, ChannelOpenHandle, Msg as ServerMsg};
use russh::{Channel, ChannelOpenFailure};
use serde_json::json;
use tokio::sync::{OnceCell, Semaphore, watch};
use tracing::{Instrument as _, warn};

use super::bridge::{self, Inbox, pump_in, pump_out, refuse, relay, replay};
use super::established::Established;
use super::opening::{Opening, store_unavailable};
use super::peer::{Forward, Login};
use super::session::{ChannelRefusal, Channels, ENDING_WITHIN, Ending, Lines, may_start};
use super::tap::Tap;
use crate::sever::{DISCONNECT_WAIT, Severer};
use crate::state::Gateway;
use crate::sync::lock;
use iks_domain::decision::Refusal;
use iks_domain::model::{EndReason, SessionEvent};

/// How long a closed session's client has, after its channels were closed with the
/// reason, to leave on its own before it is disconnected (and, at
/// [`ENDING_WITHIN`], cut).
const CLIENT_LEAVES: Duration = Duration::from_millis(500);

pub struct EngineerConn {
    app: Arc<Gateway>,
    peer: SocketAddr,
    login: Login,
    handle: server::Handle,
    /// Lets the session's live entry close this connection ([`crate::live::LiveSession::close`]).
    closer: watch::Sender<Option<String>>,
    ending: Ending,
    channels: Mutex<Channels>,
    /// The session: one access decision per connection, made by its first channel.
    established: OnceCell<Result<Established, Refusal>>,
    /// Set when a channel began opening the session ([`EngineerConn::finish`] waits for it).
    opening: AtomicBool,
    /// Cuts this connection's socket: ending a session never waits on russh's loop.
    severer: Severer,
    /// Bounds what this connection's channels hold between russh and the pumps.
    inbox_budget: Arc<Semaphore>,
}

impl EngineerConn {
    /// `ended` becomes `true` when the connection is gone.
    pub fn new(
        app: Arc<Gateway>,
        peer: SocketAddr,
        login: Login,
        handle: server::Handle,
        ended: watch::Receiver<bool>,
        severer: Severer,
    ) -> Self {
        let (closer, closed) = watch::channel(None);
        Self {
            app,
            peer,
            login,
            handle,
            closer,
            ending: Ending::new(closed, ended),
            channels: Mutex::new(Channels::default()),
            established: OnceCell::new(),
            opening: AtomicBool::new(false),
            severer,
            inbox_budget: bridge::budget(),
        }
    }

    /// Keeps a refused request's notice for the engineer's next channel.
    pub fn note(&self, notice: String) {
        lock(&self.channels).note(notice);
    }

    /// Serves the connection (`running`, russh's session) until it ends; when the session
    /// is closed meanwhile (kill, revocation, expiry, shutdown), ends both legs.
    pub async fn serve<F: Future + Unpin>(&self, mut running: F) {
        let mut closed = self.closer.subscribe();
        tokio::select! {
            _ = &mut running => {}
            Ok(message) = async { closed.wait_for(Option::is_some).await.map(|m| m.clone().unwrap_or_default()) } => {
                self.end_both_legs(&mut running, &message).await;
            }
        }
    }

    /// Access ends now, unconditionally, within [`ENDING_WITHIN`]: the box's leg is
    /// cut at once; the engineer's channels were closed with the reason (see
    /// [`crate::live::LiveSession::close`]), so the client prints it and leaves on its own,
    /// or is disconnected, or — when its connection takes nothing any more — cut.
    async fn end_both_legs<F: Future + Unpin>(&self, running: &mut F, message: &str) {
        let deadline = tokio::time::Instant::now() + ENDING_WITHIN;
        if let Some(est) = self.established() {
            est.cut_box().await;
        }
        if tokio::time::timeout(CLIENT_LEAVES, &mut *running).await.is_ok() {
            return;
        }
        let why = format!("iks-gateway: session closed: {}", iks_domain::text::one_line(message));
        let polite = self.handle.disconnect(russh::Disconnect::ByApplication, why, "en".into());
        let _ = tokio::time::timeout(DISCONNECT_WAIT, polite).await;
        if tokio::time::timeout_at(deadline, &mut *running).await.is_err() {
            warn!("the engineer's connection did not end; cutting it");
            self.severer.sever();
            let _ = tokio::time::timeout(ENDING_WITHIN, running).await;
        }
    }

    /// The session, established on first use; every channel shares the one decision.
    async fn establish(&self) -> Result<&Established, Refusal> {
        self.established.get_or_init(|| self.open_session()).await.as_ref().map_err(Clone::clone)
    }

    fn established(&self) -> Option<&Established> {
        self.established.get().and_then(|r| r.as_ref().ok())
    }

    async fn open_session(&self) -> Result<Established, Refusal> {
        self.opening.store(true, Ordering::SeqCst);
        match &self.login {
            Login::Operator { user, person, key_fingerprint } => {
                let opening = Opening {
                    app: &self.app,
                    operator: person,
                    user,
                    key_fingerprint,
                    client: Some(self.peer.to_string()),
                    closer: &self.closer,
                };
                opening.open().await
            }
            Login::StoreDown => {
                warn!("session refused: the store was unavailable at authentication");
                Err(store_unavailable())
            }
        }
    }

    /// The connection is gone: write the session's end (once). A session still being
    /// opened by a channel task is waited for and ended too, or it would stay live with no
    /// connection.
    pub async fn finish(&self) {
        // The severer holds a second handle on the socket: a channel task still holding this
        // connection would keep it open, and the client (a ControlMaster) would never see
        // the end.
        self.severer.sever();
        if self.opening.load(Ordering::SeqCst) {
            let _ = self.establish().await;
        }
        if let Some(est) = self.established() {
            est.end(&self.app).await;
        }
    }

    /// Runs one session channel from open to close.
    pub async fn session_channel(self: Arc<Self>, channel: Channel<ServerMsg>) {
        let id = channel.id();
        let (front_rx, front_tx) = channel.split();
        let mut front_rx = Inbox::drain(front_rx, self.inbox_budget.clone());
        let Some((setup, start)) = bridge::collect(&mut front_rx, &self.app.config.ssh).await else { return };
        let pty = bridge::terminal(&setup);
        let lines = Lines::new(pty.is_some());
        if let Err(refusal) = may_start(&start, self.ending.closing()) {
            return refuse(&front_tx, &refusal, lines).await;
        }
        let est = match self.establish().await {
            Ok(est) => est,
            Err(refusal) => return refuse(&front_tx, &ChannelRefusal::Access(refusal), lines).await,
        };
        let events = est.events();
        let admitted = lock(&self.channels).admit(pty.is_some());
        for notice in &admitted.notices {
            let _ = front_tx.extended_data_bytes(1, lines.notice(notice).into_bytes()).await;
        }
        if let Err(refusal) = admitted.result {
            return refuse(&front_tx, &refusal, lines).await;
        }
        let env = bridge::env(&setup);
        let up = match est.upstream.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(message) = self.ending.closing() {
                    return refuse(&front_tx, &ChannelRefusal::Closed(message), lines).await;
                }
                est.live.close(EndReason::UpstreamLost, &format!("the box closed the connection ({e})"));
                return refuse(&front_tx, &ChannelRefusal::BoxChannel(e.to_string()), lines).await;
            }
        };
        let (up_rx, up_tx) = up.split();
        let mut up_rx = Inbox::drain(up_rx, est.inbox_budget.clone());
        let mut backlog = Vec::new();
        let (what, kind) = (start.what(), start.kind());
        let replayed = tokio::select! {
            r = replay(&up_tx, &mut up_rx, setup, start, &mut backlog, &front_tx) => r,
            () = self.ending.ending() => Err("the session ended"),
        };
        if let Err(why) = replayed {
            let _ = up_tx.close().await;
            // A session closed meanwhile says why (a revocation), not that the box did not start.
            let refusal = match self.ending.closing() {
                Some(message) => ChannelRefusal::Closed(message),
                None => ChannelRefusal::BoxStart { why, what },
            };
            return refuse(&front_tx, &refusal, lines).await;
        }
        // Every channel hears the gateway's warnings and why the session closed: a terminal
        // shows them, a plain command prints them on stderr.
        est.live.add_notice_target(id, self.handle.clone());
        // Registered first, checked second: either the goodbye reached this channel or it is seen here.
        if let Some(message) = self.ending.closing() {
            let _ = up_tx.close().await;
            est.live.remove_notice_target(id);
            return refuse(&front_tx, &ChannelRefusal::Closed(message), lines).await;
        }
        let tap = Arc::new(Tap::new(est.live.clone(), i64::from(u32::from(id)), pty, &kind, env));
        for e in tap.started() {
            events.send(e).await;
        }
        let (to_box, to_engineer) = (AtomicU64::new(0), AtomicU64::new(0));
        let inbound = pump_in(est, &events, front_rx, &up_tx, Some(&tap), &to_box);
        let outbound = pump_out(&self.handle, est, &events, up_rx, backlog, &front_tx, id, Some(&tap), &to_engineer);
        relay(&self.ending, inbound, outbound).instrument(est.span.clone()).await;
        let _ = up_tx.close().await;
        est.live.remove_notice_target(id);
        // Written when the channel closes, not when the connection does: a ControlMaster
        // connection carries many channels over hours.
        for e in tap.finished() {
            events.send(e).await;
        }
    }

    /// Opens a `-L` forward through the box when its policy allows, refuses it otherwise.
    /// The box's policy is the live one ([`crate::live::LiveSession::forwarding`]): turned
    /// off while the session runs, new forwards are refused and open ones closed.
    pub async fn direct_tcpip(self: Arc<Self>, channel: Channel<ServerMsg>, to: Forward, reply: ChannelOpenHandle) {
        if self.ending.closing().is_some() {
            return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        }
        let est = match self.establish().await {
            Ok(est) => est,
            Err(_) => return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await,
        };
        if !est.live.forwarding() {
            est.live
                .notify(&format!("port forwarding to {}:{} is refused on box {}", to.host, to.port, est.iks_box.name));
            return reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        }
        let upstream = est
            .upstream
            .channel_open_direct_tcpip(to.host.clone(), to.port, to.originator.clone(), to.originator_port)
            .await;
        let up = match upstream {
            Ok(c) => c,
            Err(_) => return reply.reject(ChannelOpenFailure::ConnectFailed).await,
        };
        reply.accept().await;
        let channel_id = i64::from(u32::from(channel.id()));
        let event = |kind: &str, details| SessionEvent {
            session_id: est.live.id,
            at: iks_domain::time::now(),
            channel: Some(channel_id),
            kind: kind.into(),
            details,
        };
        let events = est.events();
        events.send(event("forward.open", json!({ "host": to.host, "port": to.port }))).await;
        let id = channel.id();
        let (front_rx, front_tx) = channel.split();
        let (up_rx, up_tx) = up.split();
        let front_rx = Inbox::drain(front_rx, self.inbox_budget.clone());
        let up_rx = Inbox::drain(up_rx, est.inbox_budget.clone());
        let (to_box, to_engineer) = (AtomicU64::new(0), AtomicU64::new(0));
        let inbound = pump_in(est, &events, front_rx, &up_tx, None, &to_box);
        let outbound = pump_out(&self.handle, est, &events, up_rx, Vec::new(), &front_tx, id, None, &to_engineer);
        let mut stopped = est.live.forwarding_watch();
        tokio::select! {
            () = relay(&self.ending, inbound, outbound) => {}
            _ = stopped.wait_for(|allowed| !*allowed) => {
                est.live.notify(&format!("port forwarding on box {} was turned off; the forward to {}:{} is closed", est.iks_box.name, to.host, to.port));
            }
        }
        let _ = up_tx.close().await;
        let _ = front_tx.eof().await;
        let _ = front_tx.close().await;
        let details = json!({
            "host": to.host,
            "port": to.port,
            "bytes_in": to_box.load(Ordering::Relaxed),
            "bytes_out": to_engineer.load(Ordering::Relaxed),
        });
        events.send(event("forward.close", details)).await;
    }
}
