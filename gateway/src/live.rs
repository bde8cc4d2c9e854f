//! Sessions in progress on this node: what each holds (its connection's closer, its
//! recording, its forwarding switch) and how the node reaches it. What the watchdog
//! (`node/watchdog.rs`) decides about them is pure and lives in the domain
//! ([`iks_domain::review`]): the policy, including what happens while the store is away, is
//! described there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::recording::Recording;
use crate::sync::lock;
use iks_domain::ids::{BoxId, GrantId, OrgId, PersonId, SessionId, TicketId};
use iks_domain::model::EndReason;

/// How long the gateway waits on one engineer's connection to take a notice: a client that
/// stopped reading must not hold up the watchdog or the end of its own session.
pub const NOTICE_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// A session carried by this node.
pub struct LiveSession {
    pub id: SessionId,
    pub org: OrgId,
    pub ticket: TicketId,
    pub grant: GrantId,
    pub operator: String,
    pub operator_id: PersonId,
    /// The key the engineer authenticated with: removing it ends the session.
    pub key_fingerprint: String,
    pub box_id: BoxId,
    pub box_name: String,
    /// The box's port-forwarding policy as last read: `-L` forwards follow it live.
    forwarding: tokio::sync::watch::Sender<bool>,
    pub recording: Mutex<Option<Recording>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// How many warning thresholds were announced so far.
    pub warned: AtomicU8,
    end: Mutex<Option<EndReason>>,
    /// Lets the watchdog and shutdown close the engineer's connection.
    closer: tokio::sync::watch::Sender<Option<String>>,
    /// Terminal channels to write notices into: (channel, server handle).
    notice_targets: Mutex<Vec<(russh::ChannelId, russh::server::Handle)>>,
}

impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSession").field("id", &self.id).field("ticket", &self.ticket).finish_non_exhaustive()
    }
}

impl LiveSession {
    pub fn new(
        session: &iks_domain::model::Session,
        org: OrgId,
        operator: &iks_domain::model::Person,
        key_fingerprint: String,
        iks_box: &iks_domain::model::IksBox,
        recording: Recording,
        closer: tokio::sync::watch::Sender<Option<String>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: session.id,
            org,
            ticket: session.ticket_id,
            grant: session.grant_id,
            operator: operator.login.clone(),
            operator_id: operator.id,
            key_fingerprint,
            box_id: iks_box.id,
            box_name: iks_box.name.clone(),
            forwarding: tokio::sync::watch::channel(iks_box.allow_forwarding).0,
            recording: Mutex::new(Some(recording)),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            warned: AtomicU8::new(0),
            end: Mutex::new(None),
            closer,
            notice_targets: Mutex::new(Vec::new()),
        })
    }

    /// Remembers a channel whose terminal should show the gateway's notices.
    pub fn add_notice_target(&self, channel: russh::ChannelId, handle: russh::server::Handle) {
        lock(&self.notice_targets).push((channel, handle));
    }

    /// Forgets a channel that closed.
    pub fn remove_notice_target(&self, channel: russh::ChannelId) {
        lock(&self.notice_targets).retain(|(c, _)| *c != channel);
    }

    /// Whether the box allows `-L` forwards now.
    pub fn forwarding(&self) -> bool {
        *self.forwarding.borrow()
    }

    /// Follows the box's forwarding policy (a forward ends when it turns off).
    pub fn forwarding_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.forwarding.subscribe()
    }

    /// The box's forwarding policy changed (see [`crate::recheck`]).
    pub fn set_forwarding(&self, allowed: bool) {
        self.forwarding.send_if_modified(|now| std::mem::replace(now, allowed) != allowed);
    }

    /// Writes a line to the engineer's terminal (and the recording). Never waits on the
    /// engineer: the line goes out from its own task, given up after [`NOTICE_WAIT`].
    pub fn notify(&self, text: &str) {
        self.say(text, false);
    }

    fn say(&self, text: &str, and_close: bool) {
        let line = format!("\r\n[iks-gateway] {}\r\n", iks_domain::text::one_line(text));
        if let Some(rec) = lock(&self.recording).as_mut() {
            // A failing recording ends the session through the data path; a notice is best effort.
            let _ = rec.notice(&line);
        }
        let targets = lock(&self.notice_targets).clone();
        if targets.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let each = async {
                for (channel, handle) in &targets {
                    let _ = handle.extended_data(*channel, 1, line.clone().into_bytes()).await;
                    // Close the channels before the connection: OpenSSH drops channel data it
                    // has not printed yet when a disconnect arrives, and the engineer must see why.
                    if and_close {
                        let _ = handle.eof(*channel).await;
                        let _ = handle.close(*channel).await;
                    }
                }
            };
            let _ = tokio::time::timeout(NOTICE_WAIT, each).await;
        });
    }

    /// Ends the session: the first reason given wins; the engineer sees `message`. Returns
    /// at once: the connection's task ends both legs ([`crate::ssh`]), within
    /// [`crate::ssh::ENDING_WITHIN`] whatever they are blocked on.
    pub fn close(&self, reason: EndReason, message: &str) {
        {
            let mut end = lock(&self.end);
            if end.is_some() {
                return;
            }
            *end = Some(reason);
        }
        self.say(&format!("session closed: {message}"), true);
        self.closer.send_replace(Some(message.to_string()));
    }

    /// Records why the session ended without telling the engineer (they are gone).
    pub fn set_end_reason(&self, reason: EndReason) {
        lock(&self.end).get_or_insert(reason);
    }

    pub fn end_reason(&self) -> EndReason {
        lock(&self.end).unwrap_or(EndReason::ClientExit)
    }

    pub fn count_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn count_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The live sessions of this node.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<SessionId, Arc<LiveSession>>>>,
}

impl Registry {
    pub fn insert(&self, s: Arc<LiveSession>) {
        lock(&self.inner).insert(s.id, s);
    }

    pub fn remove(&self, id: SessionId) {
        lock(&self.inner).remove(&id);
    }

    pub fn get(&self, id: SessionId) -> Option<Arc<LiveSession>> {
        lock(&self.inner).get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        lock(&self.inner).values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
