//! What makes a token usable cluster-wide beyond its signature: WebSocket tickets (single
//! use, enforced by deleting the row as it is read) and the revocations of logged-out
//! tokens (which every node polls).

use super::{column, Database, StorageError};
use crate::ids::UserId;

/// Who a ticket lets connect, and with which token it was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketGrant {
    pub user_id: UserId,
    pub name: String,
    /// The id of the token that asked for the ticket: revoking it closes the connection.
    pub token_id: String,
    /// ms since the Unix epoch.
    pub expires_at: i64,
}

/// A revoked token: refused until `expires_at`, after which its signature refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub token_id: String,
    pub revoked_at: i64,
    pub expires_at: i64,
}

impl Database {
    pub async fn insert_ticket(
        &self,
        ticket_hash: &str,
        grant: &TicketGrant,
    ) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query(
                "INSERT INTO ws_tickets (ticket_hash, user_id, name, token_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(ticket_hash)
            .bind(grant.user_id.as_str())
            .bind(&grant.name)
            .bind(&grant.token_id)
            .bind(grant.expires_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Takes the ticket: the row is deleted in the same statement that reads it, so of
    /// two nodes redeeming one ticket at once only one gets it. An expired ticket is
    /// taken too, and refused.
    pub async fn take_ticket(
        &self,
        ticket_hash: &str,
        now_ms: i64,
    ) -> Result<Option<TicketGrant>, StorageError> {
        let row = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "DELETE FROM ws_tickets WHERE ticket_hash = $1 \
                     RETURNING user_id, name, token_id, expires_at",
                )
                .bind(ticket_hash)
                .fetch_optional(&pool)
                .await?)
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let grant = TicketGrant {
            user_id: UserId::from(column::<String>(&row, "user_id")?),
            name: column(&row, "name")?,
            token_id: column(&row, "token_id")?,
            expires_at: column(&row, "expires_at")?,
        };
        Ok((grant.expires_at > now_ms).then_some(grant))
    }

    /// Records a revocation; revoking twice keeps the first.
    pub async fn revoke_token(&self, revocation: &Revocation) -> Result<(), StorageError> {
        self.on_primary(|pool| async move {
            sqlx::query(
                "INSERT INTO revoked_tokens (token_id, revoked_at, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (token_id) DO NOTHING",
            )
            .bind(&revocation.token_id)
            .bind(revocation.revoked_at)
            .bind(revocation.expires_at)
            .execute(&pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Revocations recorded at or after `since_ms` (by the revoking node's clock) that
    /// still matter at `now_ms`.
    pub async fn revocations_since(
        &self,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Revocation>, StorageError> {
        // From the primary: a revocation must reach every node within seconds.
        let rows = self
            .on_primary(|pool| async move {
                Ok(sqlx::query(
                    "SELECT token_id, revoked_at, expires_at FROM revoked_tokens \
                     WHERE revoked_at >= $1 AND expires_at > $2",
                )
                .bind(since_ms)
                .bind(now_ms)
                .fetch_all(&pool)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    token_id: column(row, "token_id")?,
                    revoked_at: column(row, "revoked_at")?,
                    expires_at: column(row, "expires_at")?,
                })
            })
            .collect()
    }

    /// Deletes tickets and revocations that expired before `now_ms`; how many.
    pub async fn purge_expired_credentials(&self, now_ms: i64) -> Result<u64, StorageError> {
        self.on_primary(|pool| async move {
            let tickets = sqlx::query("DELETE FROM ws_tickets WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(&pool)
                .await?;
            let revoked = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(&pool)
                .await?;
            Ok(tickets.rows_affected() + revoked.rows_affected())
        })
        .await
    }
}
