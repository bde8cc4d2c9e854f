//! Rendering pages, redirecting with a message, and where each role's work is.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Serialize;

use super::error::{WebError, WebResult};
use super::panel::Panel;
use super::viewer::{FLASH_COOKIE, Viewer};
use iks_domain::i18n::{self, Lang};
use iks_domain::model::Role;

/// An ID from the URL, as a number (`/sessions/7`) or as people write it (`/sessions/S-7`);
/// anything else is "not found", like an ID that does not exist.
pub fn id<T: std::str::FromStr>(raw: &str) -> WebResult<T> {
    raw.parse().map_err(|_| WebError::NotFound)
}

/// A page with a status other than 200 (a form re-rendered with its error is 400).
pub fn with_status(status: StatusCode, page: WebResult) -> WebResult {
    page.map(|res| (status, res).into_response())
}

/// One entry of the navigation bar.
#[derive(Serialize)]
struct NavItem {
    href: &'static str,
    label: String,
    active: bool,
}

/// The first page a role sees after signing in.
pub fn landing(role: Role) -> &'static str {
    match role {
        Role::Customer => "/access",
        Role::Operator => "/queue",
        Role::Auditor => "/sessions",
        Role::Admin => "/admin/orgs",
    }
}

/// The navigation of each role: where its work is.
fn nav(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Customer => &[
            ("/access", "nav.access"),
            ("/tickets", "nav.tickets"),
            ("/boxes", "nav.boxes"),
            ("/sessions", "nav.sessions"),
            ("/audit", "nav.audit"),
        ],
        Role::Operator => &[("/queue", "nav.queue"), ("/access", "nav.my_access"), ("/sessions", "nav.sessions")],
        Role::Auditor => &[("/sessions", "nav.sessions"), ("/search", "nav.search"), ("/audit", "nav.audit")],
        Role::Admin => &[
            ("/admin/orgs", "nav.orgs"),
            ("/admin/people", "nav.people"),
            ("/admin/boxes", "nav.boxes"),
            ("/admin/tokens", "nav.tokens"),
            ("/sessions", "nav.sessions"),
            ("/audit", "nav.audit"),
        ],
    }
}

impl Panel {
    /// Renders a page for a signed-in person. `ctx` holds the page's own values; every page
    /// also gets `lang`, `me` (the person), `csrf`, `flash`, `nav` and `path`.
    pub fn page(&self, viewer: &Viewer, template: &str, ctx: Value) -> WebResult {
        let nav: Vec<NavItem> = nav(viewer.person.role)
            .iter()
            .map(|(href, key)| NavItem {
                href,
                label: i18n::text(viewer.lang, key),
                active: viewer.path == *href || viewer.path.starts_with(&format!("{href}/")),
            })
            .collect();
        let base = context! {
            lang => viewer.lang.code(),
            me => context! {
                login => viewer.person.login,
                name => viewer.person.display_name,
                role => viewer.person.role.as_str(),
                org_id => viewer.person.org_id.map(|o| o.get()),
            },
            csrf => viewer.session.csrf,
            flash => viewer.flash,
            nav => nav,
            path => viewer.path,
        };
        let html = self.templates.render(template, context! { ..ctx, ..base })?;
        let mut res = Html(html).into_response();
        if viewer.flash.is_some() {
            res.headers_mut().append(header::SET_COOKIE, self.cookie(FLASH_COOKIE, "", Some(0)));
        }
        Ok(res)
    }

    /// Renders a page for someone not signed in (sign-in, setup, password links).
    pub fn public_page(&self, lang: Lang, path: &str, template: &str, ctx: Value) -> WebResult {
        let base = context! { lang => lang.code(), path => path };
        Ok(Html(self.templates.render(template, context! { ..ctx, ..base })?).into_response())
    }

    /// After a change: back to a page, with a message (an i18n key) shown once there.
    pub fn done(&self, viewer: &Viewer, to: &str, message_key: &str) -> Response {
        self.done_with(to, &i18n::text(viewer.lang, message_key))
    }

    /// Like [`Panel::done`] with a message already written (e.g. holding a new ID).
    pub fn done_with(&self, to: &str, message: &str) -> Response {
        let cookie = self.cookie(FLASH_COOKIE, &hex::encode(message), Some(60));
        ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
    }
}

/// Translates `key` into the viewer's language, for messages built in handlers.
pub fn tr(viewer: &Viewer, key: &str) -> String {
    i18n::text(viewer.lang, key)
}
