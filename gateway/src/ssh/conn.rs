//! One engineer's connection: who they are, what they asked for, and — from the first
//! channel on — the session: the access decision, the recording, the box connection.
//!
//! Without the store there is no decision: when the store cannot be reached while an
//! engineer authenticates, the connection is let in knowing no one (see
//! [`Conn::store_down`]) and its first channel is refused with one line, "access refused:
//! store unavailable: …", instead of a bare "Permission denied" that would send the engineer
//! hunting for a key problem. What a session must record while the store is away (its
//! events, its end) waits in bounded queues and is written when the store returns
//! ([`crate::store::until_stored`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use iks_proto::read_ahead::ReadAhead;
use russh::client;
use russh::server::{self, Config};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, Semaphore, mpsc, watch};
use tracing::{Instrument, error, info, info_span, warn};

use super::agent::AgentPeer;
use super::target::Target;
use super::upstream::{self, Credential, Upstream};
use crate::access::{self, Facts, Refusal};
use crate::audit::{Actor, Subjects};
use crate::ca::{self, CertRequest};
use crate::datadir::KeyRole;
use crate::ids::PersonId;
use crate::live::LiveSession;
use crate::model::{BoxAuth, EndReason, IksBox, NewSession, Person, SessionEnd, SessionEvent};
use crate::recording::Recording;
use crate::sever::{DISCONNECT_WAIT, Severer};
use crate::state::App;
use crate::store::{GrantFilter, StoreError};
use crate::sync::lock;

/// How long a closed session's client has, after its channels were closed with the
/// reason, to leave on its own before it is disconnected (and, at
/// [`super::ENDING_WITHIN`], cut).
const CLIENT_LEAVES: Duration = Duration::from_millis(500);

/// How many session events may wait for the store before the channel waits too.
const EVENT_QUEUE: usize = 1024;

/// A session that passed every rule and has its recording and box connection.
pub struct Established {
    pub live: Arc<LiveSession>,
    /// Carries session, ticket, operator and box into every log line about the session.
    pub span: tracing::Span,
    pub upstream: client::Handle<Upstream>,
    pub iks_box: IksBox,
    /// The agent's data connection, for a box reached through its agent.
    pub tunnel: Option<crate::tunnel::DataLink>,
    /// Cuts the box's TCP connection, for a box reached directly.
    box_severer: Option<Severer>,
    /// Bounds what the box's channels hold between russh and the pumps ([`super::bridge`]).
    pub inbox_budget: Arc<Semaphore>,
    /// Session events on their way to the store; taken (closed) when the session ends.
    events: Mutex<Option<mpsc::Sender<SessionEvent>>>,
    event_writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Established {
    /// A handle for queueing session events. A channel task holds one for its whole life,
    /// so the queue stays open (and the session's end waits) until its last event is in.
    pub fn events(&self) -> Events {
        Events(lock(&self.events).clone())
    }

    /// Ends the box's leg: a disconnect if its loop takes it at once, then the socket is
    /// shut down whatever the loop is waiting on.
    async fn cut_box(&self) {
        let polite = self.upstream.disconnect(russh::Disconnect::ByApplication, "session ended", "en");
        let _ = tokio::time::timeout(DISCONNECT_WAIT, polite).await;
        if let Some(severer) = &self.box_severer {
            severer.sever();
        }
        if let Some(link) = &self.tunnel {
            link.close().await;
        }
    }

    /// Why the box's side vanished: for a tunnelled session, whether the agent's data
    /// connection went too (the agent is gone) or only the channel (the box's sshd closed).
    pub async fn lost(&self) -> (EndReason, String) {
        let name = &self.iks_box.name;
        match &self.tunnel {
            Some(link) if link.ended_within(Duration::from_secs(2)).await => {
                (EndReason::AgentDisconnected, format!("the agent of box {name} disconnected"))
            }
            _ => (EndReason::UpstreamLost, format!("the connection to box {name} was lost")),
        }
    }
}

/// Queues session events for the store; waits when the store is behind (bounded queue).
pub struct Events(Option<mpsc::Sender<SessionEvent>>);

impl Events {
    pub async fn send(&self, e: SessionEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e).await;
        }
    }
}

/// The one line an engineer reads while the store is away: no decision without it.
fn store_unavailable() -> Refusal {
    Refusal::gateway("store", "store unavailable: the gateway cannot check access right now; try again shortly")
}

/// Why a session cannot start when its recording cannot be created.
fn recording_refusal(e: &std::io::Error) -> Refusal {
    let message = if crate::recording::is_full(e) {
        format!("recording storage full ({e}); no session goes unrecorded")
    } else {
        format!("the session cannot be recorded ({e}); no session goes unrecorded")
    };
    Refusal::gateway("recording", message)
}

/// The box's connection: the SSH client, the agent's data link or the TCP socket to cut.
type BoxLeg = (client::Handle<Upstream>, Option<crate::tunnel::DataLink>, Option<Severer>);

/// What [`Conn::open_session`] has settled when the session row exists.
struct Started {
    session: crate::model::Session,
    grant: crate::model::Grant,
    org: crate::model::Organisation,
    operator: Person,
    ticket_id: crate::ids::TicketId,
    iks_box: IksBox,
    subjects: Subjects,
}

pub struct Conn {
    pub app: App,
    pub peer: Option<SocketAddr>,
    pub user: OnceLock<String>,
    pub operator: OnceLock<Person>,
    pub handle: OnceLock<server::Handle>,
    established: OnceCell<Result<Established, Refusal>>,
    /// Forwarding requests refused before a channel could show why.
    notices: Mutex<Vec<String>>,
    /// One terminal per session: its recording is the session's recording.
    pub terminal_taken: AtomicBool,
    closer: watch::Sender<Option<String>>,
    /// Set when the connection is an agent's (decided at authentication).
    pub agent: OnceLock<AgentPeer>,
    /// An agent connection opens at most one channel.
    pub agent_channel_taken: AtomicBool,
    /// Becomes `true` when the connection is gone (a tunnel's session watches it).
    pub ended: watch::Sender<bool>,
    /// Set when the store could not be asked whose key this is. Such a connection has no
    /// operator, so every channel is refused ("store unavailable"): it can do nothing.
    pub store_down: AtomicBool,
    /// The engineer's key, as authenticated (its removal ends the session).
    pub key_fingerprint: OnceLock<String>,
    /// Set when a channel began opening the session ([`Conn::finish`] waits for it).
    opening: AtomicBool,
    /// Cuts this connection's socket: ending a session never waits on russh's loop.
    pub severer: Severer,
    /// Bounds what this connection's channels hold between russh and the pumps.
    pub inbox_budget: Arc<Semaphore>,
}

/// Serves one TCP connection until it ends, then records the session's end.
pub async fn run(app: App, config: Arc<Config>, stream: TcpStream, severer: Severer, peer: SocketAddr) {
    let (closer, mut closed) = watch::channel(None);
    let conn = Arc::new(Conn {
        app,
        peer: Some(peer),
        user: OnceLock::new(),
        operator: OnceLock::new(),
        handle: OnceLock::new(),
        established: OnceCell::new(),
        notices: Mutex::new(Vec::new()),
        terminal_taken: AtomicBool::new(false),
        closer,
        agent: OnceLock::new(),
        agent_channel_taken: AtomicBool::new(false),
        ended: watch::channel(false).0,
        store_down: AtomicBool::new(false),
        key_fingerprint: OnceLock::new(),
        opening: AtomicBool::new(false),
        severer,
        inbox_budget: Arc::new(Semaphore::new(super::bridge::INBOX_BUDGET)),
    });
    let handler = super::front::Front { conn: conn.clone() };
    let span = info_span!("ssh", peer = %peer);
    async {
        match server::run_stream(config, ReadAhead::new(stream), handler).await {
            Ok(mut running) => {
                let handle = running.handle();
                let _ = conn.handle.set(handle.clone());
                tokio::select! {
                    _ = &mut running => {}
                    Ok(message) = async { closed.wait_for(Option::is_some).await.map(|m| m.clone().unwrap_or_default()) } => {
                        conn.end_both_legs(&handle, &mut running, &message).await;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "SSH handshake failed"),
        }
        // Gone before the session's end is written: every pump still waiting stops now.
        conn.ended.send_replace(true);
        conn.finish().await;
        if let Some(peer) = conn.agent.get() {
            super::agent::data_ended(&conn.app, peer).await;
        }
    }
    .instrument(span)
    .await;
}

impl Conn {
    /// Access ends now, unconditionally, within [`super::ENDING_WITHIN`]: the box's leg is
    /// cut at once; the engineer's channels were closed with the reason (see
    /// [`LiveSession::close`]), so the client prints it and leaves on its own, or is
    /// disconnected, or — when its connection takes nothing any more — cut.
    async fn end_both_legs<F: Future + Unpin>(&self, handle: &server::Handle, running: &mut F, message: &str) {
        let deadline = tokio::time::Instant::now() + super::ENDING_WITHIN;
        if let Some(est) = self.established() {
            est.cut_box().await;
        }
        if tokio::time::timeout(CLIENT_LEAVES, &mut *running).await.is_ok() {
            return;
        }
        let why = format!("iks-gateway: session closed: {}", crate::text::one_line(message));
        let polite = handle.disconnect(russh::Disconnect::ByApplication, why, "en".into());
        let _ = tokio::time::timeout(DISCONNECT_WAIT, polite).await;
        if tokio::time::timeout_at(deadline, &mut *running).await.is_err() {
            warn!("the engineer's connection did not end; cutting it");
            self.severer.sever();
            let _ = tokio::time::timeout(super::ENDING_WITHIN, running).await;
        }
    }

    /// Why the session is being ended, once it is.
    pub fn closing(&self) -> Option<String> {
        self.closer.borrow().clone()
    }

    /// Resolves when the session is being ended or the connection is gone: every pump
    /// waits on this beside whatever else it waits on.
    pub async fn ending(&self) {
        let mut closed = self.closer.subscribe();
        let mut ended = self.ended.subscribe();
        tokio::select! {
            _ = closed.wait_for(Option::is_some) => {}
            _ = ended.wait_for(|e| *e) => {}
        }
    }

    /// The session, established on first use; every channel shares the one decision.
    pub async fn establish(&self) -> Result<&Established, Refusal> {
        self.established.get_or_init(|| self.open_session()).await.as_ref().map_err(Clone::clone)
    }

    pub fn established(&self) -> Option<&Established> {
        self.established.get().and_then(|r| r.as_ref().ok())
    }

    pub fn add_notice(&self, text: String) {
        let mut notices = lock(&self.notices);
        // A client may repeat a refused request without end: the first few say it all.
        if notices.len() < 8 {
            notices.push(text);
        }
    }

    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.notices))
    }

    fn actor(&self) -> Actor {
        self.operator.get().map_or_else(Actor::system, |p| Actor::person(p.id, &p.login))
    }

    fn client(&self) -> Option<String> {
        self.peer.map(|p| p.to_string())
    }

    async fn refuse(&self, subjects: Subjects, refusal: Refusal) -> Refusal {
        let message = refusal.to_string();
        warn!(rule = refusal.rule(), %message, "session refused");
        if let Err(e) = self
            .app
            .store
            .record_refusal(&self.actor(), subjects, refusal.rule(), &message, self.client().as_deref())
            .await
        {
            error!(error = %e, "cannot store a refusal");
        }
        refusal
    }

    async fn open_session(&self) -> Result<Established, Refusal> {
        self.opening.store(true, Ordering::SeqCst);
        let app = &self.app;
        let store_down = |e: StoreError| {
            // The store cannot take the refusal either: the log is its record.
            warn!(error = %e, "session refused: store unavailable");
            store_unavailable()
        };
        let operator = match self.operator.get() {
            Some(op) => op.clone(),
            None if self.store_down.load(Ordering::SeqCst) => {
                warn!("session refused: the store was unavailable at authentication");
                return Err(store_unavailable());
            }
            None => return Err(Refusal::gateway("operator", "not authenticated")),
        };
        let user = self.user.get().cloned().unwrap_or_default();
        let target = match Target::parse(&user) {
            Ok(t) => t,
            Err(e) => return Err(self.refuse(Subjects::default(), Refusal::Target(e)).await),
        };
        let ticket = match app.store.ticket(target.ticket).await {
            Ok(t) => t,
            Err(StoreError::NotFound { .. }) => {
                return Err(self.refuse(Subjects::default(), Refusal::NoTicket(target.ticket)).await);
            }
            Err(e) => return Err(store_down(e)),
        };
        let org = app.store.org(ticket.org_id).await.map_err(store_down)?;
        let mut subjects = Subjects { org: Some(org.id), ticket: Some(ticket.id), ..Default::default() };
        let ticket_grants = app
            .store
            .list_grants(&GrantFilter { ticket: Some(ticket.id), ..Default::default() })
            .await
            .map_err(store_down)?;
        let iks_box = match &target.box_name {
            Some(name) => match app.store.box_by_name(org.id, name).await {
                Ok(b) => b,
                Err(StoreError::NotFound { .. }) => {
                    let refusal = Refusal::NoSuchBox { ticket: ticket.id, name: name.clone(), org: org.name.clone() };
                    return Err(self.refuse(subjects, refusal).await);
                }
                Err(e) => return Err(store_down(e)),
            },
            None => {
                let ids: Vec<_> = ticket_grants.iter().map(|g| g.box_id).collect::<HashSet<_>>().into_iter().collect();
                match ids.as_slice() {
                    [] => return Err(self.refuse(subjects, Refusal::NoBoxRequested { ticket: ticket.id }).await),
                    [one] => app.store.get_box(*one).await.map_err(store_down)?,
                    several => {
                        let mut names = Vec::new();
                        for id in several {
                            names.push(app.store.get_box(*id).await.map_err(store_down)?.name);
                        }
                        names.sort();
                        let refusal = Refusal::SeveralBoxes { ticket: ticket.id, names };
                        return Err(self.refuse(subjects, refusal).await);
                    }
                }
            }
        };
        subjects.box_ = Some(iks_box.id);
        let grants: Vec<_> = ticket_grants.into_iter().filter(|g| g.box_id == iks_box.id).collect();
        let mut names = HashMap::new();
        let named: Vec<PersonId> = grants.iter().flat_map(|g| [g.decided_by, g.revoked_by]).flatten().collect();
        for id in named {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
                slot.insert(app.store.person(id).await.map(|p| p.login).unwrap_or_else(|_| format!("person {id}")));
            }
        }
        let facts = Facts {
            now: crate::time::now(),
            tz: app.tz(),
            operator: &operator,
            ticket: &ticket,
            org: &org,
            iks_box: &iks_box,
            grants: &grants,
            names: &names,
            catalog: &app.config.products,
        };
        let grant = match access::decide(&facts) {
            Ok(g) => g.clone(),
            Err(refusal) => return Err(self.refuse(subjects, refusal).await),
        };
        subjects.grant = Some(grant.id);
        if iks_box.address.is_none() {
            let presence = crate::tunnel::presence(app, &iks_box).await.map_err(store_down)?;
            if let Err(refusal) = access::check_agent(ticket.id, &iks_box.name, &presence, crate::time::now(), app.tz())
            {
                return Err(self.refuse(subjects, refusal).await);
            }
        }
        if let Err(e) = crate::recording::check_room(&app.data_dir.recordings_dir()) {
            return Err(self.refuse(subjects, recording_refusal(&e).about(ticket.id)).await);
        }
        let new = NewSession {
            grant_id: grant.id,
            ticket_id: ticket.id,
            box_id: iks_box.id,
            operator_id: operator.id,
            client_addr: self.client(),
            node: app.node.clone(),
        };
        let session = app.store.start_session(&self.actor(), &new, org.id).await.map_err(store_down)?;
        let span = info_span!("session", session.id = %session.id, ticket = %ticket.id, operator = %operator.login, r#box = %iks_box.name);
        let started = Started { session, grant, org, operator, ticket_id: ticket.id, iks_box, subjects };
        self.record_and_connect(started).instrument(span).await
    }

    /// Everything after the session row exists: the recording (no recording, no session),
    /// the box connection, the live registry. A failure ends the session row it started.
    async fn record_and_connect(&self, st: Started) -> Result<Established, Refusal> {
        let app = &self.app;
        let Started { session, grant, org, operator, ticket_id, iks_box, subjects } = st;
        let end = |reason, recording: Option<crate::recording::Finished>| SessionEnd {
            reason,
            bytes_in: 0,
            bytes_out: 0,
            recording: recording.as_ref().map(|f| f.relative.clone()),
            recording_sha256: recording.map(|f| f.sha256),
        };
        let title = format!("{ticket_id} {} {}@{}", session.id, operator.login, iks_box.name);
        let limits = app.config.recording.limits();
        let recording =
            match Recording::create(&app.data_dir.recordings_dir(), session.id, session.started_at, &title, limits) {
                Ok(r) => r,
                Err(e) => {
                    let (reason, _) = crate::recording::failure(&e);
                    self.end_row(session.id, org.id, &end(reason, None)).await;
                    return Err(self.refuse(subjects, recording_refusal(&e).about(ticket_id)).await);
                }
            };
        let _ = app.store.set_session_recording(session.id, recording.relative()).await;
        let valid_until = grant.ends_at.unwrap_or_else(crate::time::now);
        let credential = match iks_box.auth {
            BoxAuth::Certificate => ca::issue(
                &app.user_ca,
                &CertRequest {
                    principal: &iks_box.login,
                    key_id: format!("{ticket_id} {} {}", session.id, operator.login),
                    serial: u64::try_from(session.id.get()).unwrap_or(0),
                    valid_until,
                    permit_port_forwarding: iks_box.allow_forwarding,
                },
            )
            .map(|(key, cert)| Credential::Certificate(key, Box::new(cert)))
            .map_err(|e| e.to_string()),
            BoxAuth::StaticKey => {
                app.data_dir.key(KeyRole::BoxStatic(iks_box.id)).map(Credential::StaticKey).map_err(|e| e.to_string())
            }
        };
        // A shutdown while the box is still answering ends the session now, not after the
        // connect timeout: shutdown only sees sessions already in the live registry.
        let mut shutdown = app.shutdown.subscribe();
        let connected = match credential {
            Ok(c) => tokio::select! {
                r = self.connect_box(&iks_box, c, ticket_id, session.id) => r,
                _ = shutdown.wait_for(|s| *s) => Err(Refusal::gateway("shutdown", "the gateway is shutting down")),
            },
            Err(e) => Err(Refusal::gateway("upstream", e)),
        };
        let (upstream, tunnel, box_severer) = match connected {
            Ok(h) => h,
            Err(refusal) => {
                let reason =
                    if refusal.rule() == "shutdown" { EndReason::GatewayShutdown } else { EndReason::UpstreamLost };
                let finished = recording.finish().ok();
                self.end_row(session.id, org.id, &end(reason, finished)).await;
                return Err(self.refuse(subjects, refusal.about(ticket_id)).await);
            }
        };
        let live = LiveSession::new(
            &session,
            org.id,
            &operator,
            self.key_fingerprint.get().cloned().unwrap_or_default(),
            &iks_box,
            recording,
            self.closer.clone(),
        );
        app.live.insert(live.clone());
        let (events, mut queue) = mpsc::channel::<SessionEvent>(EVENT_QUEUE);
        let app_for_writer = app.clone();
        let writer = tokio::spawn(
            async move {
                // While the store is away, events wait here in order; once the queue is
                // full the session's channels wait too (bounded memory, nothing dropped).
                while let Some(e) = queue.recv().await {
                    let written = crate::store::until_stored(&app_for_writer.shutdown, "session event", || {
                        app_for_writer.store.add_session_event(&e)
                    })
                    .await;
                    if let Err(err) = written {
                        error!(error = %err, kind = e.kind, "cannot store a session event");
                    }
                }
            }
            .in_current_span(),
        );
        info!(grant = %grant.id, until = %crate::time::to_db(valid_until), "session started");
        // Registered first, checked second: either shutdown saw this session or it sees shutdown.
        if *app.shutdown.borrow() {
            live.close(EndReason::GatewayShutdown, "the gateway is shutting down");
        }
        Ok(Established {
            live,
            span: tracing::Span::current(),
            upstream,
            iks_box,
            tunnel,
            box_severer,
            inbox_budget: Arc::new(Semaphore::new(super::bridge::INBOX_BUDGET)),
            events: Mutex::new(Some(events)),
            event_writer: Mutex::new(Some(writer)),
        })
    }

    /// Connects to the box's sshd: directly over TCP, or through the box's agent.
    async fn connect_box(
        &self,
        b: &IksBox,
        credential: Credential,
        ticket: crate::ids::TicketId,
        session: crate::ids::SessionId,
    ) -> Result<BoxLeg, Refusal> {
        let pinned = upstream::pinned_key(b)?;
        match &b.address {
            Some(address) => {
                let stream = upstream::dial(b, address).await?;
                let (severer, stream) = Severer::new(stream).map_err(|e| {
                    Refusal::gateway("upstream", format!("cannot use the connection to box {}: {e}", b.name))
                })?;
                let handle = upstream::connect(b, pinned, credential, ReadAhead::new(stream)).await?;
                Ok((handle, None, Some(severer)))
            }
            None => {
                let (link, stream) = crate::tunnel::open(&self.app, b, ticket, session).await?;
                match upstream::connect(b, pinned, credential, stream).await {
                    Ok(handle) => Ok((handle, Some(link), None)),
                    Err(refusal) => {
                        link.close().await;
                        Err(refusal)
                    }
                }
            }
        }
    }

    /// The connection is gone: write the session's end (once). A session still being
    /// opened by a channel task is waited for and ended too, or it would stay live with no
    /// connection.
    async fn finish(&self) {
        if self.opening.load(Ordering::SeqCst) {
            let _ = self.establish().await;
        }
        let Some(est) = self.established() else { return };
        let live = &est.live;
        // The engineer left (unless something else ended the session first): say so before
        // dropping the box connection, whose end the pumps would otherwise report as a loss.
        live.set_end_reason(EndReason::ClientExit);
        est.cut_box().await;
        // Close our end of the event queue; the writer finishes once every channel task has
        // sent its last event (their closing totals) and dropped its handle.
        lock(&est.events).take();
        let writer = lock(&est.event_writer).take();
        if let Some(w) = writer
            && tokio::time::timeout(Duration::from_secs(10), w).await.is_err()
        {
            warn!(session.id = %live.id, "session events still queued after 10 s");
        }
        let recording = lock(&live.recording).take();
        let finished = match recording.map(Recording::finish) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                error!(session.id = %live.id, error = %e, "cannot finish the recording");
                live.set_end_reason(EndReason::RecordingFailed);
                None
            }
            None => None,
        };
        let end = SessionEnd {
            reason: live.end_reason(),
            bytes_in: i64::try_from(live.bytes_in.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            bytes_out: i64::try_from(live.bytes_out.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            recording: finished.as_ref().map(|f| f.relative.clone()),
            recording_sha256: finished.map(|f| f.sha256),
        };
        if let Some(s) = self.end_row(live.id, live.org, &end).await {
            info!(session.id = %s.id, reason = end.reason.as_str(), bytes_in = s.bytes_in, bytes_out = s.bytes_out, "session ended");
        }
        self.app.live.remove(live.id);
        crate::search::index_later(&self.app, live.id);
    }

    /// Writes a session's end, waiting for the store if it is away; at shutdown what is
    /// still unwritten is left to [`crate::live::end_crashed`] at the next start.
    async fn end_row(
        &self,
        id: crate::ids::SessionId,
        org: crate::ids::OrgId,
        end: &SessionEnd,
    ) -> Option<crate::model::Session> {
        let app = &self.app;
        let system = Actor::system();
        let written =
            crate::store::until_stored(&app.shutdown, "session end", || app.store.end_session(&system, id, org, end))
                .await;
        match written {
            Ok(s) => Some(s),
            Err(e) if e.is_transient() => {
                error!(session.id = %id, error = %e, "cannot record the session's end; the next start will");
                None
            }
            Err(e) => {
                error!(session.id = %id, error = %e, "cannot record the session's end");
                None
            }
        }
    }

    pub fn mark_terminal(&self) -> bool {
        !self.terminal_taken.swap(true, Ordering::SeqCst)
    }
}
