//! API keys of users.

use super::db::{Row, query, query_scalar};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid, users::TokenPrincipal};
use crate::domain::ids::UserId;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    #[serde(skip)]
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn key_from_row(row: &Row) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: get_uuid(row, "id")?,
        user_id: get_uuid(row, "user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    pub async fn insert_api_key(
        &self,
        id: Uuid,
        user: UserId,
        name: &str,
        prefix: &str,
        key_hash: &str,
    ) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(Utc::now())
        )
        .await
        .map(|_| ())
    }

    pub async fn api_keys_of(&self, user: UserId) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = query(
            "SELECT * FROM api_keys WHERE user_id = ? AND deleted_at IS NULL ORDER BY created_at",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn api_key(&self, id: Uuid) -> StoreResult<Option<ApiKeyRecord>> {
        let row = query("SELECT * FROM api_keys WHERE id = ? AND deleted_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Deletes a live key; answers its stored hash (the credential its live connections were
    /// opened with), or `None` when it was deleted already.
    pub async fn delete_api_key(&self, id: Uuid) -> StoreResult<Option<String>> {
        let mut tx = self.write_tx().await?;
        let hash: Option<String> = query_scalar(
            "UPDATE api_keys SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING key_hash",
        )
        .bind(Utc::now())
        .bind(id.to_string())
        .fetch_optional(&mut tx)
        .await?;
        if hash.is_some() {
            tx.commit().await?;
        }
        Ok(hash)
    }

    /// Records that the key of `prefix` was used now.
    pub async fn touch_api_key(&self, prefix: &str) -> StoreResult<()> {
        query("UPDATE api_keys SET last_used_at = ? WHERE prefix = ?")
            .bind(Utc::now())
            .bind(prefix)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The live key with this stored hash, as its live user (a connection opened with a key
    /// is re-checked by it).
    pub async fn api_key_principal_by_hash(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<TokenPrincipal>> {
        let prefix: Option<String> =
            query_scalar("SELECT prefix FROM api_keys WHERE key_hash = ? AND deleted_at IS NULL")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(prefix) = prefix else {
            return Ok(None);
        };
        Ok(self.api_key_principal(&prefix).await?.map(|(_, p)| p))
    }

    /// The live key of `prefix` with its stored hash, and its live user.
    pub async fn api_key_principal(
        &self,
        prefix: &str,
    ) -> StoreResult<Option<(String, TokenPrincipal)>> {
        let row = query(
            "SELECT k.id, k.key_hash, k.user_id FROM api_keys k JOIN users u ON u.id = k.user_id
             WHERE k.prefix = ? AND k.deleted_at IS NULL AND u.deleted_at IS NULL",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get("key_hash")?;
        let Some(user) = self.user(UserId(get_uuid(&row, "user_id")?)).await? else {
            return Ok(None);
        };
        Ok(Some((
            hash,
            TokenPrincipal {
                user,
                via: "api_key".into(),
                on_behalf_of: None,
                expires_at: DateTime::<Utc>::MAX_UTC,
                grant: None,
                account_name: String::new(),
            },
        )))
    }
}
