//! Reading a room's durable history, from a replica past the WAL fence when there is
//! one (see `replicas`), else from the primary.

use super::{column, Database, StorageError};
use crate::event::{Actor, Event, EventKind};
use crate::ids::{Epoch, RoomId, UserId};
use sqlx::any::AnyRow;
use sqlx::AnyPool;

pub struct EventPage {
    pub events: Vec<Event>,
    /// The `after` that reads the next page, when there may be one.
    pub next_after: Option<i64>,
}

impl Database {
    /// Events with `seq > after`, oldest first, at most `limit`; every event acked
    /// before the call is included.
    pub async fn events_after(
        &self,
        room: &RoomId,
        after: i64,
        limit: u32,
    ) -> Result<EventPage, StorageError> {
        let events = self
            .events_between(room, after, None, i64::from(limit))
            .await?;
        let next_after = (events.len() == limit as usize)
            .then(|| events.last().map(|e| e.seq))
            .flatten();
        Ok(EventPage { events, next_after })
    }

    /// Events with `after < seq <= up_to` (no upper bound when `None`), oldest first,
    /// including every event acked before the call (recovery and catch-up read here).
    pub async fn events_between(
        &self,
        room: &RoomId,
        after: i64,
        up_to: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Event>, StorageError> {
        let up_to = up_to.unwrap_or(i64::MAX);
        self.on_fresh_reader(
            |pool| async move { fetch_events(&pool, room, after, up_to, limit).await },
        )
        .await
    }
}

async fn fetch_events(
    pool: &AnyPool,
    room: &RoomId,
    after: i64,
    up_to: i64,
    limit: i64,
) -> Result<Vec<Event>, StorageError> {
    let rows = sqlx::query(
        "SELECT room_id, seq, epoch, kind, by_user_id, by_name, data, server_time FROM room_events \
         WHERE room_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
    )
    .bind(room.as_str())
    .bind(after)
    .bind(up_to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

impl Database {
    /// The kind of the user's last `member_joined` or `member_left` in the room, if any.
    pub async fn last_presence_event(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<EventKind>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT kind FROM room_events WHERE room_id = $1 AND by_user_id = $2 \
                     AND kind IN ('member_joined', 'member_left') ORDER BY seq DESC LIMIT 1",
                )
                .bind(room.as_str())
                .bind(user.as_str())
                .fetch_optional(&pool)
                .await?)
            })
            .await?;
        row.map(|row| {
            let kind: String = column(&row, "kind")?;
            EventKind::parse(&kind)
                .ok_or_else(|| StorageError::Corrupt(format!("event kind {kind}")))
        })
        .transpose()
    }
}

fn event_from_row(row: &AnyRow) -> Result<Event, StorageError> {
    let kind: String = column(row, "kind")?;
    let data: String = column(row, "data")?;
    let by = match (
        column::<Option<String>>(row, "by_user_id")?,
        column::<Option<String>>(row, "by_name")?,
    ) {
        (Some(id), Some(name)) => Some(Actor {
            user_id: UserId::from(id),
            name,
        }),
        _ => None,
    };
    Ok(Event {
        room: RoomId::from(column::<String>(row, "room_id")?),
        epoch: Epoch::from(column::<String>(row, "epoch")?),
        seq: column(row, "seq")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StorageError::Corrupt(format!("event kind {kind}")))?,
        by,
        data: serde_json::from_str(&data)
            .map_err(|e| StorageError::Corrupt(format!("event data: {e}")))?,
        server_time: column(row, "server_time")?,
    })
}
