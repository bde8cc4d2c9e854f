//! The facts about a session, gathered from the store in one place, and the re-check of a
//! live session against them.
//!
//! A session is allowed once, when its first channel opens ([`iks_domain::decision::decide`] over
//! [`Gathered::facts`], gathered by [`gather`]); what allowed it can change while it runs.
//! The node's watchdog covers the grant and the ticket every tick
//! ([`iks_domain::review::review`], one query for all sessions). The rest is here, applied several
//! times a second over the same gathering ([`Gathered::load`]): the engineer's account is
//! disabled or his key removed, the organisation's category or the box's product version
//! no longer allow remote SSH ([`iks_domain::decision::eligible`], the same rule a new connection
//! meets, so the two cannot drift apart), the box's forwarding policy changed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::store::{GrantFilter, Store, StoreError};
use iks_domain::audit::Subjects;
use iks_domain::decision::{self, Facts, Refusal};
use iks_domain::ids::{BoxId, PersonId, TicketId};
use iks_domain::model::{EndReason, Grant, IksBox, Organisation, Person, Ticket};
use iks_domain::rules::ProductCatalog;

/// The facts about one session, as the store holds them now: everything the access
/// decision and the re-check read.
pub struct Gathered {
    pub person: Person,
    /// Whether the key the engineer signed in with still belongs to an enabled operator: him.
    pub key_valid: bool,
    pub ticket: Ticket,
    pub org: Organisation,
    pub iks_box: IksBox,
    /// The ticket's grants for this box, in any state.
    pub grants: Vec<Grant>,
    /// Logins of the people named in the grants (deciders, revokers).
    pub names: HashMap<PersonId, String>,
}

/// Which box the facts are about.
#[derive(Debug, Clone, Copy)]
pub enum BoxChoice<'a> {
    /// A running session's box.
    Id(BoxId),
    /// The box an engineer named, or (`None`) the one box the ticket's grants cover.
    Named(Option<&'a str>),
}

/// Who is connected where, for [`gather`].
pub struct Subject<'a> {
    pub operator: PersonId,
    /// The key the engineer authenticated with.
    pub key_fingerprint: &'a str,
    pub ticket: TicketId,
    pub iks_box: BoxId,
}

/// Why the facts could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum NotGathered {
    /// The store cannot be asked now: no decision without it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What was asked for does not exist (no such ticket or box, no box or several): a
    /// refusal about what `subjects` names.
    #[error("{refusal}")]
    Refused { refusal: Refusal, subjects: Subjects },
}

/// Gathers a session's facts from the store: the one gathering behind the decision when a
/// session opens and the re-check while it runs.
pub async fn gather(
    store: &Store,
    operator: PersonId,
    key_fingerprint: &str,
    ticket: TicketId,
    iks_box: BoxChoice<'_>,
) -> Result<Gathered, NotGathered> {
    let refused = |refusal, subjects| NotGathered::Refused { refusal, subjects };
    let person = store.person(operator).await?;
    let key_valid = store.operator_by_key_fingerprint(key_fingerprint).await?.is_some_and(|p| p.id == operator);
    let ticket = match store.ticket(ticket).await {
        Ok(t) => t,
        Err(StoreError::NotFound { .. }) => return Err(refused(Refusal::NoTicket(ticket), Subjects::default())),
        Err(e) => return Err(e.into()),
    };
    let org = store.org(ticket.org_id).await?;
    let subjects = Subjects { org: Some(org.id), ticket: Some(ticket.id), ..Default::default() };
    let ticket_grants = store.list_grants(&GrantFilter { ticket: Some(ticket.id), ..Default::default() }).await?;
    let iks_box = match iks_box {
        BoxChoice::Id(id) => store.get_box(id).await?,
        BoxChoice::Named(Some(name)) => match store.box_by_name(org.id, name).await {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                let refusal = Refusal::NoSuchBox { ticket: ticket.id, name: name.to_string(), org: org.name.clone() };
                return Err(refused(refusal, subjects));
            }
            Err(e) => return Err(e.into()),
        },
        BoxChoice::Named(None) => {
            let ids: Vec<_> = ticket_grants.iter().map(|g| g.box_id).collect::<HashSet<_>>().into_iter().collect();
            match ids.as_slice() {
                [] => return Err(refused(Refusal::NoBoxRequested { ticket: ticket.id }, subjects)),
                [one] => store.get_box(*one).await?,
                several => {
                    let mut names = Vec::new();
                    for id in several {
                        names.push(store.get_box(*id).await?.name);
                    }
                    names.sort();
                    return Err(refused(Refusal::SeveralBoxes { ticket: ticket.id, names }, subjects));
                }
            }
        }
    };
    let grants: Vec<_> = ticket_grants.into_iter().filter(|g| g.box_id == iks_box.id).collect();
    let mut names = HashMap::new();
    let named: Vec<PersonId> = grants.iter().flat_map(|g| [g.decided_by, g.revoked_by]).flatten().collect();
    for id in named {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
            slot.insert(store.person(id).await.map(|p| p.login).unwrap_or_else(|_| format!("person {id}")));
        }
    }
    Ok(Gathered { person, key_valid, ticket, org, iks_box, grants, names })
}

impl Gathered {
    /// A running session's facts, for the re-check.
    pub async fn load(store: &Store, s: &Subject<'_>) -> Result<Self, NotGathered> {
        gather(store, s.operator, s.key_fingerprint, s.ticket, BoxChoice::Id(s.iks_box)).await
    }

    /// The facts as the access decision reads them, at `now`.
    pub fn facts<'a>(&'a self, now: DateTime<Utc>, tz: Tz, catalog: &'a ProductCatalog) -> Facts<'a> {
        Facts {
            now,
            tz,
            operator: &self.person,
            ticket: &self.ticket,
            org: &self.org,
            iks_box: &self.iks_box,
            grants: &self.grants,
            names: &self.names,
            catalog,
        }
    }

    /// Whether the engineer may still act as himself: his account enabled, his key his.
    /// Checked at authentication, again when the session opens and while it runs.
    pub fn operator_holds(&self) -> Result<(), String> {
        let login = &self.person.login;
        if self.person.disabled_at.is_some() {
            return Err(format!("the account of engineer {login} was disabled"));
        }
        if !self.key_valid {
            return Err(format!("the key engineer {login} signed in with was removed"));
        }
        Ok(())
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

/// Applies to a running session the rules of a new connection that the review does not
/// (the grants are the review's).
pub fn recheck(g: &Gathered, now: DateTime<Utc>, tz: Tz, catalog: &ProductCatalog) -> Recheck {
    if let Err(message) = g.operator_holds() {
        return Recheck::End { reason: EndReason::OperatorDisabled, message };
    }
    match decision::eligible(&g.facts(now, tz, catalog)) {
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
    use iks_domain::decision::fixtures::{NOW, active_module, iks_box, org, person, t, ticket};
    use iks_domain::model::TicketState;
    use iks_domain::rules::OrgFacts;

    /// A session of engineer 3 in category 2 (the support module paid).
    fn running() -> Gathered {
        Gathered {
            person: person(3, "ivanov"),
            key_valid: true,
            ticket: ticket(TicketState::InProgress),
            org: org(active_module()),
            iks_box: iks_box("iks-standard", "7"),
            grants: Vec::new(),
            names: HashMap::new(),
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
