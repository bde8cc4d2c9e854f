//! The data directory: the SQLite database, the gateway's keys and session recordings.
//!
//! Keys are generated on first use and reused afterwards, written owner-only (0600) in a
//! directory only the owner can enter (0700); a key file someone else can read is refused
//! rather than used, as OpenSSH does.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("key file {path}: {message}")]
    Key { path: PathBuf, message: String },
}

/// The gateway's keys, each for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// A box's static key, for boxes that cannot trust the CA (its public half goes in
    /// the box login's `authorized_keys`).
    BoxStatic(iks_domain::ids::BoxId),
    /// The SSH host key engineers' clients pin.
    Host,
    /// Signs the short-lived user certificates boxes trust through `TrustedUserCAKeys`.
    UserCa,
    /// Signs audit checkpoints.
    Audit,
}

impl KeyRole {
    fn file_name(self) -> String {
        match self {
            Self::BoxStatic(id) => format!("box_{}_ed25519_key", id.get()),
            Self::Host => "ssh_host_ed25519_key".into(),
            Self::UserCa => "user_ca_ed25519_key".into(),
            Self::Audit => "audit_ed25519_key".into(),
        }
    }

    fn comment(self) -> String {
        match self {
            Self::BoxStatic(id) => format!("iks-gateway static key for box {id}"),
            Self::Host => "iks-gateway host key".into(),
            Self::UserCa => "iks-gateway user CA".into(),
            Self::Audit => "iks-gateway audit checkpoints".into(),
        }
    }
}

/// A data directory, created on open.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens `root`, creating it (and its `keys/` and `recordings/`) when missing.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        let dir = Self::at(root);
        for d in [dir.root.clone(), dir.keys_dir(), dir.recordings_dir()] {
            create_private_dir(&d)?;
        }
        Ok(dir)
    }

    /// The data dir at `root`, which may not exist: for looking, never creating.
    pub fn at(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.root.join("recordings")
    }

    /// The default config file inside the data dir (used when present).
    pub fn config_file(&self) -> PathBuf {
        self.root.join("iks-gateway.toml")
    }

    fn key_path(&self, role: KeyRole) -> PathBuf {
        self.keys_dir().join(role.file_name())
    }

    /// Loads the key for `role`, generating it the first time.
    pub fn key(&self, role: KeyRole) -> Result<PrivateKey, DataDirError> {
        if let Some(key) = self.existing_key(role)? {
            return Ok(key);
        }
        let path = self.key_path(role);
        let key_err = |message: String| DataDirError::Key { path: path.clone(), message };
        let mut key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .map_err(|e| key_err(e.to_string()))?;
        key.set_comment(role.comment());
        key.write_openssh_file(&path, LineEnding::LF).map_err(|e| key_err(e.to_string()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|source| DataDirError::Io { path: path.clone(), source })?;
        Ok(key)
    }

    /// Loads the key for `role` if it was generated; for commands that must not create one
    /// (checking signatures against a key made just now would prove nothing).
    pub fn existing_key(&self, role: KeyRole) -> Result<Option<PrivateKey>, DataDirError> {
        let path = self.key_path(role);
        let key_err = |message: String| DataDirError::Key { path: path.clone(), message };
        match fs::metadata(&path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(key_err(format!(
                        "is readable by others (mode {:o}); run chmod 600 on it",
                        meta.permissions().mode() & 0o777
                    )));
                }
                PrivateKey::read_openssh_file(&path).map(Some).map_err(|e| key_err(e.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }
}

/// SHA-256 (hex) of a file's contents, read in chunks: recordings can be large.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex::encode(ctx.finish())),
            n => ctx.update(&buf[..n]),
        }
    }
}

/// `SHA256:…` of a key's public half, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn create_private_dir(path: &Path) -> Result<(), DataDirError> {
    let io_err = |source| DataDirError::Io { path: path.to_path_buf(), source };
    if !path.exists() {
        fs::create_dir_all(path).map_err(io_err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
    } else if !path.is_dir() {
        return Err(io_err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_kept_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("data")).unwrap();
        let mode = fs::metadata(dir.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let a = dir.key(KeyRole::Host).unwrap();
        let b = dir.key(KeyRole::Host).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b), "the host key is reused");
        assert_ne!(fingerprint(&a), fingerprint(&dir.key(KeyRole::UserCa).unwrap()), "each role has its own key");
        let path = dir.keys_dir().join("ssh_host_ed25519_key");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = dir.key(KeyRole::Host).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
        assert!(dir.existing_key(KeyRole::Audit).unwrap().is_none(), "looking does not generate");
    }
}
