-- Step-up for destructive device actions: when the token's user last proved a second factor
-- (a login through /auth/verify), and an idempotency key per user for device commands, so
-- that a repeated click is one command (decided by the unique index).
ALTER TABLE auth_tokens ADD COLUMN second_factor_at TEXT;
ALTER TABLE device_commands ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX device_commands_idempotency ON device_commands (requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
