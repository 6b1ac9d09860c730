-- The broker's core: accounts, users, credentials, policies, sessions and their reports.
-- Portable SQL: ids are UUID text, times are RFC 3339 UTC text, booleans are BOOLEAN.

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('platform', 'customer', 'partner')),
    certified      BOOLEAN NOT NULL DEFAULT FALSE,
    support_access BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TEXT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    username        TEXT NOT NULL,
    -- normalised forms; unique forever, deleted users included
    username_key    TEXT NOT NULL UNIQUE,
    email           TEXT,
    email_key       TEXT UNIQUE,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    phone           TEXT,
    password_hash   TEXT,
    rights          TEXT NOT NULL,
    platform_rights TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL,
    last_login_at   TEXT,
    deleted_at      TEXT
);
CREATE INDEX users_account ON users (account_id);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    via        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    session_id  TEXT NOT NULL,
    via         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT
);
CREATE UNIQUE INDEX policies_name ON policies (account_id, name) WHERE deleted_at IS NULL;

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    subject           TEXT NOT NULL,
    device_id         TEXT,
    owner_user_id     TEXT NOT NULL REFERENCES users (id),
    customer_key_hash TEXT NOT NULL UNIQUE,
    state             TEXT NOT NULL CHECK (state IN ('open', 'ended')),
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    end_reason        TEXT
);
CREATE INDEX sessions_account_state ON sessions (account_id, state);

CREATE TABLE session_participants (
    id           TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id),
    user_id      TEXT,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    joined_at    TEXT NOT NULL,
    left_at      TEXT,
    leave_reason TEXT
);
CREATE INDEX session_participants_session ON session_participants (session_id);

CREATE TABLE invitations (
    id                     TEXT PRIMARY KEY,
    session_id             TEXT NOT NULL REFERENCES sessions (id),
    inviter_participant_id TEXT NOT NULL,
    inviter_user_id        TEXT NOT NULL,
    token_hash             TEXT NOT NULL UNIQUE,
    policy_id              TEXT NOT NULL,
    policy_name            TEXT NOT NULL,
    permissions            TEXT NOT NULL,
    guest_name             TEXT NOT NULL,
    comment                TEXT NOT NULL,
    email                  TEXT,
    created_at             TEXT NOT NULL,
    expires_at             TEXT NOT NULL,
    outcome                TEXT NOT NULL CHECK (outcome IN ('pending', 'redeemed', 'expired', 'revoked')),
    outcome_at             TEXT,
    guest_participant_id   TEXT
);
CREATE INDEX invitations_session ON invitations (session_id);

CREATE TABLE chat_messages (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    seq            BIGINT NOT NULL,
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    text           TEXT NOT NULL,
    sent_at        TEXT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, seq);

CREATE TABLE ownership_changes (
    session_id          TEXT NOT NULL REFERENCES sessions (id),
    seq                 BIGINT NOT NULL,
    from_participant_id TEXT,
    to_participant_id   TEXT NOT NULL,
    changed_at          TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    actor_user_id TEXT,
    actor_name    TEXT NOT NULL,
    via           TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT,
    details       TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);
