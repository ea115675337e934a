//! The group commit: many room changes, possibly of many rooms, in one transaction.
//!
//! For each room in the batch (in room id order, so two nodes never lock in opposite
//! orders) the transaction locks the room's state row, applies the changes in their order
//! (giving each event `last_seq + 1` and each accepted state change `version + 1`), appends
//! the events and writes the new state. The database is therefore the per-room sequencer:
//! the order holds across nodes and whether or not Redis is up, and an event exists for
//! clients only once it is durable.

use super::rooms::state_from_row;
use super::{column, Database, StorageError};
use crate::event::{Actor, Event, EventKind};
use crate::ids::{Epoch, RoomId};
use crate::playback::{apply_media, Media, PlaybackCommand, PlaybackState};
use serde_json::json;
use sqlx::AnyPool;
use std::collections::{BTreeMap, HashMap};

/// One change a client (or the server) asks of a room.
#[derive(Clone, Debug)]
pub struct RoomChange {
    pub room: RoomId,
    pub by: Option<Actor>,
    pub kind: RoomChangeKind,
}

#[derive(Clone, Debug)]
pub enum RoomChangeKind {
    Playback(PlaybackCommand),
    Media(Media),
    Chat(String),
    MemberJoined(Actor),
    MemberLeft(Actor),
    Archive,
}

/// What became of one change, in the order the changes were given.
#[derive(Clone, Debug)]
pub enum ChangeOutcome {
    Committed(CommittedChange),
    Rejected(Rejection),
}

/// A durable event and the room's state right after it.
#[derive(Clone, Debug)]
pub struct CommittedChange {
    pub event: Event,
    pub state: PlaybackState,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// No such room, or it is archived.
    NotFound,
    /// `if_version` did not match; here is the current state.
    Conflict(PlaybackState),
}

const EVENT_COLUMNS: usize = 8;

impl Database {
    /// Commits `changes` in one transaction and reports each one's outcome. An `Err` means
    /// nothing was committed. The statements do not grow with the batch: one locking read
    /// of every room, one insert of every event, one upsert of every state (and one update
    /// for archives), because each statement is a round trip to the database.
    /// Runs on the primary (see `primary`): a batch that finds no writable host waits for
    /// a failover up to `FAILOVER_WAIT`, and one that fails makes the link search again.
    pub async fn commit_changes(
        &self,
        changes: &[RoomChange],
        now_ms: i64,
    ) -> Result<Vec<ChangeOutcome>, StorageError> {
        self.on_primary(|pool| self.commit_batch(pool, changes, now_ms))
            .await
    }

    async fn commit_batch(
        &self,
        pool: AnyPool,
        changes: &[RoomChange],
        now_ms: i64,
    ) -> Result<Vec<ChangeOutcome>, StorageError> {
        let mut by_room: BTreeMap<&RoomId, Vec<usize>> = BTreeMap::new();
        for (i, change) in changes.iter().enumerate() {
            by_room.entry(&change.room).or_default().push(i);
        }
        let rooms: Vec<&RoomId> = by_room.keys().copied().collect();
        let mut tx = self.begin_write(&pool).await?;
        let mut positions = lock_rooms(&mut tx, &rooms, self.lock_clause()).await?;
        let mut outcomes: Vec<Option<ChangeOutcome>> = vec![None; changes.len()];
        let mut changed: Vec<&RoomId> = Vec::new();
        let mut archived: Vec<&RoomId> = Vec::new();
        for (room, indices) in &by_room {
            let Some(position) = positions.get_mut(*room).filter(|p| !p.archived) else {
                for &i in indices {
                    outcomes[i] = Some(ChangeOutcome::Rejected(Rejection::NotFound));
                }
                continue;
            };
            let before = position.last_seq;
            for &i in indices {
                outcomes[i] = Some(position.apply(&changes[i], now_ms));
            }
            if position.archived {
                archived.push(room);
            }
            if position.last_seq != before {
                changed.push(room);
            }
        }
        let touched: Vec<(&RoomId, &RoomPosition)> = changed
            .iter()
            .filter_map(|room| positions.get(*room).map(|p| (*room, p)))
            .collect();
        // The events to store are the ones in the outcomes: borrowed, not copied.
        let events: Vec<&Event> = outcomes
            .iter()
            .filter_map(|o| match o {
                Some(ChangeOutcome::Committed(done)) => Some(&done.event),
                _ => None,
            })
            .collect();
        if !events.is_empty() {
            insert_events(&mut tx, &events).await?;
            upsert_states(&mut tx, &touched).await?;
        }
        if !archived.is_empty() {
            let placeholders = placeholders(2, archived.len());
            let sql = format!("UPDATE rooms SET archived_at = $1 WHERE id IN ({placeholders})");
            let mut query = sqlx::query(&sql).bind(now_ms);
            for room in &archived {
                query = query.bind(room.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        outcomes
            .into_iter()
            .map(|o| {
                o.ok_or_else(|| {
                    StorageError::Corrupt("a change was left without an outcome".into())
                })
            })
            .collect()
    }

    /// The room's epoch, last seq and state as committed, for a node that starts serving
    /// a room. `None` when the room is unknown or archived.
    pub async fn room_position(
        &self,
        room: &RoomId,
    ) -> Result<Option<(Epoch, i64, PlaybackState)>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT s.epoch, s.last_seq, s.media_url, s.media_title, s.playing, s.position, s.rate, \
                     s.updated_at, s.version FROM room_state s JOIN rooms r ON r.id = s.room_id \
                     WHERE s.room_id = $1 AND r.archived_at IS NULL",
                )
                .bind(room.as_str())
                .fetch_optional(&pool)
                .await?)
            })
            .await?;
        row.map(|row| {
            Ok((
                Epoch::from(column::<String>(&row, "epoch")?),
                column(&row, "last_seq")?,
                state_from_row(&row)?,
            ))
        })
        .transpose()
    }
}

impl Database {
    /// The last seq of each of `rooms` (unknown rooms are left out).
    pub async fn last_seqs(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, i64)>, StorageError> {
        let mut out = Vec::with_capacity(rooms.len());
        // Chunks keep the statement small; a node serves at most a few thousand rooms.
        for chunk in rooms.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT room_id, last_seq FROM room_state WHERE room_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for room in chunk {
                query = query.bind(room.as_str());
            }
            let rows = self
                .on_primary(|pool| async move { Ok(query.fetch_all(&pool).await?) })
                .await?;
            for row in rows {
                out.push((
                    RoomId::from(column::<String>(&row, "room_id")?),
                    column(&row, "last_seq")?,
                ));
            }
        }
        Ok(out)
    }
}

/// A room's row as locked for the batch, changed in memory as the batch applies.
struct RoomPosition {
    epoch: Epoch,
    last_seq: i64,
    state: PlaybackState,
    archived: bool,
}

impl RoomPosition {
    /// Applies one change: the event it makes, or why not.
    fn apply(&mut self, change: &RoomChange, now_ms: i64) -> ChangeOutcome {
        if self.archived {
            return ChangeOutcome::Rejected(Rejection::NotFound);
        }
        let (kind, data) = match &change.kind {
            RoomChangeKind::Playback(cmd) => match cmd.apply(&self.state, now_ms) {
                Some(next) => {
                    self.state = next;
                    (
                        EventKind::Playback,
                        json!({"action": cmd.action.as_str(), "state": &self.state}),
                    )
                }
                None => return ChangeOutcome::Rejected(Rejection::Conflict(self.state.clone())),
            },
            RoomChangeKind::Media(media) => {
                self.state = apply_media(&self.state, media.clone(), now_ms);
                (EventKind::Media, json!({"state": &self.state}))
            }
            RoomChangeKind::Chat(text) => (EventKind::Chat, json!({"text": text})),
            RoomChangeKind::MemberJoined(who) => (
                EventKind::MemberJoined,
                json!({"user_id": who.user_id, "name": who.name}),
            ),
            RoomChangeKind::MemberLeft(who) => (
                EventKind::MemberLeft,
                json!({"user_id": who.user_id, "name": who.name}),
            ),
            RoomChangeKind::Archive => {
                self.archived = true;
                (EventKind::RoomArchived, json!({}))
            }
        };
        self.last_seq += 1;
        let event = Event {
            room: change.room.clone(),
            epoch: self.epoch.clone(),
            seq: self.last_seq,
            kind,
            by: change.by.clone(),
            data,
            server_time: now_ms,
        };
        ChangeOutcome::Committed(CommittedChange {
            event,
            state: self.state.clone(),
        })
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
) -> Result<HashMap<RoomId, RoomPosition>, StorageError> {
    let sql = format!(
        "SELECT s.room_id, s.epoch, s.last_seq, s.media_url, s.media_title, s.playing, s.position, \
         s.rate, s.updated_at, s.version, r.archived_at FROM room_state s JOIN rooms r ON r.id = s.room_id \
         WHERE s.room_id IN ({}) ORDER BY s.room_id{lock}",
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
            RoomPosition {
                epoch: Epoch::from(column::<String>(&row, "epoch")?),
                last_seq: column(&row, "last_seq")?,
                state: state_from_row(&row)?,
                archived: column::<Option<i64>>(&row, "archived_at")?.is_some(),
            },
        );
    }
    Ok(positions)
}

/// Writes the new state and last seq of every room the batch changed, in one statement.
async fn upsert_states(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rooms: &[(&RoomId, &RoomPosition)],
) -> Result<(), StorageError> {
    const COLUMNS: usize = 10;
    let values: Vec<String> = (0..rooms.len())
        .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
        .collect();
    let sql = format!(
        "INSERT INTO room_state (room_id, epoch, last_seq, media_url, media_title, playing, position, \
         rate, updated_at, version) VALUES {} ON CONFLICT (room_id) DO UPDATE SET \
         last_seq = excluded.last_seq, media_url = excluded.media_url, media_title = excluded.media_title, \
         playing = excluded.playing, position = excluded.position, rate = excluded.rate, \
         updated_at = excluded.updated_at, version = excluded.version",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (room, p) in rooms {
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
            .bind(p.state.version);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[&Event],
) -> Result<(), StorageError> {
    // A few hundred rows at most (history.max_batch), far below Postgres's bind limit.
    let mut sql = String::from(
        "INSERT INTO room_events (room_id, seq, epoch, kind, by_user_id, by_name, data, server_time) VALUES ",
    );
    for i in 0..events.len() {
        let b = i * EVENT_COLUMNS;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8
        ));
    }
    let mut query = sqlx::query(&sql);
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
    query.execute(&mut **tx).await?;
    Ok(())
}
