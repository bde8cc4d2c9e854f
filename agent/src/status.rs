//! The customer's view on the box: the status file the running agent keeps current
//! (`iks-agent status` reads it) and the kill switch file (`iks-agent disable`/`enable`).
//!
//! The kill switch is a file rather than a signal or a socket so that it works whether the
//! agent runs or not, survives restarts, and needs nothing but write access to the config
//! dir. The running agent looks at it every half second.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::config::{ConfigDir, write_private};

/// Where the connection to the gateway stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Connecting,
    Connected,
    /// Waiting before the next attempt.
    Disconnected,
    Stopped,
}

/// What the running agent publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub agent_version: String,
    pub gateway: String,
    pub box_name: String,
    pub org: String,
    pub connection: Connection,
    /// Since when `connection` holds.
    pub since: DateTime<Utc>,
    pub live_sessions: usize,
    pub remote_access_disabled: bool,
    /// Why the last connection failed or ended, if it did.
    pub last_error: Option<String>,
}

impl Status {
    pub fn write(&self, dir: &ConfigDir) -> Result<(), AgentError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| AgentError::Invalid(e.to_string()))?;
        write_private(&dir.status_file(), &json)
    }

    /// The last status written, if any.
    pub fn read(dir: &ConfigDir) -> Result<Option<Self>, AgentError> {
        let path = dir.status_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AgentError::Config { path, message: format!("unreadable status: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::Io { path, source: e }),
        }
    }

    /// Whether the process that wrote this status still runs.
    pub fn writer_alive(&self) -> bool {
        self.connection != Connection::Stopped && Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Whether the customer has disabled remote access on this box.
pub fn remote_access_disabled(dir: &ConfigDir) -> bool {
    dir.kill_switch_file().exists()
}

/// `iks-agent disable`: no new sessions, live ones end; stays so across restarts.
pub fn disable(dir: &ConfigDir, who: &str) -> Result<(), AgentError> {
    dir.create()?;
    let note = format!("remote access disabled at {} by {who}\n", Utc::now().to_rfc3339());
    write_private(&dir.kill_switch_file(), note.as_bytes())
}

/// `iks-agent enable`: sessions allowed again (still only with a grant at the gateway).
pub fn enable(dir: &ConfigDir) -> Result<(), AgentError> {
    let path = dir.kill_switch_file();
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_switch_and_the_status_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::new(tmp.path().join("agent"));
        assert!(!remote_access_disabled(&dir));
        disable(&dir, "root").unwrap();
        assert!(remote_access_disabled(&dir));
        enable(&dir).unwrap();
        enable(&dir).unwrap();
        assert!(!remote_access_disabled(&dir));
        assert_eq!(Status::read(&dir).unwrap(), None);
        let s = Status {
            pid: std::process::id(),
            agent_version: crate::VERSION.into(),
            gateway: "127.0.0.1:2222".into(),
            box_name: "main-gw".into(),
            org: "ООО Ромашка".into(),
            connection: Connection::Connected,
            since: Utc::now(),
            live_sessions: 1,
            remote_access_disabled: false,
            last_error: None,
        };
        s.write(&dir).unwrap();
        let back = Status::read(&dir).unwrap().unwrap();
        assert_eq!(back, s);
        assert!(back.writer_alive());
    }
}
