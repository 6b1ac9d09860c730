-- The broker's schema on PostgreSQL, as the SQLite migrations 0001 to 0023 leave it: ids are
-- UUID text, times are TIMESTAMPTZ, counters BIGINT, JSON documents text. Later changes add a
-- migration here and one under migrations/sqlite/. Foreign keys are DEFERRABLE (checked at once
-- unless a transaction defers them) so that `support-broker migrate` can copy tables in any order.

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('platform', 'customer', 'partner')),
    certified      BOOLEAN NOT NULL DEFAULT FALSE,
    support_access BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ NOT NULL
, default_policy_id TEXT, customer_number TEXT, guest_admission TEXT NOT NULL DEFAULT 'off'
    CHECK (guest_admission IN ('off', 'technician', 'always')), record_sessions BOOLEAN NOT NULL DEFAULT FALSE);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
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
    created_at      TIMESTAMPTZ NOT NULL,
    last_login_at   TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ
, two_factor TEXT NOT NULL DEFAULT 'off', totp_secret TEXT, totp_last_step BIGINT, totp_pending TEXT, language TEXT NOT NULL DEFAULT 'en');

CREATE INDEX users_account ON users (account_id);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    via        TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
, on_behalf_of TEXT, grant_id TEXT, second_factor_at TIMESTAMPTZ);

CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    via         TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
, token_hash TEXT);

CREATE TABLE policies (
    id          TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    deleted_at  TIMESTAMPTZ
);

CREATE UNIQUE INDEX policies_name ON policies (account_id, name) WHERE deleted_at IS NULL;

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    subject           TEXT NOT NULL,
    device_id         TEXT,
    owner_user_id TEXT NOT NULL,
    customer_key_hash TEXT NOT NULL UNIQUE,
    state             TEXT NOT NULL CHECK (state IN ('open', 'ended')),
    started_at        TIMESTAMPTZ NOT NULL,
    ended_at          TIMESTAMPTZ,
    end_reason        TEXT
, customer_key_sealed TEXT);

CREATE INDEX sessions_account_state ON sessions (account_id, state);

CREATE TABLE session_participants (
    id           TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    user_id      TEXT,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    joined_at    TIMESTAMPTZ NOT NULL,
    left_at      TIMESTAMPTZ,
    leave_reason TEXT
);

CREATE INDEX session_participants_session ON session_participants (session_id);

CREATE TABLE invitations (
    id                     TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    inviter_participant_id TEXT NOT NULL,
    inviter_user_id        TEXT NOT NULL,
    token_hash             TEXT NOT NULL UNIQUE,
    policy_id              TEXT NOT NULL,
    policy_name            TEXT NOT NULL,
    permissions            TEXT NOT NULL,
    guest_name             TEXT NOT NULL,
    comment                TEXT NOT NULL,
    email                  TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    expires_at             TIMESTAMPTZ NOT NULL,
    outcome                TEXT NOT NULL CHECK (outcome IN ('pending', 'redeemed', 'expired', 'revoked')),
    outcome_at             TIMESTAMPTZ,
    guest_participant_id   TEXT
, verified_email TEXT, join_ticket_hash TEXT, join_ticket_expires_at TIMESTAMPTZ);

CREATE INDEX invitations_session ON invitations (session_id);

CREATE TABLE chat_messages (
    id             TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    text           TEXT NOT NULL,
    sent_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX chat_messages_session ON chat_messages (session_id, seq);

CREATE TABLE ownership_changes (
    session_id TEXT NOT NULL,
    seq                 BIGINT NOT NULL,
    from_participant_id TEXT,
    to_participant_id   TEXT NOT NULL,
    changed_at          TIMESTAMPTZ NOT NULL,
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
    at            TIMESTAMPTZ NOT NULL
, seq BIGINT, prev_hash TEXT, hash TEXT, chain_at TEXT);

CREATE INDEX audit_log_account ON audit_log (account_id, at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    deleted_at   TIMESTAMPTZ
);

CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE password_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
, reason TEXT NOT NULL DEFAULT 'new_user');

CREATE INDEX password_tokens_user ON password_tokens (user_id);

CREATE TABLE login_challenges (
    id            TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'totp')),
    code_hash     TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    wrong_guesses BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'burned'))
);

CREATE INDEX login_challenges_user ON login_challenges (user_id);

CREATE TABLE code_guards (
    user_id              TEXT PRIMARY KEY REFERENCES users (id) DEFERRABLE,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    locked_until         TIMESTAMPTZ
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('mail', 'sms')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    given_up_at     TIMESTAMPTZ
);

CREATE INDEX outbox_pending ON outbox (sent_at, given_up_at);

CREATE TABLE device_groups (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX device_groups_name ON device_groups (account_id, name);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    serial       TEXT NOT NULL,
    platform     TEXT NOT NULL,
    model        TEXT NOT NULL DEFAULT '',
    os_version   TEXT NOT NULL DEFAULT '',
    battery      BIGINT,
    last_seen_at TIMESTAMPTZ,
    location     TEXT,
    lost_mode    BOOLEAN NOT NULL DEFAULT FALSE,
    user_id TEXT,
    group_id TEXT,
    -- SHA-256 of the agent's device secret; NULL until enrolled and after a wipe.
    secret_hash  TEXT UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL
, owner_account_id TEXT);

CREATE UNIQUE INDEX devices_serial ON devices (account_id, serial);

CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE enrollment_codes (
    code_hash  TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    group_id TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    device_id  TEXT
, grant_id TEXT, id TEXT, revoked_at TIMESTAMPTZ);

CREATE TABLE device_preassignments (
    account_id TEXT NOT NULL,
    serial     TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, serial)
);

CREATE TABLE device_commands (
    id           TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    action       TEXT NOT NULL,
    params       TEXT NOT NULL,
    status       TEXT NOT NULL,
    result       TEXT,
    requested_by TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    sent_at      TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
, idempotency_key TEXT);

CREATE INDEX device_commands_device ON device_commands (device_id, status);

CREATE TABLE access_requests (
    id                  TEXT PRIMARY KEY,
    partner_account_id TEXT NOT NULL,
    customer_account_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    support_user        BOOLEAN NOT NULL,
    message             TEXT,
    state               TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    decided_at          TIMESTAMPTZ,
    decided_by TEXT
);

CREATE UNIQUE INDEX access_requests_one_pending
    ON access_requests (partner_account_id, customer_account_id) WHERE state = 'pending';

CREATE INDEX access_requests_customer ON access_requests (customer_account_id, state);

CREATE TABLE access_grants (
    id                  TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    partner_account_id TEXT NOT NULL,
    customer_account_id TEXT NOT NULL,
    support_user        BOOLEAN NOT NULL,
    granted_at          TIMESTAMPTZ NOT NULL,
    granted_by TEXT NOT NULL,
    expires_at          TIMESTAMPTZ,
    -- Set when the grant ends: by a revoke (`revoked`) or by its expiry (`expired`).
    ended_at            TIMESTAMPTZ,
    end_reason          TEXT
, scope_groups TEXT, renewal_requested_at TIMESTAMPTZ, renewal_message TEXT, scope_devices TEXT);

CREATE INDEX access_grants_pair ON access_grants (partner_account_id, customer_account_id);

CREATE TABLE chat_chunks (
    session_id TEXT NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    lines      TEXT NOT NULL,
    PRIMARY KEY (session_id, first_seq)
);

CREATE INDEX devices_serial_any ON devices (serial);

CREATE INDEX api_keys_hash ON api_keys (key_hash);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE email_history (
    email_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    since     TIMESTAMPTZ NOT NULL
);

CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    new_email  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX email_changes_user ON email_changes (user_id);

CREATE UNIQUE INDEX enrollment_codes_id ON enrollment_codes (id);

CREATE INDEX audit_log_account_at ON audit_log (account_id, at, id);

CREATE TABLE file_transfers (
    id             TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    offered_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX file_transfers_session ON file_transfers (session_id, offered_at);

CREATE UNIQUE INDEX accounts_customer_number ON accounts (customer_number)
    WHERE customer_number IS NOT NULL;

CREATE UNIQUE INDEX device_commands_idempotency ON device_commands (requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE UNIQUE INDEX audit_log_chain ON audit_log (account_id, seq) WHERE seq IS NOT NULL;

CREATE TABLE invitation_challenges (
    id            TEXT PRIMARY KEY,
    invitation_id TEXT NOT NULL,
    code_hash     TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    wrong_guesses BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'burned'))
);

CREATE INDEX invitation_challenges_invitation ON invitation_challenges (invitation_id, created_at);

CREATE TABLE invitation_guards (
    invitation_id        TEXT PRIMARY KEY REFERENCES invitations (id) DEFERRABLE,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    locked_until         TIMESTAMPTZ
);

CREATE TABLE guest_admissions (
    guest_participant_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    invitation_id        TEXT NOT NULL,
    guest_name           TEXT NOT NULL,
    asked_at             TIMESTAMPTZ NOT NULL,
    decision             TEXT,
    decided_by           TEXT,
    decided_at           TIMESTAMPTZ
);

CREATE INDEX guest_admissions_session ON guest_admissions (session_id);

CREATE TABLE admission_switches (
    session_id TEXT NOT NULL,
    required          BOOLEAN NOT NULL,
    by_participant_id TEXT NOT NULL,
    at                TIMESTAMPTZ NOT NULL
);

-- Foreign keys, added once every table exists (some refer to each other).

ALTER TABLE accounts ADD FOREIGN KEY (default_policy_id) REFERENCES policies (id) DEFERRABLE;

ALTER TABLE users ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE auth_tokens ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE auth_tokens ADD FOREIGN KEY (grant_id) REFERENCES access_grants (id) DEFERRABLE;

ALTER TABLE ws_tickets ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE policies ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE sessions ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE sessions ADD FOREIGN KEY (owner_user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE session_participants ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE invitations ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE chat_messages ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE ownership_changes ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE api_keys ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE password_tokens ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE login_challenges ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE device_groups ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE devices ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE devices ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE devices ADD FOREIGN KEY (group_id) REFERENCES device_groups (id) DEFERRABLE;

ALTER TABLE devices ADD FOREIGN KEY (owner_account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE enrollment_codes ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE enrollment_codes ADD FOREIGN KEY (group_id) REFERENCES device_groups (id) DEFERRABLE;

ALTER TABLE enrollment_codes ADD FOREIGN KEY (created_by) REFERENCES users (id) DEFERRABLE;

ALTER TABLE enrollment_codes ADD FOREIGN KEY (grant_id) REFERENCES access_grants (id) DEFERRABLE;

ALTER TABLE device_preassignments ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE device_preassignments ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE device_commands ADD FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE DEFERRABLE;

ALTER TABLE device_commands ADD FOREIGN KEY (account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE device_commands ADD FOREIGN KEY (requested_by) REFERENCES users (id) DEFERRABLE;

ALTER TABLE access_requests ADD FOREIGN KEY (partner_account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE access_requests ADD FOREIGN KEY (customer_account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE access_requests ADD FOREIGN KEY (requested_by) REFERENCES users (id) DEFERRABLE;

ALTER TABLE access_requests ADD FOREIGN KEY (decided_by) REFERENCES users (id) DEFERRABLE;

ALTER TABLE access_grants ADD FOREIGN KEY (request_id) REFERENCES access_requests (id) DEFERRABLE;

ALTER TABLE access_grants ADD FOREIGN KEY (partner_account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE access_grants ADD FOREIGN KEY (customer_account_id) REFERENCES accounts (id) DEFERRABLE;

ALTER TABLE access_grants ADD FOREIGN KEY (granted_by) REFERENCES users (id) DEFERRABLE;

ALTER TABLE chat_chunks ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE recovery_codes ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE email_history ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE email_changes ADD FOREIGN KEY (user_id) REFERENCES users (id) DEFERRABLE;

ALTER TABLE file_transfers ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE invitation_challenges ADD FOREIGN KEY (invitation_id) REFERENCES invitations (id) DEFERRABLE;

ALTER TABLE guest_admissions ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;

ALTER TABLE admission_switches ADD FOREIGN KEY (session_id) REFERENCES sessions (id) DEFERRABLE;
