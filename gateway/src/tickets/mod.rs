//! The ticket lifecycle under the regulations: opening (and refusing), moving between
//! states, comments from support and from the customer, the first-response clock
//! ([`iks_domain::sla`]), the queue, and closing tickets whose customer went silent. The CLI and the
//! helpdesk API both go through here; the store persists and audits.
//!
//! # Refusals
//!
//! The regulations name four reasons to refuse support. Three are decided as a ticket is
//! opened, from what the filing states: an unsupported version (the configured catalogue),
//! no contact data (no person's name; the organisation's INN is the filing's own, and a
//! phone or e-mail is optional), and a request not about
//! installing or configuring A-Real's products. The gateway cannot judge a description's
//! text, so the last one is the filer's statement: the helpdesk form or the operator gives
//! a [`Topic`], and `other` is refused. A ticket without a topic is opened as usual; an
//! operator who finds it off-topic later refuses it (`ticket refuse --reason
//! not_about_products`), as they do for rudeness. A refused ticket is still stored, with
//! state `refused` and the reason, so the customer has a number and the refusal is on
//! record; it never takes comments, moves, or grants.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::store::{EventFilter, Store, StoreError, TicketFilter};
use iks_domain::audit::Actor;
use iks_domain::i18n::{self, Lang};
use iks_domain::ids::{OrgId, TicketId};
use iks_domain::model::{
    Comment, InvalidField, InvalidMove, Move, NewComment, NewTicket, Person, RefusalReason, Role, Ticket, Topic,
    check_display_name, version_field,
};
use iks_domain::rules::{VersionRefusal, standing};

pub use iks_domain::sla::{self, Sla, Status, first_response_due};

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// A value that cannot be used (empty description, unknown product…); names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The person may not do this to this ticket.
    #[error("{0}")]
    NotAllowed(String),
    /// The ticket's state does not allow the move.
    #[error(transparent)]
    InvalidMove(#[from] InvalidMove),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ticket as a person files it.
#[derive(Debug, Clone)]
pub struct Filing {
    pub org: OrgId,
    pub contact_name: String,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    pub product: String,
    pub version: String,
    pub description: String,
    pub topic: Option<Topic>,
}

/// Blank contact fields are no contact data.
fn present(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether the regulations refuse the filing, and for which reason: the first that
/// applies, in the regulations' order. Values that cannot be a ticket at all (an empty
/// description, an unknown product, a version that is not a number) are errors instead:
/// they are typing mistakes to correct, not requests to refuse.
pub fn refusal(config: &Config, f: &Filing) -> Result<Option<RefusalReason>, InvalidField> {
    if f.description.trim().is_empty() {
        return Err(InvalidField::new("description", "must not be empty"));
    }
    // Blank contact fields are a refusal below; what is given must be printable.
    let given = [
        ("contact_name", Some(&f.contact_name)),
        ("contact_phone", f.contact_phone.as_ref()),
        ("contact_email", f.contact_email.as_ref()),
    ];
    for (field, value) in given {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            check_display_name(field, v)?;
        }
    }
    let unsupported = match config.products.check(&f.product, &f.version) {
        Ok(_) => false,
        Err(VersionRefusal::UnsupportedVersion { .. }) => true,
        Err(e) => return Err(version_field(e)),
    };
    // The regulations ask for the INN (the filing's organisation) and the person's name; a
    // phone or an e-mail helps but is not required (ask for it, never refuse for it).
    let no_contact = f.contact_name.trim().is_empty();
    Ok(if unsupported {
        Some(RefusalReason::UnsupportedVersion)
    } else if no_contact {
        Some(RefusalReason::NoContactData)
    } else if f.topic.is_some_and(|t| !t.is_supported()) {
        Some(RefusalReason::NotAboutProducts)
    } else {
        None
    })
}

/// The category follows the product, so a ticket's product must be one the organisation
/// runs, where its boxes are registered: a Lite-only organisation filing under IKS Standard
/// would otherwise get category 3 and a 24-hour deadline instead of Lite's category 4. An
/// organisation without registered boxes cannot be checked and is taken at its word.
fn product_of_org<'a>(
    org: &iks_domain::model::Organisation,
    product: &str,
    runs: impl Iterator<Item = &'a str>,
) -> Result<(), InvalidField> {
    let mut runs: Vec<&str> = runs.collect();
    if runs.is_empty() || runs.contains(&product) {
        return Ok(());
    }
    runs.sort_unstable();
    runs.dedup();
    Err(InvalidField::new(
        "product",
        format!("{} has no box with {product}: its boxes run {}", org.name, runs.join(", ")),
    ))
}

/// Opens a ticket, or stores it refused with the reason (see the module docs). The
/// priority is the organisation's category today; the first-response deadline follows
/// from it ([`sla::first_response_due`]).
pub async fn open(store: &Store, config: &Config, actor: &Actor, f: Filing) -> Result<Ticket, TicketError> {
    let refused = refusal(config, &f)?;
    let org = store.org(f.org).await?;
    let boxes = store.list_boxes(Some(org.id)).await?;
    product_of_org(&org, &f.product, boxes.iter().map(|b| b.product.as_str()))?;
    let now = iks_domain::time::now();
    let free = config.products.get(&f.product).is_some_and(|p| p.free_edition);
    let category = standing(&org.facts, free, now.with_timezone(&config.hours.timezone).date_naive()).category();
    let new = NewTicket {
        org_id: org.id,
        contact_name: f.contact_name.trim().into(),
        contact_phone: present(f.contact_phone),
        contact_email: present(f.contact_email),
        product: f.product,
        version: f.version.trim().into(),
        description: f.description,
        topic: f.topic,
        priority: i64::from(category.number()),
        response_due_at: if refused.is_some() { None } else { first_response_due(category, now, &config.hours) },
        refusal: refused,
    };
    Ok(store.create_ticket(actor, &new).await?)
}

/// Whether `who` may make `m` on `ticket`: support (operators, admins) makes every move;
/// the organisation's customer users may only close their own tickets.
fn may_move(who: &Person, ticket: &Ticket, m: &Move) -> Result<(), TicketError> {
    let ok = who.disabled_at.is_none()
        && match who.role {
            Role::Operator | Role::Admin => true,
            Role::Customer => who.org_id == Some(ticket.org_id) && matches!(m, Move::Close { .. }),
            Role::Auditor => false,
        };
    if ok {
        Ok(())
    } else {
        Err(TicketError::NotAllowed(format!("{} cannot make {} {}", who.login, ticket.id, m.verb())))
    }
}

/// Moves a ticket, by `who` when a person is named (else by `actor`, e.g. the helpdesk).
pub async fn make_move(
    store: &Store,
    actor: &Actor,
    who: Option<&Person>,
    id: TicketId,
    m: &Move,
    note: Option<&str>,
) -> Result<Ticket, TicketError> {
    let ticket = store.ticket(id).await?;
    if let Some(who) = who {
        may_move(who, &ticket, m)?;
    }
    ticket.check_move(m)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    Ok(store.move_ticket(actor, id, m, note).await?)
}

/// A comment by a person known to the gateway: operators and admins speak for support,
/// the organisation's customer users for the customer; nobody else comments.
pub async fn comment_as(store: &Store, who: &Person, id: TicketId, body: &str) -> Result<Comment, TicketError> {
    let ticket = store.ticket(id).await?;
    let from_customer = match who.role {
        _ if who.disabled_at.is_some() => None,
        Role::Operator | Role::Admin => Some(false),
        Role::Customer if who.org_id == Some(ticket.org_id) => Some(true),
        Role::Customer | Role::Auditor => None,
    }
    .ok_or_else(|| TicketError::NotAllowed(format!("{} cannot comment on {id}", who.login)))?;
    let c = NewComment { author_id: Some(who.id), author_name: who.login.clone(), from_customer, body: body.into() };
    comment(store, &Actor::person(who.id, &who.login), id, &c).await
}

/// Adds a checked comment (see [`Store::add_comment`] for what it does to the clocks).
pub async fn comment(store: &Store, actor: &Actor, id: TicketId, c: &NewComment) -> Result<Comment, TicketError> {
    c.validate()?;
    Ok(store.add_comment(actor, id, c).await?)
}

/// Why a ticket was closed when nobody said.
pub const DEFAULT_CLOSE_REASON: &str = "resolved";

/// Why auto-closed tickets were closed.
pub const AUTOCLOSE_REASON: &str = "no customer response";

/// Closes every ticket whose customer has not commented for more than
/// `[tickets] autoclose_days` days before `now` (counted as whole 24-hour days from the
/// last customer comment, or from the opening if there was none). It works from stored
/// times only, so it is safe to run at any interval, on several nodes at once, or twice.
/// Closing revokes the ticket's grants, and the watchdog ends its live sessions.
pub async fn autoclose(store: &Store, config: &Config, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
    let cutoff = now - Duration::days(i64::from(config.tickets.autoclose_days));
    let mut closed = Vec::new();
    for id in store.silent_tickets(cutoff).await? {
        if let Some(t) = store.close_if_silent(&Actor::system(), id, AUTOCLOSE_REASON, cutoff).await? {
            tracing::info!(ticket = %t.id, "closed: no customer response");
            closed.push(t);
        }
    }
    Ok(closed)
}

/// One ticket in the queue, with its clock.
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub sla: Sla,
}

/// The work waiting: tickets being worked on, highest priority first, then the nearest
/// first-response deadline still to be met (answered tickets and those without a
/// deadline after), then the oldest.
pub async fn queue(
    store: &Store,
    config: &Config,
    org: Option<OrgId>,
    now: DateTime<Utc>,
) -> Result<Vec<Queued>, StoreError> {
    let warning = config.tickets.due_soon();
    let tickets = store.list_tickets(&TicketFilter { org, active: true, ..Default::default() }).await?;
    let mut q: Vec<Queued> =
        tickets.into_iter().map(|t| Queued { sla: sla::sla(&t, now, &config.hours, warning), ticket: t }).collect();
    q.sort_by_key(|e| (e.ticket.priority, e.sla.pending_due().is_none(), e.sla.pending_due(), e.ticket.id));
    Ok(q)
}

/// One change in a ticket's life, for its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// The audit action: `ticket.open`, `ticket.comment`, `ticket.escalate`, …
    pub action: String,
    pub details: serde_json::Value,
}

impl HistoryEntry {
    /// The change in words, in the panel's catalogue (`desk.history.*`), which the CLI
    /// reads in English: "in progress → escalated, note: needs a fix in the VPN module".
    pub fn describe(&self, lang: Lang) -> String {
        let d = &self.details;
        let t = |key: &str| i18n::text(lang, key);
        let s = |k: &str| d[k].as_str();
        let state = |k: &str| s(k).map(|v| t(&format!("desk.ticket_state.{v}"))).unwrap_or_default();
        match self.action.as_str() {
            "ticket.open" => t("desk.history.opened").replace("{priority}", &d["priority"].to_string()),
            "ticket.comment" => {
                let side = if d["from_customer"] == true { "comment_customer" } else { "comment_support" };
                let mut line = t(&format!("desk.history.{side}")).replace("{author}", s("author").unwrap_or_default());
                if d["first_response"] == true {
                    line.push_str(&t("desk.history.first_response"));
                }
                line
            }
            action => {
                let mut line = format!("{} → {}", state("from"), state("to"));
                if let Some(reason) = s("reason") {
                    // A refusal's reason is one of the regulations' codes; a closing's is free text.
                    let reason = if action == "ticket.refuse" {
                        t(&format!("desk.refusal.{reason}"))
                    } else {
                        reason.to_string()
                    };
                    line.push_str(&t("desk.history.reason").replace("{reason}", &reason));
                }
                if let Some(note) = s("note") {
                    line.push_str(&t("desk.history.note").replace("{note}", note));
                }
                line
            }
        }
    }
}

/// Who changed the ticket and when, from the audit log (the one record of it).
pub async fn history(store: &Store, id: TicketId) -> Result<Vec<HistoryEntry>, StoreError> {
    let events = store.audit_events(&EventFilter { ticket: Some(id), ..Default::default() }).await?;
    events
        .into_iter()
        .filter(|e| e.action.starts_with("ticket."))
        .map(|e| {
            let details = serde_json::from_str(&e.details)
                .map_err(|err| StoreError::Corrupt(format!("event #{} details: {err}", e.seq)))?;
            Ok(HistoryEntry { at: e.at, actor: e.actor, action: e.action, details })
        })
        .collect()
}
