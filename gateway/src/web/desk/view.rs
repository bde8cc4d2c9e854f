//! What the desk's pages show alike: people, boxes and organisations by name, a grant as
//! the pages show it, and what a grant error means on a page.

use std::collections::HashMap;

use serde::Serialize;

use crate::grants::GrantError;
use crate::store::Store;
use crate::web::error::{WebError, WebResult};
use iks_domain::ids::{BoxId, OrgId, PersonId};
use iks_domain::model::{Grant, GrantState};
use iks_domain::rules::format_duration;
use iks_domain::target::Target;

/// What a grant error means on a page: not allowed is the role's limit; the rest is
/// said to the person (`Err` keeps the message for re-rendering the form).
pub(super) fn grant_problem(e: GrantError) -> WebResult<String> {
    match e {
        GrantError::NotAllowed(why) => {
            tracing::info!(%why, "panel access decision not allowed");
            Err(WebError::Forbidden)
        }
        GrantError::Refused(m) => Ok(m),
        GrantError::Store(crate::store::StoreError::Conflict(m)) => Ok(m),
        GrantError::Store(e) => Err(e.into()),
    }
}

/// Names for IDs, so lists show people, boxes and organisations as people know them.
pub(super) struct Names {
    pub(super) people: HashMap<PersonId, (String, String)>,
    pub(super) boxes: HashMap<BoxId, (String, OrgId)>,
    pub(super) orgs: HashMap<OrgId, String>,
}

impl Names {
    pub(super) async fn load(store: &Store, org: Option<OrgId>) -> WebResult<Self> {
        let people = store.list_people(None, None).await?;
        Ok(Self {
            people: people.into_iter().map(|p| (p.id, (p.login, p.display_name))).collect(),
            boxes: store.list_boxes(org).await?.into_iter().map(|b| (b.id, (b.name, b.org_id))).collect(),
            orgs: store.list_orgs().await?.into_iter().map(|o| (o.id, o.name)).collect(),
        })
    }

    pub(super) fn person(&self, id: PersonId) -> String {
        self.people.get(&id).map_or_else(|| id.to_string(), |(login, name)| format!("{name} ({login})"))
    }

    pub(super) fn org(&self, id: OrgId) -> String {
        self.orgs.get(&id).cloned().unwrap_or_default()
    }
}

/// A grant as the pages show it.
#[derive(Debug, Serialize)]
pub(super) struct GrantView {
    #[serde(flatten)]
    pub(super) grant: Grant,
    code: String,
    ticket: String,
    org: String,
    box_name: String,
    engineer: String,
    /// The one engineer it is limited to, when it is.
    only_for: Option<String>,
    decided_by: Option<String>,
    requested: String,
    /// Approved and its window not over: it can be used (and revoked) now.
    pub(super) active: bool,
    /// The command to connect with, for the engineer the grant is for.
    command: Option<String>,
}

impl GrantView {
    /// `me`: the operator looking, who is shown the command for grants they may use.
    pub(super) fn new(g: Grant, names: &Names, ssh: &crate::config::SshConfig, me: Option<PersonId>) -> Self {
        let (box_name, org) = names.boxes.get(&g.box_id).cloned().unwrap_or_else(|| (g.box_id.to_string(), OrgId(0)));
        let active = g.state == GrantState::Approved && g.ends_at.is_some_and(|e| e > iks_domain::time::now());
        let usable_by_me = me.is_some_and(|me| g.operator_id.is_none_or(|only| only == me));
        let command = (active && usable_by_me)
            .then(|| ssh.connect_command(&Target { ticket: g.ticket_id, box_name: Some(box_name.clone()) }));
        Self {
            code: g.id.to_string(),
            ticket: g.ticket_id.to_string(),
            org: names.org(org),
            engineer: names.person(g.requested_by),
            only_for: g.operator_id.map(|p| names.person(p)),
            decided_by: g.decided_by.map(|p| names.person(p)),
            requested: format_duration(chrono::Duration::seconds(g.requested_secs)),
            box_name,
            active,
            command,
            grant: g,
        }
    }
}
