//! Boxes reached through their agent: which agents this node holds ([`registry`]), and the
//! data connections that carry sessions to them (the protocol is described in the `iks_proto` crate).
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

pub mod registry;

use std::sync::Arc;
use std::time::Duration;

use iks_proto::{DialRefusal, TUNNEL_ADDRESS, TUNNEL_PORT};
use russh::server::Msg;
use russh::{ChannelOpenFailure, ChannelStream};
use tracing::{info, warn};

use crate::state::Gateway;
use crate::store::StoreError;
use iks_domain::decision::{AgentPresence, Refusal};
use iks_domain::ids::{AgentId, SessionId, TicketId};
use iks_domain::model::{EndReason, IksBox};

pub(crate) use registry::Link;
pub use registry::{COMMAND_QUEUE, DataLink};

/// How long the agent has to dial a data connection for a session.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the agent has to connect the tunnel channel to its sshd.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Disconnects every connection of `agent` on this node, ending its sessions first with
/// `message` so the engineer learns why.
pub async fn drop_agent(app: &Arc<Gateway>, agent: AgentId, message: &str) {
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
pub async fn disconnect_all(app: &Arc<Gateway>) {
    for h in app.tunnels.all_handles() {
        let _ =
            h.disconnect(russh::Disconnect::ByApplication, "the gateway is shutting down".into(), "en".into()).await;
    }
}

/// Where the box's agent is, for the access decision.
pub async fn presence(app: &Arc<Gateway>, b: &IksBox) -> Result<AgentPresence, StoreError> {
    if let Some(remote_access_disabled) = app.tunnels.online_here(b.id) {
        return Ok(AgentPresence::Online { remote_access_disabled });
    }
    let agent = app.store.active_agent(b.id).await?;
    Ok(AgentPresence::from_record(agent.as_ref(), &app.node, iks_domain::time::now()))
}

fn tunnel_refusal(message: String) -> Refusal {
    Refusal::gateway("upstream", message)
}

/// Gets a data connection from the box's agent and opens the tunnel channel on it: the
/// stream the gateway's SSH client to the box runs over.
pub async fn open(
    app: &Arc<Gateway>,
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

/// Drops the agents revoked since the last look (from any node or the CLI): those held
/// here are disconnected, those a node left marked online are recorded offline.
pub async fn drop_revoked(app: &Arc<Gateway>) -> Result<(), StoreError> {
    if app.tunnels.is_empty() {
        return Ok(());
    }
    for a in app.store.revoked_agents_online(&app.node).await? {
        let by = a.revoked_by.as_deref().unwrap_or("an admin");
        if app.tunnels.holds(a.id) {
            info!(agent = %a.id, box_id = %a.box_id, "dropping a revoked agent");
            drop_agent(app, a.id, &format!("the agent of this box was revoked by {by}")).await;
        } else if let Some(connection) = &a.connection
            && let Err(e) = app.store.agent_disconnected(a.id, connection, "revoked").await
        {
            warn!(agent = %a.id, error = %e, "cannot record a revoked agent's disconnection");
        }
    }
    Ok(())
}

/// Keeps `last_seen` fresh for the agents this node holds, so other nodes see them alive.
pub async fn heartbeat(app: &Arc<Gateway>) -> Result<(), StoreError> {
    if app.tunnels.is_empty() {
        return Ok(());
    }
    app.store.touch_agents(&app.node).await
}
