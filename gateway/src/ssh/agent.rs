//! Agents on the SSH front: the same port as engineers, told apart by the SSH user name
//! (`iks_proto::AgentUser`). An agent connection can do exactly one thing — enrol, hold
//! the control channel, or carry one session's tunnel — and every other request is refused
//! ([`AgentPeer`]'s rules).
//!
//! The lookups here run inside the connection's loop, so they only look things up and
//! reply; the enrolment and the control channel run in tasks of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iks_proto::{AgentMsg, AgentState, AgentUser, CONTROL_COMMAND, DialRefusal, LineBuffer};
use russh::keys::{HashAlg, PublicKey};
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use super::agent_audit::{AgentAudit, Verdict};
use super::peer::{AgentPeer, Open, Request};
use crate::sever::Severer;
use crate::state::Gateway;
use crate::store::StoreError;
use crate::tunnel::{COMMAND_QUEUE, Link};
use iks_domain::ids::AgentId;
use iks_domain::model::{Agent, AgentReport, EndReason};

/// How long an agent has, after logging in, to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an enrolling connection has, after logging in, to open its channel and again to
/// present its token: anyone may log in to enrol, so it gets no more than it needs.
const ENROLL_WITHIN: Duration = Duration::from_secs(10);

async fn active_agent(app: &Arc<Gateway>, key: &PublicKey) -> Option<Agent> {
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    match app.store.active_agent_by_key(&fingerprint).await {
        Ok(found) => found,
        Err(e) => {
            // Fail closed, as for engineers.
            warn!(error = %e, "cannot look up an agent key");
            None
        }
    }
}

/// Whether the offered key may try to log in as `user` (before its signature).
pub async fn offered(app: &Arc<Gateway>, user: &AgentUser, key: &PublicKey) -> bool {
    match user {
        // Any key: enrolling registers it, and the signature that follows proves possession.
        AgentUser::Enroll => true,
        AgentUser::Control => active_agent(app, key).await.is_some(),
        AgentUser::Data(dial) => active_agent(app, key).await.is_some_and(|a| app.tunnels.expects(dial, a.id)),
    }
}

/// The signature checked out: what the connection is for, if it may log in.
pub async fn authenticated(app: &Arc<Gateway>, user: AgentUser, key: &PublicKey) -> Option<AgentPeer> {
    let peer = match user {
        AgentUser::Enroll => AgentPeer::Enrolling(key.clone()),
        AgentUser::Control | AgentUser::Data(_) => {
            let agent = active_agent(app, key).await?;
            let box_name = match app.store.get_box(agent.box_id).await {
                Ok(b) => b.name,
                Err(e) => {
                    warn!(error = %e, "cannot look up an agent's box");
                    return None;
                }
            };
            match user {
                AgentUser::Data(dial) if app.tunnels.expects(&dial, agent.id) => {
                    AgentPeer::Data { agent, box_name, dial }
                }
                AgentUser::Data(_) => return None,
                _ => AgentPeer::Control { agent, box_name },
            }
        }
    };
    info!(peer = %peer.describe(), "agent authenticated");
    Some(peer)
}

/// An agent's connection, settled at authentication.
pub struct AgentConn {
    app: Arc<Gateway>,
    /// The port's budget of audit events per agent, for the control channel.
    audit: Arc<AgentAudit>,
    peer: AgentPeer,
    handle: Handle,
    /// An agent connection opens at most one channel.
    channel_taken: AtomicBool,
}

impl AgentConn {
    /// After authentication: a data connection is handed to the session that asked for it
    /// (`ended` and `severer` let that session follow and cut it); an enrolling one must
    /// open its channel within [`ENROLL_WITHIN`] or is cut off.
    pub fn start(
        app: Arc<Gateway>,
        audit: Arc<AgentAudit>,
        peer: AgentPeer,
        handle: Handle,
        ended: watch::Receiver<bool>,
        severer: Severer,
    ) -> Arc<Self> {
        let conn = Arc::new(Self { app, audit, peer, handle, channel_taken: AtomicBool::new(false) });
        match &conn.peer {
            AgentPeer::Data { dial, box_name, .. }
                if !conn.app.tunnels.deliver(dial, box_name, conn.handle.clone(), ended, severer) =>
            {
                // The session gave up waiting; the connection is useless and the agent will close it.
                info!(dial, "a data connection arrived after its session gave up");
            }
            AgentPeer::Enrolling(_) => {
                let waiting = conn.clone();
                tokio::spawn(
                    async move {
                        tokio::time::sleep(ENROLL_WITHIN).await;
                        if !waiting.channel_taken.load(Ordering::SeqCst) {
                            info!("no enrolment request in time: disconnecting");
                            let why = "no enrolment request in time".to_string();
                            let _ = waiting.handle.disconnect(russh::Disconnect::ByApplication, why, "en".into()).await;
                        }
                    }
                    .in_current_span(),
                );
            }
            _ => {}
        }
        conn
    }

    /// Whether the connection may have `request` (its one exec).
    pub fn may(&self, request: &Request<'_>) -> bool {
        self.peer.may(request)
    }

    /// Whether a channel may open; the one session channel an enrolment or control
    /// connection may open starts its task.
    pub fn channel_opened(&self, open: &Open, channel: Channel<Msg>) -> bool {
        let first = *open == Open::Session && !self.channel_taken.swap(true, Ordering::SeqCst);
        if !self.peer.may_open(open, first) {
            return false;
        }
        let (app, handle) = (self.app.clone(), self.handle.clone());
        match &self.peer {
            AgentPeer::Enrolling(key) => {
                tokio::spawn(enroll(app, key.clone(), channel, handle).instrument(info_span!("enrolment")));
            }
            AgentPeer::Control { agent, box_name } => {
                let span = info_span!("agent", agent = %agent.id, r#box = %box_name);
                let audit = self.audit.clone();
                tokio::spawn(control(app, audit, agent.clone(), box_name.clone(), channel, handle).instrument(span));
            }
            AgentPeer::Data { .. } => return false,
        }
        true
    }

    /// The connection ended: for a data connection, the session it carried ends with it.
    pub async fn ended(&self) {
        let AgentPeer::Data { dial, .. } = &self.peer else { return };
        if let Some((session, box_name)) = self.app.tunnels.data_ended(dial)
            && let Some(live) = self.app.live.get(session)
        {
            live.close(EndReason::AgentDisconnected, &format!("the agent of box {box_name} disconnected"));
        }
    }
}

/// Waits up to `within` for the channel's exec request and returns its command.
async fn exec_command(rx: &mut russh::ChannelReadHalf, within: Duration) -> Option<Vec<u8>> {
    let wait = async {
        loop {
            match rx.wait().await {
                Some(ChannelMsg::Exec { command, .. }) => return Some(command),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return None,
                Some(_) => {}
            }
        }
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// The enrolment: one exec, one answer, then the connection is closed.
async fn enroll(app: Arc<Gateway>, key: PublicKey, channel: Channel<Msg>, handle: Handle) {
    let (mut rx, tx) = channel.split();
    if let Some(command) = exec_command(&mut rx, ENROLL_WITHIN).await {
        match crate::enrollment::enroll(&app.store, &command, &key).await {
            Ok(done) => {
                info!(agent = %done.agent.id, r#box = %done.iks_box.name, org = %done.org.name, "agent enrolled");
                let reply = iks_proto::EnrollReply {
                    box_name: done.iks_box.name.clone(),
                    box_id: done.iks_box.id.get(),
                    org: done.org.name.clone(),
                    inn: done.org.inn.to_string(),
                    pinned_host_key: done.iks_box.host_key.as_deref().and_then(|k| {
                        PublicKey::from_openssh(k).ok().map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                    }),
                };
                match iks_proto::line(&reply) {
                    Ok(bytes) => {
                        let _ = tx.data_bytes(bytes).await;
                        let _ = tx.exit_status(0).await;
                    }
                    Err(e) => warn!(error = %e, "cannot encode the enrolment reply"),
                }
            }
            Err(failure) => {
                // Shown on the box's terminal; it may name the box or the organisation.
                let message = iks_domain::text::one_line(&failure.message(app.tz()));
                let _ = tx.extended_data_bytes(1, format!("{message}\n").into_bytes()).await;
                let _ = tx.exit_status(1).await;
            }
        }
    }
    let _ = tx.eof().await;
    let _ = tx.close().await;
    // The agent disconnects once it has read the answer; one that does not is cut off.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "enrolment finished".into(), "en".into()).await;
}

fn report_of(state: AgentState) -> AgentReport {
    AgentReport {
        agent_version: state.agent_version,
        product: state.product,
        version: state.version,
        remote_access_disabled: state.remote_access_disabled,
    }
}

/// A control line from the agent, read and checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromAgent {
    State(AgentReport),
    DialRefused { id: String, refusal: DialRefusal },
}

/// One control line from the agent, if it is readable (and, for a state, a valid report).
pub(crate) fn parse_message(line: &[u8]) -> Option<FromAgent> {
    match serde_json::from_slice::<AgentMsg>(line).ok()? {
        AgentMsg::State(state) => Some(report_of(state)).filter(|r| r.validate().is_ok()).map(FromAgent::State),
        AgentMsg::DialRefused { id, refusal } => Some(FromAgent::DialRefused { id, refusal }),
    }
}

/// Reads the next message from the control channel; `None` when the channel ends or the
/// agent sends something unreadable (it is then cut off).
async fn next_message(
    rx: &mut russh::ChannelReadHalf,
    lines: &mut LineBuffer,
    queued: &mut Vec<Vec<u8>>,
) -> Option<FromAgent> {
    loop {
        if !queued.is_empty() {
            let line = queued.remove(0);
            let message = parse_message(&line);
            if message.is_none() {
                warn!(line = %String::from_utf8_lossy(&line).chars().take(200).collect::<String>(), "unreadable agent message");
            }
            return message;
        }
        match rx.wait().await {
            Some(ChannelMsg::Data { data }) => match lines.push(&data) {
                Ok(new) => queued.extend(new.into_iter().filter(|l| !l.is_empty())),
                Err(e) => {
                    warn!(error = %e, "agent control channel");
                    return None;
                }
            },
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return None,
            Some(_) => {}
        }
    }
}

/// The control channel, from the agent's first state report until the connection ends.
async fn control(
    app: Arc<Gateway>,
    audit: Arc<AgentAudit>,
    agent: Agent,
    box_name: String,
    channel: Channel<Msg>,
    handle: Handle,
) {
    let (mut rx, tx) = channel.split();
    let mut lines = LineBuffer::default();
    let mut queued = Vec::new();
    let first = match exec_command(&mut rx, REQUEST_TIMEOUT).await {
        Some(command) if command == CONTROL_COMMAND.as_bytes() => {
            tokio::time::timeout(REQUEST_TIMEOUT, next_message(&mut rx, &mut lines, &mut queued)).await.ok().flatten()
        }
        _ => None,
    };
    let Some(FromAgent::State(mut report)) = first else {
        let _ = handle.disconnect(russh::Disconnect::ByApplication, "no state report".into(), "en".into()).await;
        return;
    };
    let serial = app.tunnels.next_serial();
    let connection = format!("{}#{serial}", app.node);
    let (commands, mut queue) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
    let link = Link {
        serial,
        agent: agent.id,
        handle: handle.clone(),
        commands,
        remote_access_disabled: report.remote_access_disabled,
    };
    if let Some(old) = app.tunnels.register(agent.box_id, link) {
        // A reconnect before the old connection was noticed dead: the newest wins.
        info!(old = old.serial, "replacing the agent's previous connection");
        let _ = old
            .handle
            .disconnect(russh::Disconnect::ByApplication, "replaced by a new connection".into(), "en".into())
            .await;
    }
    // Over its audit budget an agent still connects, but the store hears only its presence;
    // its report waits (`pending`) until the budget allows an event again.
    let audited = audit_budget(&app, &audit, agent.id);
    let mut pending = (!audited).then(|| report.clone());
    let connected = if audited {
        app.store.agent_connected(agent.id, &app.node, &connection, &report).await
    } else {
        app.store.agent_connected_quietly(agent.id, &app.node, &connection, &report).await
    };
    match connected {
        Ok(_) => {
            info!(%connection, version = ?report.version, disabled = report.remote_access_disabled, "agent connected")
        }
        Err(StoreError::NotFound { .. }) => {
            info!("the agent was revoked while connecting");
            app.tunnels.unregister(agent.box_id, serial);
            let _ =
                handle.disconnect(russh::Disconnect::ByApplication, "this agent is revoked".into(), "en".into()).await;
            return;
        }
        // The store may be briefly away: the tunnel works without it, presence catches up.
        Err(e) => warn!(error = %e, "cannot record the agent's connection"),
    }
    let mut retry_at = pending.as_ref().map(|_| audit.retry_at(agent.id));
    loop {
        tokio::select! {
            next = next_message(&mut rx, &mut lines, &mut queued) => {
                let new = match next {
                    Some(FromAgent::State(new)) => new,
                    Some(FromAgent::DialRefused { id, refusal }) => {
                        app.tunnels.refused(&id, agent.id, refusal);
                        continue;
                    }
                    None => break,
                };
                if new == report {
                    continue;
                }
                // The kill switch acts at once, whatever the audit budget says.
                if new.remote_access_disabled && !report.remote_access_disabled {
                    remote_access_disabled(&app, agent.id, &box_name).await;
                }
                app.tunnels.set_remote_access_disabled(agent.box_id, serial, new.remote_access_disabled);
                report = new;
                pending = Some(report.clone());
                retry_at = store_report(&app, &audit, agent.id, &connection, &mut pending).await;
            }
            () = sleep_until_some(retry_at), if pending.is_some() => {
                retry_at = store_report(&app, &audit, agent.id, &connection, &mut pending).await;
            }
            Some(command) = queue.recv() => {
                let Ok(bytes) = iks_proto::line(&command) else { continue };
                if tx.data_bytes(bytes).await.is_err() {
                    break;
                }
            }
        }
    }
    app.tunnels.unregister(agent.box_id, serial);
    let disconnected = if audited {
        app.store.agent_disconnected(agent.id, &connection, "connection closed").await
    } else {
        app.store.agent_disconnected_quietly(agent.id, &connection, "connection closed").await
    };
    match disconnected {
        Ok(true) => info!(%connection, "agent disconnected"),
        Ok(false) => {}
        Err(e) => warn!(error = %e, "cannot record the agent's disconnection"),
    }
    // Without its control channel the connection is useless: make sure it goes.
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "control channel closed".into(), "en".into()).await;
}

/// Counts a report or connection against the agent's audit budget: `true` when it may be
/// audited. The window's first suppression arranges the summary event for its end.
fn audit_budget(app: &Arc<Gateway>, audit: &Arc<AgentAudit>, agent: AgentId) -> bool {
    match audit.take(agent) {
        Verdict::Audit => true,
        Verdict::Suppress { first, until } => {
            if first {
                warn!("the agent reports or reconnects too often: its events are summarised until the window ends");
                let (app, audit) = (app.clone(), audit.clone());
                let summary = async move {
                    tokio::time::sleep_until(until).await;
                    if let Some(n) = audit.summary(agent) {
                        info!(suppressed = n, "agent events suppressed in the last window");
                        if let Err(e) = app.store.agent_events_suppressed(agent, n, audit.window()).await {
                            warn!(error = %e, "cannot record the suppressed agent events");
                        }
                    }
                };
                tokio::spawn(summary.in_current_span());
            }
            false
        }
    }
}

/// Writes the agent's latest report (`pending`) when its audit budget allows; otherwise it
/// stays pending, and the returned time is when to try again.
async fn store_report(
    app: &Arc<Gateway>,
    audit: &Arc<AgentAudit>,
    agent: AgentId,
    connection: &str,
    pending: &mut Option<AgentReport>,
) -> Option<tokio::time::Instant> {
    let report = pending.as_ref()?;
    if !audit_budget(app, audit, agent) {
        debug!(version = ?report.version, disabled = report.remote_access_disabled, "agent report held back");
        return Some(audit.retry_at(agent));
    }
    if let Err(e) = app.store.agent_reported(agent, connection, report).await {
        warn!(error = %e, "cannot record the agent's report");
    }
    info!(version = ?report.version, disabled = report.remote_access_disabled, "agent reported");
    *pending = None;
    None
}

/// Resolves at `at`, or never.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The customer turned the kill switch on: sessions on the box end now.
async fn remote_access_disabled(app: &Arc<Gateway>, agent: AgentId, box_name: &str) {
    for s in app.tunnels.sessions_of(agent) {
        if let Some(live) = app.live.get(s) {
            live.close(
                EndReason::RemoteAccessDisabled,
                &format!("the customer disabled remote access on box {box_name}"),
            );
        }
    }
}
