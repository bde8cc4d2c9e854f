//! The audit log: reading it newest first with filters, the chain's verify status, and
//! exports (JSONL or CSV, streamed).
//!
//! A customer reads only the events whose organisation is theirs, and exports only those;
//! auditors and admins read everything and see whether the stored chain verifies. Every
//! export goes through [`crate::store::Store::export_audit`], as `iks-gateway audit export` does, so
//! it is recorded (`audit.export`, the viewer as actor) before a byte is sent.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{WebError, WebResult};
use super::page::tr;
use super::panel::Panel;
use super::sessions::{Refusal, day_range, given as opt};
use super::viewer::Viewer;
use crate::audit::export::{ExportFilter, Format};
use crate::datadir::KeyRole;
use crate::store::EventFilter;
use iks_domain::ids::{OrgId, SessionId, TicketId};
use iks_domain::model::Role;

/// Events per page.
const PAGE: i64 = 100;

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new().route("/audit", get(log)).route("/audit/export", get(export_log))
}

const READERS: &[Role] = &[Role::Customer, Role::Auditor, Role::Admin];

/// The filters as typed (kept in the form when refused).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct LogQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    session: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    format: String,
}

impl LogQuery {
    /// The events these filters ask for, narrowed to what `viewer` may read.
    fn filter(&self, web: &Panel, viewer: &Viewer) -> Result<EventFilter, Refusal> {
        let bad = |key, v: &str| (key, v.to_string());
        let (since, until) = day_range(web, &self.from, &self.to)?;
        let mut f = EventFilter {
            action: opt(&self.action).map(str::to_string),
            actor: opt(&self.actor).map(str::to_string),
            since,
            until,
            newest_first: true,
            limit: Some(PAGE + 1),
            ..Default::default()
        };
        if let Some(v) = opt(&self.ticket) {
            f.ticket = Some(v.parse::<TicketId>().map_err(|_| bad("sessions.bad_ticket", v))?);
        }
        if let Some(v) = opt(&self.session) {
            f.session = Some(v.parse::<SessionId>().map_err(|_| bad("audit.bad_session", v))?);
        }
        if let Some(v) = opt(&self.org) {
            f.org = Some(v.parse::<OrgId>().map_err(|_| bad("sessions.bad_org", v))?);
        }
        if let Some(v) = opt(&self.before) {
            let seq: i64 = v.parse().map_err(|_| bad("sessions.bad_page", v))?;
            f.through_seq = Some(seq - 1);
        }
        // Whatever the query says, a customer reads their organisation's events only.
        if let Some(mine) = viewer.org_scope() {
            f.org = Some(mine);
        }
        Ok(f)
    }

    fn next_page(&self, last_seq: i64) -> String {
        serde_urlencoded::to_string(LogQuery { before: last_seq.to_string(), ..self.clone() }).unwrap_or_default()
    }

    /// The export of these filters, as a query string (without `format`): the ones an
    /// export can carry.
    fn export_query(&self) -> String {
        let q = LogQuery {
            ticket: self.ticket.clone(),
            session: self.session.clone(),
            org: self.org.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            ..Default::default()
        };
        serde_urlencoded::to_string(q).unwrap_or_default()
    }
}

/// One event as a row of the log.
#[derive(Serialize)]
struct Row {
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subjects: Vec<String>,
    details: String,
}

/// The chain's state as the page shows it.
#[derive(Serialize)]
struct ChainStatus {
    ok: bool,
    events: u64,
    last_seq: Option<i64>,
    checkpoint: Option<i64>,
    checkpoint_at: Option<DateTime<Utc>>,
    problem: Option<String>,
}

/// Runs the store's verification of the whole chain against the audit key's checkpoints.
/// Recordings are not re-hashed here (that reads every file; `iks-gateway audit verify` does it).
async fn chain_status(web: &Panel) -> WebResult<ChainStatus> {
    let trusted = web.app.data_dir.existing_key(KeyRole::Audit).map_err(|e| {
        tracing::error!(error = %e, "cannot read the audit key");
        WebError::Internal
    })?;
    let trusted = trusted.as_ref().map(|k| k.public_key());
    let last_seq = web.app.store.latest_audit_events(1).await?.first().map(|e| e.seq);
    Ok(match web.app.store.verify_audit(trusted, None).await {
        Ok(s) => ChainStatus {
            ok: true,
            events: s.events,
            last_seq,
            checkpoint: s.last_checkpoint.map(|c| c.0),
            checkpoint_at: s.last_checkpoint.map(|c| c.1),
            problem: None,
        },
        Err(crate::store::VerifyError::Store(e)) => return Err(e.into()),
        Err(crate::store::VerifyError::Problem(p)) => {
            tracing::error!(problem = %p, "the audit chain does not verify");
            ChainStatus {
                ok: false,
                events: 0,
                last_seq,
                checkpoint: None,
                checkpoint_at: None,
                problem: Some(p.to_string()),
            }
        }
    })
}

async fn log(State(web): State<Arc<Panel>>, viewer: Viewer, Query(q): Query<LogQuery>) -> WebResult {
    viewer.require(READERS)?;
    let (mut rows, mut next, mut error) = (Vec::new(), None, None);
    match q.filter(&web, &viewer) {
        Ok(f) => {
            let mut events = web.app.store.audit_events(&f).await?;
            if events.len() > PAGE as usize {
                events.truncate(PAGE as usize);
                next = events.last().map(|e| q.next_page(e.seq));
            }
            rows = events
                .into_iter()
                .map(|e| {
                    let s = e.subjects;
                    let subjects = [
                        s.org.map(|v| format!("org {v}")),
                        s.ticket.map(|v| v.to_string()),
                        s.box_.map(|v| format!("box {v}")),
                        s.grant.map(|v| v.to_string()),
                        s.session.map(|v| v.to_string()),
                    ];
                    Row {
                        seq: e.seq,
                        at: e.at,
                        actor: e.actor.to_string(),
                        action: e.action,
                        subjects: subjects.into_iter().flatten().collect(),
                        details: e.details,
                    }
                })
                .collect();
        }
        Err((key, value)) => error = Some(format!("{} «{value}»", tr(&viewer, key))),
    }
    let chain = match viewer.org_scope() {
        None => Some(chain_status(&web).await?),
        Some(_) => None,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let ctx = context! {
        q => q,
        rows,
        next,
        error,
        chain,
        export => q.export_query(),
        show_org => viewer.org_scope().is_none(),
    };
    let mut res = web.page(&viewer, "audit/log.html", ctx)?;
    *res.status_mut() = status;
    Ok(res)
}

/// Sends an export's pages into the response body as they are written.
struct Channel(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

impl crate::store::Sink for Channel {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        // The browser went away: stop reading the log.
        self.0.send(Ok(bytes)).await.map_err(|_| std::io::Error::other("the download was cancelled"))
    }
}

async fn export_log(State(web): State<Arc<Panel>>, viewer: Viewer, Query(q): Query<LogQuery>) -> WebResult {
    viewer.require(READERS)?;
    let format = Format::parse(opt(&q.format).unwrap_or("jsonl"))
        .ok_or_else(|| WebError::BadRequest(format!("format '{}' is not jsonl or csv", q.format)))?;
    let f = q.filter(&web, &viewer).map_err(|(key, v)| WebError::BadRequest(format!("{} «{v}»", tr(&viewer, key))))?;
    // The export covers what ExportFilter can carry (and so what its header records).
    if f.action.is_some() || f.actor.is_some() {
        return Err(WebError::BadRequest(tr(&viewer, "audit.export_filters")));
    }
    let filter = ExportFilter { since: f.since, until: f.until, ticket: f.ticket, org: f.org, session: f.session };
    let key = web.app.data_dir.key(KeyRole::Audit).map_err(|e| {
        tracing::error!(error = %e, "cannot load the audit key for an export");
        WebError::Internal
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let actor = viewer.actor();
    let destination = format!("panel download from {}", viewer.address);
    let app = web.app.clone();
    tokio::spawn(async move {
        let mut sink = Channel(tx.clone());
        match app.store.export_audit(&key, &actor, filter, format, &destination, &mut sink).await {
            Ok(done) => {
                tracing::info!(by = %actor, events = done.events, event = done.event.seq, "audit exported from the panel");
            }
            Err(e) => {
                tracing::warn!(by = %actor, error = %e, "audit export from the panel failed");
                // An error in the body cuts the download short, so it cannot pass for complete.
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let (kind, ext) = match format {
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let name = format!("attachment; filename=\"audit-{}.{ext}\"", iks_domain::time::now().format("%Y%m%d-%H%M%S"));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, kind.to_string()), (header::CONTENT_DISPOSITION, name)], body).into_response())
}
