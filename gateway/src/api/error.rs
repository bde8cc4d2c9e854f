//! The API's one error type. Handlers return `Result<_, ApiError>` and use `?` on the
//! library's errors, which map here onto a status and a stable code:
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `bad_json`, `missing_field`, `unknown_field`, `invalid_value`, `bad_request` | the request cannot be read |
//! | 401 | `unauthorized` | no token, an unknown one or a revoked one (one answer for all three) |
//! | 403 | `forbidden` | the token may not do this (an organisation's token speaks for the customer) |
//! | 404 | `not_found` | no such record, or one of another organisation than the token's |
//! | 409 | `invalid_transition`, `conflict` | the ticket's state does not allow it |
//! | 415 | `unsupported_media_type` | a body that is not `application/json` |
//! | 422 | `invalid_field`, `unknown_organisation` | well-formed, but a value breaks a rule |
//! | 500, 503 | `internal`, `unavailable` | the gateway's fault: a generic message, the detail goes to the log |
//!
//! The body is always `{"error": {"code", "message", "field"}}`; `field` names the
//! offending member of the request when there is one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;
use crate::tickets::TicketError;
use iks_domain::model::InvalidField;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API token is required: Authorization: Bearer iks_…",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A failure that is the gateway's, not the caller's: logged in full, answered generically.
    fn internal(status: StatusCode, code: &'static str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "API request failed");
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "the gateway cannot reach its store; try again later"
        } else {
            "internal error; the gateway's log has the details"
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Unavailable(_) => Self::internal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e),
            StoreError::Config(_) | StoreError::Corrupt(_) | StoreError::Migrate(_) | StoreError::Sign(_) => {
                Self::internal(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e)
            }
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", e.to_string()).with_field(e.field)
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Invalid(f) => f.into(),
            TicketError::NotAllowed(m) => Self::forbidden(m),
            TicketError::InvalidMove(m) => Self::new(StatusCode::CONFLICT, "invalid_transition", m.to_string()),
            TicketError::Store(s) => s.into(),
        }
    }
}

impl From<crate::recording::FetchError> for ApiError {
    fn from(e: crate::recording::FetchError) -> Self {
        use crate::recording::FetchError;
        match e {
            FetchError::NoRecording(_) => Self::not_found(e.to_string()),
            FetchError::Read { .. } => Self::internal(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
            FetchError::Store(s) => s.into(),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}
