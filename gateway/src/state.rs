//! What the running gateway shares between its parts, passed explicitly (no globals).
//! Built by the node (`node.rs`), which also runs the jobs and listeners that use it.

use std::sync::Arc;

use russh::keys::PrivateKey;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::live::Registry;
use crate::store::Store;
// The one import of a module above this one: the registry of agents the node holds lives
// with the tunnel that dials through it, and imports nothing above this file itself.
use crate::tunnel::registry::Tunnels;
use iks_domain::ids::SessionId;

pub struct Gateway {
    pub store: Store,
    pub config: Arc<Config>,
    pub data_dir: DataDir,
    /// Signs the short-lived certificates the gateway presents to boxes.
    pub user_ca: PrivateKey,
    /// This node's name in the store, so each node watches its own sessions.
    pub node: String,
    pub live: Registry,
    /// The node's one stop signal, set once when it starts shutting down: listeners stop
    /// accepting, live sessions end, jobs stop; anything waiting can subscribe.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The agents (and their sessions' data connections) this node holds.
    pub tunnels: Tunnels,
    /// Ended sessions whose transcripts the node's indexing job is to index.
    pub to_index: mpsc::UnboundedSender<SessionId>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("node", &self.node).field("store", &self.store).finish_non_exhaustive()
    }
}

impl Gateway {
    /// A node that holds no sessions or agents yet and is not shutting down; ended sessions
    /// are handed to `to_index`.
    pub(crate) fn new(
        store: Store,
        config: Arc<Config>,
        data_dir: DataDir,
        user_ca: PrivateKey,
        node: String,
        to_index: mpsc::UnboundedSender<SessionId>,
    ) -> Self {
        Self {
            store,
            config,
            data_dir,
            user_ca,
            node,
            live: Registry::default(),
            shutdown: tokio::sync::watch::channel(false).0,
            tunnels: Tunnels::default(),
            to_index,
        }
    }

    /// The zone times are shown in.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.config.hours.timezone
    }
}
