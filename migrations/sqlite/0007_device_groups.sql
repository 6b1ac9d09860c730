-- Device groups of an account. A user sees the devices of the groups its rights name.
CREATE TABLE device_groups (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX device_groups_name ON device_groups (account_id, name);
