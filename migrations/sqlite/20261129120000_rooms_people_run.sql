-- Rooms people run (1.1), SQLite flavour; keep in step with ../postgres/.
-- Stored with the room's state row, which the history commit locks, so every change of
-- them is decided in the room's order (see synctv-core/src/sequencer.rs).
-- The media's duration in ms: an integer, because sqlx's Any driver declares a NULL
-- double as a 4-byte float on Postgres, and a statement prepared with it then refuses
-- an 8-byte one ("incorrect binary data format").
ALTER TABLE room_state ADD COLUMN media_duration_ms BIGINT;
-- The buffering waiters a start is held for (a JSON list; NULL: not waiting), and when
-- the start happens without them.
ALTER TABLE room_state ADD COLUMN waiting_for TEXT;
ALTER TABLE room_state ADD COLUMN wait_until BIGINT;
-- Admins, bans, mutes and the waiters' statuses (JSON; NULL: none yet).
ALTER TABLE room_state ADD COLUMN rules TEXT;
-- The queue (JSON; NULL: empty), and its length for room listings.
ALTER TABLE room_state ADD COLUMN queue TEXT;
ALTER TABLE room_state ADD COLUMN queue_length BIGINT;

-- Each member's latest drift report (ms), written by the node that received it (a batch
-- every second), so that GET /members on any node shows it.
CREATE TABLE member_drift (
    room_id     TEXT NOT NULL REFERENCES rooms (id),
    user_id     TEXT NOT NULL,
    drift_ms    DOUBLE PRECISION NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
