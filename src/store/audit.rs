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

/// An entry as read back, with its target resolved to a kind and a current name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub actor_user_id: Option<Uuid>,
    pub actor_name: String,
    pub via: String,
    pub action: String,
    pub target: Option<String>,
    /// What the target is: `user`, `device`, `group`, `policy`, `session`, `invitation`,
    /// `api_key`, `account`, `grant`, `access_request`; `None` when it is unknown or gone.
    pub target_kind: Option<String>,
    /// The target's name as it is now (a username, a device's name, a session's subject...).
    pub target_name: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Which entries to read: all filters optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<UserId>,
    /// An action (`user.created`) or a family ending in a dot (`user.`).
    pub action: Option<String>,
    pub via: Option<String>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Only entries older than this entry (the cursor of the next page).
    pub before: Option<Uuid>,
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

    /// Up to `limit` entries of an account matching `filter`, newest first.
    pub async fn audit_log(
        &self,
        account: AccountId,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let (action_exact, action_prefix) = match filter.action.as_deref() {
            Some(a) if a.ends_with('.') => (None, Some(format!("{}%", a.replace(['%', '_'], "")))),
            Some(a) => (Some(a.to_string()), None),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT l.*,
                CASE WHEN u.id IS NOT NULL THEN 'user' WHEN d.id IS NOT NULL THEN 'device'
                     WHEN g.id IS NOT NULL THEN 'group' WHEN p.id IS NOT NULL THEN 'policy'
                     WHEN s.id IS NOT NULL THEN 'session' WHEN i.id IS NOT NULL THEN 'invitation'
                     WHEN k.id IS NOT NULL THEN 'api_key' WHEN a.id IS NOT NULL THEN 'account'
                     WHEN gr.id IS NOT NULL THEN 'grant' WHEN r.id IS NOT NULL THEN 'access_request'
                END AS target_kind,
                COALESCE(u.username, d.name, g.name, p.name, s.subject, i.guest_name, k.name,
                         a.name, gp.name, rp.name) AS target_name
             FROM audit_log l
             LEFT JOIN users u ON u.id = l.target
             LEFT JOIN devices d ON d.id = l.target
             LEFT JOIN device_groups g ON g.id = l.target
             LEFT JOIN policies p ON p.id = l.target
             LEFT JOIN sessions s ON s.id = l.target
             LEFT JOIN invitations i ON i.id = l.target
             LEFT JOIN api_keys k ON k.id = l.target
             LEFT JOIN accounts a ON a.id = l.target
             LEFT JOIN access_grants gr ON gr.id = l.target
             LEFT JOIN accounts gp ON gp.id = gr.partner_account_id
             LEFT JOIN access_requests r ON r.id = l.target
             LEFT JOIN accounts rp ON rp.id = r.partner_account_id
             WHERE l.account_id = ?
               AND (? IS NULL OR l.actor_user_id = ?)
               AND (? IS NULL OR l.action = ?)
               AND (? IS NULL OR l.action LIKE ?)
               AND (? IS NULL OR l.via = ?)
               AND (? IS NULL OR l.at >= ?)
               AND (? IS NULL OR l.at < ?)
               AND (? IS NULL OR (l.at, l.id) < (SELECT c.at, c.id FROM audit_log c WHERE c.id = ?))
             ORDER BY l.at DESC, l.id DESC LIMIT ?",
        )
        .bind(account.to_string())
        .bind(filter.actor.map(|u| u.to_string()))
        .bind(filter.actor.map(|u| u.to_string()))
        .bind(&action_exact)
        .bind(&action_exact)
        .bind(&action_prefix)
        .bind(&action_prefix)
        .bind(&filter.via)
        .bind(&filter.via)
        .bind(filter.from)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.to)
        .bind(filter.before.map(|b| b.to_string()))
        .bind(filter.before.map(|b| b.to_string()))
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
                    target_kind: row.try_get("target_kind")?,
                    target_name: row.try_get("target_name")?,
                    details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
