-- The login token a WebSocket ticket was issued from: the ticket acts as that token does
-- (a partner support token's grant, a revoked token), not just as its user.
ALTER TABLE ws_tickets ADD COLUMN token_hash TEXT;
