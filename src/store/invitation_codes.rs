//! One-time codes that bind an invitation to its email address: sent capped per invitation,
//! judged in one write transaction with the caps of login codes (a code burns after 3 wrong
//! guesses, 10 in a row lock the invitation's code step for 15 minutes), and a right code
//! yields the verified address and one WebSocket ticket.

use super::db::{query, query_scalar};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult};
use crate::domain::{
    ids::InvitationId,
    second_factor::{self, Guard, Wrong},
};

/// What one guess at an invitation code led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationCodeVerdict {
    /// No such challenge for this invitation.
    Unknown,
    /// The invitation's code step is locked for this many seconds.
    Locked(u64),
    /// Used, burned or expired.
    Closed,
    /// Right: the ticket (its hash) is stored with the verified address.
    Accepted,
    Wrong(Wrong),
}

impl Store {
    /// Stores a new code for an invitation unless `cap` codes went out within the send window
    /// (counted in the same transaction); `Err(seconds)` to wait.
    pub async fn open_invitation_challenge(
        &self,
        id: Uuid,
        invitation: InvitationId,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        cap: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<(), u64>> {
        let mut tx = self.write_tx().await?;
        let sent: Vec<DateTime<Utc>> = query_scalar(
            "SELECT created_at FROM invitation_challenges WHERE invitation_id = ?
             ORDER BY created_at DESC LIMIT ?",
        )
        .bind(invitation.to_string())
        .bind(i64::from(cap.max(1)))
        .fetch_all(&mut tx)
        .await?;
        if let Err(wait) = second_factor::may_send(&sent, cap, now) {
            return Ok(Err(wait));
        }
        query(
            "INSERT INTO invitation_challenges (id, invitation_id, code_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(invitation.to_string())
        .bind(code_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Judges one guess, atomically (as `judge_code`): `right(code_hash)` compares; on a right
    /// code the challenge is used by this guess alone, the guard reset, and the verified
    /// address and the ticket's hash stored on the invitation.
    #[allow(clippy::too_many_arguments)]
    pub async fn judge_invitation_code(
        &self,
        invitation: InvitationId,
        challenge: Uuid,
        now: DateTime<Utc>,
        right: impl FnOnce(&str) -> bool,
        verified_email: &str,
        ticket_hash: &str,
        ticket_expires_at: DateTime<Utc>,
    ) -> StoreResult<InvitationCodeVerdict> {
        let mut tx = self.write_tx().await?;
        let row = query(
            "SELECT code_hash, expires_at, state FROM invitation_challenges
             WHERE id = ? AND invitation_id = ?",
        )
        .bind(challenge.to_string())
        .bind(invitation.to_string())
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Ok(InvitationCodeVerdict::Unknown);
        };
        let locked_until: Option<DateTime<Utc>> =
            query_scalar("SELECT locked_until FROM invitation_guards WHERE invitation_id = ?")
                .bind(invitation.to_string())
                .fetch_optional(&mut tx)
                .await?
                .flatten();
        if let Some(wait) = (Guard {
            consecutive_failures: 0,
            locked_until,
        })
        .locked(now)
        {
            return Ok(InvitationCodeVerdict::Locked(wait));
        }
        let state: String = row.try_get("state")?;
        let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
        if state != "open" || expires_at <= now {
            return Ok(InvitationCodeVerdict::Closed);
        }
        let code_hash: String = row.try_get("code_hash")?;
        if right(&code_hash) {
            let used = query(
                "UPDATE invitation_challenges SET state = 'used' WHERE id = ? AND state = 'open'",
            )
            .bind(challenge.to_string())
            .execute(&mut tx)
            .await?;
            if used.rows_affected() != 1 {
                return Ok(InvitationCodeVerdict::Closed);
            }
            query("DELETE FROM invitation_guards WHERE invitation_id = ?")
                .bind(invitation.to_string())
                .execute(&mut tx)
                .await?;
            query(
                "UPDATE invitations SET verified_email = ?, join_ticket_hash = ?,
                     join_ticket_expires_at = ? WHERE id = ?",
            )
            .bind(verified_email)
            .bind(ticket_hash)
            .bind(ticket_expires_at)
            .bind(invitation.to_string())
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            return Ok(InvitationCodeVerdict::Accepted);
        }
        let wrong_after: i64 = query_scalar(
            "UPDATE invitation_challenges SET wrong_guesses = wrong_guesses + 1,
                 state = CASE WHEN wrong_guesses + 1 >= ? THEN 'burned' ELSE state END
             WHERE id = ? AND state = 'open' RETURNING wrong_guesses",
        )
        .bind(i64::from(second_factor::BURN_AFTER))
        .bind(challenge.to_string())
        .fetch_one(&mut tx)
        .await?;
        let failures_after: i64 = query_scalar(
            "INSERT INTO invitation_guards (invitation_id, consecutive_failures) VALUES (?, 1)
             ON CONFLICT (invitation_id) DO UPDATE SET
                 consecutive_failures = invitation_guards.consecutive_failures + 1
             RETURNING consecutive_failures",
        )
        .bind(invitation.to_string())
        .fetch_one(&mut tx)
        .await?;
        let outcome = second_factor::judge_wrong(
            u32::try_from(wrong_after).unwrap_or(u32::MAX),
            u32::try_from(failures_after).unwrap_or(u32::MAX),
        );
        if outcome == Wrong::Locked {
            query("UPDATE invitation_guards SET locked_until = ? WHERE invitation_id = ?")
                .bind(now + second_factor::LOCK_FOR)
                .bind(invitation.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(InvitationCodeVerdict::Wrong(outcome))
    }

    /// The join ticket of an invitation (its hash and end), set by a right code.
    pub async fn join_ticket(
        &self,
        invitation: InvitationId,
    ) -> StoreResult<Option<(String, DateTime<Utc>)>> {
        let row =
            query("SELECT join_ticket_hash, join_ticket_expires_at FROM invitations WHERE id = ?")
                .bind(invitation.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Option<String> = row.try_get("join_ticket_hash")?;
        let until: Option<DateTime<Utc>> = row.try_get("join_ticket_expires_at")?;
        Ok(hash.zip(until))
    }
}
