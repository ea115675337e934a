//! Rooms: create, read, and list newest first with an opaque cursor.

use super::room_row::{duration_from_ms, waiting_from};
use super::{column, Database, StorageError};
use crate::ids::{Epoch, RoomId, UserId};
use crate::playback::{Media, PlaybackState};
use crate::room::{Control, RoomRecord};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sqlx::any::AnyRow;

pub struct NewRoom<'a> {
    pub name: &'a str,
    pub owner_id: &'a UserId,
    pub control: Control,
    pub password_hash: Option<&'a str>,
}

/// Where a listing page ends: the last room's creation time and id. Opaque on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomCursor {
    pub created_at: i64,
    pub id: RoomId,
}

impl RoomCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    /// `None` for anything this server could not have issued in form.
    pub fn decode(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (created_at, id) = text.split_once(':')?;
        let valid_id =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        let created_at = created_at.parse().ok()?;
        valid_id.then(|| Self {
            created_at,
            id: RoomId::from(id),
        })
    }
}

pub struct RoomPage {
    pub rooms: Vec<RoomRecord>,
    pub next_cursor: Option<RoomCursor>,
}

/// The playback state's columns of `room_state` (aliased `s`), as [`state_from_row`] reads them.
pub(crate) const STATE_COLUMNS: &str =
    "s.media_url, s.media_title, s.media_duration_ms, s.playing, \
     s.position, s.rate, s.updated_at, s.version, s.waiting_for, s.wait_until";

fn room_columns() -> String {
    format!(
        "r.id, r.name, r.owner_id, r.control, r.password_hash, r.created_at, r.archived_at, \
         s.queue_length, {STATE_COLUMNS}"
    )
}

impl Database {
    /// Creates a room and its state row (new epoch, seq 0) in one transaction.
    pub async fn create_room(
        &self,
        new: NewRoom<'_>,
        now_ms: i64,
    ) -> Result<RoomRecord, StorageError> {
        let record = RoomRecord {
            id: RoomId::generate(),
            name: new.name.to_owned(),
            owner_id: new.owner_id.clone(),
            control: new.control,
            password_hash: new.password_hash.map(str::to_owned),
            created_at: now_ms,
            archived_at: None,
            state: PlaybackState::initial(now_ms),
            queue_length: 0,
        };
        let record_ref = &record;
        self.on_primary(|pool| async move {
            let record = record_ref;
            let mut tx = self.begin_write(&pool).await?;
            sqlx::query(
                "INSERT INTO rooms (id, name, owner_id, control, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(record.id.as_str())
            .bind(&record.name)
            .bind(record.owner_id.as_str())
            .bind(record.control.as_str())
            .bind(record.password_hash.as_deref())
            .bind(record.created_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO room_state (room_id, epoch, last_seq, playing, position, rate, updated_at, version) \
                 VALUES ($1, $2, 0, 0, 0, 1, $3, 0)",
            )
            .bind(record.id.as_str())
            .bind(Epoch::generate().as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
        Ok(record)
    }

    /// A room, archived or not (from a replica when one is fresh enough).
    pub async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, StorageError> {
        let sql = format!(
            "SELECT {} FROM rooms r JOIN room_state s ON s.room_id = r.id WHERE r.id = $1",
            room_columns()
        );
        let sql = &sql;
        let row = self
            .on_fresh_reader(|pool| async move {
                Ok(sqlx::query(sql)
                    .bind(id.as_str())
                    .fetch_optional(&pool)
                    .await?)
            })
            .await?;
        row.as_ref().map(room_from_row).transpose()
    }

    /// Live rooms, newest first (from a replica when one is fresh enough). A cursor that
    /// names no room this server holds is `None` in `Err` position: the caller answers 400.
    pub async fn list_rooms(
        &self,
        limit: u32,
        after: Option<&RoomCursor>,
    ) -> Result<Option<RoomPage>, StorageError> {
        let fetch = i64::from(limit) + 1;
        let rows = self
            .on_fresh_reader(|pool| async move { list_rows(&pool, fetch, after).await })
            .await?;
        let Some(rows) = rows else {
            return Ok(None);
        };
        let mut rooms = rows
            .iter()
            .map(room_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if rooms.len() > limit as usize {
            rooms.truncate(limit as usize);
            rooms.last().map(|r| RoomCursor {
                created_at: r.created_at,
                id: r.id.clone(),
            })
        } else {
            None
        };
        Ok(Some(RoomPage { rooms, next_cursor }))
    }
}

/// The rows of one listing page (one more than asked, to know whether another follows);
/// `None` when the cursor names no room.
async fn list_rows(
    pool: &sqlx::AnyPool,
    fetch: i64,
    after: Option<&RoomCursor>,
) -> Result<Option<Vec<AnyRow>>, StorageError> {
    if let Some(cursor) = after {
        let known = sqlx::query("SELECT 1 FROM rooms WHERE id = $1 AND created_at = $2")
            .bind(cursor.id.as_str())
            .bind(cursor.created_at)
            .fetch_optional(pool)
            .await?;
        if known.is_none() {
            return Ok(None);
        }
    }
    let base = format!(
        "SELECT {} FROM rooms r JOIN room_state s ON s.room_id = r.id WHERE r.archived_at IS NULL",
        room_columns()
    );
    let rows = match after {
        None => {
            let sql = format!("{base} ORDER BY r.created_at DESC, r.id DESC LIMIT $1");
            sqlx::query(&sql).bind(fetch).fetch_all(pool).await?
        }
        Some(c) => {
            let sql = format!(
                "{base} AND (r.created_at < $1 OR (r.created_at = $1 AND r.id < $2)) \
                 ORDER BY r.created_at DESC, r.id DESC LIMIT $3"
            );
            sqlx::query(&sql)
                .bind(c.created_at)
                .bind(c.id.as_str())
                .bind(fetch)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(Some(rows))
}

fn room_from_row(row: &AnyRow) -> Result<RoomRecord, StorageError> {
    let control: String = column(row, "control")?;
    Ok(RoomRecord {
        id: RoomId::from(column::<String>(row, "id")?),
        name: column(row, "name")?,
        owner_id: UserId::from(column::<String>(row, "owner_id")?),
        control: Control::parse(&control)
            .ok_or_else(|| StorageError::Corrupt(format!("control {control}")))?,
        password_hash: column(row, "password_hash")?,
        created_at: column(row, "created_at")?,
        archived_at: column(row, "archived_at")?,
        state: state_from_row(row)?,
        queue_length: column::<Option<i64>>(row, "queue_length")?
            .unwrap_or(0)
            .max(0) as usize,
    })
}

/// The playback state columns of `room_state`, however the query aliased its tables.
pub(crate) fn state_from_row(row: &AnyRow) -> Result<PlaybackState, StorageError> {
    let url: Option<String> = column(row, "media_url")?;
    Ok(PlaybackState {
        media: url
            .map(|url| {
                Ok::<_, StorageError>(Media {
                    url,
                    title: column(row, "media_title")?,
                    duration: duration_from_ms(column(row, "media_duration_ms")?),
                })
            })
            .transpose()?,
        playing: column::<i64>(row, "playing")? != 0,
        position: column(row, "position")?,
        rate: column(row, "rate")?,
        updated_at: column(row, "updated_at")?,
        version: column(row, "version")?,
        waiting_for: waiting_from(column::<Option<String>>(row, "waiting_for")?.as_deref())?,
        wait_until: column(row, "wait_until")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = RoomCursor {
            created_at: 42,
            id: RoomId::from("abc123"),
        };
        assert_eq!(RoomCursor::decode(&c.encode()), Some(c));
        assert_eq!(RoomCursor::decode("not base64!"), None);
        assert_eq!(RoomCursor::decode(&URL_SAFE_NO_PAD.encode("x:abc")), None);
        assert_eq!(RoomCursor::decode(&URL_SAFE_NO_PAD.encode("1:a'b")), None);
    }
}
