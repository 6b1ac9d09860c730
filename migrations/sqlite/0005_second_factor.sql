-- Second factor: a code sent over email or SMS, or an authenticator app (TOTP, RFC 6238).
ALTER TABLE users ADD COLUMN two_factor TEXT NOT NULL DEFAULT 'off';
-- The TOTP shared secret (base32) and the last time step accepted, so none is accepted twice.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- One login attempt waiting for its code. The code is stored only hashed.
CREATE TABLE login_challenges (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    channel       TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'totp')),
    code_hash     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    wrong_guesses INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'burned'))
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);

-- Guessing is capped per user, not per code: a new code never resets the count.
CREATE TABLE code_guards (
    user_id              TEXT PRIMARY KEY REFERENCES users (id),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    locked_until         TEXT
);
