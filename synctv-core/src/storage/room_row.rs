//! A room's stored row (`room_state` joined with `rooms`) as the sequencer sees it, read
//! through sqlx or rusqlite, and what a commit writes back. The state columns, the
//! rules (moderation and waiters, one small JSON value) and the queue (JSON, with its
//! length beside it for room listings). Rules and queue are written only when a change
//! altered them: the commit binds NULL otherwise and the statement keeps the stored one.

use super::rooms::state_from_row;
use super::{column, Database, StorageError};
use crate::ids::{Epoch, UserId};
use crate::playback::{Media, PlaybackState};
use crate::room::Control;
use crate::sequencer::{parse_queue, parse_rules, RoomRow};
use sqlx::any::AnyRow;

/// The columns of a locking read of rooms (`s` is `room_state`, `r` is `rooms`). The
/// queue (up to 500 items of JSON) is read only when a change of the batch needs it
/// (`with_queue`), so chat does not read a long queue on every commit.
pub(super) fn row_columns(with_queue: bool) -> String {
    let queue = if with_queue {
        "s.queue"
    } else {
        "NULL AS queue"
    };
    format!(
        "s.room_id, s.epoch, s.last_seq, s.media_url, s.media_title, s.media_duration_ms, \
         s.playing, s.position, s.rate, s.updated_at, s.version, s.waiting_for, s.wait_until, \
         s.rules, {queue}, r.archived_at, r.owner_id, r.control"
    )
}

/// Whether applying `change` reads the room's queue.
pub(super) fn needs_queue(change: &crate::sequencer::RoomChange) -> bool {
    use crate::sequencer::RoomChangeKind as K;
    matches!(
        change.kind,
        K::QueueAdd(_) | K::QueueRemove { .. } | K::QueueMove { .. } | K::Next { .. }
    )
}

fn control(stored: &str) -> Result<Control, StorageError> {
    Control::parse(stored).ok_or_else(|| StorageError::Corrupt(format!("control {stored}")))
}

fn rules(stored: Option<&str>) -> Result<crate::sequencer::RoomRules, StorageError> {
    parse_rules(stored).map_err(|e| StorageError::Corrupt(format!("room rules: {e}")))
}

/// A media duration as stored: whole milliseconds (see the migration for why not a
/// double).
pub(super) fn duration_to_ms(seconds: Option<f64>) -> Option<i64> {
    seconds.map(|s| (s * 1000.0).round() as i64)
}

pub(super) fn duration_from_ms(ms: Option<i64>) -> Option<f64> {
    ms.map(|ms| ms as f64 / 1000.0)
}

/// `waiting_for` as stored: a JSON list, NULL when empty.
pub(super) fn waiting_from(stored: Option<&str>) -> Result<Vec<UserId>, StorageError> {
    stored.map_or(Ok(Vec::new()), |json| {
        serde_json::from_str(json).map_err(|e| StorageError::Corrupt(format!("waiting_for: {e}")))
    })
}

pub(super) fn row_from_any(row: &AnyRow) -> Result<RoomRow, StorageError> {
    let stored_control: String = column(row, "control")?;
    let stored_rules: Option<String> = column(row, "rules")?;
    Ok(RoomRow {
        epoch: Epoch::from(column::<String>(row, "epoch")?),
        last_seq: column(row, "last_seq")?,
        state: state_from_row(row)?,
        archived: column::<Option<i64>>(row, "archived_at")?.is_some(),
        owner: UserId::from(column::<String>(row, "owner_id")?),
        control: control(&stored_control)?,
        rules: rules(stored_rules.as_deref())?,
        queue_json: column(row, "queue")?,
        queue: None,
        rules_changed: false,
        queue_changed: false,
    })
}

pub(super) fn row_from_sqlite(row: &rusqlite::Row<'_>) -> Result<RoomRow, StorageError> {
    let url: Option<String> = row.get("media_url")?;
    let media = match url {
        Some(url) => Some(Media {
            url,
            title: row.get("media_title")?,
            duration: duration_from_ms(row.get("media_duration_ms")?),
        }),
        None => None,
    };
    let stored_control: String = row.get("control")?;
    let stored_rules: Option<String> = row.get("rules")?;
    let waiting: Option<String> = row.get("waiting_for")?;
    Ok(RoomRow {
        epoch: Epoch::from(row.get::<_, String>("epoch")?),
        last_seq: row.get("last_seq")?,
        state: PlaybackState {
            media,
            playing: row.get::<_, i64>("playing")? != 0,
            position: row.get("position")?,
            rate: row.get("rate")?,
            updated_at: row.get("updated_at")?,
            version: row.get("version")?,
            waiting_for: waiting_from(waiting.as_deref())?,
            wait_until: row.get("wait_until")?,
        },
        archived: row.get::<_, Option<i64>>("archived_at")?.is_some(),
        owner: UserId::from(row.get::<_, String>("owner_id")?),
        control: control(&stored_control)?,
        rules: rules(stored_rules.as_deref())?,
        queue_json: row.get("queue")?,
        queue: None,
        rules_changed: false,
        queue_changed: false,
    })
}

/// What a commit writes back beyond the plain state columns; `None` keeps the stored
/// value (the statements say `COALESCE(new, stored)`).
pub(super) struct WrittenExtras {
    pub(super) waiting_for: Option<String>,
    pub(super) rules: Option<String>,
    pub(super) queue: Option<String>,
    pub(super) queue_length: Option<i64>,
}

impl WrittenExtras {
    pub(super) fn of(row: &RoomRow) -> Self {
        let queue = row.queue.as_ref().filter(|_| row.queue_changed);
        WrittenExtras {
            waiting_for: (!row.state.waiting_for.is_empty())
                .then(|| serde_json::to_string(&row.state.waiting_for).unwrap_or_default()),
            rules: row
                .rules_changed
                .then(|| serde_json::to_string(&row.rules).unwrap_or_default()),
            queue: queue.map(|q| serde_json::to_string(q).unwrap_or_default()),
            queue_length: queue.map(|q| q.items.len() as i64),
        }
    }
}

/// A room's roles, moderation, waiters and queue as committed, with the seq they stand
/// at: what a join and `GET /members` and `/queue` read.
#[derive(Clone, Debug)]
pub struct RoomSnapshot {
    pub last_seq: i64,
    pub owner: UserId,
    pub control: Control,
    pub rules: crate::sequencer::RoomRules,
    pub queue: crate::queue::Queue,
}

impl Database {
    /// The room's snapshot, from the primary (a join compares its seq with the node's
    /// channel); `None` when the room is unknown or archived.
    pub async fn room_snapshot(
        &self,
        room: &crate::ids::RoomId,
    ) -> Result<Option<RoomSnapshot>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT s.last_seq, s.rules, s.queue, r.owner_id, r.control \
                     FROM room_state s JOIN rooms r ON r.id = s.room_id \
                     WHERE s.room_id = $1 AND r.archived_at IS NULL",
                )
                .bind(room.as_str())
                .fetch_optional(&pool)
                .await?)
            })
            .await?;
        row.map(|row| {
            let stored_control: String = column(&row, "control")?;
            let stored_rules: Option<String> = column(&row, "rules")?;
            let stored_queue: Option<String> = column(&row, "queue")?;
            Ok(RoomSnapshot {
                last_seq: column(&row, "last_seq")?,
                owner: UserId::from(column::<String>(&row, "owner_id")?),
                control: control(&stored_control)?,
                rules: rules(stored_rules.as_deref())?,
                queue: parse_queue(stored_queue.as_deref()),
            })
        })
        .transpose()
    }
}
