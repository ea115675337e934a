//! The webhook outbox: a lease (one sender in the cluster), each room's cursor into its
//! history, the presence the history tells (for `room_occupied` / `room_vacated`), and the
//! deliveries not yet acknowledged. Deliveries are staged in the same transaction that
//! moves the room's cursor, so an event becomes its deliveries exactly once, and a
//! delivery leaves the outbox only once the receiver acknowledged it.

use super::{column, Database, StorageError};
use crate::ids::RoomId;
use crate::webhook::{notifications, HistoryEntry};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use std::collections::{BTreeSet, HashMap};

const LEASE: &str = "webhooks";
const STARTED_SETTING: &str = "webhooks_started_at";
/// History entries staged per room and transaction.
const STAGE_BATCH: i64 = 500;

/// A delivery waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxDelivery {
    pub delivery_id: String,
    pub room_id: String,
    pub body: String,
    pub attempts: i64,
    pub created_at: i64,
}

impl Database {
    /// The first time webhooks are on for this database, every existing room's cursor
    /// starts at its current end: the operator hears of what happens from now on, not
    /// of the whole past. Rooms created later start at their beginning.
    pub async fn start_webhooks(&self, now_ms: i64) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            let mut tx = pool.begin().await?;
            let first = sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(STARTED_SETTING)
            .bind(now_ms.to_string())
            .execute(&mut *tx)
            .await?;
            if first.rows_affected() == 1 {
                // `WHERE` because SQLite cannot otherwise tell the upsert from a join.
                sqlx::query(
                    "INSERT INTO webhook_cursors (room_id, last_seq) \
                     SELECT room_id, last_seq FROM room_state WHERE 1 = 1 \
                     ON CONFLICT (room_id) DO NOTHING",
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Takes or renews the sending lease for `holder` until `now_ms + ttl_ms`; `true` when
    /// `holder` has it. Another holder's lease is taken only once it expired.
    pub async fn take_webhook_lease(
        &self,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StorageError> {
        self.on_primary(|pool| async move {
            let done = sqlx::query(
                "INSERT INTO webhook_lease (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
                 WHERE webhook_lease.holder = excluded.holder OR webhook_lease.expires_at < $4",
            )
            .bind(LEASE)
            .bind(holder)
            .bind(now_ms + ttl_ms)
            .bind(now_ms)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    /// Gives the lease up (at shutdown), so another node takes over at once.
    pub async fn release_webhook_lease(&self, holder: &str) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query("UPDATE webhook_lease SET expires_at = 0 WHERE name = $1 AND holder = $2")
                .bind(LEASE)
                .bind(holder)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// Rooms whose history goes past their webhook cursor, with that cursor.
    pub async fn rooms_behind_webhooks(
        &self,
        limit: i64,
    ) -> Result<Vec<(RoomId, i64)>, StorageError> {
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT s.room_id AS room_id, COALESCE(c.last_seq, 0) AS cursor \
                     FROM room_state s LEFT JOIN webhook_cursors c ON c.room_id = s.room_id \
                     WHERE s.last_seq > COALESCE(c.last_seq, 0) LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    RoomId::from(column::<String>(row, "room_id")?),
                    column(row, "cursor")?,
                ))
            })
            .collect()
    }

    /// Turns the room's history after `cursor` into deliveries, moving the cursor in the
    /// same transaction; how many deliveries. Staging that finds the cursor moved (another
    /// node staged first) changes nothing.
    pub async fn stage_webhooks(
        &self,
        room: &RoomId,
        cursor: i64,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        self.on_primary(|pool| async move {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(
                "SELECT seq, kind, data, server_time FROM room_events \
                 WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(room.as_str())
            .bind(cursor)
            .bind(STAGE_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let entries = rows
                .iter()
                .map(history_entry)
                .collect::<Result<Vec<_>, _>>()?;
            let Some(last_seq) = entries.last().map(|e| e.seq) else {
                return Ok(0);
            };
            if !move_cursor(&mut tx, room, cursor, last_seq).await? {
                return Ok(0);
            }
            let before = presence(&mut tx, room).await?;
            let names = missing_names(&mut tx, &entries).await?;
            let mut present = before.clone();
            let notes = notifications(&entries, &mut present, &|id| names.get(id).cloned());
            for note in &notes {
                sqlx::query(
                    "INSERT INTO webhook_outbox (delivery_id, room_id, position, body, attempts, \
                     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 0, $5, $5) \
                     ON CONFLICT (delivery_id) DO NOTHING",
                )
                .bind(note.delivery_id(room.as_str()))
                .bind(room.as_str())
                .bind(note.position())
                .bind(note.body(room.as_str()))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            for gone in before.difference(&present) {
                sqlx::query("DELETE FROM webhook_presence WHERE room_id = $1 AND user_id = $2")
                    .bind(room.as_str())
                    .bind(gone)
                    .execute(&mut *tx)
                    .await?;
            }
            for came in present.difference(&before) {
                sqlx::query("INSERT INTO webhook_presence (room_id, user_id) VALUES ($1, $2)")
                    .bind(room.as_str())
                    .bind(came)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(notes.len())
        })
        .await
    }

    /// The first delivery of each room that is due at `now_ms`: a room's later deliveries
    /// wait until the first is acknowledged (or given up), which keeps each room's order.
    pub async fn due_webhooks(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxDelivery>, StorageError> {
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT delivery_id, room_id, body, attempts, created_at FROM webhook_outbox o \
                     WHERE next_attempt_at <= $1 AND position = \
                     (SELECT MIN(position) FROM webhook_outbox f WHERE f.room_id = o.room_id) \
                     ORDER BY created_at LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxDelivery {
                    delivery_id: column(row, "delivery_id")?,
                    room_id: column(row, "room_id")?,
                    body: column(row, "body")?,
                    attempts: column(row, "attempts")?,
                    created_at: column(row, "created_at")?,
                })
            })
            .collect()
    }

    /// The receiver acknowledged the delivery, or it was given up: it leaves the outbox.
    pub async fn remove_webhook(&self, delivery_id: &str) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query("DELETE FROM webhook_outbox WHERE delivery_id = $1")
                .bind(delivery_id)
                .execute(&pool)
                .await?;
            Ok(())
        })
        .await
    }

    /// An attempt failed: the next one at `next_attempt_at`.
    pub async fn retry_webhook_later(
        &self,
        delivery_id: &str,
        next_attempt_at: i64,
    ) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $2 \
                 WHERE delivery_id = $1",
            )
            .bind(delivery_id)
            .bind(next_attempt_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Deliveries waiting in the outbox.
    pub async fn webhook_backlog(&self) -> Result<i64, StorageError> {
        self.on_primary(|pool| async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM webhook_outbox")
                .fetch_one(&pool)
                .await?;
            column(&row, "n")
        })
        .await
    }
}

fn history_entry(row: &AnyRow) -> Result<HistoryEntry, StorageError> {
    let data: String = column(row, "data")?;
    Ok(HistoryEntry {
        seq: column(row, "seq")?,
        kind: column(row, "kind")?,
        data: serde_json::from_str(&data)
            .map_err(|e| StorageError::Corrupt(format!("event data: {e}")))?,
        server_time: column(row, "server_time")?,
    })
}

/// Moves the room's cursor from `from` to `to`; `false` when it was not at `from` (another
/// node moved it first), and nothing may be staged.
async fn move_cursor(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    from: i64,
    to: i64,
) -> Result<bool, StorageError> {
    let moved = sqlx::query(
        "UPDATE webhook_cursors SET last_seq = $3 WHERE room_id = $1 AND last_seq = $2",
    )
    .bind(room.as_str())
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() == 1 {
        return Ok(true);
    }
    if from != 0 {
        return Ok(false);
    }
    // A room's first staging: no cursor row yet.
    let inserted = sqlx::query(
        "INSERT INTO webhook_cursors (room_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (room_id) DO NOTHING",
    )
    .bind(room.as_str())
    .bind(to)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

async fn presence(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
) -> Result<BTreeSet<String>, StorageError> {
    let rows = sqlx::query("SELECT user_id FROM webhook_presence WHERE room_id = $1")
        .bind(room.as_str())
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|row| column(row, "user_id")).collect()
}

/// The names of users that entries name without one (a kick records the id alone).
async fn missing_names(
    tx: &mut Transaction<'static, Any>,
    entries: &[HistoryEntry],
) -> Result<HashMap<String, String>, StorageError> {
    let mut names = HashMap::new();
    for entry in entries {
        let Some(id) = entry.data.get("user_id").and_then(|v| v.as_str()) else {
            continue;
        };
        if entry.data.get("name").is_some() || names.contains_key(id) {
            continue;
        }
        let row = sqlx::query("SELECT name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = row {
            names.insert(id.to_owned(), column(&row, "name")?);
        }
    }
    Ok(names)
}
