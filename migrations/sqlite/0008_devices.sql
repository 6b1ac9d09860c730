-- Devices of an account, their enrollment, pre-assignments and the commands sent to them.
CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    serial       TEXT NOT NULL,
    platform     TEXT NOT NULL,
    model        TEXT NOT NULL DEFAULT '',
    os_version   TEXT NOT NULL DEFAULT '',
    battery      INTEGER,
    last_seen_at TEXT,
    location     TEXT,
    lost_mode    BOOLEAN NOT NULL DEFAULT FALSE,
    user_id      TEXT REFERENCES users (id),
    group_id     TEXT REFERENCES device_groups (id),
    -- SHA-256 of the agent's device secret; NULL until enrolled and after a wipe.
    secret_hash  TEXT UNIQUE,
    created_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX devices_serial ON devices (account_id, serial);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE enrollment_codes (
    code_hash  TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    group_id   TEXT REFERENCES device_groups (id),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    device_id  TEXT
);

-- A serial named before its device enrolls: linked to the user the moment it does.
CREATE TABLE device_preassignments (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    serial     TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (account_id, serial)
);

CREATE TABLE device_commands (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    action       TEXT NOT NULL,
    params       TEXT NOT NULL,
    status       TEXT NOT NULL,
    result       TEXT,
    requested_by TEXT REFERENCES users (id),
    created_at   TEXT NOT NULL,
    sent_at      TEXT,
    finished_at  TEXT,
    updated_at   TEXT NOT NULL
);
CREATE INDEX device_commands_device ON device_commands (device_id, status);
