-- Partner access: requests of certified partners, the customer's grants, and what they enable.
CREATE TABLE access_requests (
    id                  TEXT PRIMARY KEY,
    partner_account_id  TEXT NOT NULL REFERENCES accounts (id),
    customer_account_id TEXT NOT NULL REFERENCES accounts (id),
    requested_by        TEXT NOT NULL REFERENCES users (id),
    support_user        BOOLEAN NOT NULL,
    message             TEXT,
    state               TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    decided_at          TEXT,
    decided_by          TEXT REFERENCES users (id)
);
-- One pending request per partner and customer (a partial index: SQLite and PostgreSQL alike).
CREATE UNIQUE INDEX access_requests_one_pending
    ON access_requests (partner_account_id, customer_account_id) WHERE state = 'pending';
CREATE INDEX access_requests_customer ON access_requests (customer_account_id, state);

CREATE TABLE access_grants (
    id                  TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL REFERENCES access_requests (id),
    partner_account_id  TEXT NOT NULL REFERENCES accounts (id),
    customer_account_id TEXT NOT NULL REFERENCES accounts (id),
    support_user        BOOLEAN NOT NULL,
    granted_at          TEXT NOT NULL,
    granted_by          TEXT NOT NULL REFERENCES users (id),
    expires_at          TEXT,
    -- Set when the grant ends: by a revoke (`revoked`) or by its expiry (`expired`).
    ended_at            TEXT,
    end_reason          TEXT
);
CREATE INDEX access_grants_pair ON access_grants (partner_account_id, customer_account_id);

-- A device a partner assigned to a customer: the partner it returns to on unassign.
ALTER TABLE devices ADD COLUMN owner_account_id TEXT REFERENCES accounts (id);

-- A partner's support token acts inside the customer account through a grant.
ALTER TABLE auth_tokens ADD COLUMN grant_id TEXT REFERENCES access_grants (id);
