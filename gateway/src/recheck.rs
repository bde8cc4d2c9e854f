//! Re-checking a live session against everything its connection was checked for.
//!
//! A session is allowed once, when its first channel opens ([`crate::access::decide`]);
//! what allowed it can change while it runs. The node's watchdog
//! covers the grant and the ticket every tick ([`iks_domain::review::review`], one query for all
//! sessions). The rest is here, applied several times a second: the engineer's account is
//! disabled or his key removed, the organisation's category or the box's product version
//! no longer allow remote SSH ([`crate::access::eligible`], the same rule a new connection
//! meets, so the two cannot drift apart), the box's forwarding policy changed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::access::{self, Facts, Refusal};
use crate::ids::{BoxId, PersonId, TicketId};
use crate::model::{EndReason, IksBox, Organisation, Person, Ticket};
use crate::rules::ProductCatalog;
use crate::store::{Store, StoreError};

/// The facts about one live session, as the store holds them now.
pub struct Gathered {
    pub person: Person,
    /// Whether the key the engineer signed in with still belongs to an enabled operator: him.
    pub key_valid: bool,
    pub ticket: Ticket,
    pub org: Organisation,
    pub iks_box: IksBox,
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
        Ok(Self { person, key_valid, ticket, org, iks_box })
    }
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

/// Applies to a running session the rules of a new connection that the review does not.
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
    let names = HashMap::new();
    let facts = Facts {
        now,
        tz,
        operator: &g.person,
        ticket: &g.ticket,
        org: &g.org,
        iks_box: &g.iks_box,
        grants: &[],
        names: &names,
        catalog,
    };
    match access::eligible(&facts) {
        Ok(()) => Recheck::Holds { forwarding: g.iks_box.allow_forwarding },
        Err(refusal) => {
            let reason = match refusal {
                Refusal::Version { .. } => EndReason::VersionUnsupported,
                _ => EndReason::CategoryChanged,
            };
            Recheck::End { reason, message: refusal.why() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::fixtures::{NOW, active_module, iks_box, org, person, t, ticket};
    use crate::model::TicketState;
    use crate::rules::OrgFacts;

    /// A session of engineer 3 in category 2 (the support module paid).
    fn running() -> Gathered {
        Gathered {
            person: person(3, "ivanov"),
            key_valid: true,
            ticket: ticket(TicketState::InProgress),
            org: org(active_module()),
            iks_box: iks_box("iks-standard", "7"),
        }
    }

    #[test]
    fn the_rules_of_a_new_connection_end_a_running_session() {
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
            ("module lapsed long ago", |g| g.org.facts = OrgFacts::default(), "category changed: T-1042: "),
            ("IKS Lite", |g| g.iks_box.product = "iks-lite".into(), "category changed: T-1042: "),
            (
                "version dropped",
                |g| g.iks_box.version = "5".into(),
                "version unsupported: T-1042: IKS Standard 5 is not a supported version",
            ),
            ("unknown product", |g| g.iks_box.product = "gone".into(), "version unsupported: T-1042: "),
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
    }
}
