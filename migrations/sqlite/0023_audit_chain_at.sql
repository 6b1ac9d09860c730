-- The time text an audit entry's hash was computed over, kept only where the `at` column
-- cannot hold it exactly: entries copied into PostgreSQL (which keeps microseconds) from a
-- SQLite database written with nanoseconds. NULL: the hash is over `at` itself.
ALTER TABLE audit_log ADD COLUMN chain_at TEXT;
