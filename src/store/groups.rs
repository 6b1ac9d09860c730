//! Device groups of an account.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid};
use crate::domain::ids::AccountId;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn groups_of(&self, account: AccountId) -> StoreResult<Vec<GroupRecord>> {
        let rows = sqlx::query("SELECT * FROM device_groups WHERE account_id = ? ORDER BY name")
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(GroupRecord {
                    id: get_uuid(row, "id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn insert_group(&self, account: AccountId, g: &GroupRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_groups (id, account_id, name, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(g.id.to_string())
        .bind(account.to_string())
        .bind(&g.name)
        .bind(g.created_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}
