//! API tokens for senders without a broker (`POST /api/v1/events`, `POST /api/v1/readings`).
//!
//! Only the SHA-256 of a token is stored; the token itself is shown once, when it is created.
//! Tokens are 32 random bytes, so a fast hash is enough (no password-hashing needed).

use chrono::{DateTime, Utc};

use crate::rows::stored_time;
use crate::{Pool, Store, StoreError};

/// The stored form of a token: its SHA-256, hexadecimal.
pub fn hash_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    /// What it allows: `events:{operator}` or `readings`.
    pub scope: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new token's hash with its scope.
    pub async fn add_token(
        &self,
        hash: &str,
        prefix: &str,
        scope: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = stored_time(at);
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query("INSERT INTO api_tokens (hash, prefix, scope, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(hash)
                    .bind(prefix)
                    .bind(scope)
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query("INSERT INTO api_tokens (hash, prefix, scope, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(hash)
                    .bind(prefix)
                    .bind(scope)
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The scope of the live (not revoked) token with this hash.
    pub async fn token_scope(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT scope FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL";
        let scope: Option<String> = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(hash)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(hash)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(scope)
    }

    /// Revokes every live token whose prefix is `prefix`; returns how many.
    pub async fn revoke_tokens(&self, prefix: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = "UPDATE api_tokens SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL";
        let at = stored_time(at);
        let n = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(at)
                .bind(prefix)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(at)
                .bind(prefix)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n)
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let sql =
            "SELECT prefix, scope, created_at, revoked_at FROM api_tokens ORDER BY created_at DESC";
        type Row = (String, String, DateTime<Utc>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(prefix, scope, created_at, revoked_at)| TokenInfo {
                prefix,
                scope,
                created_at,
                revoked_at,
            })
            .collect())
    }
}
