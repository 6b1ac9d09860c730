-- Invitations bound to a person: with an email, the link works only after a code mailed to
-- that address is entered on the join page (the caps of login codes, per invitation).
CREATE TABLE invitation_challenges (
    id            TEXT PRIMARY KEY,
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    code_hash     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    wrong_guesses INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'burned'))
);
CREATE INDEX invitation_challenges_invitation ON invitation_challenges (invitation_id, created_at);
CREATE TABLE invitation_guards (
    invitation_id        TEXT PRIMARY KEY REFERENCES invitations (id),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    locked_until         TEXT
);
-- What a right code gives: the verified address (in the report) and a ticket for the
-- WebSocket of this one invitation (hashed, short-lived).
ALTER TABLE invitations ADD COLUMN verified_email TEXT;
ALTER TABLE invitations ADD COLUMN join_ticket_hash TEXT;
ALTER TABLE invitations ADD COLUMN join_ticket_expires_at TEXT;
