//! `iks-agent enroll`: registers this box with a gateway using a one-time token.
//!
//! The key is generated here and never leaves the box; the gateway learns its public half
//! from the SSH login, whose signature proves the agent holds it. Nothing is written to the
//! config dir until the gateway has confirmed, so a refused enrolment leaves no trace on
//! either side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iks_proto::{AgentUser, EnrollReply, EnrollRequest};
use russh::ChannelMsg;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

use crate::config::{AgentConfig, ConfigDir};
use crate::connection::{self, Handler, HostKeyCheck};
use crate::report::{self, Release};
use crate::{AgentError, VERSION};

/// How long the gateway may take to answer the enrolment.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of the gateway's answer that is kept.
const MAX_ANSWER: usize = 64 * 1024;

/// What `iks-agent enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub gateway: String,
    pub token: String,
    /// `SHA256:…`; without it the gateway's key is trusted on first use.
    pub expect_host_key: Option<String>,
    pub sshd: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub version_file: PathBuf,
    /// The box sshd's public host key, which the gateway pins.
    pub sshd_host_key_file: PathBuf,
    /// Enrol again even though the config dir holds an enrolment.
    pub force: bool,
}

/// A completed enrolment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub reply: EnrollReply,
    /// `SHA256:…` of the gateway's host key, now pinned.
    pub gateway_host_key: String,
    pub trusted_on_first_use: bool,
    pub reported: Release,
    /// Whether the box's sshd host key was found and sent.
    pub sent_box_host_key: bool,
}

/// Enrols and writes the config dir.
pub async fn enroll(dir: &ConfigDir, o: &EnrollOptions) -> Result<Enrolled, AgentError> {
    if dir.is_enrolled() && !o.force {
        return Err(AgentError::Invalid(format!(
            "{} already holds an enrolment; use --force to enrol again (the gateway then forgets the old key)",
            dir.root().display()
        )));
    }
    check_address("--gateway", &o.gateway)?;
    check_address("--sshd", &o.sshd)?;
    let check = match &o.expect_host_key {
        Some(fp) if fp.starts_with("SHA256:") && fp.len() > 7 => HostKeyCheck::Fingerprint(fp.clone()),
        Some(fp) => {
            return Err(AgentError::Invalid(format!(
                "--expect-host-key: '{fp}' is not a SHA256 fingerprint (SHA256:… as `iks-gateway box enroll-token` prints it)"
            )));
        }
        None => HostKeyCheck::FirstUse,
    };
    let reported = report::release(o.product.as_deref(), o.version.as_deref(), &o.version_file);
    let box_host_key = read_host_key(&o.sshd_host_key_file)?;
    let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| AgentError::Invalid(format!("cannot generate a key: {e}")))?;
    let request = EnrollRequest {
        agent_version: VERSION.into(),
        product: reported.product.clone(),
        version: reported.version.clone(),
        box_host_key: box_host_key.clone(),
    };
    let command = iks_proto::enroll_command(o.token.trim(), &request)
        .map_err(|e| AgentError::Invalid(format!("cannot encode the request: {e}")))?;

    let handler = Handler::new(check.clone(), None);
    let seen = handler_seen(&handler);
    let mut handle = connection::connect(&o.gateway, handler).await?;
    let key = Arc::new(key);
    connection::authenticate(&mut handle, &AgentUser::Enroll, key.clone()).await?;
    let gateway_key = seen().ok_or(AgentError::Closed)?;
    let mut channel = handle.channel_open_session().await?;
    channel.exec(true, command).await?;
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
    let read = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } if out.len() < MAX_ANSWER => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } if err.len() < MAX_ANSWER => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Failure => {
                    err.extend_from_slice(b"the gateway refused the enrolment request");
                    break;
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, read)
        .await
        .map_err(|_| AgentError::Timeout { gateway: o.gateway.clone(), secs: ANSWER_TIMEOUT.as_secs() })?;
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "enrolled", "en").await;
    if status != Some(0) {
        let message = String::from_utf8_lossy(&err).lines().next().unwrap_or("no reason given").trim().to_string();
        return Err(AgentError::EnrollmentRefused(message));
    }
    let reply: EnrollReply = serde_json::from_slice(&out)
        .map_err(|e| AgentError::Invalid(format!("the gateway's answer is unreadable: {e}")))?;
    let mut gateway_line = gateway_key.clone();
    gateway_line.set_comment("");
    let config = AgentConfig {
        gateway: o.gateway.clone(),
        gateway_host_key: gateway_line
            .to_openssh()
            .map_err(|e| AgentError::Invalid(format!("cannot encode the gateway's key: {e}")))?,
        box_name: reply.box_name.clone(),
        org: reply.org.clone(),
        sshd: o.sshd.clone(),
        product: o.product.clone(),
        version: o.version.clone(),
        version_file: o.version_file.clone(),
        max_sessions: crate::config::default_max_sessions(),
    };
    dir.save(&config, &key)?;
    Ok(Enrolled {
        reply,
        gateway_host_key: gateway_key.fingerprint(HashAlg::Sha256).to_string(),
        trusted_on_first_use: matches!(check, HostKeyCheck::FirstUse),
        reported,
        sent_box_host_key: box_host_key.is_some(),
    })
}

/// A getter for the host key the gateway presents through `handler`.
fn handler_seen(handler: &Handler) -> impl Fn() -> Option<PublicKey> + use<> {
    let seen = handler.seen();
    move || seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The box sshd's host key line, when the file exists.
fn read_host_key(path: &std::path::Path) -> Result<Option<String>, AgentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::Io { path: path.to_path_buf(), source: e }),
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| AgentError::Config { path: path.to_path_buf(), message: "holds no public key".into() })?;
    PublicKey::from_openssh(line)
        .map_err(|e| AgentError::Config { path: path.to_path_buf(), message: format!("not a public key: {e}") })?;
    Ok(Some(line.to_string()))
}

fn check_address(flag: &str, v: &str) -> Result<(), AgentError> {
    match v.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => Ok(()),
        _ => Err(AgentError::Invalid(format!("{flag}: '{v}' is not HOST:PORT"))),
    }
}
