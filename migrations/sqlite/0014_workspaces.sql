-- The customer link, sealed with the server key (secret_box), so that every technician of the
-- session can be given it again; the hash stays the lookup key.
ALTER TABLE sessions ADD COLUMN customer_key_sealed TEXT;

-- Files sent in a session (file_offer): who, what, how big, when; never the content.
CREATE TABLE file_transfers (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions (id),
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    offered_at     TEXT NOT NULL
);
CREATE INDEX file_transfers_session ON file_transfers (session_id, offered_at);
