-- The customer admits each guest: the account's rule (off, the technician decides per
-- session, always), and the record of every wait in the lobby.
ALTER TABLE accounts ADD COLUMN guest_admission TEXT NOT NULL DEFAULT 'off'
    CHECK (guest_admission IN ('off', 'technician', 'always'));
CREATE TABLE guest_admissions (
    guest_participant_id TEXT PRIMARY KEY,
    session_id           TEXT NOT NULL REFERENCES sessions (id),
    invitation_id        TEXT NOT NULL,
    guest_name           TEXT NOT NULL,
    asked_at             TEXT NOT NULL,
    decision             TEXT,
    decided_by           TEXT,
    decided_at           TEXT
);
CREATE INDEX guest_admissions_session ON guest_admissions (session_id);
CREATE TABLE admission_switches (
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    required          BOOLEAN NOT NULL,
    by_participant_id TEXT NOT NULL,
    at                TEXT NOT NULL
);
