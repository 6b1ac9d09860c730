-- Grants the customer shapes: narrowed to device groups (a JSON array of group ids; NULL: all
-- of the account's devices), and the partner's request to renew one before it expires.
ALTER TABLE access_grants ADD COLUMN scope_groups TEXT;
ALTER TABLE access_grants ADD COLUMN renewal_requested_at TEXT;
ALTER TABLE access_grants ADD COLUMN renewal_message TEXT;
