//! A customer's boxes (an admin sees all; editing them is `/admin/boxes`): product and
//! version, whether sessions go to an address or through the box's agent, the agent's
//! presence and last report, and the kill switch — set on the box itself with
//! `iks-agent disable`, so the panel shows it and offers no toggle. The customer or an
//! admin creates a one-time enrolment token here; it is shown once, with the command.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::Deserialize;

use super::view::Names;
use crate::datadir::{KeyRole, fingerprint};
use crate::web::error::{WebError, WebResult};
use crate::web::page::{self, with_status};
use crate::web::panel::Panel;
use crate::web::viewer::{CsrfForm, Viewer};
use iks_domain::decision::AgentPresence;
use iks_domain::ids::BoxId;
use iks_domain::model::{Agent, IksBox, Role};

pub(super) fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/boxes", get(list))
        .route("/boxes/{id}", get(show))
        .route("/boxes/{id}/enroll-token", post(enroll_token))
}

const ROLES: &[Role] = &[Role::Customer, Role::Admin];

/// How long a token made in the panel stays valid (the CLI's default).
const TOKEN_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A box as the pages show it.
async fn view(web: &Panel, b: &IksBox, names: &Names) -> WebResult<Value> {
    let agent: Option<Agent> = web.app.store.active_agent(b.id).await?;
    let presence = crate::tunnel::presence(&web.app, b).await?;
    let (status, since, node) = match &presence {
        AgentPresence::NotEnrolled => ("not_enrolled", None, None),
        AgentPresence::NeverConnected => ("never", None, None),
        AgentPresence::Offline { since } => ("offline", Some(*since), None),
        AgentPresence::Elsewhere { node } => {
            ("online", agent.as_ref().and_then(|a| a.online_since), Some(node.clone()))
        }
        AgentPresence::Online { .. } => ("online", agent.as_ref().and_then(|a| a.online_since), None),
    };
    let disabled = match presence {
        AgentPresence::Online { remote_access_disabled } => remote_access_disabled,
        _ => agent.as_ref().is_some_and(|a| a.remote_access_disabled),
    };
    Ok(context! {
        id => b.id, name => b.name, org => names.org(b.org_id), product => b.product, version => b.version,
        address => b.address, login => b.login, agent_status => status, agent_since => since, agent_node => node,
        remote_access_disabled => disabled, agent,
    })
}

async fn list(State(web): State<Arc<Panel>>, viewer: Viewer) -> WebResult {
    viewer.require(ROLES)?;
    let store = &web.app.store;
    let names = Names::load(store, viewer.org_scope()).await?;
    let mut boxes = Vec::new();
    for b in store.list_boxes(viewer.org_scope()).await? {
        boxes.push(view(&web, &b, &names).await?);
    }
    web.page(&viewer, "desk/boxes.html", context! { boxes })
}

/// The box, if the person may see it (a customer: only their organisation's; 404 otherwise).
async fn visible(web: &Panel, viewer: &Viewer, id: &str) -> WebResult<IksBox> {
    viewer.require(ROLES)?;
    let b = web.app.store.get_box(page::id::<BoxId>(id)?).await?;
    viewer.can_see(b.org_id)?;
    Ok(b)
}

async fn box_page(web: &Panel, viewer: &Viewer, b: &IksBox, extra: Value) -> WebResult {
    let names = Names::load(&web.app.store, Some(b.org_id)).await?;
    let tokens = web.app.store.agent_tokens(b.id).await?;
    let ctx = context! { b => view(web, b, &names).await?, tokens, now => iks_domain::time::now(), ..extra };
    with_status(StatusCode::OK, web.page(viewer, "desk/box.html", ctx))
}

async fn show(State(web): State<Arc<Panel>>, viewer: Viewer, Path(id): Path<String>) -> WebResult {
    let b = visible(&web, &viewer, &id).await?;
    box_page(&web, &viewer, &b, context! {}).await
}

#[derive(Deserialize)]
struct Empty {}

/// A new one-time token, shown on this answer only (the store keeps its hash).
async fn enroll_token(
    State(web): State<Arc<Panel>>,
    Path(id): Path<String>,
    CsrfForm(viewer, _): CsrfForm<Empty>,
) -> WebResult {
    let b = visible(&web, &viewer, &id).await?;
    let expires_at = iks_domain::time::now() + TOKEN_TTL;
    let (token, _) =
        crate::enrollment::issue_token(&web.app.store, &viewer.actor(), &b, expires_at).await.map_err(|e| match e {
            crate::enrollment::TokenError::Store(e) => WebError::from(e),
            crate::enrollment::TokenError::Random(_) => WebError::Internal,
        })?;
    let host_key = web.app.data_dir.key(KeyRole::Host).map_err(|e| {
        tracing::error!(error = %e, "cannot read the gateway's host key");
        WebError::Internal
    })?;
    let command =
        crate::enrollment::enroll_command(&web.app.config.ssh.public_address(), &token, &fingerprint(&host_key));
    tracing::info!(box_id = %b.id, by = %viewer.person.login, "enrolment token issued in the panel");
    box_page(&web, &viewer, &b, context! { token, command, token_expires => expires_at }).await
}
