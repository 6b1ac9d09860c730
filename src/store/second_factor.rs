//! Login challenges (the code step) and the per-user guard against guessing.

use super::db::{Row, query, query_scalar};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid};
use crate::domain::{
    ids::UserId,
    second_factor::{self, Guard, Wrong},
};

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
        self.write_one(
            query("UPDATE users SET two_factor = ? WHERE id = ?")
                .bind(mode)
                .bind(user.to_string()),
        )
        .await
        .map(|_| ())
    }

    pub async fn challenge(&self, id: Uuid) -> StoreResult<Option<ChallengeRecord>> {
        let row = query("SELECT * FROM login_challenges WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| challenge_from_row(&row)).transpose()
    }

    pub async fn code_guard(&self, user: UserId) -> StoreResult<Guard> {
        let row =
            query("SELECT consecutive_failures, locked_until FROM code_guards WHERE user_id = ?")
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
}

/// What the code step made of one guess.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeVerdict {
    /// No challenge has this id.
    Unknown,
    /// The user's code step is locked for this many seconds.
    Locked(u64),
    /// Used, burned or expired.
    Closed,
    /// The right code: the challenge is used now (by this guess alone) and the guard reset.
    Accepted(UserId),
    /// A wrong code, counted; what it led to.
    Wrong(UserId, Wrong),
}

/// The user's authenticator-app state, handed to the code check inside the transaction.
pub struct TotpState {
    pub sealed_secret: String,
    pub last_step: Option<u64>,
}

/// The code check's answer: right (with the TOTP step it used, to be marked as used), a
/// recovery code to use up (by its hash; right only if it is the user's and unused), or wrong.
pub enum CodeCheck {
    Right { totp_step: Option<u64> },
    Recovery { code_hash: String },
    Wrong,
}

impl Store {
    /// Judges one guess at a login challenge, atomically. The whole judgement runs in one
    /// write transaction (`BEGIN IMMEDIATE` on SQLite: guesses are serialised), every counter
    /// is an increment in the database (`n = n + 1 … RETURNING`), and the challenge is marked
    /// used only while it is still open, so guesses that arrive at the same moment count
    /// exactly as if they came one after another and one code yields at most one token.
    pub async fn judge_code(
        &self,
        challenge_id: Uuid,
        now: DateTime<Utc>,
        check: impl FnOnce(&ChallengeRecord, Option<TotpState>) -> CodeCheck,
    ) -> StoreResult<CodeVerdict> {
        let mut tx = self.write_tx().await?;
        let Some(challenge) = Self::challenge_in(&mut tx, challenge_id).await? else {
            return Ok(CodeVerdict::Unknown);
        };
        let user = challenge.user_id;
        let guard =
            query("SELECT consecutive_failures, locked_until FROM code_guards WHERE user_id = ?")
                .bind(user.to_string())
                .fetch_optional(&mut tx)
                .await?;
        let locked_until: Option<DateTime<Utc>> = match &guard {
            Some(row) => row.try_get("locked_until")?,
            None => None,
        };
        if let Some(wait) = (Guard {
            consecutive_failures: 0,
            locked_until,
        })
        .locked(now)
        {
            return Ok(CodeVerdict::Locked(wait));
        }
        if !challenge.open || challenge.expires_at <= now {
            return Ok(CodeVerdict::Closed);
        }
        let totp = if challenge.channel == "totp" {
            let row = query("SELECT totp_secret, totp_last_step FROM users WHERE id = ?")
                .bind(user.to_string())
                .fetch_one(&mut tx)
                .await?;
            let secret: Option<String> = row.try_get("totp_secret")?;
            let step: Option<i64> = row.try_get("totp_last_step")?;
            secret.map(|sealed_secret| TotpState {
                sealed_secret,
                last_step: step.and_then(|n| u64::try_from(n).ok()),
            })
        } else {
            None
        };
        let right = match check(&challenge, totp) {
            CodeCheck::Right { totp_step: None } => true,
            // A TOTP step is accepted once (RFC 6238 5.2); a replayed step is a wrong guess.
            CodeCheck::Right {
                totp_step: Some(step),
            } => {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                query(
                    "UPDATE users SET totp_last_step = ?
                     WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
                )
                .bind(step)
                .bind(user.to_string())
                .bind(step)
                .execute(&mut tx)
                .await?
                .rows_affected()
                    == 1
            }
            // A recovery code works once: used up by this statement or not at all.
            CodeCheck::Recovery { code_hash } => {
                query(
                    "UPDATE recovery_codes SET used_at = ?
                     WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
                )
                .bind(now)
                .bind(user.to_string())
                .bind(code_hash)
                .execute(&mut tx)
                .await?
                .rows_affected()
                    == 1
            }
            CodeCheck::Wrong => false,
        };
        if right {
            let used =
                query("UPDATE login_challenges SET state = 'used' WHERE id = ? AND state = 'open'")
                    .bind(challenge_id.to_string())
                    .execute(&mut tx)
                    .await?;
            if used.rows_affected() != 1 {
                return Ok(CodeVerdict::Closed);
            }
            query("DELETE FROM code_guards WHERE user_id = ?")
                .bind(user.to_string())
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            return Ok(CodeVerdict::Accepted(user));
        }
        let wrong_after: i64 = query_scalar(
            "UPDATE login_challenges SET wrong_guesses = wrong_guesses + 1,
                 state = CASE WHEN wrong_guesses + 1 >= ? THEN 'burned' ELSE state END
             WHERE id = ? AND state = 'open' RETURNING wrong_guesses",
        )
        .bind(i64::from(second_factor::BURN_AFTER))
        .bind(challenge_id.to_string())
        .fetch_one(&mut tx)
        .await?;
        let failures_after: i64 = query_scalar(
            "INSERT INTO code_guards (user_id, consecutive_failures, locked_until) VALUES (?, 1, NULL)
             ON CONFLICT (user_id) DO UPDATE SET
                 consecutive_failures = code_guards.consecutive_failures + 1
             RETURNING consecutive_failures",
        )
        .bind(user.to_string())
        .fetch_one(&mut tx)
        .await?;
        let outcome = second_factor::judge_wrong(
            u32::try_from(wrong_after).unwrap_or(u32::MAX),
            u32::try_from(failures_after).unwrap_or(u32::MAX),
        );
        if outcome == Wrong::Locked {
            // The lock starts now; only a success resets the count, so after the lock one more
            // wrong guess locks again.
            query("UPDATE code_guards SET locked_until = ? WHERE user_id = ?")
                .bind(now + second_factor::LOCK_FOR)
                .bind(user.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(CodeVerdict::Wrong(user, outcome))
    }

    async fn challenge_in(
        tx: &mut super::WriteTx,
        id: Uuid,
    ) -> StoreResult<Option<ChallengeRecord>> {
        let row = query("SELECT * FROM login_challenges WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        row.map(|row| challenge_from_row(&row)).transpose()
    }

    /// Opens a code challenge unless the send cap is reached: the count of recent sends and the
    /// insert are one transaction, so logins at the same moment cannot send more codes than the
    /// cap. `Err(seconds)` to wait otherwise. TOTP challenges send nothing and are not capped.
    pub async fn open_challenge_capped(
        &self,
        c: &ChallengeRecord,
        cap: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<(), u64>> {
        let mut tx = self.write_tx().await?;
        if c.channel != "totp" {
            let rows = query(
                "SELECT created_at FROM login_challenges WHERE user_id = ? AND channel <> 'totp'
                 ORDER BY created_at DESC LIMIT ?",
            )
            .bind(c.user_id.to_string())
            .bind(i64::from(cap.max(1)))
            .fetch_all(&mut tx)
            .await?;
            let sent = rows
                .iter()
                .map(|r| r.try_get("created_at"))
                .collect::<StoreResult<Vec<DateTime<Utc>>>>()?;
            if let Err(wait) = second_factor::may_send(&sent, cap, now) {
                return Ok(Err(wait));
            }
        }
        query(
            "INSERT INTO login_challenges (id, user_id, channel, code_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(c.user_id.to_string())
        .bind(&c.channel)
        .bind(&c.code_hash)
        .bind(now)
        .bind(c.expires_at)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}

fn challenge_from_row(row: &Row) -> StoreResult<ChallengeRecord> {
    let state: String = row.try_get("state")?;
    let wrong: i64 = row.try_get("wrong_guesses")?;
    Ok(ChallengeRecord {
        id: get_uuid(row, "id")?,
        user_id: UserId(get_uuid(row, "user_id")?),
        channel: row.try_get("channel")?,
        code_hash: row.try_get("code_hash")?,
        expires_at: row.try_get("expires_at")?,
        wrong_guesses: u32::try_from(wrong).unwrap_or(u32::MAX),
        open: state == "open",
    })
}

impl Store {
    /// Lifts a user's lock of the code step and its count of wrong codes (the operator's
    /// `admin unlock`); `false` when there was nothing to lift.
    pub async fn unlock_code_step(&self, user: UserId) -> StoreResult<bool> {
        let done = self
            .write_one(query("DELETE FROM code_guards WHERE user_id = ?").bind(user.to_string()))
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keeps a new authenticator secret (sealed) until a first code confirms it; the user's
    /// login does not change yet.
    pub async fn set_totp_pending(&self, user: UserId, sealed: &str) -> StoreResult<()> {
        self.write_one(
            query("UPDATE users SET totp_pending = ? WHERE id = ?")
                .bind(sealed)
                .bind(user.to_string()),
        )
        .await
        .map(|_| ())
    }

    /// The authenticator secret waiting for its first code, sealed.
    pub async fn totp_pending(&self, user: UserId) -> StoreResult<Option<String>> {
        query_scalar("SELECT totp_pending FROM users WHERE id = ?")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
    }

    /// Switches the user to the pending authenticator secret it just proved with a code of
    /// `step`, and replaces its recovery codes, in one transaction; only if the pending secret
    /// is still `sealed` (a second setup in between wins). `false` otherwise.
    pub async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &str,
        step: u64,
        recovery_hashes: &[String],
    ) -> StoreResult<bool> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE users SET two_factor = 'totp', totp_secret = totp_pending, totp_pending = NULL,
                 totp_last_step = ?
             WHERE id = ? AND totp_pending = ?",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(user.to_string())
        .bind(sealed)
        .execute(&mut tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        for hash in recovery_hashes {
            query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)")
                .bind(user.to_string())
                .bind(hash)
                .bind(now)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The user's TOTP secret and the last step accepted.
    pub async fn totp_state(&self, user: UserId) -> StoreResult<Option<(String, Option<u64>)>> {
        let row = query("SELECT totp_secret, totp_last_step FROM users WHERE id = ?")
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
        let done = self.write_one(query(
            "UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user.to_string())
        .bind(step)
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
