//! Outgoing mail and SMS through the persisted outbox: stored first, sent at once, and retried
//! with backoff by a background task until sent or given up, so a failed send is never lost.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::{
    config::OutboxSettings,
    mail::Mailer,
    sms::SmsSender,
    store::{OutboxMessage, Store},
};

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    mailer: Mailer,
    sms: SmsSender,
    retry: Duration,
    max_attempts: u32,
}

impl Outbox {
    pub fn new(store: Store, mailer: Mailer, sms: SmsSender, settings: &OutboxSettings) -> Self {
        Self {
            store,
            mailer,
            sms,
            retry: Duration::from_secs(settings.retry_interval_secs.max(1)),
            max_attempts: settings.max_attempts.max(1),
        }
    }

    /// Stores a mail and tries it at once; `Ok(true)` when it went out now, `Ok(false)` when it
    /// waits for a retry.
    pub async fn mail(&self, to: &str, subject: &str, body: String) -> anyhow::Result<bool> {
        self.enqueue("mail", to, subject, body).await
    }

    /// Stores an SMS and tries it at once (see [`Outbox::mail`]).
    pub async fn sms(&self, to: &str, text: String) -> anyhow::Result<bool> {
        self.enqueue("sms", to, "", text).await
    }

    async fn enqueue(
        &self,
        channel: &str,
        to: &str,
        subject: &str,
        body: String,
    ) -> anyhow::Result<bool> {
        let message = OutboxMessage {
            id: Uuid::now_v7(),
            channel: channel.to_string(),
            recipient: to.to_string(),
            subject: subject.to_string(),
            body,
            attempts: 0,
            next_attempt_at: Utc::now(),
        };
        self.store.enqueue_message(&message).await?;
        Ok(self.attempt(&message).await)
    }

    /// One try; records the outcome. Whether it was sent.
    async fn attempt(&self, m: &OutboxMessage) -> bool {
        let attempts = m.attempts + 1;
        let result = match m.channel.as_str() {
            "sms" => self.sms.send(&m.recipient, &m.body).await,
            _ => {
                self.mailer
                    .send(&m.recipient, &m.subject, m.body.clone())
                    .await
            }
        };
        let recorded = match &result {
            Ok(()) => self.store.message_sent(m.id, attempts).await,
            Err(err) => {
                let next = (attempts < self.max_attempts).then(|| {
                    let backoff = self
                        .retry
                        .saturating_mul(1 << (attempts - 1).min(16))
                        .min(Duration::from_secs(3600));
                    Utc::now()
                        + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::hours(1))
                });
                match next {
                    Some(_) => {
                        tracing::warn!(message = %m.id, channel = %m.channel, attempts, error = %err, "send failed; will retry")
                    }
                    None => {
                        tracing::error!(message = %m.id, channel = %m.channel, attempts, error = %err, "send failed; giving up")
                    }
                }
                self.store
                    .message_failed(m.id, attempts, &err.to_string(), next)
                    .await
            }
        };
        if let Err(err) = recorded {
            tracing::error!(message = %m.id, error = %err, "outbox state not recorded");
        }
        result.is_ok()
    }

    /// Starts the retry loop on the current runtime.
    pub fn start_retries(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.retry.min(Duration::from_secs(30)));
            loop {
                tick.tick().await;
                let pending = match self.store.pending_messages(100).await {
                    Ok(p) => p,
                    Err(err) => {
                        tracing::warn!(error = %err, "outbox not readable");
                        continue;
                    }
                };
                let now = Utc::now();
                // A message with no attempt yet is being tried by its sender right now, unless
                // it has waited a minute (the broker stopped between storing and sending).
                let stale = now - chrono::Duration::minutes(1);
                let due = pending.iter().filter(|m| {
                    (m.attempts > 0 && m.next_attempt_at <= now)
                        || (m.attempts == 0 && m.next_attempt_at <= stale)
                });
                for m in due {
                    self.attempt(m).await;
                }
            }
        })
    }
}
