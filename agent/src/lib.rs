//! iks-agent: runs on a customer's IKS box, dials *out* to the iks-gateway over SSH and
//! keeps a tunnel, so support engineers reach the box's sshd without an inbound port —
//! and only while the customer's grant (and the customer's local kill switch) allow it.
//!
//! The protocol is in the `iks_proto` crate. In short: `enroll` registers a new key with a
//! one-time token; `run` keeps a control connection (keepalives both ways, reconnect with
//! capped exponential backoff and jitter, the gateway's host key pinned at enrolment and
//! never re-pinned); for each session the gateway asks for a data connection, and the agent
//! connects the one `forwarded-tcpip` channel on it to its configured sshd address.
//!
//! The agent is the SSH *client*, and russh's client accepts channels the server opens
//! unless told otherwise, so [`connection`] overrides every channel-open callback: the
//! only channel ever accepted is the tunnel on a data connection, addressed to
//! `sshd:22`, and it goes to the configured sshd — never to an address the gateway names.
//!
//! Modules: [`config`] (the config dir and its files), [`enroll`], [`connection`] (the SSH
//! client side), [`run`] (the reconnect loop and the kill switch), [`status`] (what
//! `iks-agent status` reads), [`report`] (what the box runs).

pub mod config;
pub mod connection;
pub mod enroll;
pub mod report;
pub mod run;
pub mod status;

use std::path::PathBuf;

/// This agent's version, reported to the gateway.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What can go wrong, in one line a box's admin can act on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot connect to the gateway at {gateway}: {source}")]
    Connect { gateway: String, source: std::io::Error },
    #[error("the gateway at {gateway} did not answer within {secs} s")]
    Timeout { gateway: String, secs: u64 },
    #[error(
        "the gateway's host key changed: expected {expected}, the gateway presented {presented}; refusing to \
         connect (the gateway may have been replaced or the connection intercepted; enrol again to trust a new key)"
    )]
    HostKeyMismatch { expected: String, presented: String },
    #[error("SSH with the gateway failed: {0}")]
    Ssh(#[from] russh::Error),
    #[error("the gateway refused this agent's key (was the agent revoked, or the box enrolled again?)")]
    KeyRefused,
    #[error("the gateway refused the enrolment: {0}")]
    EnrollmentRefused(String),
    #[error("the gateway closed the connection")]
    Closed,
}

impl AgentError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
