//! What the panel shows of recordings: the replay (frames as JSON), the live view (a
//! server-sent event stream) and the search across transcripts. The terminal is emulated
//! on the server ([`crate::recording::screen`]); `web/static/player.js` only swaps rows.
//!
//! Who may see a session is decided by [`visible_session`]: a customer sees the sessions
//! on their organisation's boxes, an operator their own, auditors and admins all; anyone
//! else gets "not found". Each replay, live view and search is audited by the library; a
//! replay's later parts only when this panel session has not been audited opening it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::context;
use serde::Deserialize;

use super::error::{WebError, WebResult};
use super::page::{self, tr};
use super::panel::Panel;
use super::viewer::Viewer;
use crate::recording::{self, FetchError};
use crate::search::{self, SearchError};
use crate::store::TranscriptQuery;
use iks_domain::ids::{BoxId, OrgId, SessionId, TicketId};
use iks_domain::model::{IksBox, Role, Session};

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/sessions/{id}/replay.json", get(replay))
        .route("/sessions/{id}/live", get(live))
        .route("/search", get(search_page))
}

/// The session and its box, if `viewer` may see them; otherwise "not found".
pub async fn visible_session(web: &Panel, viewer: &Viewer, id: SessionId) -> WebResult<(Session, IksBox)> {
    let session = web.app.store.session(id).await?;
    let b = web.app.store.get_box(session.box_id).await?;
    let allowed = match viewer.person.role {
        Role::Customer => viewer.org_scope() == Some(b.org_id),
        Role::Operator => session.operator_id == viewer.person.id,
        Role::Auditor | Role::Admin => true,
    };
    if allowed { Ok((session, b)) } else { Err(WebError::NotFound) }
}

impl From<FetchError> for WebError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::NoRecording(_) => Self::NotFound,
            FetchError::Store(e) => e.into(),
            FetchError::Read { path, source } => {
                tracing::error!(path = %path.display(), error = %source, "cannot read a recording");
                Self::Internal
            }
        }
    }
}

#[derive(Deserialize)]
struct Part {
    from: Option<f64>,
}

/// The replay's frames from `from` seconds on. Opening a replay is audited; the player
/// fetches later parts with `from`, which are not new views when this panel session has
/// opened the replay — any other `from` (`?from=0` is the whole replay) is audited too.
async fn replay(
    State(web): State<Arc<Panel>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Part>,
) -> WebResult {
    let id: SessionId = page::id(&id)?;
    let (session, _) = visible_session(&web, &viewer, id).await?;
    let dir = web.app.data_dir.recordings_dir();
    let path = match q.from {
        Some(_) if web.replays.contains(viewer.session.id, id) => {
            dir.join(session.recording.ok_or(WebError::NotFound)?)
        }
        _ => {
            let path = recording::locate(&web.app.store, &dir, &viewer.actor(), id, "session.replay").await?;
            web.replays.insert(viewer.session.id, id);
            tracing::info!(session = %id, viewer = %viewer.person.login, from = ?q.from, "replay opened");
            path
        }
    };
    let replay = recording::screen::replay_file(path, q.from.unwrap_or(0.0)).await.map_err(|e| {
        tracing::error!(session = %id, error = %e, "cannot replay a recording");
        WebError::Internal
    })?;
    Ok(Json(replay).into_response())
}

/// The terminal of a running session as the engineer sees it, streamed until it ends.
async fn live(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    let id: SessionId = page::id(&id)?;
    visible_session(&web, &viewer, id).await?;
    let dir = web.app.data_dir.recordings_dir();
    let path = recording::locate(&web.app.store, &dir, &viewer.actor(), id, "session.watch").await?;
    let store = web.app.store.clone();
    // Asking the store, not this node's registry: the session may run on another node, and
    // a store that cannot answer ends the stream rather than leaving it open blind.
    let ended = move || {
        let store = store.clone();
        async move { store.session(id).await.map(|s| s.ended_at.is_some()).unwrap_or(true) }
    };
    Ok(recording::live_view::live_stream(path, ended).into_response())
}

#[derive(Deserialize, Default)]
struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    engineer: String,
    #[serde(default, rename = "box")]
    box_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// An optional form field: empty is "any"; anything else must parse.
fn field<T>(value: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, ()> {
    let v = value.trim();
    if v.is_empty() { Ok(None) } else { parse(v).map(Some).ok_or(()) }
}

fn day(tz: chrono_tz::Tz, s: &str) -> Option<DateTime<Utc>> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| iks_domain::time::start_of_day(d, tz))
}

async fn search_page(State(web): State<Arc<Panel>>, viewer: Viewer, Query(f): Query<SearchForm>) -> WebResult {
    viewer.require(&[Role::Auditor, Role::Admin, Role::Customer])?;
    let tz = web.app.tz();
    let orgs = match viewer.org_scope() {
        Some(_) => Vec::new(),
        None => web.app.store.list_orgs().await?,
    };
    let parsed = (|| {
        Ok::<_, &'static str>(TranscriptQuery {
            text: f.q.trim().to_string(),
            // A customer searches their organisation's sessions, whatever the form says.
            org: match viewer.org_scope() {
                Some(mine) => Some(mine),
                None => field(&f.org, |v| v.parse().ok().map(OrgId)).map_err(|_| "search.bad_org")?,
            },
            ticket: field(&f.ticket, |v| v.trim_start_matches("T-").parse().ok().map(TicketId))
                .map_err(|_| "search.bad_ticket")?,
            engineer: field(&f.engineer, |v| Some(v.to_string())).map_err(|_| "search.bad_engineer")?,
            box_id: field(&f.box_id, |v| v.parse().ok().map(BoxId)).map_err(|_| "search.bad_box")?,
            from: field(&f.from, |v| day(tz, v)).map_err(|_| "search.bad_date")?,
            // "To" is inclusive: sessions started before the next day.
            to: field(&f.to, |v| day(tz, v).map(|d| d + chrono::Duration::days(1))).map_err(|_| "search.bad_date")?,
            limit: 200,
        })
    })();
    let (hits, error) = match parsed {
        Err(key) => (Vec::new(), Some(tr(&viewer, key))),
        Ok(q) if q.text.is_empty() => (Vec::new(), None),
        Ok(q) => match search::search(&web.app.store, &web.app.data_dir.recordings_dir(), &viewer.actor(), &q).await {
            Ok(hits) => (hits, None),
            Err(SearchError::EmptyQuery) => (Vec::new(), None),
            Err(SearchError::Store(e)) => return Err(e.into()),
            Err(e @ SearchError::Recording { .. }) => {
                tracing::error!(error = %e, "search failed");
                return Err(WebError::Internal);
            }
        },
    };
    let searched = !f.q.trim().is_empty() && error.is_none();
    let hits: Vec<_> = hits
        .into_iter()
        .map(|h| {
            let at = h.started_at + chrono::Duration::milliseconds((h.offset * 1000.0) as i64);
            // A replay frame may come up to one frame interval after its event: open the
            // replay that much later, rounded up, so the line is on screen, never just before.
            let at_frame = h.offset + crate::recording::screen::REPLAY_INTERVAL;
            let offset = format!("{:.2}", (at_frame * 100.0).ceil() / 100.0);
            context! { hit => h, at => at, offset => offset }
        })
        .collect();
    let form = context! {
        q => f.q, org => f.org, ticket => f.ticket, engineer => f.engineer, box_id => f.box_id, from => f.from, to => f.to,
    };
    web.page(&viewer, "search.html", context! { form, orgs, hits, error, searched })
}
