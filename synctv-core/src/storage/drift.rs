//! Members' latest drift reports, shared between nodes through the database: the node
//! that receives reports writes them in one statement a second; any node reads a room's.

use super::{column, Database, StorageError};
use crate::ids::{RoomId, UserId};
use std::collections::HashMap;

/// One member's latest drift: room, user, drift (ms), when it was reported (ms).
pub type DriftReport = (RoomId, UserId, f64, i64);

impl Database {
    /// Writes the latest drift of each member in `reports` (a newer report replaces an
    /// older one).
    pub async fn save_drifts(&self, reports: &[DriftReport]) -> Result<(), StorageError> {
        // Chunks keep the statement well under every bind limit.
        for chunk in reports.chunks(200) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let n = i * 4;
                    format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO member_drift (room_id, user_id, drift_ms, reported_at) VALUES {} \
                 ON CONFLICT (room_id, user_id) DO UPDATE SET drift_ms = excluded.drift_ms, \
                 reported_at = excluded.reported_at",
                rows.join(", ")
            );
            let sql = &sql;
            self.on_primary(|pool| async move {
                let mut query = sqlx::query(sql);
                for (room, user, drift, at) in chunk {
                    query = query
                        .bind(room.as_str())
                        .bind(user.as_str())
                        .bind(*drift)
                        .bind(*at);
                }
                query.execute(&pool).await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The latest drift (ms) of each member of `room` who reported since `since_ms`.
    pub async fn drifts(
        &self,
        room: &RoomId,
        since_ms: i64,
    ) -> Result<HashMap<UserId, f64>, StorageError> {
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT user_id, drift_ms FROM member_drift \
                     WHERE room_id = $1 AND reported_at >= $2",
                )
                .bind(room.as_str())
                .bind(since_ms)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    UserId::from(column::<String>(row, "user_id")?),
                    column(row, "drift_ms")?,
                ))
            })
            .collect()
    }
}
