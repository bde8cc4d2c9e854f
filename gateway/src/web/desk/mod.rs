//! The day-to-day pages of customers' admins and operators: access requests and grants
//! ([`access`]), tickets and the queue ([`tickets`]), and the customers' boxes ([`boxes`]).
//!
//! Handlers only check who asks and turn forms into calls of the domain modules
//! (`grants`, `tickets`, `enrollment`), which re-check the rules and have the store audit
//! each change with the person as actor — so the panel behaves like the CLI and the API.
//! A record of another organisation is looked up first and answered 404 for a customer
//! before anything else is said about it.

mod access;
mod boxes;
mod tickets;
mod view;

use std::sync::Arc;

use axum::Router;

use super::panel::Panel;

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new().merge(access::routes()).merge(tickets::routes()).merge(boxes::routes())
}
