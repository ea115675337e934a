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
use std::collections::BTreeMap;

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
    /// nothing was committed.
    pub async fn commit_changes(
        &self,
        changes: &[RoomChange],
        now_ms: i64,
    ) -> Result<Vec<ChangeOutcome>, StorageError> {
        let mut by_room: BTreeMap<&RoomId, Vec<usize>> = BTreeMap::new();
        for (i, change) in changes.iter().enumerate() {
            by_room.entry(&change.room).or_default().push(i);
        }
        let mut outcomes: Vec<Option<ChangeOutcome>> = vec![None; changes.len()];
        let lock = self.lock_clause();
        let mut tx = self.pool().begin().await?;
        for (room, indices) in by_room {
            let sql = format!(
                "SELECT s.epoch, s.last_seq, s.media_url, s.media_title, s.playing, s.position, s.rate, \
                 s.updated_at, s.version, r.archived_at FROM room_state s JOIN rooms r ON r.id = s.room_id \
                 WHERE s.room_id = $1{lock}"
            );
            let row = sqlx::query(&sql)
                .bind(room.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let live = match &row {
                Some(row) => column::<Option<i64>>(row, "archived_at")?.is_none(),
                None => false,
            };
            let Some(row) = row.filter(|_| live) else {
                for i in indices {
                    outcomes[i] = Some(ChangeOutcome::Rejected(Rejection::NotFound));
                }
                continue;
            };
            let epoch = Epoch::from(column::<String>(&row, "epoch")?);
            let mut seq: i64 = column(&row, "last_seq")?;
            let mut state = state_from_row(&row)?;
            let mut archived = false;
            let mut events = Vec::new();
            for i in indices {
                let change = &changes[i];
                if archived {
                    outcomes[i] = Some(ChangeOutcome::Rejected(Rejection::NotFound));
                    continue;
                }
                let (kind, data) = match &change.kind {
                    RoomChangeKind::Playback(cmd) => match cmd.apply(&state, now_ms) {
                        Some(next) => {
                            state = next;
                            (
                                EventKind::Playback,
                                json!({"action": cmd.action.as_str(), "state": &state}),
                            )
                        }
                        None => {
                            outcomes[i] =
                                Some(ChangeOutcome::Rejected(Rejection::Conflict(state.clone())));
                            continue;
                        }
                    },
                    RoomChangeKind::Media(media) => {
                        state = apply_media(&state, media.clone(), now_ms);
                        (EventKind::Media, json!({"state": &state}))
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
                        archived = true;
                        (EventKind::RoomArchived, json!({}))
                    }
                };
                seq += 1;
                let event = Event {
                    room: room.clone(),
                    epoch: epoch.clone(),
                    seq,
                    kind,
                    by: change.by.clone(),
                    data,
                    server_time: now_ms,
                };
                events.push(event.clone());
                outcomes[i] = Some(ChangeOutcome::Committed(CommittedChange {
                    event,
                    state: state.clone(),
                }));
            }
            if events.is_empty() {
                continue;
            }
            insert_events(&mut tx, &events).await?;
            sqlx::query(
                "UPDATE room_state SET last_seq = $1, media_url = $2, media_title = $3, playing = $4, \
                 position = $5, rate = $6, updated_at = $7, version = $8 WHERE room_id = $9",
            )
            .bind(seq)
            .bind(state.media.as_ref().map(|m| m.url.as_str()))
            .bind(state.media.as_ref().and_then(|m| m.title.as_deref()))
            .bind(i64::from(state.playing))
            .bind(state.position)
            .bind(state.rate)
            .bind(state.updated_at)
            .bind(state.version)
            .bind(room.as_str())
            .execute(&mut *tx)
            .await?;
            if archived {
                sqlx::query("UPDATE rooms SET archived_at = $1 WHERE id = $2")
                    .bind(now_ms)
                    .bind(room.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
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
        let row = sqlx::query(
            "SELECT s.epoch, s.last_seq, s.media_url, s.media_title, s.playing, s.position, s.rate, \
             s.updated_at, s.version FROM room_state s JOIN rooms r ON r.id = s.room_id \
             WHERE s.room_id = $1 AND r.archived_at IS NULL",
        )
        .bind(room.as_str())
        .fetch_optional(self.pool())
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
            for row in query.fetch_all(self.pool()).await? {
                out.push((
                    RoomId::from(column::<String>(&row, "room_id")?),
                    column(&row, "last_seq")?,
                ));
            }
        }
        Ok(out)
    }
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[Event],
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
