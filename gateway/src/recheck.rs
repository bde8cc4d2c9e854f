//! Re-checking a live session against everything its connection was checked for.
//!
//! A session is allowed once, when its first channel opens ([`crate::access::decide`]);
//! what allowed it can change while it runs: the engineer's account is disabled or his
//! key removed, the organisation's category changes, the box's version leaves the
//! supported list or its forwarding policy is turned off, the ticket closes, the grant
//! ends. The watchdog ([`crate::live::watchdog`]) gathers the same facts for every live
//! session several times a second ([`Gathered::load`]) and applies [`recheck`], which runs
//! the same decision as a new connection, so the two cannot drift apart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::access::{self, Facts, Refusal};
use crate::ids::{BoxId, PersonId, TicketId};
use crate::model::{EndReason, Grant, IksBox, Organisation, Person, Ticket};
use crate::rules::ProductCatalog;
use crate::store::{GrantFilter, Store, StoreError};

/// The facts about one live session, as the store holds them now.
pub struct Gathered {
    pub person: Person,
    /// Whether the key the engineer signed in with still belongs to an enabled operator: him.
    pub key_valid: bool,
    pub ticket: Ticket,
    pub org: Organisation,
    pub iks_box: IksBox,
    pub grants: Vec<Grant>,
    pub names: HashMap<PersonId, String>,
}

/// Who is connected where, for [`Gathered::load`].
pub struct Subject<'a> {
    pub operator: PersonId,
    /// The key the engineer authenticated with.
    pub key_fingerprint: &'a str,
    pub ticket: TicketId,
    pub iks_box: BoxId,
}

impl Gathered {
    pub async fn load(store: &Store, s: &Subject<'_>) -> Result<Self, StoreError> {
        let person = store.person(s.operator).await?;
        let key_valid = store.operator_by_key_fingerprint(s.key_fingerprint).await?.is_some_and(|p| p.id == s.operator);
        let ticket = store.ticket(s.ticket).await?;
        let org = store.org(ticket.org_id).await?;
        let iks_box = store.get_box(s.iks_box).await?;
        let filter = GrantFilter { ticket: Some(ticket.id), ..Default::default() };
        let grants: Vec<Grant> =
            store.list_grants(&filter).await?.into_iter().filter(|g| g.box_id == iks_box.id).collect();
        let names = grant_names(store, &grants).await;
        Ok(Self { person, key_valid, ticket, org, iks_box, grants, names })
    }
}

/// Logins of the people named in `grants` (deciders, revokers), as refusals show them.
pub async fn grant_names(store: &Store, grants: &[Grant]) -> HashMap<PersonId, String> {
    // Collected first: an iterator over borrowed grants held across `.await` is not `Send`.
    let named: Vec<PersonId> = grants.iter().flat_map(|g| [g.decided_by, g.revoked_by]).flatten().collect();
    let mut names = HashMap::new();
    for id in named {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            slot.insert(store.person(id).await.map(|p| p.login).unwrap_or_else(|_| format!("person {id}")));
        }
    }
    names
}

/// What the watchdog does with a live session after re-checking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Still allowed; `-L` forwards follow the box's policy as it is now.
    Holds {
        forwarding: bool,
    },
    End {
        reason: EndReason,
        message: String,
    },
}

/// Applies to a running session every rule a new connection is checked against.
pub fn recheck(g: &Gathered, now: DateTime<Utc>, tz: Tz, catalog: &ProductCatalog) -> Recheck {
    let login = &g.person.login;
    if g.person.disabled_at.is_some() {
        let message = format!("the account of engineer {login} was disabled");
        return Recheck::End { reason: EndReason::OperatorDisabled, message };
    }
    if !g.key_valid {
        let message = format!("the key engineer {login} signed in with was removed");
        return Recheck::End { reason: EndReason::OperatorDisabled, message };
    }
    let facts = Facts {
        now,
        tz,
        operator: &g.person,
        ticket: &g.ticket,
        org: &g.org,
        iks_box: &g.iks_box,
        grants: &g.grants,
        names: &g.names,
        catalog,
    };
    match access::decide(&facts) {
        Ok(_) => Recheck::Holds { forwarding: g.iks_box.allow_forwarding },
        Err(refusal) => Recheck::End { reason: end_reason(&refusal), message: refusal.why() },
    }
}

/// The end reason a session gets when the rule that would refuse it now is `refusal`'s.
fn end_reason(refusal: &Refusal) -> EndReason {
    match refusal {
        Refusal::TicketNotActive { .. } | Refusal::NoTicket(_) => EndReason::TicketClosed,
        Refusal::NotEligible { .. } => EndReason::CategoryChanged,
        Refusal::Version { .. } => EndReason::VersionUnsupported,
        Refusal::Ended { .. } => EndReason::GrantExpired,
        _ => EndReason::Revoked,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::access::fixtures::{NOW, active_module, grant, iks_box, org, person, t, ticket};
    use crate::model::{GrantState, TicketState};
    use crate::rules::OrgFacts;

    /// A session of engineer 3 on a grant of his, in category 2 (the module paid).
    fn running() -> Gathered {
        Gathered {
            person: person(3, "ivanov"),
            key_valid: true,
            ticket: ticket(TicketState::InProgress),
            org: org(active_module()),
            iks_box: iks_box("iks-standard", "7"),
            grants: vec![grant(1, GrantState::Approved, -1, 1, Some(3))],
            names: [(PersonId(5), "petrov".to_string())].into(),
        }
    }

    #[test]
    fn every_rule_of_a_new_connection_ends_a_running_session() {
        let catalog = ProductCatalog::default();
        let tz = chrono_tz::Europe::Moscow;
        type Change = fn(&mut Gathered);
        let cases: Vec<(&str, Change, &str)> = vec![
            ("nothing changed", |_| {}, "holds, forwarding false"),
            ("forwarding turned on", |g| g.iks_box.allow_forwarding = true, "holds, forwarding true"),
            (
                "account disabled",
                |g| g.person.disabled_at = Some(t(NOW)),
                "operator disabled: the account of engineer ivanov was disabled",
            ),
            (
                "key removed",
                |g| g.key_valid = false,
                "operator disabled: the key engineer ivanov signed in with was removed",
            ),
            ("ticket closed", |g| g.ticket.state = TicketState::Closed, "ticket closed: T-1042: the ticket is closed"),
            ("module lapsed long ago", |g| g.org.facts = OrgFacts::default(), "category changed: T-1042: "),
            ("version dropped", |g| g.iks_box.version = "5".into(), "version unsupported: T-1042: "),
            (
                "revoked",
                |g| g.grants = vec![grant(1, GrantState::Revoked, -1, 1, Some(3))],
                "revoked: T-1042: access was revoked by petrov at ",
            ),
            (
                "grant over",
                |g| g.grants = vec![grant(1, GrantState::Approved, -2, -1, Some(3))],
                "grant expired: T-1042: the grant ended at ",
            ),
            (
                "grant handed to another engineer",
                |g| g.grants = vec![grant(1, GrantState::Approved, -1, 1, Some(4))],
                "revoked: T-1042: the grant is restricted to another engineer",
            ),
        ];
        for (name, change, want) in cases {
            let mut g = running();
            change(&mut g);
            let got = match recheck(&g, t(NOW), tz, &catalog) {
                Recheck::Holds { forwarding } => format!("holds, forwarding {forwarding}"),
                Recheck::End { reason, message } => format!("{}: {message}", reason.as_str()),
            };
            assert!(got.starts_with(want), "{name}: got {got:?}, want {want:?}");
        }
        // The window's end is not a re-check's business alone: the watchdog's review warns first.
        let mut g = running();
        g.grants = vec![grant(1, GrantState::Approved, -1, 1, Some(3))];
        let later = t(NOW) + Duration::minutes(59);
        assert!(matches!(recheck(&g, later, tz, &catalog), Recheck::Holds { .. }));
    }
}
