//! Who is asking: the signed-in [`Viewer`], the visitor before signing in ([`Anonymous`]),
//! the cookies that tell them apart, and forms that carry the session's CSRF token
//! ([`CsrfForm`]).
//!
//! - The session cookie holds a random token; the store keeps its SHA-256. Sessions end
//!   when idle for `[http] idle_timeout` and at the latest after `[http] session_lifetime`.
//! - CSRF: signed-in forms carry the session's token; the sign-in form, which has no
//!   session yet, carries a token that must equal a short-lived cookie (double submit).

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawForm, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{WebError, WebResult};
use super::panel::Panel;
use crate::secret;
use crate::store::WebSession;
use iks_domain::audit::Actor;
use iks_domain::i18n::Lang;
use iks_domain::ids::OrgId;
use iks_domain::model::{Person, Role};

pub const SESSION_COOKIE: &str = "iks_session";
pub const FLASH_COOKIE: &str = "iks_flash";
/// The sign-in form's double-submit token.
pub const PRE_COOKIE: &str = "iks_pre";
/// The cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "iks_lang";

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The address a request came from (the socket's peer; the panel is not meant to sit
/// behind a proxy that hides it).
fn address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn lang(headers: &HeaderMap) -> Lang {
    cookie_value(headers, LANG_COOKIE).and_then(Lang::parse).unwrap_or_default()
}

/// Whether a session has run out: `Some(why)` when it has.
fn expired(
    created: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    now: DateTime<Utc>,
    idle: Duration,
    lifetime: Duration,
) -> Option<&'static str> {
    if now - created >= lifetime {
        Some("session lifetime reached")
    } else if now - last_seen >= idle {
        Some("idle")
    } else {
        None
    }
}

/// The signed-in person making this request, with their language and the page's path.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub person: Person,
    pub session: WebSession,
    pub lang: Lang,
    /// A message left by the previous request (after a change), shown once.
    pub flash: Option<String>,
    pub path: String,
    pub address: String,
}

impl Viewer {
    /// Refuses the page unless the person has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> WebResult<()> {
        if roles.contains(&self.person.role) { Ok(()) } else { Err(WebError::Forbidden) }
    }

    /// The organisation a customer is limited to; `None` for the roles that see all.
    pub fn org_scope(&self) -> Option<OrgId> {
        match self.person.role {
            Role::Customer => self.person.org_id,
            _ => None,
        }
    }

    /// Another organisation's record is "not found" for a customer.
    pub fn can_see(&self, org: OrgId) -> WebResult<()> {
        match self.org_scope() {
            Some(mine) if mine != org => Err(WebError::NotFound),
            _ => Ok(()),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor::person(self.person.id, &self.person.login)
    }
}

/// The open session behind the request's cookie, whether or not its second factor is in.
async fn session_of(parts: &Parts, web: &Panel) -> WebResult<Option<WebSession>> {
    let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else { return Ok(None) };
    let Some(s) = web.app.store.web_session(&secret::hash(token)).await? else { return Ok(None) };
    let http = &web.app.config.http;
    let now = iks_domain::time::now();
    let why = if s.person.disabled_at.is_some() {
        Some("person disabled")
    } else {
        expired(s.created_at, s.last_seen_at, now, http.idle_timeout(), http.session_lifetime())
    };
    if let Some(why) = why {
        web.app.store.end_web_session(&s, why).await?;
        return Ok(None);
    }
    // Writing on every request would make each page a write; a minute is fine for expiry.
    if now - s.last_seen_at > Duration::seconds(60) {
        web.app.store.touch_web_session(s.id, now).await?;
    }
    Ok(Some(s))
}

impl FromRequestParts<Arc<Panel>> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Panel>) -> Result<Self, WebError> {
        let path = parts.uri.path().to_string();
        // After signing in, a GET goes back where it was; a POST's page is gone, so home.
        let next = if parts.method == Method::GET {
            parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
        } else {
            "/".into()
        };
        let Some(session) = session_of(parts, web).await? else {
            return Err(WebError::SignIn { next });
        };
        if session.totp_on && session.second_factor_at.is_none() {
            return Err(WebError::SignIn { next });
        }
        let flash = cookie_value(&parts.headers, FLASH_COOKIE)
            .filter(|v| !v.is_empty())
            .and_then(|v| hex::decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok());
        Ok(Viewer {
            person: session.person.clone(),
            session,
            lang: lang(&parts.headers),
            flash,
            path,
            address: address(parts),
        })
    }
}

/// A form posted by a signed-in person from one of our pages: the session's CSRF token
/// must be in its `csrf` field. Gives the viewer and the form's other fields.
#[derive(Debug)]
pub struct CsrfForm<T>(pub Viewer, pub T);

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Arc<Panel>> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, web: &Arc<Panel>) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, web).await?;
        let RawForm(bytes) =
            RawForm::from_request(Request::from_parts(parts, body), web).await.map_err(|_| WebError::Csrf)?;
        let field: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(|_| WebError::Csrf)?;
        if !field.csrf.is_some_and(|c| secret::same(&c, &viewer.session.csrf)) {
            tracing::warn!(person = %viewer.person.login, path = %viewer.path, "form without a valid CSRF token");
            return Err(WebError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| WebError::BadRequest(e.to_string()))?;
        Ok(CsrfForm(viewer, form))
    }
}

/// What a page before signing in needs: language, address, the double-submit token, and
/// the session when a password is in but the second factor is not (or one is open).
pub struct Anonymous {
    pub lang: Lang,
    pub address: String,
    pre: Option<String>,
    pub session: Option<WebSession>,
}

impl FromRequestParts<Arc<Panel>> for Anonymous {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Panel>) -> Result<Self, WebError> {
        Ok(Self {
            lang: lang(&parts.headers),
            address: address(parts),
            pre: cookie_value(&parts.headers, PRE_COOKIE).map(str::to_string),
            session: session_of(parts, web).await?,
        })
    }
}

impl Anonymous {
    /// Checks the double-submit token of a form posted before signing in.
    pub fn check(&self, posted: &str) -> WebResult<()> {
        match &self.pre {
            Some(c) if secret::same(c, posted) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let idle = Duration::minutes(30);
        let life = Duration::hours(12);
        let start = t("2026-11-24T08:00:00Z");
        let table = [
            ("2026-11-24T08:29:59Z", "2026-11-24T08:00:00Z", None),
            ("2026-11-24T08:30:00Z", "2026-11-24T08:00:00Z", Some("idle")),
            ("2026-11-24T19:59:59Z", "2026-11-24T19:59:00Z", None),
            ("2026-11-24T20:00:00Z", "2026-11-24T19:59:00Z", Some("session lifetime reached")),
        ];
        for (now, seen, want) in table {
            assert_eq!(expired(start, t(seen), t(now), idle, life), want, "now {now}, last seen {seen}");
        }
    }
}
