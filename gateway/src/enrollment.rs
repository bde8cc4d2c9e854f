//! Enrolling a box's agent: one-time tokens and what an enrolment request must satisfy.
//! The SSH plumbing is in `ssh::agent`; the transaction in the store.
//!
//! A token is 32 random bytes shown once (`iks-enroll-` and 64 hex digits); the store keeps
//! only its SHA-256, so a copy of the database cannot enrol anything. It is single use and
//! expires (24 h by default).

use chrono::{DateTime, Utc};

use crate::secret::{self, RandomFailed};
use crate::store::{EnrollError, Enrolled, Enrolment, Store, StoreError};
use iks_domain::audit::Actor;
use iks_domain::model::{AgentReport, AgentToken, IksBox, InvalidField, NewSshKey, parse_public_key};

/// What every token starts with, so it is recognisable in a shell history or a leak scanner.
pub const TOKEN_PREFIX: &str = "iks-enroll-";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot generate a token: {0}")]
    Random(#[from] RandomFailed),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for `b`, valid until `expires_at`; returns the token (shown once) and its record.
pub async fn issue_token(
    store: &Store,
    actor: &Actor,
    b: &IksBox,
    expires_at: DateTime<Utc>,
) -> Result<(String, AgentToken), TokenError> {
    let token = secret::token::<32>(TOKEN_PREFIX)?;
    let record = store.create_agent_token(actor, b.id, &token_hash(&token), expires_at).await?;
    Ok((token, record))
}

/// The command the box's admin runs to enrol its agent, as the CLI and the panel print it.
pub fn enroll_command(gateway: &str, token: &str, host_key_fingerprint: &str) -> String {
    format!("iks-agent enroll --gateway {gateway} --token {token} --expect-host-key {host_key_fingerprint}")
}

/// How a token is stored and looked up: as every token, but a pasted token's stray
/// whitespace is forgiven.
pub fn token_hash(token: &str) -> String {
    secret::hash(token.trim())
}

/// Why an enrolment request was refused before the token was even looked at.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Command(#[from] iks_proto::BadEnrollCommand),
    #[error("the enrolment command is not UTF-8")]
    NotUtf8,
    #[error("the agent's report is not acceptable: {0}")]
    Report(InvalidField),
    #[error("the agent's key is not acceptable: {0}")]
    Key(InvalidField),
}

/// Reads an enrolment command and the key the agent logged in with into what the store
/// needs, checking everything that came from the box.
pub fn read_request(command: &[u8], key: &russh::keys::PublicKey) -> Result<(String, Enrolment), RequestError> {
    let command = std::str::from_utf8(command).map_err(|_| RequestError::NotUtf8)?;
    let (token, req) = iks_proto::parse_enroll_command(command)?;
    let report = AgentReport {
        agent_version: req.agent_version,
        product: req.product,
        version: req.version,
        remote_access_disabled: false,
    };
    report.validate().map_err(RequestError::Report)?;
    let line = key.to_openssh().map_err(|e| RequestError::Key(InvalidField::new("key", e.to_string())))?;
    let agent_key = NewSshKey::parse(&line).map_err(RequestError::Key)?;
    let box_host_key = req
        .box_host_key
        .map(|line| {
            let mut k = parse_public_key("box_host_key", &line).map_err(RequestError::Report)?;
            k.set_comment("");
            k.to_openssh()
                .map(|l| l.trim().to_string())
                .map_err(|e| RequestError::Report(InvalidField::new("box_host_key", e.to_string())))
        })
        .transpose()?;
    let enrolment =
        Enrolment { key_fingerprint: agent_key.fingerprint, public_key: agent_key.public_key, report, box_host_key };
    Ok((token_hash(token), enrolment))
}

/// Why an enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollFailure {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Refused(#[from] EnrollError),
}

impl EnrollFailure {
    /// The one line the agent shows the box's admin, with times in the gateway's zone.
    pub fn message(&self, tz: chrono_tz::Tz) -> String {
        match self {
            Self::Request(e) => e.to_string(),
            Self::Refused(e) => e.message(tz),
        }
    }
}

/// Enrols the agent that sent `command` while logged in with `key`.
pub async fn enroll(store: &Store, command: &[u8], key: &russh::keys::PublicKey) -> Result<Enrolled, EnrollFailure> {
    let (hash, enrolment) = read_request(command, key)?;
    store.enroll_agent(&hash, &enrolment).await.map_err(|e| {
        tracing::warn!(error = %e, fingerprint = enrolment.key_fingerprint, "enrolment refused");
        e.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let key = russh::keys::PrivateKey::random(&mut russh::keys::key::safe_rng(), russh::keys::Algorithm::Ed25519)
            .unwrap();
        let public = key.public_key();
        let request = |product: &str, host_key: Option<&str>| {
            iks_proto::enroll_command(
                "iks-enroll-00",
                &iks_proto::EnrollRequest {
                    agent_version: "0.1.0".into(),
                    product: Some(product.into()),
                    version: Some("7.2".into()),
                    box_host_key: host_key.map(str::to_string),
                },
            )
            .unwrap()
        };
        let host = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEDzWDPG1+ZhUfXGbzPFFpJm/ihb5BFgCjLZm3dj7+2P root@box";
        let (hash, e) = read_request(request("iks-standard", Some(host)).as_bytes(), public).unwrap();
        assert_eq!(hash, token_hash("iks-enroll-00"));
        assert_eq!(e.box_host_key.as_deref(), host.strip_suffix(" root@box"), "the comment is dropped");
        assert_eq!(e.report.product.as_deref(), Some("iks-standard"));
        assert!(e.key_fingerprint.starts_with("SHA256:"));
        let bad = read_request(request("iks standard\x1b[2J", None).as_bytes(), public).unwrap_err().to_string();
        assert!(bad.contains("product") && bad.contains("\\u{1b}"), "{bad}");
        let bad_key = read_request(request("iks-standard", Some("ssh-ed25519 AAAA")).as_bytes(), public);
        assert!(bad_key.unwrap_err().to_string().contains("box_host_key"));
        assert!(read_request(b"shell", public).unwrap_err().to_string().contains("accepts only"));
    }
}
