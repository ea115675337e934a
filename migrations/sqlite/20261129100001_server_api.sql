-- Server API (1.1), SQLite flavour; keep in step with ../postgres/.

-- Disconnects asked through the server API. Each node polls the recent rows, closes the
-- user's connections it holds and writes how many in user_disconnect_counts, so the node
-- that took the request can answer with a cluster-wide count.
CREATE TABLE user_disconnects (
    disconnect_id TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    requested_at  BIGINT NOT NULL
);
CREATE INDEX user_disconnects_recent ON user_disconnects (requested_at);

CREATE TABLE user_disconnect_counts (
    disconnect_id TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    connections   BIGINT NOT NULL,
    PRIMARY KEY (disconnect_id, node_id)
);
