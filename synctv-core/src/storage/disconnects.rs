//! Disconnects asked through the server API: each node polls the recent requests, closes
//! the user's connections it holds and writes how many, so the node that took the request
//! can answer with a count across the cluster.

use super::{column, Database, StorageError};
use crate::ids::UserId;

/// A request to close every connection of a user, on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDisconnect {
    pub disconnect_id: String,
    pub user_id: UserId,
    /// ms since the Unix epoch, by the requesting node's clock.
    pub requested_at: i64,
}

impl Database {
    pub async fn insert_disconnect(&self, request: &UserDisconnect) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query(
                "INSERT INTO user_disconnects (disconnect_id, user_id, requested_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(&request.disconnect_id)
            .bind(request.user_id.as_str())
            .bind(request.requested_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Requests made at or after `since_ms` (by the requesting node's clock).
    pub async fn disconnects_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<UserDisconnect>, StorageError> {
        // From the primary: a disconnect must reach every node within seconds.
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT disconnect_id, user_id, requested_at FROM user_disconnects \
                     WHERE requested_at >= $1",
                )
                .bind(since_ms)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UserDisconnect {
                    disconnect_id: column(row, "disconnect_id")?,
                    user_id: UserId::from(column::<String>(row, "user_id")?),
                    requested_at: column(row, "requested_at")?,
                })
            })
            .collect()
    }

    /// Records how many of the user's connections `node_id` closed for `disconnect_id`.
    pub async fn record_disconnect_count(
        &self,
        disconnect_id: &str,
        node_id: &str,
        connections: u64,
    ) -> Result<(), StorageError> {
        let connections = i64::try_from(connections).unwrap_or(i64::MAX);
        self.on_primary(|pool| async move {
            sqlx::query(
                "INSERT INTO user_disconnect_counts (disconnect_id, node_id, connections) \
                 VALUES ($1, $2, $3) ON CONFLICT (disconnect_id, node_id) DO NOTHING",
            )
            .bind(disconnect_id)
            .bind(node_id)
            .bind(connections)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// The nodes that answered `disconnect_id` so far, with how many connections each
    /// closed.
    pub async fn disconnect_counts(
        &self,
        disconnect_id: &str,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT node_id, connections FROM user_disconnect_counts \
                     WHERE disconnect_id = $1",
                )
                .bind(disconnect_id)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                let connections: i64 = column(row, "connections")?;
                Ok((
                    column(row, "node_id")?,
                    u64::try_from(connections).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Deletes requests (and their counts) made before `before_ms`; how many requests.
    pub async fn purge_disconnects(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query(
                "DELETE FROM user_disconnect_counts WHERE disconnect_id IN \
                 (SELECT disconnect_id FROM user_disconnects WHERE requested_at < $1)",
            )
            .bind(before_ms)
            .execute(&pool)
            .await?;
            let done = sqlx::query("DELETE FROM user_disconnects WHERE requested_at < $1")
                .bind(before_ms)
                .execute(&pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
