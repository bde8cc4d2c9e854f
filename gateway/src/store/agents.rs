//! Agents: one-time enrolment tokens, enrolments, and where each agent's control
//! connection is. What an agent reports about its box (product, version) is written to
//! the box record too, audited with the agent as the actor, so the version rule checks
//! what really runs on the box.
//!
//! Presence is kept in the store, not only in the node's memory, so every node and the
//! CLI can say "offline since 14:03" and a node restarted after a crash can mark the
//! agents it held as offline. The periodic `last_seen` heartbeat is not audited: it is
//! not a change anyone decided, and it would flood the chain.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::{BOX_COLUMNS, ORG_COLUMNS, box_from_row, changes, not_found, org_from_row};
use super::{Result, RowExt, Store, StoreError, Tx, conflict_on_unique};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::{AgentId, AgentTokenId, BoxId};
use iks_domain::model::{Agent, AgentReport, AgentToken, IksBox, Organisation};
use iks_domain::time::{now, to_db};

const AGENT_COLUMNS: &str = "id, box_id, key_fingerprint, public_key, enrolled_at, revoked_at, revoked_by, \
                             agent_version, product, version, remote_access_disabled, node, connection, \
                             online_since, offline_since, last_seen";
const TOKEN_COLUMNS: &str = "id, box_id, created_by, created_at, expires_at, used_at, agent_id";

fn agent_from_row(r: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(r.int("id")?),
        box_id: BoxId(r.int("box_id")?),
        key_fingerprint: r.text("key_fingerprint")?,
        public_key: r.text("public_key")?,
        enrolled_at: r.time("enrolled_at")?,
        revoked_at: r.opt_time("revoked_at")?,
        revoked_by: r.opt_text("revoked_by")?,
        agent_version: r.opt_text("agent_version")?,
        product: r.opt_text("product")?,
        version: r.opt_text("version")?,
        remote_access_disabled: r.flag("remote_access_disabled")?,
        node: r.opt_text("node")?,
        connection: r.opt_text("connection")?,
        online_since: r.opt_time("online_since")?,
        offline_since: r.opt_time("offline_since")?,
        last_seen: r.opt_time("last_seen")?,
    })
}

fn token_from_row(r: &AnyRow) -> Result<AgentToken> {
    Ok(AgentToken {
        id: AgentTokenId(r.int("id")?),
        box_id: BoxId(r.int("box_id")?),
        created_by: r.text("created_by")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        used_at: r.opt_time("used_at")?,
        agent_id: r.opt_int("agent_id")?.map(AgentId),
    })
}

/// What an enrolling agent presents: its key (proved by its SSH login) and its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub key_fingerprint: String,
    /// The agent's OpenSSH public key line, without a comment.
    pub public_key: String,
    pub report: AgentReport,
    /// The box sshd's host key as the agent read it (OpenSSH line without a comment).
    pub box_host_key: Option<String>,
}

/// A completed enrolment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub agent: Agent,
    pub iks_box: IksBox,
    pub org: Organisation,
    /// The enrolment this one replaced (revoked in the same transaction).
    pub replaced: Option<AgentId>,
}

/// Why an enrolment was refused; nothing is stored when it is.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrolment token is not valid (mistyped, or not issued by this gateway)")]
    UnknownToken,
    #[error("the enrolment token was already used at {}; ask the gateway's admin for a new one", to_db(*at))]
    Used { at: DateTime<Utc> },
    #[error("the enrolment token expired at {}; ask the gateway's admin for a new one", to_db(*at))]
    Expired { at: DateTime<Utc> },
    #[error(
        "the box's sshd host key ({reported}) differs from the key pinned for box {box_name} ({pinned}); \
         an admin must clear or update it first (iks-gateway admin box update … --host-key)"
    )]
    HostKeyMismatch { box_name: String, pinned: String, reported: String },
    #[error("this agent key is already enrolled")]
    KeyTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnrollError {
    /// The one line the agent's operator sees, with times in the gateway's zone.
    pub fn message(&self, tz: chrono_tz::Tz) -> String {
        let expired_or_used = |verb: &str, at: &DateTime<Utc>| {
            format!(
                "the enrolment token {verb} at {}; ask the gateway's admin for a new one",
                iks_domain::time::display(*at, tz)
            )
        };
        match self {
            Self::Used { at } => expired_or_used("was already used", at),
            Self::Expired { at } => expired_or_used("expired", at),
            Self::Store(_) => "the gateway cannot enrol agents right now; try again shortly".into(),
            other => other.to_string(),
        }
    }
}

fn key_fingerprint(line: &str) -> Option<String> {
    russh::keys::PublicKey::from_openssh(line).ok().map(|k| k.fingerprint(russh::keys::HashAlg::Sha256).to_string())
}

fn box_subjects(b: &IksBox) -> Subjects {
    Subjects { org: Some(b.org_id), box_: Some(b.id), ..Default::default() }
}

impl Tx {
    async fn box_for_update(&mut self, id: BoxId) -> Result<IksBox> {
        let row = sqlx::query(&format!("SELECT {BOX_COLUMNS} FROM boxes WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(self.conn())
            .await?
            .ok_or_else(|| not_found("box", id))?;
        box_from_row(&row)
    }

    /// Writes what the agent reported into the box record, audited with the agent as actor.
    /// Pins `host_key` only when the box has none (a pinned key changes only by an admin).
    async fn apply_report(
        &mut self,
        actor: &Actor,
        before: &IksBox,
        report: &AgentReport,
        host_key: Option<&str>,
    ) -> Result<IksBox> {
        let mut after = before.clone();
        if let Some(p) = &report.product {
            after.product.clone_from(p);
        }
        if let Some(v) = &report.version {
            after.version.clone_from(v);
        }
        if after.host_key.is_none() {
            after.host_key = host_key.map(str::to_string);
        }
        if after == *before {
            return Ok(after);
        }
        let row = sqlx::query(&format!(
            "UPDATE boxes SET product = $2, version = $3, host_key = $4, updated_at = $5 WHERE id = $1 \
             RETURNING {BOX_COLUMNS}"
        ))
        .bind(before.id.get())
        .bind(&after.product)
        .bind(&after.version)
        .bind(after.host_key.as_deref())
        .bind(to_db(now()))
        .fetch_one(self.conn())
        .await?;
        let after = box_from_row(&row)?;
        self.audit(NewEvent::new(actor, "box.update", box_subjects(&after), changes(before, &after))).await?;
        Ok(after)
    }
}

impl Store {
    /// Records a new enrolment token for a box; the caller shows the token once.
    pub async fn create_agent_token(
        &self,
        actor: &Actor,
        box_id: BoxId,
        token_sha256: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<AgentToken> {
        let b = self.get_box(box_id).await?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO agent_tokens (box_id, token_sha256, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(box_id.get())
        .bind(token_sha256)
        .bind(&actor.name)
        .bind(to_db(now()))
        .bind(to_db(expires_at))
        .fetch_one(tx.conn())
        .await?;
        let t = token_from_row(&row)?;
        tx.audit(NewEvent::new(
            actor,
            "agent.token.create",
            box_subjects(&b),
            json!({ "token": t.id, "box": b.name, "expires_at": to_db(t.expires_at) }),
        ))
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    pub async fn agent_tokens(&self, box_id: BoxId) -> Result<Vec<AgentToken>> {
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM agent_tokens WHERE box_id = $1 ORDER BY id"))
            .bind(box_id.get())
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    /// Uses a token: in one transaction the token is marked used and the agent's key is
    /// recorded for the box (replacing an earlier enrolment), and the box takes what the
    /// agent reported. Any refusal leaves the store as it was.
    pub async fn enroll_agent(&self, token_sha256: &str, e: &Enrolment) -> Result<Enrolled, EnrollError> {
        let mut tx = self.begin().await?;
        let token = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM agent_tokens WHERE token_sha256 = $1"))
            .bind(token_sha256)
            .fetch_optional(tx.conn())
            .await
            .map_err(StoreError::from)?
            .map(|r| token_from_row(&r))
            .transpose()?
            .ok_or(EnrollError::UnknownToken)?;
        let at = now();
        if let Some(used) = token.used_at {
            return Err(EnrollError::Used { at: used });
        }
        if token.expires_at <= at {
            return Err(EnrollError::Expired { at: token.expires_at });
        }
        let b = tx.box_for_update(token.box_id).await?;
        if let (Some(pinned), Some(reported)) = (&b.host_key, &e.box_host_key) {
            let (pinned_fp, reported_fp) = (key_fingerprint(pinned), key_fingerprint(reported));
            if pinned_fp != reported_fp {
                return Err(EnrollError::HostKeyMismatch {
                    box_name: b.name.clone(),
                    pinned: pinned_fp.unwrap_or_else(|| "unreadable".into()),
                    reported: reported_fp.unwrap_or_else(|| "unreadable".into()),
                });
            }
        }
        let org = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM organisations WHERE id = $1"))
            .bind(b.org_id.get())
            .fetch_one(tx.conn())
            .await
            .map_err(StoreError::from)?;
        let org = org_from_row(&org)?;
        // The replaced agent's connection stays recorded, so the node holding it drops it.
        let replaced = sqlx::query(
            "UPDATE agents SET revoked_at = $2, revoked_by = 're-enrolment' WHERE box_id = $1 AND revoked_at IS NULL \
             RETURNING id",
        )
        .bind(b.id.get())
        .bind(to_db(at))
        .fetch_optional(tx.conn())
        .await
        .map_err(StoreError::from)?
        .map(|r| r.int("id").map(AgentId))
        .transpose()?;
        let r = &e.report;
        let row = sqlx::query(&format!(
            "INSERT INTO agents (box_id, key_fingerprint, public_key, enrolled_at, agent_version, product, version, \
             remote_access_disabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {AGENT_COLUMNS}"
        ))
        .bind(b.id.get())
        .bind(&e.key_fingerprint)
        .bind(&e.public_key)
        .bind(to_db(at))
        .bind(&r.agent_version)
        .bind(r.product.as_deref())
        .bind(r.version.as_deref())
        .bind(i64::from(r.remote_access_disabled))
        .fetch_one(tx.conn())
        .await
        .map_err(|err| match conflict_on_unique(err, String::new) {
            StoreError::Conflict(_) => EnrollError::KeyTaken,
            other => EnrollError::Store(other),
        })?;
        let agent = agent_from_row(&row)?;
        // The guard on used_at makes the token single-use even against a concurrent enrolment.
        let marked =
            sqlx::query("UPDATE agent_tokens SET used_at = $2, agent_id = $3 WHERE id = $1 AND used_at IS NULL")
                .bind(token.id.get())
                .bind(to_db(at))
                .bind(agent.id.get())
                .execute(tx.conn())
                .await
                .map_err(StoreError::from)?;
        if marked.rows_affected() != 1 {
            return Err(EnrollError::Used { at });
        }
        let actor = Actor::agent(agent.id, &b.name);
        let iks_box = tx.apply_report(&actor, &b, r, e.box_host_key.as_deref()).await?;
        tx.audit(NewEvent::new(
            &actor,
            "agent.enroll",
            box_subjects(&iks_box),
            json!({
                "agent": agent.id, "fingerprint": agent.key_fingerprint, "token": token.id,
                "agent_version": r.agent_version, "product": r.product, "version": r.version,
                "box_host_key": e.box_host_key.as_deref().and_then(key_fingerprint), "replaced": replaced,
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(Enrolled { agent, iks_box, org, replaced })
    }

    pub async fn agent(&self, id: AgentId) -> Result<Agent> {
        let row = sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| not_found("agent", id))?;
        agent_from_row(&row)
    }

    /// The active (not revoked) enrolment with this key: how the SSH front knows an agent.
    pub async fn active_agent_by_key(&self, fingerprint: &str) -> Result<Option<Agent>> {
        sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE key_fingerprint = $1 AND revoked_at IS NULL"))
            .bind(fingerprint)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(agent_from_row)
            .transpose()
    }

    /// The box's active enrolment, if any.
    pub async fn active_agent(&self, box_id: BoxId) -> Result<Option<Agent>> {
        sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE box_id = $1 AND revoked_at IS NULL"))
            .bind(box_id.get())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(agent_from_row)
            .transpose()
    }

    /// Active enrolments, of every box.
    pub async fn active_agents(&self) -> Result<Vec<Agent>> {
        sqlx::query(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE revoked_at IS NULL ORDER BY box_id"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    /// The agent's control connection is up on `node`; what it reported goes to the box.
    /// Fails with `NotFound` when the enrolment was revoked meanwhile.
    pub async fn agent_connected(
        &self,
        id: AgentId,
        node: &str,
        connection: &str,
        report: &AgentReport,
    ) -> Result<Agent> {
        self.agent_online(id, node, connection, report, true).await
    }

    /// As [`Self::agent_connected`] for an agent over its audit budget
    /// ([`crate::ssh::agent_audit`]): presence and the kill switch only, no event. Its
    /// report reaches the box (audited) once the budget allows.
    pub async fn agent_connected_quietly(
        &self,
        id: AgentId,
        node: &str,
        connection: &str,
        report: &AgentReport,
    ) -> Result<Agent> {
        self.agent_online(id, node, connection, report, false).await
    }

    async fn agent_online(
        &self,
        id: AgentId,
        node: &str,
        connection: &str,
        report: &AgentReport,
        audited: bool,
    ) -> Result<Agent> {
        let mut tx = self.begin().await?;
        let at = to_db(now());
        if !audited {
            let row = sqlx::query(&format!(
                "UPDATE agents SET node = $2, connection = $3, online_since = $4, last_seen = $4, \
                 remote_access_disabled = $5 WHERE id = $1 AND revoked_at IS NULL RETURNING {AGENT_COLUMNS}"
            ))
            .bind(id.get())
            .bind(node)
            .bind(connection)
            .bind(&at)
            .bind(i64::from(report.remote_access_disabled))
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| not_found("active agent", id))?;
            tx.commit().await?;
            return agent_from_row(&row);
        }
        let row = sqlx::query(&format!(
            "UPDATE agents SET node = $2, connection = $3, online_since = $4, last_seen = $4, agent_version = $5, \
             product = $6, version = $7, remote_access_disabled = $8 WHERE id = $1 AND revoked_at IS NULL \
             RETURNING {AGENT_COLUMNS}"
        ))
        .bind(id.get())
        .bind(node)
        .bind(connection)
        .bind(&at)
        .bind(&report.agent_version)
        .bind(report.product.as_deref())
        .bind(report.version.as_deref())
        .bind(i64::from(report.remote_access_disabled))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("active agent", id))?;
        let agent = agent_from_row(&row)?;
        let b = tx.box_for_update(agent.box_id).await?;
        let actor = Actor::agent(id, &b.name);
        tx.apply_report(&actor, &b, report, None).await?;
        tx.audit(NewEvent::new(
            &actor,
            "agent.connect",
            box_subjects(&b),
            json!({ "node": node, "connection": connection, "agent_version": report.agent_version,
                    "product": report.product, "version": report.version,
                    "remote_access_disabled": report.remote_access_disabled }),
        ))
        .await?;
        tx.commit().await?;
        Ok(agent)
    }

    /// A new report on a live connection; stored (and audited) only when something changed.
    pub async fn agent_reported(&self, id: AgentId, connection: &str, report: &AgentReport) -> Result<Agent> {
        let before = self.agent(id).await?;
        let unchanged = before.agent_version.as_deref() == Some(report.agent_version.as_str())
            && before.product == report.product
            && before.version == report.version
            && before.remote_access_disabled == report.remote_access_disabled;
        if unchanged {
            return Ok(before);
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE agents SET agent_version = $3, product = $4, version = $5, remote_access_disabled = $6, \
             last_seen = $7 WHERE id = $1 AND connection = $2 AND revoked_at IS NULL RETURNING {AGENT_COLUMNS}"
        ))
        .bind(id.get())
        .bind(connection)
        .bind(&report.agent_version)
        .bind(report.product.as_deref())
        .bind(report.version.as_deref())
        .bind(i64::from(report.remote_access_disabled))
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found("connected agent", id))?;
        let after = agent_from_row(&row)?;
        let b = tx.box_for_update(after.box_id).await?;
        let actor = Actor::agent(id, &b.name);
        tx.apply_report(&actor, &b, report, None).await?;
        let action = if before.remote_access_disabled == after.remote_access_disabled {
            "agent.report"
        } else {
            "agent.remote_access"
        };
        tx.audit(NewEvent::new(&actor, action, box_subjects(&b), changes(&before, &after))).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// The control connection `connection` ended. Returns `false` (and writes nothing) when
    /// a newer connection has taken over meanwhile.
    pub async fn agent_disconnected(&self, id: AgentId, connection: &str, why: &str) -> Result<bool> {
        self.agent_offline(id, connection, why, true).await
    }

    /// As [`Self::agent_disconnected`], without an event: the end of a connection that was
    /// made quietly ([`Self::agent_connected_quietly`]).
    pub async fn agent_disconnected_quietly(&self, id: AgentId, connection: &str, why: &str) -> Result<bool> {
        self.agent_offline(id, connection, why, false).await
    }

    /// One event for what an agent's audit budget held back in a window: `suppressed`
    /// reports and connections over `window` ([`crate::ssh::agent_audit`]).
    pub async fn agent_events_suppressed(
        &self,
        id: AgentId,
        suppressed: u32,
        window: std::time::Duration,
    ) -> Result<()> {
        let agent = self.agent(id).await?;
        let mut tx = self.begin().await?;
        let b = tx.box_for_update(agent.box_id).await?;
        tx.audit(NewEvent::new(
            &Actor::agent(id, &b.name),
            "agent.suppressed",
            box_subjects(&b),
            json!({ "suppressed": suppressed, "window_seconds": window.as_secs(),
                    "message": format!("{suppressed} further reports and connections suppressed") }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agent_offline(&self, id: AgentId, connection: &str, why: &str, audited: bool) -> Result<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE agents SET online_since = NULL, connection = NULL, offline_since = $3, last_seen = $3 \
             WHERE id = $1 AND connection = $2 RETURNING {AGENT_COLUMNS}"
        ))
        .bind(id.get())
        .bind(connection)
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else { return Ok(false) };
        if !audited {
            tx.commit().await?;
            return Ok(true);
        }
        let agent = agent_from_row(&row)?;
        let b = tx.box_for_update(agent.box_id).await?;
        tx.audit(NewEvent::new(
            &Actor::agent(id, &b.name),
            "agent.disconnect",
            box_subjects(&b),
            json!({ "connection": connection, "why": why }),
        ))
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks every agent `node` held as offline: at start after a crash, and at shutdown.
    pub async fn agents_offline_on_node(&self, node: &str, why: &str) -> Result<usize> {
        let held = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE node = $1 AND connection IS NOT NULL ORDER BY id"
        ))
        .bind(node)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(agent_from_row)
        .collect::<Result<Vec<_>>>()?;
        let mut n = 0;
        for a in &held {
            if let Some(connection) = &a.connection
                && self.agent_disconnected(a.id, connection, why).await?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Revokes the box's active enrolment: its key is refused from now on, and the node
    /// holding its connection drops it within a watchdog tick.
    pub async fn revoke_agent(&self, actor: &Actor, box_id: BoxId) -> Result<Agent> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE agents SET revoked_at = $2, revoked_by = $3 WHERE box_id = $1 AND revoked_at IS NULL \
             RETURNING {AGENT_COLUMNS}"
        ))
        .bind(box_id.get())
        .bind(to_db(now()))
        .bind(&actor.name)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| StoreError::NotFound { what: "enrolled agent for box", key: box_id.to_string() })?;
        let agent = agent_from_row(&row)?;
        let b = tx.box_for_update(box_id).await?;
        tx.audit(NewEvent::new(
            actor,
            "agent.revoke",
            box_subjects(&b),
            json!({ "agent": agent.id, "fingerprint": agent.key_fingerprint, "online": agent.online_since.is_some() }),
        ))
        .await?;
        tx.commit().await?;
        Ok(agent)
    }

    /// Revoked agents whose control connection `node` still holds: to be dropped now.
    pub async fn revoked_agents_online(&self, node: &str) -> Result<Vec<Agent>> {
        sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE node = $1 AND connection IS NOT NULL AND revoked_at IS NOT NULL"
        ))
        .bind(node)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(agent_from_row)
        .collect()
    }

    /// The heartbeat: agents connected to `node` were seen now.
    pub async fn touch_agents(&self, node: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE agents SET last_seen = $2 WHERE node = $1 AND connection IS NOT NULL")
            .bind(node)
            .bind(to_db(now()))
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }
}
