-- Trust boundaries (issue 14): what was made through a partner grant dies with it.
-- The grant an enrollment code was minted through (NULL: by the account's own user).
ALTER TABLE enrollment_codes ADD COLUMN grant_id TEXT REFERENCES access_grants (id);
-- Serials are looked up across accounts at enrollment (an enrolled device is never re-keyed).
CREATE INDEX devices_serial_any ON devices (serial);
-- A connection opened with an API key is re-checked by the key's hash.
CREATE INDEX api_keys_hash ON api_keys (key_hash);
-- Why a set-password link was made (new_user, reset, admin): the reset cap counts its own.
ALTER TABLE password_tokens ADD COLUMN reason TEXT NOT NULL DEFAULT 'new_user';
-- An authenticator app is switched on only after a first code confirms it: the new secret
-- waits here (sealed) until then.
ALTER TABLE users ADD COLUMN totp_pending TEXT;
-- Recovery codes for a lost authenticator app: ten per confirmation, stored hashed, each
-- usable once.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, code_hash)
);
