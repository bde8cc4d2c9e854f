//! The one error type the panel's handlers return, and the page it shows.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::url::encode;
use crate::secret::RandomFailed;
use crate::store::StoreError;
use iks_domain::i18n::{self, Lang};

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

impl From<RandomFailed> for WebError {
    fn from(e: RandomFailed) -> Self {
        tracing::error!(error = %e, "cannot make a secret for a web request");
        Self::Internal
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            Self::SignIn { next } => {
                let to = if next == "/" { "/login".to_string() } else { format!("/login?next={}", encode(next)) };
                return Redirect::to(&to).into_response();
            }
            Self::NotFound => (StatusCode::NOT_FOUND, "error.not_found"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "error.forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "error.bad_request"),
            Self::Csrf => (StatusCode::FORBIDDEN, "error.csrf"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "error.unavailable"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "error.busy"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "error.internal"),
        };
        let detail = match &self {
            Self::BadRequest(m) => format!("<p class=\"detail\">{}</p>", escape(m)),
            _ => String::new(),
        };
        // Before the page knows who asks, it says it in both languages.
        let body = format!(
            "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} · IKS Gateway</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
             <body class=\"error-page\"><main><h1>{code}</h1><p lang=\"ru\">{ru}</p><p lang=\"en\">{en}</p>{detail}\
             <p><a href=\"/\">← IKS Gateway</a></p></main></body></html>",
            code = status.as_u16(),
            ru = i18n::text(Lang::Ru, key),
            en = i18n::text(Lang::En, key),
        );
        (status, Html(body)).into_response()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error pages' texts come from the catalogue, in both languages.
    #[tokio::test]
    async fn error_pages_speak_both_languages() {
        let res = WebError::Csrf.into_response();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("<p lang=\"ru\">Форма устарела"), "{body}");
        assert!(body.contains("<p lang=\"en\">The form has expired or was not sent from the panel."), "{body}");
    }
}
