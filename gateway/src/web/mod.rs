//! The web panel: server-rendered pages for customers' admins, operators, auditors and
//! admins, served beside the helpdesk API by [`crate::http`].
//!
//! Pages are minijinja templates from `web/templates`, translated through the
//! catalogue in [`iks_domain::i18n`] (Russian by default, English on request), with static
//! assets from `web/static`; templates and assets are compiled into the binary (see
//! `build.rs`).
//!
//! Who may see what is decided in one place per request: [`viewer::Viewer`] says who is
//! signed in, and its `org_scope`/`require` methods turn a resource of another
//! organisation into "not found" — a customer learns nothing about other customers,
//! not even that an ID exists. Every state-changing request is a form POST carrying the
//! session's CSRF token ([`viewer::CsrfForm`]); the cookies are HttpOnly and
//! SameSite=Strict. Each role's pages live in their own module.
//!
//! The modules stand in layers, each using only those below it: `url` and `error`;
//! `templates`, `throttle`, `totp`; `panel` (the shared state); `viewer` (who asks);
//! `page` (rendering); the pages (`auth`, `admin`, `desk`, `sessions`, `recordings`,
//! `audit_log`); this module, which routes to them.

pub mod admin;
mod audit_log;
pub mod auth;
mod desk;
mod error;
mod page;
mod panel;
pub mod recordings;
mod sessions;
mod templates;
#[cfg(test)]
pub(crate) mod tests;
pub mod throttle;
mod totp;
mod url;
mod viewer;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use self::error::WebError;
use self::page::landing;
use self::panel::Panel;
use self::viewer::{LANG_COOKIE, Viewer};
use crate::state::Gateway;
use iks_domain::i18n::Lang;

/// The panel, ready to be merged with the API.
pub fn router(app: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/static/{*name}", get(asset))
        .route("/lang/{lang}", get(language))
        .merge(auth::routes())
        .merge(recordings::routes())
        .merge(desk::routes())
        .merge(sessions::routes())
        .merge(audit_log::routes())
        .merge(admin::routes())
        .fallback(|| async { WebError::NotFound })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(Panel::new(app)))
}

/// Each role starts where its work is.
async fn home(viewer: Viewer) -> Redirect {
    Redirect::to(landing(viewer.person.role))
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
async fn language(Path(lang): Path<String>, Query(q): Query<Back>, State(web): State<Arc<Panel>>) -> Response {
    let Some(lang) = Lang::parse(&lang) else {
        return WebError::NotFound.into_response();
    };
    let back = q.back.filter(|b| url::is_local_path(b)).unwrap_or_else(|| "/".into());
    let cookie = web.cookie(LANG_COOKIE, lang.code(), Some(365 * 24 * 3600));
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
