-- Accounts that record their sessions (screen, input, files, chat, who did what).
ALTER TABLE accounts ADD COLUMN record_sessions BOOLEAN NOT NULL DEFAULT FALSE;
