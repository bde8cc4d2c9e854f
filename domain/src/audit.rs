//! The audit trail's rules: who did what, and the hash chain that makes the log
//! tamper-evident.
//!
//! Every event's hash is `SHA-256(prev_hash ‖ canonical bytes of the event)`. The canonical
//! bytes are a JSON object with a fixed key order whose `details` member is the exact JSON
//! text stored in the database, so the chain survives any database round trip and can be
//! re-computed by an auditor from an export with nothing but SHA-256. This module is pure;
//! the store appends events inside the same transaction as the change they record.
//!
//! The gateway's `audit` module builds on this chain: signed checkpoints, verification,
//! exports and retention. The whole format is documented for auditors in `docs/audit.md`.

use std::fmt;

use chrono::{DateTime, Utc};
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::ids::{BoxId, GrantId, OrgId, PersonId, SessionId, TicketId};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActorKind {
    /// A person acting through the panel, the SSH front or the CLI's `--as`.
    Person,
    /// Someone at the gateway host's shell running an admin command.
    Cli,
    /// The gateway itself: timers, shutdown, policy.
    System,
    /// The helpdesk, through an API token.
    ApiToken,
    /// An agent on a customer's box.
    Agent,
}

impl ActorKind {
    /// Stable name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Cli => "cli",
            Self::System => "system",
            Self::ApiToken => "api-token",
            Self::Agent => "agent",
        }
    }

    /// Inverse of [`ActorKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Person, Self::Cli, Self::System, Self::ApiToken, Self::Agent].into_iter().find(|k| k.as_str() == s)
    }
}

/// The actor of an event: kind, the ID within that kind (if any) and a display name
/// captured at the time, so renaming a person later does not rewrite history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<i64>,
    pub name: String,
}

impl Actor {
    /// The gateway itself.
    pub fn system() -> Self {
        Self { kind: ActorKind::System, id: None, name: "iks-gateway".into() }
    }

    /// An administrator at the gateway host's shell, named by their OS account.
    pub fn cli() -> Self {
        Self { kind: ActorKind::Cli, id: None, name: os_user() }
    }

    /// An administrator at the host's shell acting on a person's authority (`--as petrov`):
    /// the command is not petrov's own, so the log names the CLI and the OS account as
    /// the actor, "cli:root on behalf of petrov", with petrov's ID.
    pub fn cli_on_behalf(id: PersonId, login: &str) -> Self {
        Self { kind: ActorKind::Cli, id: Some(id.get()), name: format!("cli:{} on behalf of {login}", os_user()) }
    }

    /// A box's agent, named with its box so the log reads on its own.
    pub fn agent(id: crate::ids::AgentId, box_name: &str) -> Self {
        Self { kind: ActorKind::Agent, id: Some(id.get()), name: format!("agent {id} of box {box_name}") }
    }

    /// A person from the store.
    pub fn person(id: PersonId, login: &str) -> Self {
        Self { kind: ActorKind::Person, id: Some(id.get()), name: login.to_string() }
    }

    /// A caller of the helpdesk API, by its token's ID and name.
    pub fn api_token(id: i64, name: &str) -> Self {
        Self { kind: ActorKind::ApiToken, id: Some(id), name: name.to_string() }
    }
}

/// The OS account running the CLI (the one behind `sudo`, if any).
fn os_user() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into())
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.kind.as_str())
    }
}

/// The objects an event is about; each is its own indexed column, so "everything about
/// T-1042" is one query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subjects {
    pub org: Option<OrgId>,
    pub ticket: Option<TicketId>,
    #[serde(rename = "box")]
    pub box_: Option<BoxId>,
    pub grant: Option<GrantId>,
    pub session: Option<SessionId>,
}

/// An event as the caller describes it; the store adds sequence, time and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub actor: Actor,
    /// A stable dotted name such as `org.create` or `session.end`.
    pub action: &'static str,
    pub subjects: Subjects,
    pub details: serde_json::Value,
}

impl NewEvent {
    pub fn new(actor: &Actor, action: &'static str, subjects: Subjects, details: serde_json::Value) -> Self {
        Self { actor: actor.clone(), action, subjects, details }
    }
}

/// An event as stored: the chain's unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub subjects: Subjects,
    /// The details exactly as stored (JSON text); hashed byte for byte.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The fixed-order object whose JSON serialisation is hashed.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: &'a str,
    actor_kind: &'a str,
    actor_id: Option<i64>,
    actor_name: &'a str,
    action: &'a str,
    org: Option<i64>,
    ticket: Option<i64>,
    #[serde(rename = "box")]
    box_: Option<i64>,
    grant: Option<i64>,
    session: Option<i64>,
    details: &'a str,
}

/// Everything of an event that the chain covers, before its hash is known.
pub struct Unsealed<'a> {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: &'a Actor,
    pub action: &'a str,
    pub subjects: Subjects,
    pub details: &'a str,
}

/// The canonical bytes of an event: the JSON object that is hashed after `prev_hash`.
fn canonical_bytes(e: &Unsealed<'_>) -> Vec<u8> {
    let at = crate::time::to_db(e.at);
    let canonical = Canonical {
        seq: e.seq,
        at: &at,
        actor_kind: e.actor.kind.as_str(),
        actor_id: e.actor.id,
        actor_name: &e.actor.name,
        action: e.action,
        org: e.subjects.org.map(OrgId::get),
        ticket: e.subjects.ticket.map(TicketId::get),
        box_: e.subjects.box_.map(BoxId::get),
        grant: e.subjects.grant.map(GrantId::get),
        session: e.subjects.session.map(SessionId::get),
        details: e.details,
    };
    // Infallible: a struct of strings and integers always serialises.
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// SHA-256 (hex) of `prev_hash` followed by `parts`.
fn hash_parts(prev_hash: &str, parts: &[&[u8]]) -> String {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev_hash.as_bytes());
    for p in parts {
        ctx.update(p);
    }
    hex::encode(ctx.finish())
}

/// The hash of an event that follows `prev_hash` (hex).
pub fn chain_hash(prev_hash: &str, e: &Unsealed<'_>) -> String {
    hash_parts(prev_hash, &[&canonical_bytes(e)])
}

impl Event {
    /// Re-computes this event's hash from its fields and its stored `prev_hash`.
    pub fn recomputed_hash(&self) -> String {
        chain_hash(&self.prev_hash, &self.unsealed())
    }

    fn unsealed(&self) -> Unsealed<'_> {
        Unsealed {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            subjects: self.subjects,
            details: &self.details,
        }
    }

    /// The sequence number, among `candidates`, under which this event's content and
    /// `prev_hash` produce its stored hash: where an event that fails its own check was
    /// written, if it is intact but was moved.
    pub fn original_seq(&self, candidates: impl IntoIterator<Item = i64>) -> Option<i64> {
        // The canonical object starts with `{"seq":N`; the rest does not depend on N, so it
        // is serialised once and each candidate costs one SHA-256.
        let body = canonical_bytes(&self.unsealed());
        let head = format!("{{\"seq\":{}", self.seq);
        let rest = body.strip_prefix(head.as_bytes())?;
        candidates.into_iter().find(|&seq| {
            let head = format!("{{\"seq\":{seq}");
            hash_parts(&self.prev_hash, &[head.as_bytes(), rest]) == self.hash
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, prev: &str, details: &str) -> Event {
        let actor = Actor::system();
        let at = crate::time::from_db("2026-11-24T10:00:00.000000Z").unwrap();
        let subjects = Subjects { ticket: Some(TicketId(1042)), ..Default::default() };
        let hash = chain_hash(prev, &Unsealed { seq, at, actor: &actor, action: "ticket.open", subjects, details });
        Event {
            seq,
            at,
            actor,
            action: "ticket.open".into(),
            subjects,
            details: details.into(),
            prev_hash: prev.into(),
            hash,
        }
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let e = event(1, GENESIS_HASH, r#"{"a":1}"#);
        assert_eq!(e.recomputed_hash(), e.hash);
        assert_eq!(e.hash.len(), 64);
        type Edit = Box<dyn Fn(&mut Event)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("seq", Box::new(|e| e.seq = 2)),
            ("at", Box::new(|e| e.at += chrono::Duration::microseconds(1))),
            ("actor kind", Box::new(|e| e.actor.kind = ActorKind::Cli)),
            ("actor id", Box::new(|e| e.actor.id = Some(1))),
            ("actor name", Box::new(|e| e.actor.name.push('x'))),
            ("action", Box::new(|e| e.action.push('x'))),
            ("org", Box::new(|e| e.subjects.org = Some(OrgId(1)))),
            ("ticket", Box::new(|e| e.subjects.ticket = None)),
            ("box", Box::new(|e| e.subjects.box_ = Some(BoxId(1)))),
            ("grant", Box::new(|e| e.subjects.grant = Some(GrantId(1)))),
            ("session", Box::new(|e| e.subjects.session = Some(SessionId(1)))),
            ("details", Box::new(|e| e.details = r#"{"a":2}"#.into())),
            ("prev_hash", Box::new(|e| e.prev_hash = e.hash.clone())),
        ];
        for (what, edit) in edits {
            let mut changed = e.clone();
            edit(&mut changed);
            assert_ne!(changed.recomputed_hash(), e.hash, "editing {what} must change the hash");
        }
    }

    #[test]
    fn the_chain_links_each_event_to_its_predecessor() {
        let a = event(1, GENESIS_HASH, "{}");
        let b = event(2, &a.hash, "{}");
        assert_eq!(b.recomputed_hash(), b.hash);
        assert_ne!(a.hash, b.hash);
        // The same event after a different predecessor hashes differently.
        let forked = event(2, GENESIS_HASH, "{}");
        assert_ne!(forked.hash, b.hash);
    }
}
