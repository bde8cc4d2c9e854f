//! What this node holds of the agents: their control connections, the dials awaited and
//! the data connections carrying sessions. Kept apart from [`super`]'s operations on it so
//! that the node's shared state can hold it without depending on those operations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use iks_proto::{DialRefusal, GatewayMsg};
use russh::server::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::sync::lock;
use iks_domain::ids::{AgentId, BoxId, SessionId};

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
pub(super) type DialAnswer = Result<DataLink, DialRefusal>;

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

    pub(super) fn holds(&self, agent: AgentId) -> bool {
        lock(&self.inner).links.values().any(|l| l.agent == agent)
    }

    /// Asks the box's agent for a data connection; the receiver gets it when it arrives.
    pub(super) fn dial(&self, box_id: BoxId) -> Result<(String, oneshot::Receiver<DialAnswer>), &'static str> {
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

    pub(super) fn cancel(&self, dial: &str) {
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

    pub(super) fn bind_session(&self, dial: &str, session: SessionId) {
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
    pub(super) fn connections_of(&self, agent: AgentId) -> (Vec<Handle>, Vec<SessionId>) {
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
    pub(super) fn all_handles(&self) -> Vec<Handle> {
        let inner = lock(&self.inner);
        inner.links.values().map(|l| l.handle.clone()).chain(inner.data.values().map(|d| d.handle.clone())).collect()
    }
}
