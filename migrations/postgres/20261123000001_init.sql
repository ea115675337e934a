-- synctv schema, Postgres flavour. Keep in step with ../sqlite/.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE rooms (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    owner_id      TEXT NOT NULL REFERENCES users (id),
    control       TEXT NOT NULL,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    archived_at   BIGINT
);
CREATE INDEX rooms_listing ON rooms (created_at DESC, id DESC) WHERE archived_at IS NULL;

-- One row per room: its playback state, and where its history stands. The history commit
-- locks this row, so it is the per-room sequencer.
CREATE TABLE room_state (
    room_id     TEXT PRIMARY KEY REFERENCES rooms (id),
    epoch       TEXT NOT NULL,
    last_seq    BIGINT NOT NULL,
    media_url   TEXT,
    media_title TEXT,
    playing     BIGINT NOT NULL,
    position    DOUBLE PRECISION NOT NULL,
    rate        DOUBLE PRECISION NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

-- The durable history: one order per room, seq without gaps.
CREATE TABLE room_events (
    room_id     TEXT NOT NULL REFERENCES rooms (id),
    seq         BIGINT NOT NULL,
    epoch       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    by_user_id  TEXT,
    by_name     TEXT,
    data        TEXT NOT NULL,
    server_time BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);
