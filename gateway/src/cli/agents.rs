//! `iks-gateway box …`: enrolling and revoking the agents of boxes the gateway reaches
//! through an outbound tunnel.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use iks_domain::audit::Actor;
use iks_domain::rules::parse_duration;
use iks_gateway::datadir::{KeyRole, fingerprint};
use serde_json::json;

use super::Context;
use super::admin::resolve_box;

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    /// Create a one-time token to enrol a box's agent and print the command to run on the box.
    EnrollToken {
        /// The box: ID, INN/name, or a name no other organisation uses.
        r#box: String,
        /// How long the token stays valid, e.g. 24h or 30m.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// The gateway's SSH address as the box reaches it [default: the SSH listen address].
        #[arg(long, value_name = "HOST:PORT")]
        gateway: Option<String>,
    },
    /// Revoke a box's agent: its connections drop within a second and its key is refused.
    RevokeAgent {
        /// The box: ID, INN/name, or a name no other organisation uses.
        r#box: String,
    },
}

pub async fn run(ctx: &Context, cmd: BoxCommand, json: bool) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let tz = ctx.config.hours.timezone;
    let actor = Actor::cli();
    match cmd {
        BoxCommand::EnrollToken { r#box, ttl, gateway } => {
            let b = resolve_box(&store, &r#box).await?;
            let ttl = parse_duration(&ttl).map_err(|e| anyhow!("--ttl: {e}"))?;
            if ttl > chrono::Duration::days(30) {
                bail!("--ttl: at most 30 days; a token is a credential");
            }
            let org = store.org(b.org_id).await?;
            let expires_at = iks_domain::time::now() + ttl;
            let (token, _) = iks_gateway::enrollment::issue_token(&store, &actor, &b, expires_at).await?;
            let gateway = gateway.unwrap_or_else(|| ctx.config.ssh.public_address());
            let host_key = fingerprint(&ctx.data_dir.key(KeyRole::Host)?);
            let command = iks_gateway::enrollment::enroll_command(&gateway, &token, &host_key);
            if json {
                let v = json!({ "box": b.name, "box_id": b.id, "token": token, "expires_at": expires_at,
                                "gateway_host_key": host_key, "command": command });
                out!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            out!(
                "enrolment token for box {} of {} (single use, expires {}):",
                b.name,
                org.name,
                iks_domain::time::display(expires_at, tz)
            );
            out!("  {token}");
            out!("on the box, as root:");
            out!("  {command}");
            if b.address.is_some() {
                out!("note: box {} has a direct address; sessions use the agent only once it is cleared", b.name);
                out!("  (iks-gateway admin box update {} --address none)", b.id);
            }
        }
        BoxCommand::RevokeAgent { r#box } => {
            let b = resolve_box(&store, &r#box).await?;
            let agent = store.revoke_agent(&actor, b.id).await.map_err(|e| match e {
                iks_gateway::store::StoreError::NotFound { .. } => anyhow!("box {} has no enrolled agent", b.name),
                other => other.into(),
            })?;
            if json {
                out!("{}", serde_json::to_string_pretty(&agent)?);
                return Ok(());
            }
            out!("revoked agent {} of box {} ({})", agent.id, b.name, agent.key_fingerprint);
            if agent.online_since.is_some() {
                out!("  its connection is dropped within a second; its key is refused from now on");
            }
        }
    }
    Ok(())
}
