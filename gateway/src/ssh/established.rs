//! An engineer's session once it passed every rule: its live entry, its recording, the
//! box's connection and the queue of its events; how it ends, and how its end is written.
//!
//! What a session must record while the store is away (its events, its end) waits in
//! bounded queues and is written when the store returns ([`crate::store::until_stored`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, error, info, warn};

use super::upstream::Upstream;
use crate::live::LiveSession;
use crate::recording::Recording;
use crate::sever::{DISCONNECT_WAIT, Severer};
use crate::state::Gateway;
use crate::sync::lock;
use iks_domain::audit::Actor;
use iks_domain::ids::{OrgId, SessionId};
use iks_domain::model::{EndReason, IksBox, SessionEnd, SessionEvent};

/// How many session events may wait for the store before the channel waits too.
const EVENT_QUEUE: usize = 1024;

/// The box's connection: the SSH client, and what else to cut when it ends.
pub struct BoxLeg {
    pub upstream: client::Handle<Upstream>,
    /// The agent's data connection, for a box reached through its agent.
    pub tunnel: Option<crate::tunnel::DataLink>,
    /// Cuts the box's TCP connection, for a box reached directly.
    pub severer: Option<Severer>,
}

/// A session that passed every rule and has its recording and box connection.
pub struct Established {
    pub live: Arc<LiveSession>,
    /// Carries session, ticket, operator and box into every log line about the session.
    pub span: tracing::Span,
    pub upstream: client::Handle<Upstream>,
    pub iks_box: IksBox,
    /// The agent's data connection, for a box reached through its agent.
    tunnel: Option<crate::tunnel::DataLink>,
    /// Cuts the box's TCP connection, for a box reached directly.
    box_severer: Option<Severer>,
    /// Bounds what the box's channels hold between russh and the pumps.
    pub inbox_budget: Arc<Semaphore>,
    /// Session events on their way to the store; taken (closed) when the session ends.
    events: Mutex<Option<mpsc::Sender<SessionEvent>>>,
    event_writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Established {
    /// Starts the session's event writer; to be called inside the session's span.
    /// `inbox_budget` bounds what the box's channels hold.
    pub fn new(
        app: &Arc<Gateway>,
        live: Arc<LiveSession>,
        iks_box: IksBox,
        leg: BoxLeg,
        inbox_budget: Arc<Semaphore>,
    ) -> Self {
        let (events, mut queue) = mpsc::channel::<SessionEvent>(EVENT_QUEUE);
        let app = app.clone();
        let writer = tokio::spawn(
            async move {
                // While the store is away, events wait here in order; once the queue is
                // full the session's channels wait too (bounded memory, nothing dropped).
                while let Some(e) = queue.recv().await {
                    let written =
                        crate::store::until_stored(&app.shutdown, "session event", || app.store.add_session_event(&e))
                            .await;
                    if let Err(err) = written {
                        error!(error = %err, kind = e.kind, "cannot store a session event");
                    }
                }
            }
            .in_current_span(),
        );
        Self {
            live,
            span: tracing::Span::current(),
            upstream: leg.upstream,
            iks_box,
            tunnel: leg.tunnel,
            box_severer: leg.severer,
            inbox_budget,
            events: Mutex::new(Some(events)),
            event_writer: Mutex::new(Some(writer)),
        }
    }

    /// A handle for queueing session events. A channel task holds one for its whole life,
    /// so the queue stays open (and the session's end waits) until its last event is in.
    pub fn events(&self) -> Events {
        Events(lock(&self.events).clone())
    }

    /// Ends the box's leg: a disconnect if its loop takes it at once, then the socket is
    /// shut down whatever the loop is waiting on.
    pub async fn cut_box(&self) {
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

    /// The engineer's connection is gone: cut the box's leg, let the events drain, finish
    /// the recording and write the session's end.
    pub async fn end(&self, app: &Arc<Gateway>) {
        let live = &self.live;
        // The engineer left (unless something else ended the session first): say so before
        // dropping the box connection, whose end the pumps would otherwise report as a loss.
        live.set_end_reason(EndReason::ClientExit);
        self.cut_box().await;
        // Close our end of the event queue; the writer finishes once every channel task has
        // sent its last event (their closing totals) and dropped its handle.
        lock(&self.events).take();
        let writer = lock(&self.event_writer).take();
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
        if let Some(s) = end_row(app, live.id, live.org, &end).await {
            info!(session.id = %s.id, reason = end.reason.as_str(), bytes_in = s.bytes_in, bytes_out = s.bytes_out, "session ended");
        }
        app.live.remove(live.id);
        crate::search::index_later(app, live.id);
    }
}

/// Writes a session's end, waiting for the store if it is away; at shutdown what is still
/// unwritten is left to the node's next start ([`crate::node::Node::open`]).
pub async fn end_row(
    app: &Arc<Gateway>,
    id: SessionId,
    org: OrgId,
    end: &SessionEnd,
) -> Option<iks_domain::model::Session> {
    let system = Actor::system();
    let written =
        crate::store::until_stored(&app.shutdown, "session end", || app.store.end_session(&system, id, org, end)).await;
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

/// Queues session events for the store; waits when the store is behind (bounded queue).
pub struct Events(Option<mpsc::Sender<SessionEvent>>);

impl Events {
    pub async fn send(&self, e: SessionEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e).await;
        }
    }
}
