//! The access-request workflow: an operator asks for a window on a box for a ticket, the
//! customer approves (maybe shorter, maybe for that engineer only) or rejects, and anyone
//! entitled revokes. The rules are checked again at every step (categories change).
//! The CLI, the panel and the API all go through here.

use chrono::{DateTime, Duration, Utc};

use crate::config::Config;
use crate::store::{Store, StoreError};
use iks_domain::audit::Actor;
use iks_domain::decision;
use iks_domain::ids::{BoxId, GrantId, TicketId};
use iks_domain::model::{Approval, Grant, IksBox, NewAccessRequest, Organisation, Person, Role, Ticket};
use iks_domain::rules::GrantWindow;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The person may not do this (wrong role, another organisation).
    #[error("{0}")]
    NotAllowed(String),
    /// The rules say no, or the input is bad.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the rules say about remote access to `b` for `ticket` today: the same check as a
/// connecting engineer's ([`decision::box_eligible`]), in its words.
fn check_rules(config: &Config, org: &Organisation, ticket: &Ticket, b: &IksBox) -> Result<(), GrantError> {
    let today = iks_domain::time::now().with_timezone(&config.hours.timezone).date_naive();
    decision::box_eligible(ticket, org, b, &config.products, today).map_err(|r| GrantError::Refused(r.why()))
}

/// Files a request for `duration` of access to a box, by an operator.
pub async fn request(
    store: &Store,
    config: &Config,
    operator: &Person,
    ticket: TicketId,
    box_ref: &str,
    duration: Duration,
    reason: &str,
) -> Result<Grant, GrantError> {
    if operator.role != Role::Operator || operator.disabled_at.is_some() {
        return Err(GrantError::NotAllowed(format!("{} is not an active operator", operator.login)));
    }
    if reason.trim().is_empty() {
        return Err(GrantError::Refused("a reason is required: the customer sees it when deciding".into()));
    }
    let max = config.access.max_grant();
    if duration <= Duration::zero() || duration > max {
        return Err(GrantError::Refused(format!(
            "a grant may last at most {}, {} was requested",
            iks_domain::rules::format_duration(max),
            iks_domain::rules::format_duration(duration)
        )));
    }
    let ticket = store.ticket(ticket).await?;
    let org = store.org(ticket.org_id).await?;
    let b = match box_ref.parse::<BoxId>() {
        Ok(id) => store.get_box(id).await?,
        Err(_) => store.box_by_name(org.id, box_ref).await?,
    };
    check_rules(config, &org, &ticket, &b)?;
    let new = NewAccessRequest {
        ticket_id: ticket.id,
        box_id: b.id,
        requested_by: operator.id,
        reason: reason.trim().to_string(),
        duration,
    };
    Ok(store.request_access(&Actor::person(operator.id, &operator.login), &new).await?)
}

/// Whether `who` decides for the organisation of `ticket`: its customer users, or an admin.
fn may_decide(who: &Person, ticket: &Ticket) -> Result<(), GrantError> {
    let ok = who.disabled_at.is_none()
        && match who.role {
            Role::Customer => who.org_id == Some(ticket.org_id),
            Role::Admin => true,
            Role::Operator | Role::Auditor => false,
        };
    if ok {
        Ok(())
    } else {
        Err(GrantError::NotAllowed(format!("{} cannot decide on access to this organisation's boxes", who.login)))
    }
}

/// How the customer approves: the window ends `until` (default: the requested length),
/// for the requesting engineer only unless widened to any engineer explicitly.
#[derive(Debug, Clone, Default)]
pub struct ApproveOptions {
    pub until: Option<DateTime<Utc>>,
    /// Let any support engineer use the grant, not only the one who asked.
    pub any_engineer: bool,
    pub note: Option<String>,
}

/// Approves as `who` in person (the panel, the API): `who` is the actor.
pub async fn approve(
    store: &Store,
    config: &Config,
    who: &Person,
    id: GrantId,
    opts: &ApproveOptions,
) -> Result<Grant, GrantError> {
    approve_as(store, config, &Actor::person(who.id, &who.login), who, id, opts).await
}

/// Approves on `who`'s authority, recorded as `actor` (the CLI's `--as`, which is
/// [`Actor::cli_on_behalf`]: someone at the host's shell, not the person).
pub async fn approve_as(
    store: &Store,
    config: &Config,
    actor: &Actor,
    who: &Person,
    id: GrantId,
    opts: &ApproveOptions,
) -> Result<Grant, GrantError> {
    let g = store.grant(id).await?;
    let ticket = store.ticket(g.ticket_id).await?;
    may_decide(who, &ticket)?;
    let org = store.org(ticket.org_id).await?;
    check_rules(config, &org, &ticket, &store.get_box(g.box_id).await?)?;
    let now = iks_domain::time::now();
    let requested = GrantWindow::new(now, now + Duration::seconds(g.requested_secs), config.access.max_grant())
        .map_err(|e| GrantError::Refused(e.to_string()))?;
    let window = match opts.until {
        Some(until) if until > requested.end() => {
            return Err(GrantError::Refused(format!(
                "the window can only be shortened: the request was for {}",
                iks_domain::rules::format_duration(requested.len())
            )));
        }
        Some(until) => requested.shortened_to(until).map_err(|e| GrantError::Refused(e.to_string()))?,
        None => requested,
    };
    let approval = Approval {
        starts_at: window.start(),
        ends_at: window.end(),
        operator_id: (!opts.any_engineer).then_some(g.requested_by),
        note: opts.note.clone(),
    };
    Ok(store.approve_grant(actor, id, who.id, &approval).await?)
}

/// Rejects as `who` in person.
pub async fn reject(store: &Store, who: &Person, id: GrantId, note: &str) -> Result<Grant, GrantError> {
    reject_as(store, &Actor::person(who.id, &who.login), who, id, note).await
}

/// Rejects on `who`'s authority, recorded as `actor` (see [`approve_as`]).
pub async fn reject_as(
    store: &Store,
    actor: &Actor,
    who: &Person,
    id: GrantId,
    note: &str,
) -> Result<Grant, GrantError> {
    let g = store.grant(id).await?;
    may_decide(who, &store.ticket(g.ticket_id).await?)?;
    Ok(store.reject_grant(actor, id, who.id, note).await?)
}

/// Revokes a grant as `who` in person: the customer or an admin, or the engineer giving it up.
pub async fn revoke(store: &Store, who: &Person, id: GrantId) -> Result<Grant, GrantError> {
    revoke_as(store, &Actor::person(who.id, &who.login), who, id).await
}

/// Revokes on `who`'s authority, recorded as `actor` (see [`approve_as`]).
pub async fn revoke_as(store: &Store, actor: &Actor, who: &Person, id: GrantId) -> Result<Grant, GrantError> {
    let g = store.grant(id).await?;
    let ticket = store.ticket(g.ticket_id).await?;
    let own = who.role == Role::Operator && who.id == g.requested_by;
    if !own {
        may_decide(who, &ticket)?;
    }
    Ok(store.revoke_grant(actor, id, who.id).await?)
}
