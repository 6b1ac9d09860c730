-- A live session's chat is stored in chunks: one row per session per persistence interval
-- (up to 1 s by default) holding that stretch of the transcript as a JSON array. One row per
-- chunk instead of one per message keeps the WAL small under load (docs/performance.md).
-- Rows written to chat_messages by earlier versions stay readable; the report merges both.
CREATE TABLE chat_chunks (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    lines      TEXT NOT NULL,
    PRIMARY KEY (session_id, first_seq)
);
