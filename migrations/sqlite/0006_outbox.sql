-- Every outgoing mail and SMS, so that a failed send is retried and never lost. The body
-- (which may carry a link or a code) is cleared once the message is sent or given up.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('mail', 'sms')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    given_up_at     TEXT
);
CREATE INDEX outbox_pending ON outbox (sent_at, given_up_at);
