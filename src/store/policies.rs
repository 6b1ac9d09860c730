//! Security policies of an account.

use super::db::{Row, query};
use chrono::{DateTime, Utc};

use super::{Store, StoreResult, get_json, get_uuid, to_json};
use crate::domain::{
    ids::{AccountId, PolicyId},
    permissions::{Permission, PermissionSet},
};

#[derive(Debug, Clone)]
pub struct PolicyRecord {
    pub id: PolicyId,
    pub account_id: AccountId,
    pub name: String,
    pub description: String,
    pub permissions: PermissionSet,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn policy_from_row(row: &Row) -> StoreResult<PolicyRecord> {
    let perms: Vec<Permission> = get_json(row, "permissions")?;
    Ok(PolicyRecord {
        id: PolicyId(get_uuid(row, "id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        permissions: perms.into_iter().collect(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn policies_of(&self, account: AccountId) -> StoreResult<Vec<PolicyRecord>> {
        let rows = query(
            "SELECT * FROM policies WHERE account_id = ? AND deleted_at IS NULL ORDER BY name",
        )
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// A live policy by id; `None` when unknown or deleted.
    pub async fn policy(&self, id: PolicyId) -> StoreResult<Option<PolicyRecord>> {
        let row = query("SELECT * FROM policies WHERE id = ? AND deleted_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    /// Inserts a policy; a live policy of the same name in the account is a unique violation.
    pub async fn insert_policy(&self, p: &PolicyRecord) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO policies (id, account_id, name, description, permissions, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.to_string())
        .bind(p.account_id.to_string())
        .bind(&p.name)
        .bind(&p.description)
        .bind(to_json(&p.permissions.to_vec())?)
        .bind(p.created_at)
        .bind(p.updated_at)
        )
        .await
        .map(|_| ())
    }

    pub async fn update_policy(&self, p: &PolicyRecord) -> StoreResult<()> {
        self.write_one(
            query(
                "UPDATE policies SET name = ?, description = ?, permissions = ?, updated_at = ?
             WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(&p.name)
            .bind(&p.description)
            .bind(to_json(&p.permissions.to_vec())?)
            .bind(p.updated_at)
            .bind(p.id.to_string()),
        )
        .await
        .map(|_| ())
    }

    /// Soft-deletes a policy: invitations and reports keep their reference and name.
    /// Deletes a policy; an account whose default it was has none afterwards (same
    /// transaction).
    pub async fn delete_policy(&self, id: PolicyId) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = query("UPDATE policies SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
            .bind(Utc::now())
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        query("UPDATE accounts SET default_policy_id = NULL WHERE default_policy_id = ?")
            .bind(id.to_string())
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
