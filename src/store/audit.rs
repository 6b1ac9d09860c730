//! The account's audit log: who did what, when, and through which access.

use super::db::{Row, query, query_as, query_scalar};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreResult, get_opt_uuid, get_uuid};
use crate::domain::{
    audit_chain::{self, ChainEntry},
    ids::{AccountId, UserId},
};

/// Appends an entry to its account's chain inside a write transaction: the last entry's hash
/// and place are read and the new one written under the transaction's write lock, and the
/// unique index on (account, seq) refuses a fork.
pub(super) async fn append(tx: &mut super::db::Tx, entry: &AuditEntry) -> StoreResult<()> {
    let id = Uuid::now_v7().to_string();
    // Microseconds: what PostgreSQL keeps, so the hash reads back the same on both backends.
    let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let last: Option<(i64, String)> = query_as(
        "SELECT seq, hash FROM audit_log WHERE account_id = ? AND seq IS NOT NULL
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(entry.account_id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, audit_chain::GENESIS.to_string()),
    };
    let link = ChainEntry {
        account_id: entry.account_id.to_string(),
        seq,
        id: id.clone(),
        at: chain_time(at),
        actor_user_id: entry.actor_user_id.map(|u| u.to_string()),
        actor_name: entry.actor_name.clone(),
        via: entry.via.clone(),
        action: entry.action.to_string(),
        target: entry.target.clone(),
        details: entry.details.clone(),
        prev_hash,
    };
    let hash = link.hash();
    query(
        "INSERT INTO audit_log (id, account_id, actor_user_id, actor_name, via, action, target,
            details, at, seq, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(entry.account_id.to_string())
    .bind(entry.actor_user_id.map(|u| u.to_string()))
    .bind(&entry.actor_name)
    .bind(&entry.via)
    .bind(entry.action)
    .bind(&entry.target)
    .bind(entry.details.to_string())
    .bind(at)
    .bind(seq)
    .bind(&link.prev_hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

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
    /// The entry's place in its account's chain (from 1).
    pub seq: Option<i64>,
    /// SHA-256 of the entry before it (64 zeros for the first).
    pub prev_hash: Option<String>,
    /// SHA-256 over this entry's canonical encoding (docs/security.md).
    pub hash: Option<String>,
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
    /// Only entries about or made through this partner grant.
    pub grant: Option<Uuid>,
}

impl Store {
    /// Appends an entry to its account's chain, in a write transaction of its own (an event
    /// that is not a write of its own: a refused login, a command sent to an agent).
    pub async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        append(&mut tx.tx, entry).await?;
        tx.commit().await
    }

    /// Seals entries written before the chain existed into it, in their order, per account
    /// (once, at start). Returns how many it sealed.
    pub async fn seal_audit_chain(&self) -> StoreResult<u64> {
        let accounts: Vec<String> =
            query_scalar("SELECT DISTINCT account_id FROM audit_log WHERE seq IS NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut sealed = 0;
        for account in accounts {
            let mut tx = self.write_tx().await?;
            let last: Option<(i64, String)> = query_as(
                "SELECT seq, hash FROM audit_log WHERE account_id = ? AND seq IS NOT NULL
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&account)
            .fetch_optional(&mut tx)
            .await?;
            let (mut seq, mut prev) = last.unwrap_or((0, audit_chain::GENESIS.to_string()));
            let rows = query(
                "SELECT * FROM audit_log WHERE account_id = ? AND seq IS NULL ORDER BY at, id",
            )
            .bind(&account)
            .fetch_all(&mut tx)
            .await?;
            for row in &rows {
                seq += 1;
                let mut link = chain_entry(row)?;
                link.seq = seq;
                link.prev_hash = prev;
                let hash = link.hash();
                query("UPDATE audit_log SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?")
                    .bind(seq)
                    .bind(&link.prev_hash)
                    .bind(&hash)
                    .bind(&link.id)
                    .execute(&mut tx)
                    .await?;
                prev = hash;
                sealed += 1;
            }
            tx.commit().await?;
        }
        Ok(sealed)
    }

    /// An account's chain in order, with each entry's stored hash, and how many entries are
    /// outside it (a row without a place: put there by hand).
    pub async fn audit_chain(
        &self,
        account: AccountId,
    ) -> StoreResult<(Vec<(ChainEntry, String)>, i64)> {
        let rows =
            query("SELECT * FROM audit_log WHERE account_id = ? AND seq IS NOT NULL ORDER BY seq")
                .bind(account.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut chain = Vec::with_capacity(rows.len());
        for row in &rows {
            let hash: Option<String> = row.try_get("hash")?;
            chain.push((chain_entry(row)?, hash.unwrap_or_default()));
        }
        let outside: i64 =
            query_scalar("SELECT COUNT(*) FROM audit_log WHERE account_id = ? AND seq IS NULL")
                .bind(account.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok((chain, outside))
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
        // The grant a partner user acted under, as each database reads a JSON text.
        let grant_of = if self.pool.is_postgres() {
            "(l.details::jsonb ->> 'grant_id')"
        } else {
            "json_extract(l.details, '$.grant_id')"
        };
        let rows = query(format!(
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
               AND (? IS NULL OR l.target = ? OR {grant_of} = ?
                    OR l.target IN (SELECT request_id FROM access_grants WHERE id = ?))
               AND (? IS NULL OR l.at >= ?)
               AND (? IS NULL OR l.at < ?)
               AND (? IS NULL OR (l.at, l.id) < (SELECT c.at, c.id FROM audit_log c WHERE c.id = ?))
             ORDER BY l.at DESC, l.id DESC LIMIT ?",
        ))
        .bind(account.to_string())
        .bind(filter.actor.map(|u| u.to_string()))
        .bind(filter.actor.map(|u| u.to_string()))
        .bind(&action_exact)
        .bind(&action_exact)
        .bind(&action_prefix)
        .bind(&action_prefix)
        .bind(&filter.via)
        .bind(&filter.via)
        .bind(filter.grant.map(|g| g.to_string()))
        .bind(filter.grant.map(|g| g.to_string()))
        .bind(filter.grant.map(|g| g.to_string()))
        .bind(filter.grant.map(|g| g.to_string()))
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
                    seq: row.try_get("seq")?,
                    prev_hash: row.try_get("prev_hash")?,
                    hash: row.try_get("hash")?,
                })
            })
            .collect()
    }
}

/// The time as the chain encodes it: RFC 3339, nanoseconds, `Z`.
pub fn chain_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn chain_entry(row: &Row) -> StoreResult<ChainEntry> {
    let details: String = row.try_get("details")?;
    let at: DateTime<Utc> = row.try_get("at")?;
    Ok(ChainEntry {
        account_id: row.try_get("account_id")?,
        seq: row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0),
        id: row.try_get("id")?,
        // The exact text hashed when `at` lost digits on a copy into PostgreSQL.
        at: row
            .try_get::<Option<String>, _>("chain_at")?
            .unwrap_or_else(|| chain_time(at)),
        actor_user_id: row.try_get("actor_user_id")?,
        actor_name: row.try_get("actor_name")?,
        via: row.try_get("via")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        // A details text that is not JSON any more (edited by hand) hashes as its text.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: row
            .try_get::<Option<String>, _>("prev_hash")?
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_of_an_earlier_version_are_sealed_into_the_chain_at_start() {
        let db = super::super::testing::TestStore::new().await;
        let store = db.open().await;
        let account = AccountId(Uuid::now_v7());
        // Two rows as a version before the chain wrote them (no place, no hashes).
        for (id, action, at) in [
            (
                "0190a0a0-0000-7000-8000-000000000001",
                "user.created",
                "2026-01-01T10:00:00Z",
            ),
            (
                "0190a0a0-0000-7000-8000-000000000002",
                "user.deleted",
                "2026-01-02T10:00:00Z",
            ),
        ] {
            query(
                "INSERT INTO audit_log (id, account_id, actor_name, via, action, details, at)
                 VALUES (?, ?, 'ada', 'login', ?, '{\"b\":1,\"a\":2}', ?)",
            )
            .bind(id)
            .bind(account.to_string())
            .bind(action)
            .bind(at.parse::<DateTime<Utc>>().unwrap())
            .execute(store.pool_for_tests())
            .await
            .unwrap();
        }
        assert_eq!(
            store.audit_chain(account).await.unwrap().1,
            2,
            "outside the chain"
        );
        store.close().await;
        // The next start seals them, oldest first; new entries follow on.
        let store = db.open().await;
        store
            .audit(&AuditEntry {
                account_id: account,
                actor_user_id: None,
                actor_name: "system".into(),
                via: "expiry".into(),
                action: "access.expired",
                target: None,
                details: serde_json::json!({}),
            })
            .await
            .unwrap();
        let (chain, outside) = store.audit_chain(account).await.unwrap();
        assert_eq!(outside, 0);
        let actions: Vec<&str> = chain.iter().map(|(e, _)| e.action.as_str()).collect();
        assert_eq!(actions, ["user.created", "user.deleted", "access.expired"]);
        assert!(audit_chain::verify(&chain).is_ok());
        assert_eq!(store.seal_audit_chain().await.unwrap(), 0, "sealed once");
    }
}
