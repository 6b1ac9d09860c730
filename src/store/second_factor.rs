//! Login challenges (the code step) and the per-user guard against guessing.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid};
use crate::domain::{ids::UserId, second_factor::Guard};

#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    pub id: Uuid,
    pub user_id: UserId,
    pub channel: String,
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub wrong_guesses: u32,
    pub open: bool,
}

impl Store {
    pub async fn set_two_factor(&self, user: UserId, mode: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET two_factor = ? WHERE id = ?")
            .bind(mode)
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn insert_challenge(&self, c: &ChallengeRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_challenges (id, user_id, channel, code_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(c.user_id.to_string())
        .bind(&c.channel)
        .bind(&c.code_hash)
        .bind(Utc::now())
        .bind(c.expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn challenge(&self, id: Uuid) -> StoreResult<Option<ChallengeRecord>> {
        let row = sqlx::query("SELECT * FROM login_challenges WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let state: String = row.try_get("state")?;
            let wrong: i64 = row.try_get("wrong_guesses")?;
            Ok(ChallengeRecord {
                id: get_uuid(&row, "id")?,
                user_id: UserId(get_uuid(&row, "user_id")?),
                channel: row.try_get("channel")?,
                code_hash: row.try_get("code_hash")?,
                expires_at: row.try_get("expires_at")?,
                wrong_guesses: u32::try_from(wrong).unwrap_or(u32::MAX),
                open: state == "open",
            })
        })
        .transpose()
    }

    /// Records a guess on a challenge: its wrong count and whether it stays open, used or burns.
    pub async fn update_challenge(
        &self,
        id: Uuid,
        wrong_guesses: u32,
        state: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE login_challenges SET wrong_guesses = ?, state = ? WHERE id = ?")
            .bind(i64::from(wrong_guesses))
            .bind(state)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// When the user's most recent codes were sent (newest first, at most `limit`).
    pub async fn recent_code_sends(
        &self,
        user: UserId,
        limit: i64,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let rows = sqlx::query(
            "SELECT created_at FROM login_challenges WHERE user_id = ? AND channel <> 'totp'
             ORDER BY created_at DESC LIMIT ?",
        )
        .bind(user.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("created_at")).collect()
    }

    pub async fn code_guard(&self, user: UserId) -> StoreResult<Guard> {
        let row = sqlx::query(
            "SELECT consecutive_failures, locked_until FROM code_guards WHERE user_id = ?",
        )
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map_or(Ok(Guard::default()), |row| {
            let failures: i64 = row.try_get("consecutive_failures")?;
            Ok(Guard {
                consecutive_failures: u32::try_from(failures).unwrap_or(u32::MAX),
                locked_until: row.try_get("locked_until")?,
            })
        })
    }

    pub async fn save_code_guard(&self, user: UserId, guard: &Guard) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO code_guards (user_id, consecutive_failures, locked_until) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,
                 locked_until = excluded.locked_until",
        )
        .bind(user.to_string())
        .bind(i64::from(guard.consecutive_failures))
        .bind(guard.locked_until)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

impl Store {
    /// Switches a user to TOTP with a new shared secret (base32).
    pub async fn set_totp(&self, user: UserId, secret_base32: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET two_factor = 'totp', totp_secret = ?, totp_last_step = NULL WHERE id = ?")
            .bind(secret_base32)
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The user's TOTP secret and the last step accepted.
    pub async fn totp_state(&self, user: UserId) -> StoreResult<Option<(String, Option<u64>)>> {
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM users WHERE id = ?")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let secret: Option<String> = row.try_get("totp_secret")?;
        let step: Option<i64> = row.try_get("totp_last_step")?;
        Ok(secret.map(|s| (s, step.and_then(|n| u64::try_from(n).ok()))))
    }

    /// Accepts `step` only if it is newer than the last accepted one (atomically).
    pub async fn accept_totp_step(&self, user: UserId, step: u64) -> StoreResult<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user.to_string())
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
