//! API tokens: only their SHA-256 is stored (see [`crate::api::auth`]).

use serde_json::json;
use sqlx::any::AnyRow;

use super::directory::not_found;
use super::{Result, RowExt, Store, StoreError, conflict_on_unique};
use iks_domain::audit::{Actor, NewEvent, Subjects};
use iks_domain::ids::OrgId;
use iks_domain::model::ApiToken;
use iks_domain::time::{now, to_db};

const TOKEN_COLUMNS: &str = "id, name, org_id, created_by, created_at, revoked_at";

fn token_from_row(r: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.int("id")?,
        name: r.text("name")?,
        org_id: r.opt_int("org_id")?.map(OrgId),
        created_by: r.text("created_by")?,
        created_at: r.time("created_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

fn subjects(t: &ApiToken) -> Subjects {
    Subjects { org: t.org_id, ..Default::default() }
}

impl Store {
    /// Stores a new token by the hash of its secret.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        name: &str,
        org: Option<OrgId>,
        token_hash: &str,
    ) -> Result<ApiToken> {
        if let Some(org) = org {
            self.org(org).await?;
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO api_tokens (name, token_hash, org_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(name)
        .bind(token_hash)
        .bind(org.map(OrgId::get))
        .bind(&actor.name)
        .bind(to_db(now()))
        .fetch_one(tx.conn())
        .await
        .map_err(|e| conflict_on_unique(e, || format!("an API token named '{name}' is in use")))?;
        let t = token_from_row(&row)?;
        tx.audit(NewEvent::new(actor, "api_token.create", subjects(&t), json!({ "token": t.id, "name": t.name })))
            .await?;
        tx.commit().await?;
        Ok(t)
    }

    /// The token, in use or revoked, whose secret hashes to `token_hash`.
    pub async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    /// All tokens, oldest first.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiToken>> {
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    /// Revokes a token: requests with it are refused from now on.
    pub async fn revoke_api_token(&self, actor: &Actor, id: i64) -> Result<ApiToken> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(id)
        .bind(to_db(now()))
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            drop(tx);
            let exists = self.list_api_tokens().await?.into_iter().any(|t| t.id == id);
            return Err(if exists {
                StoreError::Conflict(format!("API token {id} is already revoked"))
            } else {
                not_found("API token", id)
            });
        };
        let t = token_from_row(&row)?;
        tx.audit(NewEvent::new(actor, "api_token.revoke", subjects(&t), json!({ "token": t.id, "name": t.name })))
            .await?;
        tx.commit().await?;
        Ok(t)
    }
}
