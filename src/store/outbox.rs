//! The persisted outbox of mail and SMS.

use super::db::query;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid};

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
}

impl Store {
    pub async fn enqueue_message(&self, m: &OutboxMessage) -> StoreResult<()> {
        query(
            "INSERT INTO outbox (id, channel, recipient, subject, body, created_at, next_attempt_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(m.id.to_string())
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(Utc::now())
        .bind(m.next_attempt_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Messages neither sent nor given up, oldest first.
    pub async fn pending_messages(&self, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        let rows = query(
            "SELECT * FROM outbox WHERE sent_at IS NULL AND given_up_at IS NULL ORDER BY created_at LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let attempts: i64 = row.try_get("attempts")?;
                Ok(OutboxMessage {
                    id: get_uuid(row, "id")?,
                    channel: row.try_get("channel")?,
                    recipient: row.try_get("recipient")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    next_attempt_at: row.try_get("next_attempt_at")?,
                })
            })
            .collect()
    }

    /// Marks a message sent and forgets its body.
    pub async fn message_sent(&self, id: Uuid, attempts: u32) -> StoreResult<()> {
        query("UPDATE outbox SET sent_at = ?, attempts = ?, body = '', last_error = NULL WHERE id = ?")
            .bind(Utc::now())
            .bind(i64::from(attempts))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Records a failed attempt; with `next = None` the message is given up (body forgotten).
    pub async fn message_failed(
        &self,
        id: Uuid,
        attempts: u32,
        error: &str,
        next: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let sql = match next {
            Some(_) => {
                "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?"
            }
            None => {
                "UPDATE outbox SET attempts = ?, last_error = ?, given_up_at = COALESCE(?, CURRENT_TIMESTAMP), body = '' WHERE id = ?"
            }
        };
        query(sql)
            .bind(i64::from(attempts))
            .bind(error)
            .bind(next.or(Some(Utc::now())))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
