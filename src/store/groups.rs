//! Device groups of an account.

use super::db::{query, query_scalar};
use chrono::{DateTime, Utc};
use serde::Serialize;
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
        let rows = query("SELECT * FROM device_groups WHERE account_id = ? ORDER BY name")
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
        self.write_one(
            query(
                "INSERT INTO device_groups (id, account_id, name, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(g.id.to_string())
            .bind(account.to_string())
            .bind(&g.name)
            .bind(g.created_at),
        )
        .await
        .map(|_| ())
    }

    /// A group and its account.
    pub async fn group(&self, id: Uuid) -> StoreResult<Option<(AccountId, GroupRecord)>> {
        let row = query("SELECT * FROM device_groups WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok((
                AccountId(get_uuid(&row, "account_id")?),
                GroupRecord {
                    id: get_uuid(&row, "id")?,
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                },
            ))
        })
        .transpose()
    }

    pub async fn rename_group(&self, id: Uuid, name: &str) -> StoreResult<()> {
        self.write_one(
            query("UPDATE device_groups SET name = ? WHERE id = ?")
                .bind(name)
                .bind(id.to_string()),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a group that holds no device and no unused enrollment code, in one write
    /// transaction (used codes forget it); `false` when something is still in it.
    pub async fn delete_empty_group(&self, id: Uuid) -> StoreResult<bool> {
        let id = id.to_string();
        let mut tx = self.write_tx().await?;
        let busy: i64 = query_scalar(
            "SELECT (SELECT COUNT(*) FROM devices WHERE group_id = ?)
                  + (SELECT COUNT(*) FROM enrollment_codes WHERE group_id = ? AND used_at IS NULL)",
        )
        .bind(&id)
        .bind(&id)
        .fetch_one(&mut tx)
        .await?;
        if busy > 0 {
            return Ok(false);
        }
        query("UPDATE enrollment_codes SET group_id = NULL WHERE group_id = ?")
            .bind(&id)
            .execute(&mut tx)
            .await?;
        let done = query("DELETE FROM device_groups WHERE id = ?")
            .bind(&id)
            .execute(&mut tx)
            .await?;
        // Nothing to do commits nothing (and records nothing on an audited handle).
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
