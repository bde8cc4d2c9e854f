//! The config dir (`/etc/iks-agent` by default): the agent's settings, its key, and the
//! small files the running agent and the customer's commands share (status, kill switch).
//!
//! Everything is owner-only — the directory 0700, files 0600 — because the key is the
//! box's identity towards the gateway. A key file others can read is refused, as OpenSSH
//! refuses one. Files are replaced by writing a temporary file and renaming it, so a
//! reader never sees half of one.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The agent's settings, written by `enroll` (`agent.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The gateway's SSH address, HOST:PORT.
    pub gateway: String,
    /// The gateway's host key, pinned at enrolment (OpenSSH public key line).
    pub gateway_host_key: String,
    /// The box's name at the gateway and its organisation, as the gateway said at enrolment.
    pub box_name: String,
    pub org: String,
    /// Where this box's sshd listens: the only place tunnels go.
    #[serde(default = "default_sshd")]
    pub sshd: String,
    /// The product and version running on the box; when unset they are read from `version_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// An os-release-style file with `PRODUCT=` and `VERSION=` lines (see [`crate::report`]).
    #[serde(default = "default_version_file")]
    pub version_file: PathBuf,
    /// Sessions the box carries at once through this agent; the gateway's dials beyond it
    /// are refused with a reason the engineer reads. Bounds what a gateway can make the
    /// box open.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
}

pub fn default_sshd() -> String {
    "127.0.0.1:22".into()
}

pub fn default_max_sessions() -> u32 {
    64
}

/// Where the version file is looked for unless configured ([`crate::report`] reads it).
pub const DEFAULT_VERSION_FILE: &str = "/etc/iks/version";

pub fn default_version_file() -> PathBuf {
    DEFAULT_VERSION_FILE.into()
}

impl AgentConfig {
    pub fn gateway_key(&self, path: &Path) -> Result<PublicKey, AgentError> {
        PublicKey::from_openssh(&self.gateway_host_key).map_err(|e| AgentError::Config {
            path: path.to_path_buf(),
            message: format!("gateway_host_key is not an OpenSSH public key: {e}"),
        })
    }
}

/// The agent's directory and the files in it.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    root: PathBuf,
}

impl ConfigDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("agent.toml")
    }

    pub fn key_file(&self) -> PathBuf {
        self.root.join("agent_ed25519_key")
    }

    /// Written by the running agent, read by `iks-agent status`.
    pub fn status_file(&self) -> PathBuf {
        self.root.join("status.json")
    }

    /// Present while the customer has disabled remote access (`iks-agent disable`).
    pub fn kill_switch_file(&self) -> PathBuf {
        self.root.join("disabled")
    }

    pub fn is_enrolled(&self) -> bool {
        self.config_file().exists()
    }

    pub fn load(&self) -> Result<(AgentConfig, PrivateKey), AgentError> {
        let path = self.config_file();
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AgentError::Config {
                path: path.clone(),
                message: "not enrolled yet: run `iks-agent enroll --gateway HOST:PORT --token TOKEN` first".into(),
            },
            _ => AgentError::Io { path: path.clone(), source: e },
        })?;
        let config: AgentConfig = toml::from_str(&text)
            .map_err(|e| AgentError::Config { path: path.clone(), message: one_line(e.message()) })?;
        config.gateway_key(&path)?;
        let key_path = self.key_file();
        let meta = fs::metadata(&key_path).map_err(AgentError::io(&key_path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(AgentError::Config {
                path: key_path,
                message: format!(
                    "is readable by others (mode {:o}); run chmod 600 on it",
                    meta.permissions().mode() & 0o777
                ),
            });
        }
        let key = PrivateKey::read_openssh_file(&key_path)
            .map_err(|e| AgentError::Config { path: key_path.clone(), message: e.to_string() })?;
        Ok((config, key))
    }

    /// Writes the enrolment's result: key and settings, owner-only.
    pub fn save(&self, config: &AgentConfig, key: &PrivateKey) -> Result<(), AgentError> {
        self.create()?;
        let key_text = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| AgentError::Invalid(format!("cannot encode the agent key: {e}")))?;
        write_private(&self.key_file(), key_text.as_bytes())?;
        let text = toml::to_string_pretty(config)
            .map_err(|e| AgentError::Invalid(format!("cannot encode the configuration: {e}")))?;
        let header = "# Written by `iks-agent enroll`. `sshd`, `product`, `version` and `version_file` may be edited;\n\
                      # the gateway and its host key change only by enrolling again.\n";
        write_private(&self.config_file(), format!("{header}{text}").as_bytes())
    }

    /// Creates the directory owner-only when missing.
    pub fn create(&self) -> Result<(), AgentError> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root).map_err(AgentError::io(&self.root))?;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(AgentError::io(&self.root))?;
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes`, mode 0600, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(AgentError::io(path))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_dir_is_private_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::new(tmp.path().join("iks-agent"));
        assert!(!dir.is_enrolled());
        let err = dir.load().unwrap_err().to_string();
        assert!(err.contains("not enrolled yet"), "{err}");
        let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let config = AgentConfig {
            gateway: "127.0.0.1:2222".into(),
            gateway_host_key: key.public_key().to_openssh().unwrap(),
            box_name: "main-gw".into(),
            org: "ООО Ромашка".into(),
            sshd: default_sshd(),
            product: None,
            version: Some("7.2".into()),
            version_file: default_version_file(),
            max_sessions: 12,
        };
        dir.save(&config, &key).unwrap();
        let (loaded, loaded_key) = dir.load().unwrap();
        assert_eq!(loaded, config);
        assert_eq!(loaded_key.public_key(), key.public_key());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.root()), 0o700);
        assert_eq!(mode(&dir.key_file()), 0o600);
        assert_eq!(mode(&dir.config_file()), 0o600);
        fs::set_permissions(dir.key_file(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(dir.load().unwrap_err().to_string().contains("readable by others"));
    }
}
