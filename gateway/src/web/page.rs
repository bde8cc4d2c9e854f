//! Rendering pages, redirecting with a message, and the one error type handlers return.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Serialize;

use super::auth::Viewer;
use super::i18n::{self, Lang};
use super::{Web, auth};
use crate::model::Role;
use crate::store::StoreError;

/// Why a request could not be served. Pages show a short bilingual message; the detail
/// of an internal error goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Also what a customer gets for another organisation's records.
    #[error("not found")]
    NotFound,
    /// The page exists but not for this role.
    #[error("not for your role")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    /// Not signed in (or the session expired): go to the sign-in page, then back.
    #[error("sign in first")]
    SignIn { next: String },
    /// A form without the session's CSRF token: not sent by our own page.
    #[error("the form has expired")]
    Csrf,
    #[error("the store is unavailable")]
    Unavailable,
    /// Every core is hashing passwords and this one waited too long for its turn.
    #[error("busy checking passwords")]
    Busy,
    #[error("internal error")]
    Internal,
}

pub type WebResult<T = Response> = Result<T, WebError>;

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::NotFound,
            StoreError::Conflict(m) => Self::BadRequest(m),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "store unavailable for a web request");
                Self::Unavailable
            }
            e => {
                tracing::error!(error = %e, "web request failed");
                Self::Internal
            }
        }
    }
}

impl From<minijinja::Error> for WebError {
    fn from(e: minijinja::Error) -> Self {
        tracing::error!(error = format!("{e:#}"), "template failed");
        Self::Internal
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, ru, en) = match &self {
            Self::SignIn { next } => {
                let to = if next == "/" { "/login".to_string() } else { format!("/login?next={}", encode(next)) };
                return Redirect::to(&to).into_response();
            }
            Self::NotFound => (StatusCode::NOT_FOUND, "Не найдено.", "Not found."),
            Self::Forbidden => {
                (StatusCode::FORBIDDEN, "Эта страница не для вашей роли.", "This page is not for your role.")
            }
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Запрос отклонён:", "Request refused:"),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Форма устарела или отправлена не со страницы панели. Откройте страницу заново.",
                "The form has expired or was not sent from the panel. Open the page again.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Хранилище недоступно, попробуйте через минуту.",
                "The store is unavailable; try again in a minute.",
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Сервер занят проверкой паролей, попробуйте через минуту.",
                "The server is busy checking passwords; try again in a minute.",
            ),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Внутренняя ошибка.", "Internal error."),
        };
        let detail = match &self {
            Self::BadRequest(m) => format!("<p class=\"detail\">{}</p>", escape(m)),
            _ => String::new(),
        };
        let body = format!(
            "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} · IKS Gateway</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
             <body class=\"error-page\"><main><h1>{code}</h1><p lang=\"ru\">{ru}</p><p lang=\"en\">{en}</p>{detail}\
             <p><a href=\"/\">← IKS Gateway</a></p></main></body></html>",
            code = status.as_u16()
        );
        (status, Html(body)).into_response()
    }
}

/// An ID from the URL, as a number (`/sessions/7`) or as people write it (`/sessions/S-7`);
/// anything else is "not found", like an ID that does not exist.
pub fn id<T: std::str::FromStr>(raw: &str) -> WebResult<T> {
    raw.parse().map_err(|_| WebError::NotFound)
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Whether `p` may be a redirect target: a path of our own, and nothing a browser could
/// read as another origin. The one check for every redirect taken from a request (`next`
/// after signing in, `back` after switching the language).
///
/// Only visible ASCII is allowed: browsers drop tabs and newlines from a `Location`
/// (`/\t/evil.example` becomes `//evil.example`) and read `\` as `/`; the paths the
/// panel itself makes are percent-encoded, so nothing legitimate is lost. It also keeps
/// the value a valid header, so a redirect never fails (a control character used to
/// panic `Redirect::to` into a 500).
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// One entry of the navigation bar.
#[derive(Serialize)]
struct NavItem {
    href: &'static str,
    label: String,
    active: bool,
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

impl Web {
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
            res.headers_mut().append(header::SET_COOKIE, auth::cookie(self, auth::FLASH_COOKIE, "", Some(0)));
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

    /// Like [`Web::done`] with a message already written (e.g. holding a new ID).
    pub fn done_with(&self, to: &str, message: &str) -> Response {
        let cookie = auth::cookie(self, auth::FLASH_COOKIE, &hex::encode(message), Some(60));
        ([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response()
    }
}

/// Translates `key` into the viewer's language, for messages built in handlers.
pub fn tr(viewer: &Viewer, key: &str) -> String {
    i18n::text(viewer.lang, key)
}
