//! Webhooks (contract 1.1): the node holding the lease turns each room's new history into
//! deliveries (`Database::stage_webhooks`) and POSTs them, signed, in each room's order,
//! retrying with backoff until the receiver answers 2xx or `webhooks.retry_for_secs` ran
//! out. The outbox, cursors and lease live in the database, so a delivery survives the
//! death of the node that was sending it: the lease expires and another node goes on
//! from the outbox, with the same `delivery_id` (at least once, never lost).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use synctv_core::clock::now_ms;
use synctv_core::config::WebhooksConfig;
use synctv_core::storage::{Database, OutboxDelivery, StorageError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const SIGNATURE_HEADER: &str = "x-synctv-signature";
/// Pause between rounds while there is nothing to do.
const IDLE_ROUND: Duration = Duration::from_millis(250);
/// Pause before trying for the lease again while another node holds it.
const FOLLOWER_ROUND: Duration = Duration::from_secs(1);
/// The lease outlives the longest round: a receiver's timeout, plus this margin.
const LEASE_MARGIN_MS: i64 = 10_000;
/// Rooms staged, and deliveries sent at once, per round.
const PER_ROUND: i64 = 64;
/// The longest pause between two attempts of one delivery.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;

/// What one node runs when webhooks are on.
pub struct WebhookSender {
    db: Database,
    node_id: String,
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
    timeout: Duration,
    retry_for_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot start webhooks: {0}")]
    Storage(#[from] StorageError),
}

impl WebhookSender {
    /// `None` when webhooks are off. Marks where webhooks start for rooms that exist.
    pub async fn start(
        config: &WebhooksConfig,
        db: &Database,
        node_id: &str,
    ) -> Result<Option<Self>, WebhookError> {
        let (Some(url), Some(secret)) = (&config.url, &config.secret) else {
            return Ok(None);
        };
        db.start_webhooks(now_ms()).await?;
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self {
            db: db.clone(),
            node_id: node_id.to_owned(),
            url: url.clone(),
            secret: secret.as_bytes().to_vec(),
            client,
            timeout,
            retry_for_ms: i64::try_from(config.retry_for_secs)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1000),
        }))
    }

    pub fn spawn(self, tracker: &TaskTracker, stop: CancellationToken) {
        tracker.spawn(async move {
            loop {
                // A round cut short by the stop loses nothing: what was not settled stays in
                // the outbox for the next holder of the lease.
                let round = tokio::select! {
                    _ = stop.cancelled() => break,
                    round = self.round() => round,
                };
                let pause = match round {
                    Ok(Round::Busy) => Duration::ZERO,
                    Ok(Round::Idle) => IDLE_ROUND,
                    Ok(Round::Follower) => FOLLOWER_ROUND,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhooks: cannot reach the outbox");
                        FOLLOWER_ROUND
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            metrics::gauge!("synctv_webhook_sender").set(0.0);
            if let Err(e) = self.db.release_webhook_lease(&self.node_id).await {
                tracing::warn!(error = %e, "webhooks: cannot release the lease");
            }
        });
    }

    fn lease_ttl_ms(&self) -> i64 {
        i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX / 2) + LEASE_MARGIN_MS
    }

    /// One round: hold the lease, stage new history, send what is due.
    async fn round(&self) -> Result<Round, StorageError> {
        if !self.hold_lease().await? {
            metrics::gauge!("synctv_webhook_sender").set(0.0);
            return Ok(Round::Follower);
        }
        metrics::gauge!("synctv_webhook_sender").set(1.0);
        let mut busy = false;
        for (room, cursor) in self.db.rooms_behind_webhooks(PER_ROUND).await? {
            self.db.stage_webhooks(&room, cursor, now_ms()).await?;
            busy = true;
        }
        metrics::gauge!("synctv_webhook_backlog").set(self.db.webhook_backlog().await? as f64);
        // Renewed again right before sending, so the lease outlasts every send started.
        if !self.hold_lease().await? {
            return Ok(Round::Follower);
        }
        let due = self.db.due_webhooks(now_ms(), PER_ROUND).await?;
        busy |= !due.is_empty();
        let outcomes =
            futures_util::future::join_all(due.iter().map(|delivery| self.send(delivery))).await;
        for (delivery, delivered) in due.iter().zip(outcomes) {
            self.settle(delivery, delivered).await?;
        }
        Ok(if busy { Round::Busy } else { Round::Idle })
    }

    async fn hold_lease(&self) -> Result<bool, StorageError> {
        self.db
            .take_webhook_lease(&self.node_id, now_ms(), self.lease_ttl_ms())
            .await
    }

    /// One attempt: `true` when the receiver answered 2xx.
    async fn send(&self, delivery: &OutboxDelivery) -> bool {
        let answer = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&self.secret, delivery.body.as_bytes()),
            )
            .body(delivery.body.clone())
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => true,
            Ok(resp) => {
                tracing::debug!(delivery = %delivery.delivery_id, status = %resp.status(), "webhook refused");
                false
            }
            Err(e) => {
                tracing::debug!(delivery = %delivery.delivery_id, error = %e, "webhook not delivered");
                false
            }
        }
    }

    async fn settle(&self, delivery: &OutboxDelivery, delivered: bool) -> Result<(), StorageError> {
        let now = now_ms();
        let outcome = if delivered {
            self.db.remove_webhook(&delivery.delivery_id).await?;
            "delivered"
        } else if now - delivery.created_at >= self.retry_for_ms {
            tracing::error!(
                delivery = %delivery.delivery_id,
                attempts = delivery.attempts + 1,
                "webhook given up: the receiver did not take it within webhooks.retry_for_secs"
            );
            self.db.remove_webhook(&delivery.delivery_id).await?;
            "given_up"
        } else {
            self.db
                .retry_webhook_later(&delivery.delivery_id, now + backoff_ms(delivery.attempts))
                .await?;
            "failed"
        };
        metrics::counter!("synctv_webhook_attempts_total", "outcome" => outcome).increment(1);
        Ok(())
    }
}

enum Round {
    /// Something was staged or sent: go again at once.
    Busy,
    Idle,
    /// Another node holds the lease.
    Follower,
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// 1 s after the first failure, doubling, at most [`MAX_BACKOFF_MS`].
fn backoff_ms(failures_before: i64) -> i64 {
    let doublings = u32::try_from(failures_before.clamp(0, 20)).unwrap_or(20);
    1000i64.saturating_mul(1 << doublings).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(8), 256_000);
        assert_eq!(backoff_ms(9), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(1000), MAX_BACKOFF_MS);
        // Within the first hour a delivery is tried at least a dozen times.
        let mut waited = 0;
        let mut attempts = 0;
        while waited < 3_600_000 {
            waited += backoff_ms(attempts);
            attempts += 1;
        }
        assert!(attempts >= 12, "{attempts}");
    }
}
