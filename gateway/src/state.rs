//! What the running gateway shares between its parts, passed explicitly (no globals).

use std::sync::Arc;

use russh::keys::PrivateKey;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::live::Registry;
use crate::store::Store;

pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub data_dir: DataDir,
    /// Signs the short-lived certificates the gateway presents to boxes.
    pub user_ca: PrivateKey,
    /// This node's name in the store, so each node watches its own sessions.
    pub node: String,
    pub live: Registry,
    /// Set once when the gateway starts shutting down; anything waiting can subscribe.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The agents (and their sessions' data connections) this node holds.
    pub tunnels: crate::tunnel::Tunnels,
    /// The SSH port's connections that have not authenticated yet: caps and deadlines.
    pub admission: Arc<crate::ssh::admission::Admission>,
    /// How many audit events each agent's reports and reconnects may still cause.
    pub agent_audit: crate::ssh::agent_audit::AgentAudit,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("node", &self.node).field("store", &self.store).finish_non_exhaustive()
    }
}

impl AppState {
    /// A node that holds no sessions or agents yet and is not shutting down.
    pub fn new(store: Store, config: Arc<Config>, data_dir: DataDir, user_ca: PrivateKey, node: String) -> Self {
        Self {
            admission: Arc::new(crate::ssh::admission::Admission::new(&config.ssh)),
            agent_audit: crate::ssh::agent_audit::AgentAudit::new(
                config.ssh.agent_audit_window(),
                config.ssh.agent_audit_events,
            ),
            store,
            config,
            data_dir,
            user_ca,
            node,
            live: Registry::default(),
            shutdown: tokio::sync::watch::channel(false).0,
            tunnels: Default::default(),
        }
    }

    /// The zone times are shown in.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.config.hours.timezone
    }
}

pub type App = Arc<AppState>;
