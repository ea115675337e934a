//! The group commit through the sqlx pool: Postgres (and an in-memory SQLite, which a
//! second connection could not see).
//!
//! The statements do not grow with the batch, because each is a round trip to the
//! database: one locking read of every room (`FOR UPDATE`, in room id order), then one
//! statement that appends every event and writes every state (and one update for
//! archives).

use super::commit::{apply_batch, group_by_room};
use super::room_row::{duration_to_ms, needs_queue, row_columns, row_from_any, WrittenExtras};
use super::{column, Backend, ChangeOutcome, Database, RoomChange, StorageError};
use crate::event::Event;
use crate::ids::RoomId;
use crate::sequencer::{RoomRow, Sequencer};
use sqlx::AnyPool;
use std::collections::HashMap;

const EVENT_COLUMNS: usize = 8;

impl Database {
    pub(super) async fn commit_through_pool(
        &self,
        pool: AnyPool,
        changes: &[RoomChange],
        sequencer: Sequencer,
    ) -> Result<Vec<ChangeOutcome>, StorageError> {
        let by_room = group_by_room(changes);
        let rooms: Vec<&RoomId> = by_room.keys().copied().collect();
        let mut tx = self.begin_write(&pool).await?;
        // The queue is read only when a change of the batch needs it (rarely: queue
        // changes and `next`); a batch that does reads it for all its rooms.
        let with_queue = changes.iter().any(needs_queue);
        let mut positions = lock_rooms(&mut tx, &rooms, self.lock_clause(), with_queue).await?;
        let applied = apply_batch(changes, &by_room, &mut positions, sequencer)?;
        let events: Vec<&Event> = applied.events().collect();
        if !events.is_empty() {
            let touched: Vec<(&RoomId, &RoomRow, WrittenExtras)> = applied
                .changed
                .iter()
                .filter_map(|room| {
                    positions
                        .get(*room)
                        .map(|p| (*room, p, WrittenExtras::of(p)))
                })
                .collect();
            write_batch(&mut tx, self.backend(), &events, &touched).await?;
        }
        if !applied.archived.is_empty() {
            let placeholders = placeholders(2, applied.archived.len());
            let sql = format!("UPDATE rooms SET archived_at = $1 WHERE id IN ({placeholders})");
            let mut query = sqlx::query(&sql).bind(sequencer.now_ms);
            for room in &applied.archived {
                query = query.bind(room.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(applied.outcomes)
    }
}

/// `$first, $first+1, ...` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and locks the state rows of `rooms` (in id order: two nodes never lock in
/// opposite orders). Unknown rooms are absent from the answer.
async fn lock_rooms(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rooms: &[&RoomId],
    lock: &str,
    with_queue: bool,
) -> Result<HashMap<RoomId, RoomRow>, StorageError> {
    let sql = format!(
        "SELECT {} FROM room_state s JOIN rooms r ON r.id = s.room_id \
         WHERE s.room_id IN ({}) ORDER BY s.room_id{lock}",
        row_columns(with_queue),
        placeholders(1, rooms.len())
    );
    let mut query = sqlx::query(&sql);
    for room in rooms {
        query = query.bind(room.as_str());
    }
    let mut positions = HashMap::with_capacity(rooms.len());
    for row in query.fetch_all(&mut **tx).await? {
        positions.insert(
            RoomId::from(column::<String>(&row, "room_id")?),
            row_from_any(&row)?,
        );
    }
    Ok(positions)
}

const STATE_COLUMNS: usize = 16;
const STATE_COLUMN_NAMES: &str = "room_id, epoch, last_seq, media_url, media_title, playing, \
    position, rate, updated_at, version, media_duration_ms, waiting_for, wait_until, rules, queue, \
    queue_length";
/// Rules and queue are bound NULL when unchanged: the stored value stays.
const STATE_UPSERT: &str = "ON CONFLICT (room_id) DO UPDATE SET last_seq = excluded.last_seq, \
    media_url = excluded.media_url, media_title = excluded.media_title, \
    playing = excluded.playing, position = excluded.position, rate = excluded.rate, \
    updated_at = excluded.updated_at, version = excluded.version, \
    media_duration_ms = excluded.media_duration_ms, waiting_for = excluded.waiting_for, \
    wait_until = excluded.wait_until, rules = COALESCE(excluded.rules, room_state.rules), \
    queue = COALESCE(excluded.queue, room_state.queue), \
    queue_length = COALESCE(excluded.queue_length, room_state.queue_length)";
const EVENT_COLUMN_NAMES: &str =
    "room_id, seq, epoch, kind, by_user_id, by_name, data, server_time";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Appends `events` and writes the new state of `rooms`. On Postgres in one statement
/// (the insert is a data-modifying `WITH`, which always runs to completion): one round
/// trip fewer per batch. SQLite has no such `WITH`, so it takes two.
async fn write_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    events: &[&Event],
    rooms: &[(&RoomId, &RoomRow, WrittenExtras)],
) -> Result<(), StorageError> {
    // A few hundred rows at most (history.max_batch), far below Postgres's bind limit.
    let insert = format!(
        "INSERT INTO room_events ({EVENT_COLUMN_NAMES}) VALUES {}",
        rows(1, EVENT_COLUMNS, events.len())
    );
    let first_state = 1 + events.len() * EVENT_COLUMNS;
    match backend {
        Backend::Postgres => {
            let sql = format!(
                "WITH appended AS ({insert}) INSERT INTO room_state ({STATE_COLUMN_NAMES}) \
                 VALUES {} {STATE_UPSERT}",
                rows(first_state, STATE_COLUMNS, rooms.len())
            );
            let query = bind_states(bind_events(sqlx::query(&sql), events), rooms);
            query.execute(&mut **tx).await?;
        }
        Backend::Sqlite => {
            bind_events(sqlx::query(&insert), events)
                .execute(&mut **tx)
                .await?;
            let sql = format!(
                "INSERT INTO room_state ({STATE_COLUMN_NAMES}) VALUES {} {STATE_UPSERT}",
                rows(1, STATE_COLUMNS, rooms.len())
            );
            bind_states(sqlx::query(&sql), rooms)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// `($first, ...), (...)`: `count` rows of `columns` placeholders.
fn rows(first: usize, columns: usize, count: usize) -> String {
    (0..count)
        .map(|i| format!("({})", placeholders(first + i * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bind_events<'q>(mut query: AnyQuery<'q>, events: &[&'q Event]) -> AnyQuery<'q> {
    for e in events {
        query = query
            .bind(e.room.as_str())
            .bind(e.seq)
            .bind(e.epoch.as_str())
            .bind(e.kind.as_str())
            .bind(e.by.as_ref().map(|b| b.user_id.as_str()))
            .bind(e.by.as_ref().map(|b| b.name.as_str()))
            .bind(e.data.to_string())
            .bind(e.server_time);
    }
    query
}

fn bind_states<'q>(
    mut query: AnyQuery<'q>,
    rooms: &'q [(&'q RoomId, &'q RoomRow, WrittenExtras)],
) -> AnyQuery<'q> {
    for (room, p, extras) in rooms {
        let media = p.state.media.as_ref();
        query = query
            .bind(room.as_str())
            .bind(p.epoch.as_str())
            .bind(p.last_seq)
            .bind(media.map(|m| m.url.as_str()))
            .bind(media.and_then(|m| m.title.as_deref()))
            .bind(i64::from(p.state.playing))
            .bind(p.state.position)
            .bind(p.state.rate)
            .bind(p.state.updated_at)
            .bind(p.state.version)
            .bind(duration_to_ms(media.and_then(|m| m.duration)))
            .bind(extras.waiting_for.as_deref())
            .bind(p.state.wait_until)
            .bind(extras.rules.as_deref())
            .bind(extras.queue.as_deref())
            .bind(extras.queue_length);
    }
    query
}
