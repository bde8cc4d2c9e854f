//! Tickets: the list (a customer's own organisation's; everyone's for support, filterable),
//! the operator's queue (priority, then first-response deadline), a ticket's page with its
//! clock, comments, history, grants and sessions and the moves the person may make, and the
//! form an operator opens a ticket with (checked like the CLI and the helpdesk API).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::view::{GrantView, Names};
use crate::store::{GrantFilter, SessionFilter, StoreError, TicketFilter};
use crate::tickets::{self, Filing, Sla, TicketError};
use crate::web::error::{WebError, WebResult};
use crate::web::page::{self, tr, with_status};
use crate::web::panel::Panel;
use crate::web::viewer::{CsrfForm, Viewer};
use iks_domain::ids::{OrgId, TicketId};
use iks_domain::model::{Move, RefusalReason, Role, Ticket, TicketState, Topic};
use iks_domain::rules::Inn;

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/queue", get(queue))
        .route("/tickets", get(list).post(open))
        .route("/tickets/new", get(new_form))
        .route("/tickets/{id}", get(show))
        .route("/tickets/{id}/comment", post(comment))
        .route("/tickets/{id}/move", post(make_move))
}

/// Who works on tickets: support, and the customers for their own.
const SUPPORT: &[Role] = &[Role::Operator, Role::Admin];

/// How many characters of a description a list shows.
const SUMMARY: usize = 120;

/// A ticket in a list, with its organisation and its first-response clock.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    ticket: Ticket,
    code: String,
    org: String,
    sla: Sla,
    /// The description's first line, shortened for a list.
    summary: String,
}

impl Row {
    fn new(ticket: Ticket, sla: Sla, names: &Names) -> Self {
        let first = ticket.description.lines().next().unwrap_or("");
        let mut summary: String = first.chars().take(SUMMARY).collect();
        if summary.len() < ticket.description.trim_end().len() {
            summary.push('…');
        }
        Self { code: ticket.id.to_string(), org: names.org(ticket.org_id), sla, summary, ticket }
    }
}

fn sla_of(web: &Panel, t: &Ticket, now: DateTime<Utc>) -> Sla {
    let config = &web.app.config;
    tickets::sla::sla(t, now, &config.hours, config.tickets.due_soon())
}

/// What a ticket error tells the person: `Ok(message)` to show with the form again.
fn problem(e: TicketError) -> WebResult<String> {
    match e {
        TicketError::NotAllowed(why) => {
            tracing::info!(%why, "panel ticket change not allowed");
            Err(WebError::Forbidden)
        }
        TicketError::Invalid(f) => Ok(f.to_string()),
        TicketError::InvalidMove(m) => Ok(m.to_string()),
        TicketError::Store(StoreError::Conflict(m)) => Ok(m),
        TicketError::Store(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    org: Option<String>,
}

async fn list(State(web): State<Arc<Panel>>, viewer: Viewer, Query(q): Query<ListQuery>) -> WebResult {
    let store = &web.app.store;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(TicketState::parse(s).ok_or_else(|| {
            let known: Vec<_> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
            WebError::BadRequest(format!("state: '{s}' is not a ticket state ({})", known.join(", ")))
        })?),
    };
    // A customer's list is their organisation's, whatever the URL says.
    let org = match (viewer.org_scope(), q.org.as_deref().filter(|s| !s.is_empty())) {
        (Some(mine), _) => Some(mine),
        (None, Some(o)) => Some(o.parse::<OrgId>().map_err(|e| WebError::BadRequest(format!("org: {e}")))?),
        (None, None) => None,
    };
    let names = Names::load(store, viewer.org_scope()).await?;
    let now = iks_domain::time::now();
    let rows: Vec<Row> = store
        .list_tickets(&TicketFilter { org, state, active: false })
        .await?
        .into_iter()
        .map(|t| Row::new(t.clone(), sla_of(&web, &t, now), &names))
        .collect();
    let orgs: Vec<Value> = if viewer.org_scope().is_none() {
        store.list_orgs().await?.into_iter().map(|o| context! { id => o.id, name => o.name }).collect()
    } else {
        Vec::new()
    };
    let states: Vec<&str> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
    let ctx = context! { rows, orgs, states, state => state.map(|s| s.as_str()), org => org.map(OrgId::get) };
    web.page(&viewer, "desk/tickets.html", ctx)
}

async fn queue(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    viewer.require(SUPPORT)?;
    let store = &web.app.store;
    let names = Names::load(store, None).await?;
    let rows: Vec<Row> = tickets::queue(store, &web.app.config, None, iks_domain::time::now())
        .await?
        .into_iter()
        .map(|q| Row::new(q.ticket, q.sla, &names))
        .collect();
    web.page(&viewer, "desk/queue.html", context! { rows })
}

async fn show(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    ticket_page(&web, &viewer, page::id(&id)?, StatusCode::OK, context! {}).await
}

/// A move the ticket's state allows, as its form names it.
fn move_name(to: TicketState) -> &'static str {
    match to {
        TicketState::InProgress => "progress",
        TicketState::Escalated => "escalate",
        TicketState::Resolved => "resolve",
        TicketState::Closed => "close",
        TicketState::Refused => "refuse",
        TicketState::Open => "open",
    }
}

/// The ticket's page; `extra` carries a form's error and what was typed.
async fn ticket_page(web: &Panel, viewer: &Viewer, id: TicketId, status: StatusCode, extra: Value) -> WebResult {
    let store = &web.app.store;
    let config = &web.app.config;
    let t = store.ticket(id).await?;
    viewer.can_see(t.org_id)?;
    let org = store.org(t.org_id).await?;
    let now = iks_domain::time::now();
    let sla = sla_of(web, &t, now);
    let names = Names::load(store, Some(t.org_id)).await?;
    let me = (viewer.person.role == Role::Operator).then_some(viewer.person.id);
    let grants: Vec<GrantView> = store
        .list_grants(&GrantFilter { ticket: Some(id), ..Default::default() })
        .await?
        .into_iter()
        .map(|g| GrantView::new(g, &names, &config.ssh, me))
        .collect();
    let sessions: Vec<Value> = store
        .list_sessions(&SessionFilter { ticket: Some(id), ..Default::default() })
        .await?
        .into_iter()
        .map(|s| {
            let box_name = names.boxes.get(&s.box_id).map(|(n, _)| n.clone()).unwrap_or_default();
            context! {
                code => s.id.to_string(), box_name, engineer => names.person(s.operator_id),
                started_at => s.started_at, ended_at => s.ended_at, end_reason => s.end_reason.map(|r| r.as_str()),
            }
        })
        .collect();
    let history: Vec<Value> = tickets::history(store, id)
        .await?
        .into_iter()
        .map(|h| context! { at => h.at, actor => h.actor.to_string(), what => h.describe(viewer.lang) })
        .collect();
    let support = SUPPORT.contains(&viewer.person.role);
    let moves: Vec<&str> = if support { t.state.next().iter().map(|s| move_name(*s)).collect() } else { Vec::new() };
    let may_comment = !t.state.is_final() && viewer.person.role != Role::Auditor;
    let boxes: Vec<String> = names.boxes.values().map(|(n, _)| n.clone()).collect();
    let ctx = context! {
        tk => Row::new(t.clone(), sla, &names),
        inn => org.inn.to_string(),
        refusal => t.refusal_reason.map(|r| r.as_str()),
        topic => t.topic.map(|x| x.as_str()),
        comments => store.comments(id).await?,
        history, grants, sessions, moves, may_comment, boxes,
        may_request => viewer.person.role == Role::Operator && t.state.is_active(),
        reasons => RefusalReason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ..extra
    };
    with_status(status, web.page(viewer, "desk/ticket.html", ctx))
}

/// The ticket a change is about, if the person may see it (404 otherwise).
async fn visible(web: &Panel, viewer: &Viewer, id: &str) -> WebResult<Ticket> {
    viewer.require(&[Role::Customer, Role::Operator, Role::Admin])?;
    let t = web.app.store.ticket(page::id(id)?).await?;
    viewer.can_see(t.org_id)?;
    Ok(t)
}

#[derive(Deserialize)]
struct CommentForm {
    text: String,
}

async fn comment(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<CommentForm>,
) -> WebResult {
    let t = visible(&web, &viewer, &id).await?;
    match tickets::comment_as(&web.app.store, &viewer.person, t.id, &f.text).await {
        Ok(_) => Ok(web.done(&viewer, &format!("/tickets/{}", t.id), "desk.tickets.commented")),
        Err(e) => {
            let ctx = context! { comment_error => problem(e)?, comment_text => f.text };
            ticket_page(&web, &viewer, t.id, StatusCode::BAD_REQUEST, ctx).await
        }
    }
}

#[derive(Deserialize)]
struct MoveForm {
    action: String,
    reason: Option<String>,
    note: Option<String>,
}

async fn make_move(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, f): CsrfForm<MoveForm>,
) -> WebResult {
    let t = visible(&web, &viewer, &id).await?;
    let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let m = match f.action.as_str() {
        "progress" => Move::Progress,
        "escalate" => Move::Escalate,
        "resolve" => Move::Resolve,
        "close" => Move::Close { reason: reason.unwrap_or(tickets::DEFAULT_CLOSE_REASON).to_string() },
        "refuse" => match reason.and_then(RefusalReason::parse) {
            Some(reason) => Move::Refuse { reason },
            None => {
                let move_error = tr(&viewer, "desk.tickets.refusal_required");
                return ticket_page(&web, &viewer, t.id, StatusCode::BAD_REQUEST, context! { move_error }).await;
            }
        },
        other => return Err(WebError::BadRequest(format!("action: '{other}' is not a move"))),
    };
    match tickets::make_move(&web.app.store, &viewer.actor(), Some(&viewer.person), t.id, &m, f.note.as_deref()).await {
        Ok(moved) => {
            tracing::info!(ticket = %moved.id, by = %viewer.person.login, state = moved.state.as_str(), "ticket moved in the panel");
            let state = tr(&viewer, &format!("desk.ticket_state.{}", moved.state.as_str()));
            let message =
                tr(&viewer, "desk.tickets.moved").replace("{id}", &moved.id.to_string()).replace("{state}", &state);
            Ok(web.done_with(&format!("/tickets/{}", moved.id), &message))
        }
        Err(e) => {
            let move_error = problem(e)?;
            ticket_page(&web, &viewer, t.id, StatusCode::BAD_REQUEST, context! { move_error }).await
        }
    }
}

/// What the new-ticket form holds, typed or empty.
#[derive(Deserialize, Serialize, Default)]
struct OpenForm {
    inn: String,
    contact_name: String,
    contact_phone: String,
    contact_email: String,
    product: String,
    version: String,
    topic: String,
    description: String,
}

async fn new_form(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    open_page(&web, &viewer, StatusCode::OK, &OpenForm::default(), None)
}

fn open_page(web: &Panel, viewer: &Viewer, status: StatusCode, form: &OpenForm, error: Option<String>) -> WebResult {
    viewer.require(SUPPORT)?;
    let products: Vec<Value> = web
        .app
        .config
        .products
        .products()
        .iter()
        .map(|p| context! { id => p.id, name => p.name, versions => p.versions.join(", ") })
        .collect();
    let topics: Vec<&str> = Topic::ALL.iter().map(|t| t.as_str()).collect();
    with_status(status, web.page(viewer, "desk/ticket_new.html", context! { form, products, topics, error }))
}

/// An operator opens a ticket for an organisation named by its INN; one the regulations
/// refuse is stored refused, with the reason, as the CLI and the API do.
async fn open(State(web): State<Arc<Panel>>, CsrfForm(viewer, f): CsrfForm<OpenForm>) -> WebResult {
    viewer.require(SUPPORT)?;
    let store = &web.app.store;
    let inn = match Inn::parse(f.inn.trim()) {
        Ok(inn) => inn,
        Err(e) => return open_page(&web, &viewer, StatusCode::BAD_REQUEST, &f, Some(format!("inn: {e}"))),
    };
    let org = match store.org_by_inn(&inn).await {
        Ok(org) => org,
        Err(StoreError::NotFound { .. }) => {
            let error = format!("inn: no organisation with INN {inn} is registered");
            return open_page(&web, &viewer, StatusCode::BAD_REQUEST, &f, Some(error));
        }
        Err(e) => return Err(e.into()),
    };
    let topic = match f.topic.trim() {
        "" => None,
        s => match Topic::parse(s) {
            Some(t) => Some(t),
            None => {
                let error = format!("topic: '{s}' is not a topic");
                return open_page(&web, &viewer, StatusCode::BAD_REQUEST, &f, Some(error));
            }
        },
    };
    let filing = Filing {
        org: org.id,
        contact_name: f.contact_name.clone(),
        contact_phone: Some(f.contact_phone.clone()),
        contact_email: Some(f.contact_email.clone()),
        product: f.product.trim().to_string(),
        version: f.version.clone(),
        description: f.description.clone(),
        topic,
    };
    match tickets::open(store, &web.app.config, &viewer.actor(), filing).await {
        Ok(t) => {
            tracing::info!(ticket = %t.id, by = %viewer.person.login, state = t.state.as_str(), "ticket opened in the panel");
            let message = match t.refusal_reason {
                Some(r) => tr(&viewer, "desk.tickets.opened_refused")
                    .replace("{id}", &t.id.to_string())
                    .replace("{reason}", &tr(&viewer, &format!("desk.refusal.{}", r.as_str()))),
                None => tr(&viewer, "desk.tickets.opened").replace("{id}", &t.id.to_string()),
            };
            Ok(web.done_with(&format!("/tickets/{}", t.id), &message))
        }
        Err(e) => {
            let error = problem(e)?;
            open_page(&web, &viewer, StatusCode::BAD_REQUEST, &f, Some(error))
        }
    }
}
