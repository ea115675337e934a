-- Connecting safely (1.1), Postgres flavour; keep in step with ../sqlite/.
-- Kept in the database so that every node of a cluster sees them.

-- WebSocket tickets: single use, short-lived. Only a SHA-256 of each ticket is kept, so
-- a copy of this table lets no one connect.
CREATE TABLE ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ws_tickets_expiry ON ws_tickets (expires_at);

-- Tokens revoked by logout, until they would have expired anyway. Each node polls the
-- recent rows.
CREATE TABLE revoked_tokens (
    token_id   TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_recent ON revoked_tokens (revoked_at);
