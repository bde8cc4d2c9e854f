//! The tunnel registry: which boxes' agents this node holds, and the data connections
//! that carry sessions to them (the protocol is described in the `iks_proto` crate).
//!
//! A box reached through its agent (`address = None`) gets one *control* connection from
//! its agent, registered here with the agent's reported state. For each session the
//! gateway asks the agent, over that control channel, to dial a fresh *data* connection,
//! and opens one `forwarded-tcpip` channel on it; the gateway's SSH client to the box
//! then runs over that channel exactly as over TCP (same pinned host key, same
//! certificate, same recording). One connection per session is the answer to russh's
//! head-of-line blocking: a connection stalls as a whole when one channel's queue is full,
//! so sharing one connection would let one engineer who stops reading freeze every session
//! on the box and the control channel with them.
//!
//! Presence (online since / offline since / last seen) is also written to the store, so
//! other nodes and the CLI see it; this node's memory is authoritative for what it holds.
//! Nothing here is awaited inside a russh callback: handles are only used from tasks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use iks_proto::{DialRefusal, GatewayMsg, TUNNEL_ADDRESS, TUNNEL_PORT};
use russh::server::{Handle, Msg};
use russh::{ChannelOpenFailure, ChannelStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::access::{AgentPresence, Refusal};
use crate::ids::{AgentId, BoxId, SessionId, TicketId};
use crate::live::lock;
use crate::model::{EndReason, IksBox};
use crate::state::App;
use crate::store::StoreError;

/// How long the agent has to dial a data connection for a session.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the agent has to connect the tunnel channel to its sshd.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Heartbeat (`last_seen`) every this many watchdog ticks (250 ms each): 10 s.
const HEARTBEAT_EVERY: u32 = 40;
/// Commands queued for one agent's control channel before dialing reports it busy.
pub const COMMAND_QUEUE: usize = 64;

/// The control connection of one box's agent.
pub(crate) struct Link {
    pub serial: u64,
    pub agent: AgentId,
    pub handle: Handle,
    pub commands: mpsc::Sender<GatewayMsg>,
    pub remote_access_disabled: bool,
}

/// What a session waiting for a data connection gets: the connection, or the agent's refusal.
type DialAnswer = Result<DataLink, DialRefusal>;

/// A session waiting for the agent's data connection.
struct Pending {
    agent: AgentId,
    reply: oneshot::Sender<DialAnswer>,
}

/// A data connection this node holds.
struct DataEntry {
    agent: AgentId,
    box_name: String,
    handle: Handle,
    session: Option<SessionId>,
}

/// One session's data connection, as the session sees it.
pub struct DataLink {
    pub dial: String,
    pub handle: Handle,
    /// Becomes `true` when the data connection is gone.
    pub ended: watch::Receiver<bool>,
    /// Cuts the data connection when asking politely does not end it at once.
    pub severer: crate::sever::Severer,
}

impl DataLink {
    /// Whether the data connection ends within `wait`: tells a lost agent from a box that
    /// closed its end (the agent then closes the channel but keeps the connection).
    pub async fn ended_within(&self, wait: Duration) -> bool {
        let mut ended = self.ended.clone();
        matches!(tokio::time::timeout(wait, ended.wait_for(|e| *e)).await, Ok(Ok(_)) | Ok(Err(_)))
    }

    /// Ends the data connection: a disconnect if its loop takes it at once, else the socket
    /// is shut down (the agent's end may have stopped reading).
    pub async fn close(&self) {
        let polite = self.handle.disconnect(russh::Disconnect::ByApplication, "session ended".into(), "en".into());
        let _ = tokio::time::timeout(crate::sever::DISCONNECT_WAIT, polite).await;
        self.severer.sever();
    }
}

#[derive(Default)]
struct Inner {
    links: HashMap<BoxId, Link>,
    pending: HashMap<String, Pending>,
    data: HashMap<String, DataEntry>,
}

/// The agents and data connections this node holds.
#[derive(Default)]
pub struct Tunnels {
    inner: Mutex<Inner>,
    serial: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("Tunnels").field("agents", &inner.links.len()).field("data", &inner.data.len()).finish()
    }
}

impl Tunnels {
    pub fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// Registers a control connection; returns the one it replaces (to be disconnected).
    pub(crate) fn register(&self, box_id: BoxId, link: Link) -> Option<Link> {
        lock(&self.inner).links.insert(box_id, link)
    }

    /// Removes the control connection `serial` unless a newer one replaced it.
    pub(crate) fn unregister(&self, box_id: BoxId, serial: u64) -> bool {
        let mut inner = lock(&self.inner);
        if inner.links.get(&box_id).is_some_and(|l| l.serial == serial) {
            inner.links.remove(&box_id);
            true
        } else {
            false
        }
    }

    pub(crate) fn set_remote_access_disabled(&self, box_id: BoxId, serial: u64, disabled: bool) {
        if let Some(l) = lock(&self.inner).links.get_mut(&box_id).filter(|l| l.serial == serial) {
            l.remote_access_disabled = disabled;
        }
    }

    /// `Some(kill switch)` when this node holds the box's agent.
    pub fn online_here(&self, box_id: BoxId) -> Option<bool> {
        lock(&self.inner).links.get(&box_id).map(|l| l.remote_access_disabled)
    }

    /// How many agents this node holds.
    pub fn agents(&self) -> usize {
        lock(&self.inner).links.len()
    }

    pub fn is_empty(&self) -> bool {
        let inner = lock(&self.inner);
        inner.links.is_empty() && inner.data.is_empty()
    }

    fn holds(&self, agent: AgentId) -> bool {
        lock(&self.inner).links.values().any(|l| l.agent == agent)
    }

    /// Asks the box's agent for a data connection; the receiver gets it when it arrives.
    fn dial(&self, box_id: BoxId) -> Result<(String, oneshot::Receiver<DialAnswer>), &'static str> {
        let id = crate::secret::token::<{ iks_proto::DIAL_ID_LEN / 2 }>("")
            .map_err(|_| "the system random number generator failed")?;
        let mut inner = lock(&self.inner);
        let link = inner.links.get(&box_id).ok_or("its agent just disconnected")?;
        let agent = link.agent;
        // try_send: never wait with the registry locked; a full queue means a stuck agent.
        link.commands.try_send(GatewayMsg::Dial { id: id.clone() }).map_err(|_| "its agent is not answering")?;
        let (reply, rx) = oneshot::channel();
        inner.pending.insert(id.clone(), Pending { agent, reply });
        Ok((id, rx))
    }

    fn cancel(&self, dial: &str) {
        lock(&self.inner).pending.remove(dial);
    }

    /// Whether a data connection for `dial` from `agent` is awaited (checked at login).
    pub fn expects(&self, dial: &str, agent: AgentId) -> bool {
        lock(&self.inner).pending.get(dial).is_some_and(|p| p.agent == agent)
    }

    /// Hands an authenticated data connection to the session waiting for it.
    pub fn deliver(
        &self,
        dial: &str,
        box_name: &str,
        handle: Handle,
        ended: watch::Receiver<bool>,
        severer: crate::sever::Severer,
    ) -> bool {
        let mut inner = lock(&self.inner);
        let Some(pending) = inner.pending.remove(dial) else { return false };
        let entry =
            DataEntry { agent: pending.agent, box_name: box_name.to_string(), handle: handle.clone(), session: None };
        inner.data.insert(dial.to_string(), entry);
        pending.reply.send(Ok(DataLink { dial: dial.to_string(), handle, ended, severer })).is_ok()
    }

    /// The agent will not answer `dial`: the session waiting for it hears why now.
    pub(crate) fn refused(&self, dial: &str, agent: AgentId, refusal: DialRefusal) {
        let mut inner = lock(&self.inner);
        // Only the agent that was asked can refuse.
        if inner.pending.get(dial).is_some_and(|p| p.agent == agent)
            && let Some(pending) = inner.pending.remove(dial)
        {
            let _ = pending.reply.send(Err(refusal));
        }
    }

    fn bind_session(&self, dial: &str, session: SessionId) {
        if let Some(d) = lock(&self.inner).data.get_mut(dial) {
            d.session = Some(session);
        }
    }

    /// Forgets a data connection that ended; returns the session it carried and its box.
    pub fn data_ended(&self, dial: &str) -> Option<(SessionId, String)> {
        let d = lock(&self.inner).data.remove(dial)?;
        d.session.map(|s| (s, d.box_name))
    }

    /// Handles of everything `agent` has open here: its control and data connections.
    fn connections_of(&self, agent: AgentId) -> (Vec<Handle>, Vec<SessionId>) {
        let inner = lock(&self.inner);
        let mut handles: Vec<Handle> =
            inner.links.values().filter(|l| l.agent == agent).map(|l| l.handle.clone()).collect();
        let mut sessions = Vec::new();
        for d in inner.data.values().filter(|d| d.agent == agent) {
            handles.push(d.handle.clone());
            sessions.extend(d.session);
        }
        (handles, sessions)
    }

    /// Sessions carried through `agent` by this node.
    pub(crate) fn sessions_of(&self, agent: AgentId) -> Vec<SessionId> {
        self.connections_of(agent).1
    }

    /// Every connection to every agent, for shutdown.
    fn all_handles(&self) -> Vec<Handle> {
        let inner = lock(&self.inner);
        inner.links.values().map(|l| l.handle.clone()).chain(inner.data.values().map(|d| d.handle.clone())).collect()
    }
}

/// Disconnects every connection of `agent` on this node, ending its sessions first with
/// `message` so the engineer learns why.
pub async fn drop_agent(app: &App, agent: AgentId, message: &str) {
    let (handles, sessions) = app.tunnels.connections_of(agent);
    for s in sessions {
        if let Some(live) = app.live.get(s) {
            live.close(EndReason::AgentDisconnected, message);
        }
    }
    for h in handles {
        let _ = h.disconnect(russh::Disconnect::ByApplication, message.to_string(), "en".into()).await;
    }
}

/// Drops every agent connection (the gateway is stopping): agents reconnect to another
/// node or to this one when it is back.
pub async fn disconnect_all(app: &App) {
    for h in app.tunnels.all_handles() {
        let _ =
            h.disconnect(russh::Disconnect::ByApplication, "the gateway is shutting down".into(), "en".into()).await;
    }
}

/// Where the box's agent is, for the access decision.
pub async fn presence(app: &App, b: &IksBox) -> Result<AgentPresence, StoreError> {
    if let Some(remote_access_disabled) = app.tunnels.online_here(b.id) {
        return Ok(AgentPresence::Online { remote_access_disabled });
    }
    let agent = app.store.active_agent(b.id).await?;
    Ok(AgentPresence::from_record(agent.as_ref(), &app.node, crate::time::now()))
}

fn tunnel_refusal(message: String) -> Refusal {
    Refusal::gateway("upstream", message)
}

/// Gets a data connection from the box's agent and opens the tunnel channel on it: the
/// stream the gateway's SSH client to the box runs over.
pub async fn open(
    app: &App,
    b: &IksBox,
    ticket: TicketId,
    session: SessionId,
) -> Result<(DataLink, ChannelStream<Msg>), Refusal> {
    let name = &b.name;
    let (dial, rx) = app.tunnels.dial(b.id).map_err(|why| tunnel_refusal(format!("cannot reach box {name}: {why}")))?;
    let link = match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
        Ok(Ok(Ok(link))) => link,
        Ok(Ok(Err(DialRefusal::RemoteAccessDisabled))) => {
            // The same refusal as when the switch was already known at connect time.
            return Err(Refusal::RemoteAccessDisabled { ticket, box_name: name.clone() });
        }
        Ok(Ok(Err(DialRefusal::TooManySessions { limit }))) => {
            return Err(Refusal::gateway(
                "agent",
                format!(
                    "box {name} already has as many sessions as its agent allows (max_sessions = {limit} in its agent.toml)"
                ),
            ));
        }
        _ => {
            app.tunnels.cancel(&dial);
            return Err(tunnel_refusal(format!(
                "the agent of box {name} did not open a tunnel within {} s",
                DIAL_TIMEOUT.as_secs()
            )));
        }
    };
    app.tunnels.bind_session(&dial, session);
    let originator_port = u32::try_from(session.get()).unwrap_or(0);
    let opened = tokio::time::timeout(
        OPEN_TIMEOUT,
        link.handle.channel_open_forwarded_tcpip(TUNNEL_ADDRESS, TUNNEL_PORT, "iks-gateway", originator_port),
    )
    .await;
    let failure = match opened {
        Ok(Ok(channel)) => return Ok((link, channel.into_stream())),
        Ok(Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed))) => {
            format!("the agent of box {name} cannot reach the box's sshd")
        }
        Ok(Err(russh::Error::ChannelOpenFailure(_))) => {
            format!("the agent of box {name} refused the tunnel (has the customer disabled remote access?)")
        }
        Ok(Err(e)) => format!("the tunnel to box {name} failed: {e}"),
        Err(_) => format!("the agent of box {name} did not connect the tunnel within {} s", OPEN_TIMEOUT.as_secs()),
    };
    link.close().await;
    Err(tunnel_refusal(failure))
}

/// The watchdog's share: drop revoked agents within a tick, keep `last_seen` fresh.
pub async fn tick(app: &App, n: u32) {
    if app.tunnels.is_empty() {
        return;
    }
    match app.store.revoked_agents_online(&app.node).await {
        Ok(revoked) => {
            for a in revoked {
                let by = a.revoked_by.as_deref().unwrap_or("an admin");
                if app.tunnels.holds(a.id) {
                    info!(agent = %a.id, box_id = %a.box_id, "dropping a revoked agent");
                    drop_agent(app, a.id, &format!("the agent of this box was revoked by {by}")).await;
                } else if let Some(connection) = &a.connection
                    && let Err(e) = app.store.agent_disconnected(a.id, connection, "revoked").await
                {
                    warn!(error = %e, "cannot record a revoked agent's disconnection");
                }
            }
        }
        Err(e) => warn!(error = %e, "cannot check for revoked agents"),
    }
    if n.is_multiple_of(HEARTBEAT_EVERY)
        && let Err(e) = app.store.touch_agents(&app.node).await
    {
        warn!(error = %e, "cannot record the agents' heartbeat");
    }
}
