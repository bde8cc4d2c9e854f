//! Sessions: the list with filters, one session's facts and events, terminating a live
//! session, and downloading its recording.
//!
//! Who sees which sessions: a customer the sessions on their organisation's boxes, an
//! operator their own, auditors and admins all. The list is narrowed by [`Scope`]; one
//! session by ID goes through [`super::recordings::visible_session`], so another scope's
//! session is "not found". The session page leaves a `<section id="player">` for the
//! replay player and live view ([`super::recordings`]) to be wired into.

use std::sync::Arc;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{WebError, WebResult};
use super::page::tr;
use super::panel::Panel;
use super::viewer::{CsrfForm, Viewer};
use crate::store::SessionFilter;
use iks_domain::ids::{BoxId, OrgId, PersonId, SessionId, TicketId};
use iks_domain::model::{EndReason, Role, Session, SessionEvent};

/// Sessions per page.
const PAGE: i64 = 50;

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/{id}", get(show))
        .route("/sessions/{id}/kill", post(kill))
        .route("/sessions/{id}/recording.cast", get(recording))
}

/// Which sessions a viewer may see.
enum Scope {
    All,
    Org(OrgId),
    Operator(PersonId),
}

impl Scope {
    fn of(viewer: &Viewer) -> WebResult<Self> {
        Ok(match viewer.person.role {
            Role::Auditor | Role::Admin => Self::All,
            // A customer without an organisation sees nothing rather than everything.
            Role::Customer => Self::Org(viewer.person.org_id.ok_or(WebError::Forbidden)?),
            Role::Operator => Self::Operator(viewer.person.id),
        })
    }

    /// Narrows a filter to what the viewer may see, whatever the query asked for.
    fn narrow(&self, f: &mut SessionFilter) {
        match *self {
            Self::All => {}
            Self::Org(org) => f.org = Some(org),
            Self::Operator(me) => f.operator = Some(me),
        }
    }
}

/// The session `id` and its box's organisation, if the viewer may see it; else "not found".
async fn visible(web: &Panel, viewer: &Viewer, id: &str) -> WebResult<(Session, OrgId)> {
    let id: SessionId = id.parse().map_err(|_| WebError::NotFound)?;
    let (s, b) = super::recordings::visible_session(web, viewer, id).await?;
    Ok((s, b.org_id))
}

/// The list's filters as typed (kept in the form when they are refused).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct ListQuery {
    #[serde(default)]
    org: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    engineer: String,
    #[serde(default, rename = "box")]
    box_: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    live: String,
    #[serde(default)]
    before: String,
}

/// A filter field with something in it.
pub(super) fn given(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// A refused filter field: an i18n key and the value typed.
pub(super) type Refusal = (&'static str, String);

/// From (inclusive) and until (exclusive), either open.
pub(super) type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The instants a from/to pair of dates (YYYY-MM-DD in the configured zone) covers: from
/// the start of `from` to the end of `to`.
pub(super) fn day_range(web: &Panel, from: &str, to: &str) -> Result<Span, Refusal> {
    let tz = web.app.tz();
    let day = |v: &str, next: bool| -> Result<Option<DateTime<Utc>>, Refusal> {
        let Some(v) = given(v) else { return Ok(None) };
        let bad = || ("sessions.bad_date", v.to_string());
        let d = iks_domain::time::parse_date(v).map_err(|_| bad())?;
        let d = if next { d.succ_opt().ok_or_else(bad)? } else { d };
        Ok(Some(iks_domain::time::start_of_day(d, tz)))
    };
    let (since, until) = (day(from, false)?, day(to, true)?);
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(("sessions.bad_range", to.to_string()));
    }
    Ok((since, until))
}

impl ListQuery {
    /// The filter these fields ask for, or the first field that is wrong.
    async fn filter(&self, web: &Panel) -> Result<SessionFilter, Refusal> {
        let bad = |v: &str, key| (key, v.to_string());
        let opt = given;
        let (since, until) = day_range(web, &self.from, &self.to)?;
        let mut f = SessionFilter { live: self.live == "1", since, until, limit: Some(PAGE + 1), ..Default::default() };
        if let Some(v) = opt(&self.org) {
            f.org = Some(v.parse().map_err(|_| bad(v, "sessions.bad_org"))?);
        }
        if let Some(v) = opt(&self.ticket) {
            f.ticket = Some(v.parse::<TicketId>().map_err(|_| bad(v, "sessions.bad_ticket"))?);
        }
        if let Some(v) = opt(&self.box_) {
            f.box_id = Some(v.parse::<BoxId>().map_err(|_| bad(v, "sessions.bad_box"))?);
        }
        if let Some(v) = opt(&self.reason) {
            f.end_reason = Some(EndReason::parse(v).ok_or_else(|| bad(v, "sessions.bad_reason"))?);
        }
        if let Some(v) = opt(&self.before) {
            f.before = Some(v.parse::<SessionId>().map_err(|_| bad(v, "sessions.bad_page"))?);
        }
        if let Some(v) = opt(&self.engineer) {
            // Only engineers: any other login reads as unknown, so the filter cannot be used to
            // learn which customer logins exist.
            let p = web.app.store.person_by_login(v).await.ok().filter(|p| p.role == Role::Operator);
            f.operator = Some(p.ok_or_else(|| bad(v, "sessions.bad_engineer"))?.id);
        }
        Ok(f)
    }

    /// The query string of the next page: these filters, older than `last`.
    fn next_page(&self, last: SessionId) -> String {
        let q = ListQuery { before: last.get().to_string(), ..self.clone() };
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

/// One row of the list, with the names behind its IDs.
#[derive(Serialize)]
struct Row {
    id: i64,
    label: String,
    ticket: String,
    ticket_id: i64,
    org: String,
    box_name: String,
    engineer: String,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    live: bool,
    duration: String,
    end_reason: Option<&'static str>,
    bytes_in: String,
    bytes_out: String,
}

/// Names of organisations, boxes and people, to show instead of IDs.
struct Names {
    orgs: HashMap<OrgId, String>,
    boxes: HashMap<BoxId, (String, OrgId)>,
    people: HashMap<PersonId, String>,
}

impl Names {
    async fn load(web: &Panel, org: Option<OrgId>) -> WebResult<Self> {
        let store = &web.app.store;
        Ok(Self {
            orgs: store
                .list_orgs()
                .await?
                .into_iter()
                .filter(|o| org.is_none_or(|mine| mine == o.id))
                .map(|o| (o.id, o.name))
                .collect(),
            boxes: store.list_boxes(org).await?.into_iter().map(|b| (b.id, (b.name, b.org_id))).collect(),
            people: store.list_people(Some(Role::Operator), None).await?.into_iter().map(|p| (p.id, p.login)).collect(),
        })
    }

    fn row(&self, s: &Session) -> Row {
        let (box_name, org) = self.boxes.get(&s.box_id).cloned().unwrap_or_else(|| (s.box_id.to_string(), OrgId(0)));
        Row {
            id: s.id.get(),
            label: s.id.to_string(),
            ticket: s.ticket_id.to_string(),
            ticket_id: s.ticket_id.get(),
            org: self.orgs.get(&org).cloned().unwrap_or_default(),
            box_name,
            engineer: self.people.get(&s.operator_id).cloned().unwrap_or_else(|| s.operator_id.to_string()),
            started_at: s.started_at,
            ended_at: s.ended_at,
            live: s.ended_at.is_none(),
            duration: duration(s.started_at, s.ended_at.unwrap_or_else(iks_domain::time::now)),
            end_reason: s.end_reason.map(EndReason::as_str),
            bytes_in: bytes(s.bytes_in),
            bytes_out: bytes(s.bytes_out),
        }
    }
}

/// `1:02:03`, or `2:03` under an hour.
fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

async fn list(State(web): State<Arc<Panel>>, viewer: Viewer, Query(q): Query<ListQuery>) -> WebResult {
    let scope = Scope::of(&viewer)?;
    let names = Names::load(&web, viewer.org_scope()).await?;
    let (filter, error) = match q.filter(&web).await {
        Ok(f) => (Some(f), None),
        Err((key, value)) => (None, Some(format!("{} «{value}»", tr(&viewer, key)))),
    };
    let mut rows = Vec::new();
    let mut next = None;
    if let Some(mut f) = filter {
        scope.narrow(&mut f);
        let mut sessions = web.app.store.list_sessions(&f).await?;
        if sessions.len() > PAGE as usize {
            sessions.truncate(PAGE as usize);
            next = sessions.last().map(|s| q.next_page(s.id));
        }
        rows = sessions.iter().map(|s| names.row(s)).collect();
    }
    let mut orgs: Vec<_> = names.orgs.iter().map(|(id, name)| (name.clone(), id.get())).collect();
    orgs.sort();
    let mut boxes: Vec<_> = names
        .boxes
        .iter()
        .map(|(id, (name, org))| {
            let org = names.orgs.get(org).cloned().unwrap_or_default();
            (format!("{org} / {name}"), id.get())
        })
        .collect();
    boxes.sort();
    let ctx = context! {
        q => q,
        rows,
        next,
        error,
        orgs => orgs.into_iter().map(|(name, id)| context! { id, name }).collect::<Vec<_>>(),
        boxes => boxes.into_iter().map(|(label, id)| context! { id, label }).collect::<Vec<_>>(),
        reasons => EndReason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        show_org => viewer.org_scope().is_none(),
        show_engineer => viewer.person.role != Role::Operator,
    };
    let mut res = web.page(&viewer, "sessions/list.html", ctx)?;
    if error.is_some() {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// One session event as shown: when, which channel, what, and its details flattened.
#[derive(Serialize)]
struct EventView {
    at: DateTime<Utc>,
    channel: Option<i64>,
    kind: String,
    /// The direction of a file transfer, as an i18n key.
    direction: Option<&'static str>,
    fields: Vec<(String, String)>,
}

impl From<&SessionEvent> for EventView {
    fn from(e: &SessionEvent) -> Self {
        let mut fields = Vec::new();
        flatten("", &e.details, &mut fields);
        let direction = if e.kind.ends_with(".upload") {
            Some("sessions.dir_upload")
        } else if e.kind.ends_with(".download") {
            Some("sessions.dir_download")
        } else {
            None
        };
        Self { at: e.at, channel: e.channel, kind: e.kind.clone(), direction, fields }
    }
}

/// `{"stdout": {"bytes": 5}}` → `stdout.bytes = 5`; empty values are left out.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Array(a) if a.is_empty() => {}
        v => out.push((prefix.to_string(), v.to_string())),
    }
}

async fn show(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    let (s, org) = visible(&web, &viewer, &id).await?;
    let store = &web.app.store;
    let grant = store.grant(s.grant_id).await?;
    let b = store.get_box(s.box_id).await?;
    let org = store.org(org).await?;
    let engineer = store.person(s.operator_id).await?;
    let events: Vec<EventView> = store.session_events(s.id).await?.iter().map(EventView::from).collect();
    let live = s.ended_at.is_none();
    let can_kill = live && matches!(viewer.person.role, Role::Operator | Role::Customer | Role::Admin);
    let ctx = context! {
        s => s,
        label => s.id.to_string(),
        ticket => s.ticket_id.to_string(),
        grant,
        grant_label => grant.id.to_string(),
        iks_box => b,
        org,
        engineer,
        events,
        live,
        can_kill,
        duration => duration(s.started_at, s.ended_at.unwrap_or_else(iks_domain::time::now)),
        end_reason => s.end_reason.map(EndReason::as_str),
        bytes_in => bytes(s.bytes_in),
        bytes_out => bytes(s.bytes_out),
    };
    web.page(&viewer, "sessions/show.html", ctx)
}

#[derive(Deserialize)]
struct Empty {}

/// Asks the node carrying the session to end it, as `iks-gateway session kill` does; its
/// watchdog ends the session within a quarter of a second.
async fn kill(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    viewer.require(&[Role::Operator, Role::Customer, Role::Admin])?;
    let (s, _) = visible(&web, &viewer, &id).await?;
    let s = web.app.store.request_kill(&viewer.actor(), s.id).await?;
    tracing::info!(session.id = %s.id, ticket = %s.ticket_id, by = %viewer.person.login, "session kill requested from the panel");
    let message = tr(&viewer, "sessions.killed").replace("{id}", &s.id.to_string());
    Ok(web.done_with(&format!("/sessions/{}", s.id.get()), &message))
}

/// The recording as an asciicast file. Downloading it is audited (`session.download`, with
/// the viewer as actor) before a byte is sent.
async fn recording(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    let (s, _) = visible(&web, &viewer, &id).await?;
    let dir = web.app.data_dir.recordings_dir();
    let bytes = crate::recording::fetch(&web.app.store, &dir, &viewer.actor(), s.id, "session.download").await?;
    let disposition = format!("attachment; filename=\"{}.cast\"", s.id);
    Ok((
        [(header::CONTENT_TYPE, "application/x-asciicast".to_string()), (header::CONTENT_DISPOSITION, disposition)],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_naturally() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(duration(t("2026-11-24T08:00:00Z"), t("2026-11-24T08:02:03Z")), "2:03");
        assert_eq!(duration(t("2026-11-24T08:00:00Z"), t("2026-11-24T09:02:03Z")), "1:02:03");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn event_details_are_flattened() {
        let mut out = Vec::new();
        flatten("", &serde_json::json!({ "exit": {"status": 0}, "path": "/etc/x", "sha256": null }), &mut out);
        assert_eq!(out, [("exit.status".into(), "0".into()), ("path".into(), "/etc/x".into())]);
    }
}
