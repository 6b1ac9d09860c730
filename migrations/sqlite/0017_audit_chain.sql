-- A tamper-evident audit log: per account, each entry's place (seq, from 1) and the SHA-256
-- of the entry before it and of itself (src/domain/audit_chain.rs). Entries written before
-- this migration are sealed into the chain when the broker starts.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_chain ON audit_log (account_id, seq) WHERE seq IS NOT NULL;
