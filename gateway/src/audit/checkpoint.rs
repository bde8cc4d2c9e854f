//! Signed checkpoints: "the chain reached event #n, whose hash is h, at time t", signed with
//! the gateway's audit key.
//!
//! The hash chain proves that nothing before an event changed, but someone who can write
//! the database could still cut off the newest events, or rewrite the chain from some
//! point on and recompute every hash after it. A checkpoint covering event #n reveals
//! both, as long as the key that signed it is trusted.
//!
//! Signatures are SSH signatures (OpenSSH's `PROTOCOL.sshsig`, what `ssh-keygen -Y sign`
//! writes) in the namespace [`NAMESPACE`], so an auditor can check a checkpoint, or a
//! whole export, with stock OpenSSH and no gateway code (`docs/audit.md` shows how).

use chrono::{DateTime, Utc};
use ring::digest::{SHA512, digest};
use russh::keys::ssh_key::{LineEnding, SshSig};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// The SSH signature namespace of everything the audit key signs (`ssh-keygen -n`).
pub const NAMESPACE: &str = "iks-gateway-audit";

/// The digest inside the SSH signature: SHA-512, as `ssh-keygen -Y sign` uses.
const HASH_ALG: HashAlg = HashAlg::Sha512;

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: i64,
    #[serde(flatten)]
    pub signed: SignedCheckpoint,
}

/// What a checkpoint says and its signature: everything but the row ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// The event covered: the chain's newest event when the checkpoint was made.
    pub seq: i64,
    /// That event's hash.
    pub hash: String,
    #[serde(with = "iks_domain::time::db_text")]
    pub at: DateTime<Utc>,
    /// The signer's promise: the next checkpoint will be signed by then. Only a serving
    /// gateway promises (it signs at least every `[audit] checkpoint_interval`); `None`
    /// for a checkpoint signed at shutdown, by `audit checkpoint`, or before this field.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_db_text")]
    pub next: Option<DateTime<Utc>>,
    /// `SHA256:…` of the signing key, for people; the signature itself names the key.
    pub key_fingerprint: String,
    /// The armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over [`message`].
    pub signature: String,
}

/// `Option<DateTime>` in the store's text form, for [`SignedCheckpoint::next`].
mod opt_db_text {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&iks_domain::time::to_db(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| iks_domain::time::from_db(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// The audit key could not sign.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign with the audit key: {0}")]
pub struct SignError(#[from] russh::keys::ssh_key::Error);

/// Why a signature is not good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadSignature {
    /// Made by a key other than the trusted one (its fingerprint).
    ForeignKey(String),
    /// Unreadable, or does not match the signed bytes.
    Invalid,
}

/// The exact text a checkpoint's signature covers: v1 without a promise, v2 with the
/// `next` line (so checkpoints signed before promises existed still verify).
pub fn message(seq: i64, hash: &str, at: DateTime<Utc>, next: Option<DateTime<Utc>>) -> String {
    let at = iks_domain::time::to_db(at);
    match next {
        None => format!("iks-gateway audit checkpoint v1\nseq: {seq}\nhash: {hash}\nat: {at}\n"),
        Some(next) => format!(
            "iks-gateway audit checkpoint v2\nseq: {seq}\nhash: {hash}\nat: {at}\nnext: {}\n",
            iks_domain::time::to_db(next)
        ),
    }
}

/// Signs a checkpoint of event #`seq` with hash `hash`, made at `at`, promising the next
/// one by `next` (if given).
pub fn sign(
    key: &PrivateKey,
    seq: i64,
    hash: &str,
    at: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<SignedCheckpoint, SignError> {
    let signature = sign_sha512(key, digest(&SHA512, message(seq, hash, at, next).as_bytes()).as_ref())?;
    Ok(SignedCheckpoint {
        seq,
        hash: hash.to_string(),
        at,
        next,
        key_fingerprint: crate::datadir::fingerprint(key),
        signature,
    })
}

/// An armored SSH signature over a message given by its SHA-512 digest, so that a large
/// message (an export) is signed as it streams out.
pub fn sign_sha512(key: &PrivateKey, sha512: &[u8]) -> Result<String, SignError> {
    Ok(key.sign_prehash(NAMESPACE, HASH_ALG, sha512)?.to_pem(LineEnding::LF)?)
}

/// Checks an armored SSH signature over a message given by its SHA-512 digest: made by
/// `trusted`, in [`NAMESPACE`], over exactly that message.
pub fn check_sha512(trusted: &PublicKey, armored: &str, sha512: &[u8]) -> Result<(), BadSignature> {
    let sig = SshSig::from_pem(armored).map_err(|_| BadSignature::Invalid)?;
    if sig.public_key() != trusted.key_data() {
        return Err(BadSignature::ForeignKey(sig.public_key().fingerprint(HashAlg::Sha256).to_string()));
    }
    if sig.hash_alg() != HASH_ALG {
        return Err(BadSignature::Invalid);
    }
    trusted.verify_prehash(NAMESPACE, sha512, &sig).map_err(|_| BadSignature::Invalid)
}

impl SignedCheckpoint {
    /// Checks the signature against the trusted audit key.
    pub fn check(&self, trusted: &PublicKey) -> Result<(), BadSignature> {
        check_sha512(
            trusted,
            &self.signature,
            digest(&SHA512, message(self.seq, &self.hash, self.at, self.next).as_bytes()).as_ref(),
        )
    }
}

/// `[audit] checkpoint_log`: a copy of every checkpoint, one JSON line each, appended to a
/// file the database's owner cannot rewrite (an append-only file, a mount of another host),
/// so that deleting checkpoints from the database shows at once. Verification requires
/// every checkpoint in it to be stored unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointLog {
    path: std::path::PathBuf,
}

impl CheckpointLog {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Appends `c` as one line (a single write, synced).
    pub fn append(&self, c: &Checkpoint) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut line = serde_json::to_vec(c).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Every checkpoint in the log; none before the first is written (no file yet).
    pub fn read(&self) -> Result<Vec<Checkpoint>, LogUnreadable> {
        let problem = |message: String| LogUnreadable { path: self.path.display().to_string(), message };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(problem(e.to_string())),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| serde_json::from_str(l).map_err(|e| problem(format!("line {}: {e}", n + 1))))
            .collect()
    }
}

/// Why the checkpoint log could not be read: the file, and what is wrong where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint log {path}: {message}")]
pub struct LogUnreadable {
    pub path: String,
    pub message: String,
}

/// A fresh Ed25519 key for tests.
#[cfg(test)]
pub(crate) fn test_key() -> PrivateKey {
    PrivateKey::random(&mut russh::keys::key::safe_rng(), russh::keys::Algorithm::Ed25519).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_is_fixed() {
        let at = iks_domain::time::from_db("2026-11-24T10:00:00.000001Z").unwrap();
        assert_eq!(
            message(42, &"ab".repeat(32), at, None),
            format!(
                "iks-gateway audit checkpoint v1\nseq: 42\nhash: {}\nat: 2026-11-24T10:00:00.000001Z\n",
                "ab".repeat(32)
            )
        );
        let next = at + chrono::Duration::minutes(2);
        assert_eq!(
            message(42, &"ab".repeat(32), at, Some(next)),
            format!(
                "iks-gateway audit checkpoint v2\nseq: 42\nhash: {}\nat: 2026-11-24T10:00:00.000001Z\n\
                 next: 2026-11-24T10:02:00.000001Z\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn a_checkpoint_holds_only_for_what_was_signed_by_whom() {
        let key = test_key();
        let at = iks_domain::time::now();
        let cp = sign(&key, 7, &"cd".repeat(32), at, None).unwrap();
        assert!(cp.signature.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{}", cp.signature);
        assert_eq!(cp.key_fingerprint, crate::datadir::fingerprint(&key));
        assert_eq!(cp.check(key.public_key()), Ok(()));

        let mut moved = cp.clone();
        moved.seq = 8;
        assert_eq!(moved.check(key.public_key()), Err(BadSignature::Invalid));
        let mut rehashed = cp.clone();
        rehashed.hash = "ef".repeat(32);
        assert_eq!(rehashed.check(key.public_key()), Err(BadSignature::Invalid));
        let mut garbled = cp.clone();
        garbled.signature = "not a signature".into();
        assert_eq!(garbled.check(key.public_key()), Err(BadSignature::Invalid));
        // A promise is signed: it can be neither added nor removed nor moved.
        let promised = sign(&key, 7, &"cd".repeat(32), at, Some(at + chrono::Duration::minutes(2))).unwrap();
        assert_eq!(promised.check(key.public_key()), Ok(()));
        let mut unpromised = promised.clone();
        unpromised.next = None;
        assert_eq!(unpromised.check(key.public_key()), Err(BadSignature::Invalid));
        let mut postponed = promised.clone();
        postponed.next = Some(at + chrono::Duration::hours(2));
        assert_eq!(postponed.check(key.public_key()), Err(BadSignature::Invalid));
        let mut added = cp.clone();
        added.next = Some(at);
        assert_eq!(added.check(key.public_key()), Err(BadSignature::Invalid));

        let other = test_key();
        let forged = sign(&other, 7, &"cd".repeat(32), at, None).unwrap();
        assert_eq!(forged.check(key.public_key()), Err(BadSignature::ForeignKey(crate::datadir::fingerprint(&other))));
    }

    #[test]
    fn the_checkpoint_log_keeps_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let log = CheckpointLog::new(dir.path().join("checkpoints.jsonl"));
        assert_eq!(log.read(), Ok(Vec::new()), "no file before the first checkpoint");
        let key = test_key();
        let at = iks_domain::time::now();
        let a = Checkpoint { id: 1, signed: sign(&key, 7, &"cd".repeat(32), at, None).unwrap() };
        let b = Checkpoint { id: 2, signed: sign(&key, 9, &"ef".repeat(32), at, Some(at)).unwrap() };
        log.append(&a).unwrap();
        log.append(&b).unwrap();
        assert_eq!(log.read(), Ok(vec![a, b]));
        std::fs::write(dir.path().join("checkpoints.jsonl"), "{\"id\":1}\n").unwrap();
        assert!(log.read().unwrap_err().to_string().contains("checkpoints.jsonl: line 1: missing field"));
    }
}
