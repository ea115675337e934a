-- Webhooks (1.1), SQLite flavour; keep in step with ../postgres/.
-- The durable history is the source: one node at a time (the lease holder) reads each
-- room's new events past its cursor, turns them into deliveries in the outbox (in the
-- same transaction that moves the cursor), and sends each room's deliveries in order.

-- Who sends: one row, held for a short time and renewed by its holder.
CREATE TABLE webhook_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- How far each room's history was turned into deliveries.
CREATE TABLE webhook_cursors (
    room_id  TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- Who is present in each room, as the history says: decides room_occupied and
-- room_vacated.
CREATE TABLE webhook_presence (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Deliveries not yet acknowledged by the receiver. position orders a room's
-- deliveries (seq * 4 plus the delivery's place among those of one event).
CREATE TABLE webhook_outbox (
    delivery_id     TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL,
    position        BIGINT NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_order ON webhook_outbox (room_id, position);
