//! The web panel: server-rendered pages for customers' admins, operators, auditors and
//! admins, served beside the helpdesk API by [`crate::http`].
//!
//! Pages are minijinja templates from `web/templates`, translated through the
//! catalogue in `web/i18n` (Russian by default, English on request), with static assets
//! from `web/static`; all three are compiled into the binary (see `build.rs`).
//!
//! Who may see what is decided in one place per request: [`auth::Viewer`] says who is
//! signed in, and its `org_scope`/`require` methods turn a resource of another
//! organisation into "not found" — a customer learns nothing about other customers,
//! not even that an ID exists. Every state-changing request is a form POST carrying the
//! session's CSRF token ([`auth::CsrfForm`]); the cookies are HttpOnly and
//! SameSite=Strict. Each role's pages live in their own module.

pub mod admin;
mod audit_log;
pub mod auth;
pub mod i18n;
mod page;
pub mod recordings;
mod sessions;
mod templates;
#[cfg(test)]
pub(crate) mod tests;
pub mod throttle;
mod totp;
mod work;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

pub use self::auth::{CsrfForm, Viewer};
pub use self::page::{WebError, WebResult};
use crate::model::Role;
use crate::state::App;

/// Everything the panel's handlers share.
pub struct Web {
    pub app: App,
    pub templates: templates::Templates,
    pub throttle: throttle::Throttle,
    pub totp: totp::Totp,
    pub replays: recordings::Opened,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").finish_non_exhaustive()
    }
}

/// The handlers' state.
pub type WebState = Arc<Web>;

/// The panel, ready to be merged with the API.
pub fn router(app: App) -> Router {
    let web = Arc::new(Web {
        templates: templates::Templates::new(app.tz()),
        throttle: throttle::Throttle::default(),
        totp: totp::Totp::default(),
        replays: recordings::Opened::default(),
        app,
    });
    Router::new()
        .route("/", get(home))
        .route("/static/{*name}", get(asset))
        .route("/lang/{lang}", get(language))
        .merge(auth::routes())
        .merge(recordings::routes())
        .merge(work::routes())
        .merge(sessions::routes())
        .merge(audit_log::routes())
        .merge(admin::routes())
        .fallback(|| async { WebError::NotFound })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// Each role starts where its work is.
async fn home(viewer: Viewer) -> Redirect {
    Redirect::to(landing(viewer.person.role))
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

/// Serves an embedded asset. They change only with the binary, so browsers may keep them.
async fn asset(Path(name): Path<String>) -> Response {
    let Some(body) = templates::asset(&name) else {
        return WebError::NotFound.into_response();
    };
    let kind = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}

/// Switches the language (a cookie, since it must work before signing in too) and goes
/// back to the page the switch was pressed on.
async fn language(Path(lang): Path<String>, Query(q): Query<Back>, State(web): State<WebState>) -> Response {
    let Some(lang) = i18n::Lang::parse(&lang) else {
        return WebError::NotFound.into_response();
    };
    let back = q.back.filter(|b| page::is_local_path(b)).unwrap_or_else(|| "/".into());
    let cookie = auth::cookie(&web, i18n::LANG_COOKIE, lang.code(), Some(365 * 24 * 3600));
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// Headers every answer carries: no framing, no sniffing, no referrer (setup and
/// password links carry secrets in the path), scripts and styles only from ourselves.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}
