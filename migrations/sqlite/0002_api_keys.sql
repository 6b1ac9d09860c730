-- API keys: acting with their user's rights at request time. Only the hash is stored; the
-- visible prefix (e.g. sbk_1a2b3c4d) identifies a key in lists and in the lookup.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    deleted_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
