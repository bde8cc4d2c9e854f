//! The ticket endpoints: thin adapters from JSON to [`crate::tickets`] and back.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, extract::rejection::QueryRejection};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use super::json::Body;
use crate::state::Gateway;
use crate::store::{SessionFilter, StoreError, TicketFilter};
use crate::tickets::{self, Filing, HistoryEntry, Sla};
use iks_domain::ids::{OrgId, SessionId, TicketId};
use iks_domain::model::{Comment, Move, NewComment, Session, Ticket, TicketState, Topic};
use iks_domain::rules::Inn;

/// A ticket as the API shows it: the stored record, the number customers quote, the
/// organisation's INN and the first-response clock now.
#[derive(Debug, Serialize)]
pub struct TicketView {
    /// `T-1001`.
    pub number: String,
    pub inn: String,
    #[serde(flatten)]
    pub ticket: Ticket,
    pub sla: Sla,
}

fn view(app: &Arc<Gateway>, t: Ticket, inn: &Inn) -> TicketView {
    let sla = tickets::sla::sla(&t, iks_domain::time::now(), &app.config.hours, app.config.tickets.due_soon());
    TicketView { number: t.id.to_string(), inn: inn.to_string(), ticket: t, sla }
}

/// A ticket with everything said and done about it.
#[derive(Debug, Serialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub view: TicketView,
    pub comments: Vec<Comment>,
    pub history: Vec<HistoryEntry>,
}

/// A ticket ID from the path (`T-1001` or `1001`).
fn ticket_id(s: &str) -> Result<TicketId, ApiError> {
    s.parse().map_err(|e: iks_domain::ids::IdParseError| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()).with_field("id")
    })
}

/// The ticket, if the caller may see it; another organisation's is "not found", word for word.
async fn visible_ticket(app: &Arc<Gateway>, caller: &Caller, id: &str) -> Result<Ticket, ApiError> {
    let id = ticket_id(id)?;
    let t = app.store.ticket(id).await?;
    if caller.sees(t.org_id) { Ok(t) } else { Err(StoreError::NotFound { what: "ticket", key: id.to_string() }.into()) }
}

async fn detail(app: &Arc<Gateway>, t: Ticket) -> Result<TicketDetail, ApiError> {
    let inn = app.store.org(t.org_id).await?.inn;
    let comments = app.store.comments(t.id).await?;
    let history = tickets::history(&app.store, t.id).await?;
    Ok(TicketDetail { view: view(app, t, &inn), comments, history })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    inn: String,
    contact_name: String,
    contact_phone: Option<String>,
    contact_email: Option<String>,
    product: String,
    version: String,
    description: String,
    topic: Option<Topic>,
}

impl OpenRequest {
    /// The INN as the request gives it, still to be checked.
    pub(crate) fn inn(&self) -> &str {
        &self.inn
    }

    /// The filing for the organisation the INN named.
    pub(crate) fn filing(self, org: OrgId) -> Filing {
        Filing {
            org,
            contact_name: self.contact_name,
            contact_phone: self.contact_phone,
            contact_email: self.contact_email,
            product: self.product,
            version: self.version,
            description: self.description,
            topic: self.topic,
        }
    }
}

/// `POST /api/tickets`: opens a ticket; a refused one is stored and returned all the same,
/// with state `refused` and the reason.
pub async fn open(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Body(req): Body<OpenRequest>,
) -> Result<(StatusCode, Json<TicketDetail>), ApiError> {
    let inn = Inn::parse(req.inn()).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", format!("inn: {e}")).with_field("inn")
    })?;
    let unknown = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_organisation",
            format!("inn: no organisation with INN {inn} is registered"),
        )
        .with_field("inn")
    };
    let org = match app.store.org_by_inn(&inn).await {
        Ok(org) if caller.sees(org.id) => org,
        Ok(_) | Err(StoreError::NotFound { .. }) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let t = tickets::open(&app.store, &app.config, &caller.actor(), req.filing(org.id)).await?;
    Ok((StatusCode::CREATED, Json(detail(&app, t).await?)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    inn: Option<String>,
}

/// `GET /api/tickets?state=…&inn=…`: newest first.
pub async fn list(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<TicketView>>, ApiError> {
    let Query(q) = query?;
    let state = q
        .state
        .map(|s| {
            TicketState::parse(&s).ok_or_else(|| {
                let known: Vec<_> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_value",
                    format!("state: '{s}' is not a ticket state ({})", known.join(", ")),
                )
                .with_field("state")
            })
        })
        .transpose()?;
    let inns: HashMap<OrgId, Inn> = app.store.list_orgs().await?.into_iter().map(|o| (o.id, o.inn)).collect();
    // An INN that is not registered, or not the token's, simply has no tickets.
    let org = match q.inn {
        Some(inn) => match inns.iter().find(|(_, i)| i.as_str() == inn.trim()) {
            Some((id, _)) if caller.sees(*id) => Some(*id),
            _ => return Ok(Json(Vec::new())),
        },
        None => caller.0.org_id,
    };
    let list = app.store.list_tickets(&TicketFilter { org, state, active: false }).await?;
    let views = list
        .into_iter()
        .filter_map(|t| {
            let inn = inns.get(&t.org_id)?.clone();
            Some(view(&app, t, &inn))
        })
        .collect();
    Ok(Json(views))
}

/// `GET /api/tickets/{id}`: the ticket with its comments and history.
pub async fn show(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TicketDetail>, ApiError> {
    let t = visible_ticket(&app, &caller, &id).await?;
    Ok(Json(detail(&app, t).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// The author's name as the helpdesk knows it.
    author: String,
    /// Whether the customer wrote it (else support did).
    from_customer: bool,
    body: String,
}

impl CommentRequest {
    /// The comment to store (the helpdesk's authors have no person record).
    pub(crate) fn comment(self) -> NewComment {
        NewComment { author_id: None, author_name: self.author, from_customer: self.from_customer, body: self.body }
    }
}

/// `POST /api/tickets/{id}/comments`.
pub async fn comment(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<CommentRequest>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let t = visible_ticket(&app, &caller, &id).await?;
    if caller.is_scoped() && !req.from_customer {
        return Err(ApiError::forbidden("a token of one organisation comments for the customer only")
            .with_field("from_customer"));
    }
    let comment = tickets::comment(&app.store, &caller.actor(), t.id, &req.comment()).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    note: Option<String>,
}

/// `POST /api/tickets/{id}/escalate`: hands the ticket to development.
pub async fn escalate(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<EscalateRequest>,
) -> Result<Json<TicketDetail>, ApiError> {
    let t = visible_ticket(&app, &caller, &id).await?;
    if caller.is_scoped() {
        return Err(ApiError::forbidden("only support escalates tickets to development"));
    }
    let t = tickets::make_move(&app.store, &caller.actor(), None, t.id, &Move::Escalate, req.note.as_deref()).await?;
    Ok(Json(detail(&app, t).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    reason: Option<String>,
}

/// `POST /api/tickets/{id}/close`: grants are revoked and live sessions end.
pub async fn close(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<CloseRequest>,
) -> Result<Json<TicketDetail>, ApiError> {
    let t = visible_ticket(&app, &caller, &id).await?;
    let reason = req.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let m = Move::Close { reason: reason.unwrap_or_else(|| tickets::DEFAULT_CLOSE_REASON.into()) };
    let t = tickets::make_move(&app.store, &caller.actor(), None, t.id, &m, None).await?;
    Ok(Json(detail(&app, t).await?))
}

/// A session as the API shows it, with where to download its recording.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// `S-7`.
    pub number: String,
    #[serde(flatten)]
    pub session: Session,
    pub recording_url: Option<String>,
}

/// `GET /api/tickets/{id}/sessions`: newest first.
pub async fn sessions(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let t = visible_ticket(&app, &caller, &id).await?;
    let list = app.store.list_sessions(&SessionFilter { ticket: Some(t.id), ..Default::default() }).await?;
    let views = list
        .into_iter()
        .map(|s| SessionView {
            number: s.id.to_string(),
            recording_url: s.recording.as_ref().map(|_| format!("/api/sessions/{}/recording", s.id)),
            session: s,
        })
        .collect();
    Ok(Json(views))
}

/// `GET /api/sessions/{id}/recording`: the asciicast; the download is audited.
pub async fn recording(
    State(app): State<Arc<Gateway>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: SessionId = id.parse().map_err(|e: iks_domain::ids::IdParseError| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()).with_field("id")
    })?;
    let s = app.store.session(id).await?;
    let org = app.store.get_box(s.box_id).await?.org_id;
    if !caller.sees(org) {
        return Err(StoreError::NotFound { what: "session", key: id.to_string() }.into());
    }
    let bytes =
        crate::recording::fetch(&app.store, &app.data_dir.recordings_dir(), &caller.actor(), id, "session.download")
            .await?;
    let disposition = format!("attachment; filename=\"{id}.cast\"");
    Ok((
        [(header::CONTENT_TYPE, "application/x-asciicast".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        bytes,
    ))
}
