//! Whether an engineer may reach a box now: the one place that decision is made.
//!
//! [`decide`] is pure: the caller gathers the facts (operator, ticket, organisation, box,
//! the ticket's grants for that box, the people named in them) and the instant, and gets
//! either the grant that allows the session or a [`Refusal`] naming the failed rule with
//! the dates that matter. The same function runs when a session opens; the live-session
//! watchdog re-applies the grant part while it runs.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::i18n::{self, Lang};
use crate::ids::{GrantId, PersonId, TicketId};
use crate::model::{Agent, Grant, GrantState, IksBox, Organisation, Person, Ticket, TicketState};
use crate::rules::{NoRemoteSsh, ProductCatalog, VersionRefusal, remote_ssh, standing};
use crate::target::BadTarget;

/// Everything [`decide`] looks at.
pub struct Facts<'a> {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub operator: &'a Person,
    pub ticket: &'a Ticket,
    pub org: &'a Organisation,
    pub iks_box: &'a IksBox,
    /// The ticket's grants for this box, in any state.
    pub grants: &'a [Grant],
    /// Logins of the people named in the grants (deciders, revokers).
    pub names: &'a HashMap<PersonId, String>,
    pub catalog: &'a ProductCatalog,
}

/// Why a connection was refused: the rule, and what the engineer needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Target(BadTarget),
    NoTicket(TicketId),
    TicketNotActive {
        ticket: TicketId,
        state: TicketState,
    },
    NoSuchBox {
        ticket: TicketId,
        name: String,
        org: String,
    },
    NoBoxRequested {
        ticket: TicketId,
    },
    SeveralBoxes {
        ticket: TicketId,
        names: Vec<String>,
    },
    NotEligible {
        ticket: TicketId,
        org: String,
        why: NoRemoteSsh,
    },
    Version {
        ticket: TicketId,
        why: VersionRefusal,
    },
    NoRequest {
        ticket: TicketId,
        box_name: String,
    },
    Pending {
        ticket: TicketId,
        grant: GrantId,
    },
    Rejected {
        ticket: TicketId,
        by: String,
        note: Option<String>,
    },
    NotYet {
        ticket: TicketId,
        starts: String,
    },
    Ended {
        ticket: TicketId,
        ended: String,
    },
    Revoked {
        ticket: TicketId,
        by: String,
        at: String,
    },
    OtherOperator {
        ticket: TicketId,
    },
    /// The box is reached through an agent, and no agent is there to reach it.
    NoAgent {
        ticket: TicketId,
        box_name: String,
        enrolled: bool,
    },
    BoxOffline {
        ticket: TicketId,
        box_name: String,
        since: String,
    },
    AgentElsewhere {
        ticket: TicketId,
        box_name: String,
        node: String,
    },
    /// The customer's kill switch on the box (`iks-agent disable`).
    RemoteAccessDisabled {
        ticket: TicketId,
        box_name: String,
    },
    /// The gateway cannot decide or connect: store, recording or upstream trouble.
    Gateway {
        rule: &'static str,
        ticket: Option<TicketId>,
        message: String,
    },
}

impl Refusal {
    /// A refusal by the gateway itself (store, recording, box connection), not by a rule.
    pub fn gateway(rule: &'static str, message: impl Into<String>) -> Self {
        Self::Gateway { rule, ticket: None, message: message.into() }
    }

    /// Names the ticket in a gateway refusal, as every rule's refusal does.
    pub fn about(self, ticket: TicketId) -> Self {
        match self {
            Self::Gateway { rule, ticket: None, message } => Self::Gateway { rule, ticket: Some(ticket), message },
            other => other,
        }
    }

    /// The refusal without its "access refused: " lead, for a session it ends.
    pub fn why(&self) -> String {
        self.why_in(Lang::En)
    }

    /// [`Self::why`] in `lang`: the words are the catalogue's (`refusal.*` in `web/i18n`);
    /// the rules' own explanations (category, version) and a bad user name stay English.
    pub fn why_in(&self, lang: Lang) -> String {
        use Refusal::*;
        let t = |ticket: &TicketId, key: &str, more: &[(&str, &str)]| {
            let ticket = ticket.to_string();
            let mut args = vec![("ticket", ticket.as_str())];
            args.extend_from_slice(more);
            i18n::fill(lang, &format!("refusal.{key}"), &args)
        };
        match self {
            Target(e) => e.to_string(),
            NoTicket(ticket) => t(ticket, "no_ticket", &[]),
            TicketNotActive { ticket, state } => {
                let state = i18n::text(lang, &format!("desk.ticket_state.{}", state.as_str()));
                t(ticket, "ticket_not_active", &[("state", &state)])
            }
            NoSuchBox { ticket, name, org } => t(ticket, "no_such_box", &[("org", org), ("name", name)]),
            NoBoxRequested { ticket } => t(ticket, "no_box_requested", &[]),
            SeveralBoxes { ticket, names } => t(ticket, "several_boxes", &[("names", &names.join(", "))]),
            NotEligible { ticket, org, why } => format!("{ticket}: {}", why.describe_for(org)),
            Version { ticket, why } => format!("{ticket}: {why}"),
            NoRequest { ticket, box_name } => t(ticket, "no_request", &[("box", box_name)]),
            Pending { ticket, grant } => t(ticket, "pending", &[("grant", &grant.to_string())]),
            Rejected { ticket, by, note: Some(note) } if !note.is_empty() => {
                t(ticket, "rejected_with_note", &[("by", by), ("note", note)])
            }
            Rejected { ticket, by, .. } => t(ticket, "rejected", &[("by", by)]),
            NotYet { ticket, starts } => t(ticket, "not_yet", &[("starts", starts)]),
            Ended { ticket, ended } => t(ticket, "ended", &[("ended", ended)]),
            Revoked { ticket, by, at } => t(ticket, "revoked", &[("by", by), ("at", at)]),
            OtherOperator { ticket } => t(ticket, "other_operator", &[]),
            NoAgent { ticket, box_name, enrolled: false } => t(ticket, "no_agent", &[("box", box_name)]),
            NoAgent { ticket, box_name, enrolled: true } => t(ticket, "agent_never_connected", &[("box", box_name)]),
            BoxOffline { ticket, box_name, since } => t(ticket, "box_offline", &[("box", box_name), ("since", since)]),
            AgentElsewhere { ticket, box_name, node } => {
                t(ticket, "agent_elsewhere", &[("box", box_name), ("node", node)])
            }
            RemoteAccessDisabled { ticket, box_name } => t(ticket, "remote_access_disabled", &[("box", box_name)]),
            Gateway { ticket: Some(ticket), message, .. } => format!("{ticket}: {message}"),
            Gateway { ticket: None, message, .. } => message.clone(),
        }
    }

    /// The rule that failed, as stored with the refusal.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Target(_) | Self::NoSuchBox { .. } | Self::NoBoxRequested { .. } | Self::SeveralBoxes { .. } => {
                "target"
            }
            Self::NoTicket(_) | Self::TicketNotActive { .. } => "ticket",
            Self::NotEligible { .. } => "category",
            Self::Version { .. } => "version",
            Self::NoRequest { .. }
            | Self::Pending { .. }
            | Self::Rejected { .. }
            | Self::NotYet { .. }
            | Self::Ended { .. }
            | Self::Revoked { .. } => "grant",
            Self::OtherOperator { .. } => "operator",
            Self::NoAgent { .. }
            | Self::BoxOffline { .. }
            | Self::AgentElsewhere { .. }
            | Self::RemoteAccessDisabled { .. } => "agent",
            Self::Gateway { rule, .. } => rule,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access refused: {}", Why(self))
    }
}

/// What failed, with the ticket: the body of every refusal's line.
struct Why<'a>(&'a Refusal);

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.why_in(Lang::En))
    }
}

/// Decides whether the session may open; `Ok` carries the grant that allows it.
pub fn decide<'a>(f: &Facts<'a>) -> Result<&'a Grant, Refusal> {
    eligible(f)?;
    choose_grant(f)
}

/// The rules a session must still meet while it runs: [`decide`] without the grant, which
/// the watchdog follows on its own. The gateway's re-check re-applies it to live sessions.
pub fn eligible(f: &Facts<'_>) -> Result<(), Refusal> {
    box_eligible(f.ticket, f.org, f.iks_box, f.catalog, f.now.with_timezone(&f.tz).date_naive())
}

/// Whether the rules allow remote access to `b` on `ticket` on `today`, whatever the grant:
/// the ticket is active, the box is its organisation's, the organisation's category allows
/// remote SSH, and the box's product and version are supported. One check for the decision
/// at connect, the re-check of live sessions and every step of the access-request workflow.
pub fn box_eligible(
    ticket: &Ticket,
    org: &Organisation,
    b: &IksBox,
    catalog: &ProductCatalog,
    today: NaiveDate,
) -> Result<(), Refusal> {
    let id = ticket.id;
    if !ticket.state.is_active() {
        return Err(Refusal::TicketNotActive { ticket: id, state: ticket.state });
    }
    if b.org_id != ticket.org_id || org.id != ticket.org_id {
        return Err(Refusal::NoSuchBox { ticket: id, name: b.name.clone(), org: org.name.clone() });
    }
    let free = catalog.get(&b.product).is_some_and(|p| p.free_edition);
    remote_ssh(&standing(&org.facts, free, today)).map_err(|why| Refusal::NotEligible {
        ticket: id,
        org: org.name.clone(),
        why,
    })?;
    catalog.check(&b.product, &b.version).map_err(|why| Refusal::Version { ticket: id, why })?;
    Ok(())
}

/// Where a box's agent is, as far as this gateway node can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentPresence {
    /// No active enrolment.
    NotEnrolled,
    /// Enrolled, but its agent has never connected.
    NeverConnected,
    Offline {
        since: DateTime<Utc>,
    },
    /// Connected to another gateway node sharing the store.
    Elsewhere {
        node: String,
    },
    /// Connected to this node.
    Online {
        remote_access_disabled: bool,
    },
}

/// An agent another node claims but has not seen for this long is presumed gone with that
/// node (nodes write `last_seen` every 10 s while they hold an agent).
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl AgentPresence {
    /// What the store says about an agent this node does not hold.
    pub fn from_record(agent: Option<&Agent>, this_node: &str, now: DateTime<Utc>) -> Self {
        let Some(a) = agent.filter(|a| a.is_active()) else { return Self::NotEnrolled };
        let fresh = a.last_seen.is_some_and(|t| now - t < STALE_AFTER);
        match (&a.connection, &a.node, a.offline_since) {
            (Some(_), Some(node), _) if node != this_node && fresh => Self::Elsewhere { node: node.clone() },
            // This node held it a moment ago and has just let go, or the node holding it is gone.
            (Some(_), _, _) => Self::Offline { since: a.last_seen.or(a.online_since).unwrap_or(now) },
            (None, _, Some(since)) => Self::Offline { since },
            (None, _, None) => Self::NeverConnected,
        }
    }
}

/// Whether a session to an agent-connected box can be carried now. Checked after
/// [`decide`], so an engineer without a grant hears about the grant, not the agent.
pub fn check_agent(
    ticket: TicketId,
    box_name: &str,
    presence: &AgentPresence,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<(), Refusal> {
    let box_name = box_name.to_string();
    match presence {
        AgentPresence::Online { remote_access_disabled: false } => Ok(()),
        AgentPresence::Online { remote_access_disabled: true } => {
            Err(Refusal::RemoteAccessDisabled { ticket, box_name })
        }
        AgentPresence::NotEnrolled => Err(Refusal::NoAgent { ticket, box_name, enrolled: false }),
        AgentPresence::NeverConnected => Err(Refusal::NoAgent { ticket, box_name, enrolled: true }),
        AgentPresence::Offline { since } => {
            Err(Refusal::BoxOffline { ticket, box_name, since: crate::time::display_near(*since, now, tz) })
        }
        AgentPresence::Elsewhere { node } => Err(Refusal::AgentElsewhere { ticket, box_name, node: node.clone() }),
    }
}

fn choose_grant<'a>(f: &Facts<'a>) -> Result<&'a Grant, Refusal> {
    let ticket = f.ticket.id;
    let open_now = |g: &Grant| {
        g.state == GrantState::Approved
            && g.starts_at.is_some_and(|s| s <= f.now)
            && g.ends_at.is_some_and(|e| f.now < e)
    };
    let mine = |g: &Grant| g.operator_id.is_none_or(|o| o == f.operator.id);
    if let Some(g) = f.grants.iter().filter(|g| open_now(g) && mine(g)).max_by_key(|g| g.ends_at) {
        return Ok(g);
    }
    if f.grants.iter().any(open_now) {
        return Err(Refusal::OtherOperator { ticket });
    }
    let name =
        |id: Option<PersonId>| id.and_then(|i| f.names.get(&i).cloned()).unwrap_or_else(|| "the customer".into());
    let when = |t: Option<DateTime<Utc>>| t.map_or_else(String::new, |t| crate::time::display_near(t, f.now, f.tz));
    if let Some(g) = f
        .grants
        .iter()
        .filter(|g| g.state == GrantState::Approved && g.starts_at.is_some_and(|s| s > f.now) && mine(g))
        .min_by_key(|g| g.starts_at)
    {
        return Err(Refusal::NotYet { ticket, starts: when(g.starts_at) });
    }
    if let Some(g) = f.grants.iter().find(|g| g.state == GrantState::Pending) {
        return Err(Refusal::Pending { ticket, grant: g.id });
    }
    // Otherwise the most recently changed decision explains the refusal.
    match f.grants.iter().max_by_key(|g| (g.updated_at, g.id)) {
        None => Err(Refusal::NoRequest { ticket, box_name: f.iks_box.name.clone() }),
        Some(g) => Err(match g.state {
            GrantState::Revoked => {
                let by = g.revoked_by.map_or_else(|| "the system (ticket closed)".to_string(), |p| name(Some(p)));
                Refusal::Revoked { ticket, by, at: when(g.revoked_at) }
            }
            GrantState::Rejected => Refusal::Rejected { ticket, by: name(g.decided_by), note: g.decision_note.clone() },
            GrantState::Approved if !mine(g) => Refusal::OtherOperator { ticket },
            GrantState::Approved | GrantState::Expired | GrantState::Pending => {
                Refusal::Ended { ticket, ended: when(g.ends_at) }
            }
        }),
    }
}

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    //! Plain data for the decision's tests and the live re-check's.
    use chrono::Duration;

    use super::*;
    use crate::ids::{BoxId, OrgId};
    use crate::model::{BoxAuth, Role};
    use crate::rules::{Inn, OrgFacts};

    pub fn t(s: &str) -> DateTime<Utc> {
        crate::time::from_db(s).unwrap()
    }

    pub const NOW: &str = "2026-11-24T09:00:00.000000Z"; // 12:00 MSK

    pub fn person(id: i64, login: &str) -> Person {
        Person {
            id: PersonId(id),
            login: login.into(),
            display_name: login.into(),
            role: Role::Operator,
            org_id: None,
            email: None,
            disabled_at: None,
            created_at: t(NOW),
            updated_at: t(NOW),
        }
    }

    pub fn org(facts: OrgFacts) -> Organisation {
        Organisation {
            id: OrgId(1),
            inn: Inn::parse("7707083893").unwrap(),
            name: "ООО Ромашка".into(),
            facts,
            created_at: t(NOW),
            updated_at: t(NOW),
        }
    }

    pub fn ticket(state: TicketState) -> Ticket {
        Ticket {
            id: TicketId(1042),
            org_id: OrgId(1),
            contact_name: "Пётр".into(),
            contact_phone: None,
            contact_email: None,
            product: "iks-standard".into(),
            version: "7".into(),
            description: "x".into(),
            topic: None,
            state,
            priority: 1,
            response_due_at: None,
            first_response_at: None,
            refusal_reason: None,
            close_reason: None,
            last_customer_activity_at: t(NOW),
            created_at: t(NOW),
            updated_at: t(NOW),
            closed_at: None,
        }
    }

    pub fn iks_box(product: &str, version: &str) -> IksBox {
        IksBox {
            id: BoxId(1),
            org_id: OrgId(1),
            name: "main-gw".into(),
            product: product.into(),
            version: version.into(),
            address: Some("127.0.0.1:22".into()),
            login: "support".into(),
            host_key: None,
            auth: BoxAuth::Certificate,
            allow_forwarding: false,
            created_at: t(NOW),
            updated_at: t(NOW),
        }
    }

    /// A grant in `state` whose window is [now+from_h, now+to_h).
    pub fn grant(id: i64, state: GrantState, from_h: i64, to_h: i64, only: Option<i64>) -> Grant {
        let now = t(NOW);
        Grant {
            id: GrantId(id),
            ticket_id: TicketId(1042),
            box_id: BoxId(1),
            requested_by: PersonId(1),
            operator_id: only.map(PersonId),
            reason: "r".into(),
            requested_secs: 3600,
            state,
            starts_at: (state != GrantState::Pending).then(|| now + Duration::hours(from_h)),
            ends_at: (state != GrantState::Pending).then(|| now + Duration::hours(to_h)),
            decided_by: Some(PersonId(5)),
            decided_at: Some(now),
            decision_note: Some("not during business hours".into()),
            revoked_by: (state == GrantState::Revoked).then_some(PersonId(5)),
            revoked_at: (state == GrantState::Revoked).then(|| now - Duration::minutes(57)),
            created_at: now,
            updated_at: now + Duration::seconds(id),
        }
    }

    /// An enrolled agent of `box_id` that has never connected.
    pub fn agent(box_id: BoxId, enrolled_at: DateTime<Utc>) -> Agent {
        Agent {
            id: crate::ids::AgentId(3),
            box_id,
            key_fingerprint: "SHA256:a".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            enrolled_at,
            revoked_at: None,
            revoked_by: None,
            agent_version: None,
            product: None,
            version: None,
            remote_access_disabled: false,
            node: None,
            connection: None,
            online_since: None,
            offline_since: None,
            last_seen: None,
        }
    }

    pub fn active_module() -> OrgFacts {
        OrgFacts { module_paid_until: crate::time::parse_date("2027-01-01").ok(), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::fixtures::*;
    use super::*;
    use crate::ids::BoxId;
    use crate::rules::OrgFacts;

    #[test]
    fn presence_from_the_store() {
        let now = t(NOW);
        let agent = agent(BoxId(1), now - Duration::days(1));
        let held = |node: &str, seen_secs_ago: i64| Agent {
            node: Some(node.into()),
            connection: Some(format!("{node}#1")),
            online_since: Some(now - Duration::hours(1)),
            last_seen: Some(now - Duration::seconds(seen_secs_ago)),
            ..agent.clone()
        };
        let dropped =
            Agent { offline_since: Some(now - Duration::minutes(5)), node: Some("gw-1".into()), ..agent.clone() };
        let revoked = Agent { revoked_at: Some(now), ..agent.clone() };
        let (elsewhere, stale, let_go) = (held("gw-2", 10), held("gw-2", 300), held("gw-1", 2));
        let cases: Vec<(&str, Option<&Agent>, AgentPresence)> = vec![
            ("no enrolment", None, AgentPresence::NotEnrolled),
            ("revoked", Some(&revoked), AgentPresence::NotEnrolled),
            ("enrolled only", Some(&agent), AgentPresence::NeverConnected),
            ("dropped", Some(&dropped), AgentPresence::Offline { since: now - Duration::minutes(5) }),
            ("on another node", Some(&elsewhere), AgentPresence::Elsewhere { node: "gw-2".into() }),
            (
                "on a node that stopped heartbeating",
                Some(&stale),
                AgentPresence::Offline { since: now - Duration::seconds(300) },
            ),
            ("this node just let go", Some(&let_go), AgentPresence::Offline { since: now - Duration::seconds(2) }),
        ];
        for (name, record, want) in cases {
            assert_eq!(AgentPresence::from_record(record, "gw-1", now), want, "{name}");
        }
    }

    #[test]
    fn agent_boxes_need_their_agent() {
        let now = t(NOW);
        let tz = chrono_tz::Europe::Moscow;
        let cases: &[(AgentPresence, Option<&str>)] = &[
            (AgentPresence::Online { remote_access_disabled: false }, None),
            (
                AgentPresence::Online { remote_access_disabled: true },
                Some("T-1042: the customer has disabled remote access on box main-gw"),
            ),
            (
                AgentPresence::Offline { since: now - Duration::minutes(57) },
                Some("T-1042: box main-gw is offline since 11:03 MSK"),
            ),
            (
                AgentPresence::Offline { since: now - Duration::days(2) },
                Some("T-1042: box main-gw is offline since 2026-11-22 12:00 MSK"),
            ),
            (
                AgentPresence::NotEnrolled,
                Some(
                    "T-1042: box main-gw has no agent connected (enrol it with: iks-gateway box enroll-token main-gw)",
                ),
            ),
            (AgentPresence::NeverConnected, Some("enrolled but never connected")),
            (AgentPresence::Elsewhere { node: "gw-2".into() }, Some("connected to gateway node gw-2")),
        ];
        for (presence, want) in cases {
            match (check_agent(TicketId(1042), "main-gw", presence, now, tz), want) {
                (Ok(()), None) => {}
                (Err(r), Some(text)) => {
                    assert_eq!(r.rule(), "agent");
                    let msg = r.to_string();
                    assert!(msg.starts_with("access refused: ") && msg.contains(text), "{presence:?}: {msg}");
                }
                (got, want) => panic!("{presence:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn every_rule_refuses_with_its_reason() {
        use GrantState::*;
        let lapsed = OrgFacts { module_paid_until: crate::time::parse_date("2026-09-30").ok(), ..Default::default() };
        let partner = OrgFacts { partner: true, ..Default::default() };
        struct Case {
            name: &'static str,
            state: TicketState,
            facts: OrgFacts,
            product: &'static str,
            version: &'static str,
            grants: Vec<Grant>,
            want: Result<i64, (&'static str, &'static str)>,
        }
        let case = |name, grants, want| Case {
            name,
            state: TicketState::Open,
            facts: active_module(),
            product: "iks-standard",
            version: "7.2",
            grants,
            want,
        };
        let cases = vec![
            case("open grant", vec![grant(1, Approved, -1, 1, None)], Ok(1)),
            case("restricted to me", vec![grant(1, Approved, -1, 1, Some(1))], Ok(1)),
            case(
                "the later-ending open grant wins",
                vec![grant(1, Approved, -1, 1, None), grant(2, Approved, -2, 3, None)],
                Ok(2),
            ),
            Case {
                state: TicketState::InProgress,
                ..case("in progress", vec![grant(1, Approved, -1, 1, None)], Ok(1))
            },
            Case { facts: partner.clone(), ..case("partner", vec![grant(1, Approved, -1, 1, None)], Ok(1)) },
            Case {
                state: TicketState::Closed,
                ..case(
                    "closed ticket",
                    vec![grant(1, Approved, -1, 1, None)],
                    Err(("ticket", "T-1042: the ticket is closed")),
                )
            },
            Case {
                state: TicketState::Refused,
                ..case("refused ticket", vec![], Err(("ticket", "T-1042: the ticket is refused")))
            },
            Case {
                facts: lapsed,
                ..case(
                    "lapsed module",
                    vec![grant(1, Approved, -1, 1, None)],
                    Err((
                        "category",
                        "T-1042: the support module of ООО Ромашка expired on 2026-10-01 (category 3: no remote SSH)",
                    )),
                )
            },
            Case {
                facts: OrgFacts::default(),
                ..case("never had a module", vec![grant(1, Approved, -1, 1, None)], Err(("category", "category 3")))
            },
            Case {
                product: "iks-lite",
                version: "7",
                ..case("IKS Lite box", vec![grant(1, Approved, -1, 1, None)], Err(("category", "category 4")))
            },
            Case {
                version: "5",
                ..case(
                    "old version",
                    vec![grant(1, Approved, -1, 1, None)],
                    Err(("version", "IKS Standard 5 is not a supported version")),
                )
            },
            case("no request", vec![], Err(("grant", "T-1042: no access request for box main-gw"))),
            case(
                "pending",
                vec![grant(3, Pending, 0, 0, None)],
                Err(("grant", "access request G-3 is waiting for the customer's approval")),
            ),
            case(
                "not yet",
                vec![grant(1, Approved, 2, 3, None)],
                Err(("grant", "T-1042: the grant starts at 14:00 MSK")),
            ),
            case(
                "ended",
                vec![grant(1, Approved, -3, -1, None)],
                Err(("grant", "T-1042: the grant ended at 11:00 MSK")),
            ),
            case("expired", vec![grant(1, Expired, -3, -1, None)], Err(("grant", "the grant ended at 11:00 MSK"))),
            case(
                "revoked",
                vec![grant(1, Revoked, -1, 1, None)],
                Err(("grant", "T-1042: access was revoked by petrov at 11:03 MSK")),
            ),
            case(
                "rejected",
                vec![grant(1, Rejected, 0, 0, None)],
                Err(("grant", "the customer (petrov) rejected access: not during business hours")),
            ),
            case(
                "another engineer's grant",
                vec![grant(1, Approved, -1, 1, Some(2))],
                Err(("operator", "restricted to another engineer")),
            ),
            case(
                "a pending request does not hide the revocation of the open one",
                vec![grant(1, Revoked, -1, 1, None), grant(2, Rejected, 0, 0, None)],
                Err(("grant", "rejected access")),
            ),
            case(
                "an open grant beats an older revoked one",
                vec![grant(1, Revoked, -1, 1, None), grant(2, Approved, 0, 1, None)],
                Ok(2),
            ),
            case(
                "tomorrow shows the date",
                vec![grant(1, Approved, 24, 25, None)],
                Err(("grant", "starts at 2026-11-25 12:00 MSK")),
            ),
        ];
        let names = HashMap::from([(PersonId(5), "petrov".to_string())]);
        let operator = person(1, "ivanov");
        let catalog = ProductCatalog::default();
        for c in cases {
            let (o, tk, b) = (org(c.facts.clone()), ticket(c.state), iks_box(c.product, c.version));
            let facts = Facts {
                now: t(NOW),
                tz: chrono_tz::Europe::Moscow,
                operator: &operator,
                ticket: &tk,
                org: &o,
                iks_box: &b,
                grants: &c.grants,
                names: &names,
                catalog: &catalog,
            };
            match (decide(&facts), c.want) {
                (Ok(g), Ok(id)) => assert_eq!(g.id, GrantId(id), "{}", c.name),
                (Err(r), Err((rule, text))) => {
                    let msg = r.to_string();
                    assert_eq!(r.rule(), rule, "{}: {msg}", c.name);
                    assert!(msg.starts_with("access refused: "), "{}: {msg}", c.name);
                    assert!(msg.contains(text), "{}: '{msg}' should contain '{text}'", c.name);
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }
}
