-- Running an account from the console (issue 17).

-- The language a user's mails are written in (`en` or `de`).
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en';

-- Every email address a user ever held: an address is usable once ever, so a changed address
-- stays taken. The primary key decides a race between two claims.
CREATE TABLE email_history (
    email_key TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id),
    since     TEXT NOT NULL
);
INSERT INTO email_history (email_key, user_id, since)
    SELECT email_key, id, created_at FROM users WHERE email_key IS NOT NULL;

-- A new address waits here until a link mailed to it is opened (single use, expires).
CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    new_email  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX email_changes_user ON email_changes (user_id);

-- Enrollment codes get an id to be listed and revoked by (the code itself is stored hashed).
ALTER TABLE enrollment_codes ADD COLUMN id TEXT;
UPDATE enrollment_codes SET id = lower(hex(randomblob(16))) WHERE id IS NULL;
CREATE UNIQUE INDEX enrollment_codes_id ON enrollment_codes (id);
ALTER TABLE enrollment_codes ADD COLUMN revoked_at TEXT;

-- The security policy that new invitations of the account start with.
ALTER TABLE accounts ADD COLUMN default_policy_id TEXT REFERENCES policies (id);

-- The audit log is read newest first per account, filtered and paged.
CREATE INDEX IF NOT EXISTS audit_log_account_at ON audit_log (account_id, at, id);
