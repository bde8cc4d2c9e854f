//! Opening tickets under the regulations: the contact and the product version are
//! required, the version must be supported, the priority is the organisation's category
//! at opening, and the first-response deadline runs on the working-hours clock.

use crate::audit::Actor;
use crate::config::Config;
use crate::model::{NewTicket, Ticket, check_product};
use crate::rules::{Category, standing};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ticket as a person files it.
#[derive(Debug, Clone)]
pub struct Filing {
    pub org: crate::ids::OrgId,
    pub contact_name: String,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    pub product: String,
    pub version: String,
    pub description: String,
}

pub async fn open(store: &Store, config: &Config, actor: &Actor, f: Filing) -> Result<Ticket, TicketError> {
    if f.contact_name.trim().is_empty() || (f.contact_phone.is_none() && f.contact_email.is_none()) {
        return Err(TicketError::Invalid("contact: a name and a phone or e-mail are required".into()));
    }
    if f.description.trim().is_empty() {
        return Err(TicketError::Invalid("description: must not be empty".into()));
    }
    check_product(&config.products, &f.product, &f.version)
        .map_err(|e| TicketError::Invalid(format!("{}: {}", e.field, e.reason)))?;
    let org = store.org(f.org).await?;
    let now = crate::time::now();
    let free = config.products.get(&f.product).is_some_and(|p| p.free_edition);
    let category = standing(&org.facts, free, now.with_timezone(&config.hours.timezone).date_naive()).category();
    let response_due_at = match category {
        Category::One | Category::Two => Some(config.hours.add_working_hours(now, 10)),
        Category::Three => Some(config.hours.add_calendar_hours(now, 24)),
        Category::Four => None,
    };
    let new = NewTicket {
        org_id: org.id,
        contact_name: f.contact_name.trim().into(),
        contact_phone: f.contact_phone,
        contact_email: f.contact_email,
        product: f.product,
        version: f.version,
        description: f.description,
        priority: i64::from(category.number()),
        response_due_at,
    };
    Ok(store.create_ticket(actor, &new).await?)
}
