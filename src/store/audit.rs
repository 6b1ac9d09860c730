//! The account's audit log: who did what, when, and through which access.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreResult, get_opt_uuid, get_uuid};
use crate::domain::ids::{AccountId, UserId};

/// An entry to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub account_id: AccountId,
    pub actor_user_id: Option<UserId>,
    pub actor_name: String,
    pub via: String,
    pub action: &'static str,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

/// An entry as read back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub actor_user_id: Option<Uuid>,
    pub actor_name: String,
    pub via: String,
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl Store {
    pub async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, account_id, actor_user_id, actor_name, via, action, target, details, at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(entry.account_id.to_string())
        .bind(entry.actor_user_id.map(|u| u.to_string()))
        .bind(&entry.actor_name)
        .bind(&entry.via)
        .bind(entry.action)
        .bind(&entry.target)
        .bind(entry.details.to_string())
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The newest `limit` entries of an account, newest first.
    pub async fn audit_log(&self, account: AccountId, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE account_id = ? ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(account.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let details: String = row.try_get("details")?;
                Ok(AuditRecord {
                    id: get_uuid(row, "id")?,
                    actor_user_id: get_opt_uuid(row, "actor_user_id")?,
                    actor_name: row.try_get("actor_name")?,
                    via: row.try_get("via")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
