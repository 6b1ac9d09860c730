-- Whether a session is recorded is decided once, when it is made (the account's
-- record_sessions then): a session that moves home goes on as it began, whatever the account
-- says by then. Sessions open at the upgrade take the account's setting of now.
ALTER TABLE sessions ADD COLUMN recorded BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE sessions SET recorded = (SELECT a.record_sessions FROM accounts a WHERE a.id = sessions.account_id)
WHERE state = 'open';
