//! The group commit: many room changes, possibly of many rooms, in one transaction.
//!
//! For each room in the batch (in room id order, so two nodes never lock in opposite
//! orders) the transaction locks the room's state row, applies the changes in their order
//! (giving each event `last_seq + 1` and each accepted state change `version + 1`), appends
//! the events and writes the new state. The database is therefore the per-room sequencer:
//! the order holds across nodes and whether or not Redis is up, and an event exists for
//! clients only once it is durable.

use super::rooms::{state_from_row, STATE_COLUMNS};
use super::{column, Database, StorageError, QUERY_DEADLINE};
use crate::event::Event;
use crate::ids::{Epoch, RoomId};
use crate::playback::PlaybackState;
pub use crate::sequencer::{
    ChangeOutcome, CommittedChange, Rejection, RoomChange, RoomChangeKind, RoomRow, Sequencer,
};
use std::collections::{BTreeMap, HashMap};

impl Database {
    /// Commits `changes` in one transaction and reports each one's outcome, in their
    /// order. An `Err` means nothing was committed.
    ///
    /// On an SQLite file the whole batch runs on the writer thread that owns the write
    /// connection ([`super::sqlite_writer`]): one hand-off per batch. Otherwise (Postgres,
    /// an in-memory SQLite) it runs through the pool ([`super::pooled_commit`]).
    pub async fn commit_changes(
        &self,
        changes: Vec<RoomChange>,
        sequencer: Sequencer,
    ) -> Result<Vec<ChangeOutcome>, StorageError> {
        match &self.sqlite_writer {
            Some(writer) => tokio::time::timeout(QUERY_DEADLINE, writer.commit(changes, sequencer))
                .await
                .unwrap_or(Err(StorageError::Timeout)),
            None => {
                // Runs on the primary (see `primary`): a batch that finds no writable host
                // waits for a failover up to `FAILOVER_WAIT`, and one that fails makes the
                // link search again.
                let changes = &changes;
                self.on_primary(|pool| self.commit_through_pool(pool, changes, sequencer))
                    .await
            }
        }
    }

    /// The room's epoch, last seq and state as committed, for a node that starts serving
    /// a room. `None` when the room is unknown or archived.
    pub async fn room_position(
        &self,
        room: &RoomId,
    ) -> Result<Option<(Epoch, i64, PlaybackState)>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                let sql = format!(
                    "SELECT s.epoch, s.last_seq, {STATE_COLUMNS} FROM room_state s \
                     JOIN rooms r ON r.id = s.room_id WHERE s.room_id = $1 AND r.archived_at IS NULL"
                );
                Ok(sqlx::query(&sql)
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

/// The changes' indices, by room, in room id order: the order rooms are locked in, so
/// two nodes never lock in opposite orders.
pub(super) fn group_by_room(changes: &[RoomChange]) -> BTreeMap<&RoomId, Vec<usize>> {
    let mut by_room: BTreeMap<&RoomId, Vec<usize>> = BTreeMap::new();
    for (i, change) in changes.iter().enumerate() {
        by_room.entry(&change.room).or_default().push(i);
    }
    by_room
}

/// A batch applied in memory to the locked rows: what to write, and what to answer.
pub(super) struct AppliedBatch<'a> {
    pub(super) outcomes: Vec<ChangeOutcome>,
    /// Rooms whose seq moved: their state row is written back.
    pub(super) changed: Vec<&'a RoomId>,
    /// Rooms the batch archived.
    pub(super) archived: Vec<&'a RoomId>,
}

impl AppliedBatch<'_> {
    /// The events to store: the ones in the outcomes, borrowed, not copied.
    pub(super) fn events(&self) -> impl Iterator<Item = &Event> {
        self.outcomes.iter().flat_map(|o| match o {
            ChangeOutcome::Committed(done) => done.events.as_slice(),
            ChangeOutcome::Rejected(_) => &[],
        })
    }
}

/// Applies every change to its room's locked row (`positions`, from the database), in
/// the order given within each room, through the sequencer. Rooms absent from
/// `positions` are unknown.
pub(super) fn apply_batch<'a>(
    changes: &[RoomChange],
    by_room: &BTreeMap<&'a RoomId, Vec<usize>>,
    positions: &mut HashMap<RoomId, RoomRow>,
    sequencer: Sequencer,
) -> Result<AppliedBatch<'a>, StorageError> {
    let mut outcomes: Vec<Option<ChangeOutcome>> = vec![None; changes.len()];
    let mut changed = Vec::new();
    let mut archived = Vec::new();
    for (room, indices) in by_room {
        let Some(position) = positions.get_mut(*room).filter(|p| !p.archived) else {
            for &i in indices {
                outcomes[i] = Some(ChangeOutcome::Rejected(Rejection::NotFound));
            }
            continue;
        };
        let before = position.last_seq;
        for &i in indices {
            outcomes[i] = Some(sequencer.apply(position, &changes[i]));
        }
        if position.archived {
            archived.push(*room);
        }
        if position.last_seq != before {
            changed.push(*room);
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| {
            o.ok_or_else(|| StorageError::Corrupt("a change was left without an outcome".into()))
        })
        .collect::<Result<_, _>>()?;
    Ok(AppliedBatch {
        outcomes,
        changed,
        archived,
    })
}
