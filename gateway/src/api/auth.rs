//! API tokens: how they are made, stored and checked.
//!
//! A token is 32 random bytes from the operating system, written as `iks_` and 64 hex
//! digits, shown once when it is created. The store keeps only its SHA-256 and finds the
//! token by that hash; [`crate::secret`] says why that is enough.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::secret::{self, RandomFailed};
use crate::state::Gateway;
use crate::store::{Store, StoreError};
use iks_domain::audit::Actor;
use iks_domain::ids::OrgId;
use iks_domain::model::{ApiToken, InvalidField, check_api_token_name};

const PREFIX: &str = "iks_";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Random(#[from] RandomFailed),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token named `name`, scoped to `org` when given: the stored record and the
/// secret, which exists nowhere else and must be shown to the admin now.
pub async fn issue(
    store: &Store,
    actor: &Actor,
    name: &str,
    org: Option<OrgId>,
) -> Result<(ApiToken, String), IssueError> {
    check_api_token_name(name)?;
    let secret = secret::token::<32>(PREFIX)?;
    let token = store.create_api_token(actor, name, org, &secret::hash(&secret)).await?;
    Ok((token, secret))
}

/// The caller of an API request: the token it presented, in use (not revoked).
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

impl Caller {
    /// Who the audit log names for this caller's changes.
    pub fn actor(&self) -> Actor {
        Actor::api_token(self.0.id, &self.0.name)
    }

    /// Whether this caller sees the organisation's records.
    pub fn sees(&self, org: OrgId) -> bool {
        self.0.org_id.is_none_or(|own| own == org)
    }

    /// Whether the token speaks for one organisation (a customer's integration) rather
    /// than for the helpdesk.
    pub fn is_scoped(&self) -> bool {
        self.0.org_id.is_some()
    }
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Gateway>) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        match app.store.api_token_by_hash(&secret::hash(presented)).await? {
            Some(t) if t.revoked_at.is_none() => Ok(Self(t)),
            // Unknown and revoked tokens get the same answer.
            _ => Err(ApiError::unauthorized()),
        }
    }
}
