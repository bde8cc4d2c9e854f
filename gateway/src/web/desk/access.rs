//! `/access`: a customer's pending requests (approve, maybe shorter or for the asking
//! engineer only; or reject with a reason), active grants (revoke) and recent decisions;
//! an operator's own requests and grants, with the `ssh` command to copy, and the form to
//! ask for access. Admins see every organisation's and decide like customers (as the CLI
//! lets them).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use minijinja::{Value, context};
use serde::Deserialize;

use super::view::{GrantView, Names, grant_problem};
use crate::grants::{self, ApproveOptions, GrantError};
use crate::store::{GrantFilter, StoreError};
use crate::web::error::WebResult;
use crate::web::page::{self, tr, with_status};
use crate::web::panel::Panel;
use crate::web::viewer::{CsrfForm, Viewer};
use iks_domain::ids::{GrantId, TicketId};
use iks_domain::model::{Grant, GrantState, Role};
use iks_domain::rules::{format_duration, parse_duration};

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/access", axum::routing::get(list).post(request))
        .route("/access/{id}/approve", post(approve))
        .route("/access/{id}/reject", post(reject))
        .route("/access/{id}/revoke", post(revoke))
}

/// How many decided requests the page lists.
const RECENT: usize = 20;

async fn list(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    page(&web, &viewer, StatusCode::OK, context! {}).await
}

/// The page; `extra` carries a form's error and what was typed into it.
async fn page(web: &Panel, viewer: &Viewer, status: StatusCode, extra: Value) -> WebResult {
    viewer.require(&[Role::Customer, Role::Operator, Role::Admin])?;
    let store = &web.app.store;
    let scope = viewer.org_scope();
    let names = Names::load(store, scope).await?;
    let me = (viewer.person.role == Role::Operator).then_some(viewer.person.id);
    let mut all: Vec<GrantView> = store
        .list_grants(&GrantFilter { org: scope, ..Default::default() })
        .await?
        .into_iter()
        .filter(|g| me.is_none_or(|me| g.requested_by == me))
        .map(|g| GrantView::new(g, &names, &web.app.config.ssh, me))
        .collect();
    all.sort_by_key(|g| std::cmp::Reverse(g.grant.updated_at));
    let (pending, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|g| g.grant.state == GrantState::Pending);
    let (active, decided): (Vec<_>, Vec<_>) = rest.into_iter().partition(|g| g.active);
    let decided: Vec<_> = decided.into_iter().take(RECENT).collect();
    let max_grant = format_duration(web.app.config.access.max_grant());
    let ctx = context! { pending, active, decided, max_grant, ..extra };
    with_status(status, web.page(viewer, "desk/access.html", ctx))
}

#[derive(Deserialize)]
struct RequestForm {
    ticket: String,
    #[serde(rename = "box")]
    box_name: String,
    duration: String,
    reason: String,
}

/// An operator asks for a window on a box for a ticket.
async fn request(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<RequestForm>) -> WebResult {
    viewer.require(&[Role::Operator])?;
    let (store, config) = (&web.app.store, &web.app.config);
    let problem = match (f.ticket.parse::<TicketId>(), parse_duration(f.duration.trim())) {
        (Err(e), _) => format!("{}: {e}", tr(&viewer, "desk.access.ticket")),
        (_, Err(e)) => format!("{}: {e}", tr(&viewer, "desk.access.duration")),
        (Ok(ticket), Ok(d)) => {
            match grants::request(store, config, &viewer.person, ticket, f.box_name.trim(), d, &f.reason).await {
                Ok(g) => {
                    tracing::info!(ticket = %g.ticket_id, grant = %g.id, operator = %viewer.person.login, "access requested in the panel");
                    let message = tr(&viewer, "desk.access.requested").replace("{id}", &g.id.to_string());
                    return Ok(web.done_with("/access", &message));
                }
                Err(GrantError::Store(e @ StoreError::NotFound { .. })) => e.to_string(),
                Err(e) => grant_problem(e)?,
            }
        }
    };
    let form = context! { ticket => f.ticket, box => f.box_name, duration => f.duration, reason => f.reason };
    page(&web, &viewer, StatusCode::BAD_REQUEST, context! { request_error => problem, form }).await
}

/// The grant a decision is about, if the person may see it: a customer of another
/// organisation learns nothing about it (404); operators and auditors do not decide (403).
async fn decidable(web: &Panel, viewer: &Viewer, id: &str, roles: &[Role]) -> WebResult<Grant> {
    viewer.require(roles)?;
    let g = web.app.store.grant(page::id::<GrantId>(id)?).await?;
    viewer.can_see(web.app.store.ticket(g.ticket_id).await?.org_id)?;
    Ok(g)
}

/// After a decision: back to the list with a message, or the list with what went wrong.
async fn decided(web: &Panel, viewer: &Viewer, id: GrantId, result: Result<Grant, GrantError>, key: &str) -> WebResult {
    match result {
        Ok(g) => {
            tracing::info!(ticket = %g.ticket_id, grant = %g.id, by = %viewer.person.login, state = g.state.as_str(), "access decided in the panel");
            Ok(web.done_with("/access", &tr(viewer, key).replace("{id}", &g.id.to_string())))
        }
        Err(e) => {
            let error = format!("{id}: {}", grant_problem(e)?);
            page(web, viewer, StatusCode::BAD_REQUEST, context! { error, error_grant => id.to_string() }).await
        }
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    /// Shorten the window: it ends this long from now (`30m`, `1h30m`); empty keeps the request's length.
    until: Option<String>,
    any_engineer: Option<String>,
    note: Option<String>,
}

async fn approve(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<ApproveForm>,
) -> WebResult {
    let g = decidable(&web, &viewer, &id, &[Role::Customer, Role::Admin]).await?;
    let until = match f.until.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_duration(s) {
            Ok(d) => Some(iks_domain::time::now() + d),
            Err(e) => {
                let error = format!("{}: {}: {e}", g.id, tr(&viewer, "desk.access.shorten"));
                let ctx = context! { error, error_grant => g.id.to_string() };
                return page(&web, &viewer, StatusCode::BAD_REQUEST, ctx).await;
            }
        },
    };
    let note = f.note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let opts = ApproveOptions { until, any_engineer: f.any_engineer.is_some(), note };
    let result = grants::approve(&web.app.store, &web.app.config, &viewer.person, g.id, &opts).await;
    decided(&web, &viewer, g.id, result, "desk.access.approved").await
}

#[derive(Deserialize)]
struct RejectForm {
    reason: String,
}

async fn reject(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<RejectForm>,
) -> WebResult {
    let g = decidable(&web, &viewer, &id, &[Role::Customer, Role::Admin]).await?;
    let result = if f.reason.trim().is_empty() {
        // The engineer is told why; the CLI allows none, the panel asks for one.
        Err(GrantError::Refused(tr(&viewer, "desk.access.reason_required")))
    } else {
        grants::reject(&web.app.store, &viewer.person, g.id, f.reason.trim()).await
    };
    decided(&web, &viewer, g.id, result, "desk.access.rejected").await
}

#[derive(Deserialize)]
struct Empty {}

/// Revokes a grant: the customer or an admin, or the engineer giving up their own. The
/// watchdog of the node carrying a session on it ends the session once the store says so.
async fn revoke(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    let g = decidable(&web, &viewer, &id, &[Role::Customer, Role::Admin, Role::Operator]).await?;
    let result = grants::revoke(&web.app.store, &viewer.person, g.id).await;
    decided(&web, &viewer, g.id, result, "desk.access.revoked").await
}
