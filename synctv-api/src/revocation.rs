//! Logged-out tokens, refused on every node within the contract's 5 s.
//!
//! A logout writes the token's id to `revoked_tokens`; each node polls the recent rows
//! every [`POLL_INTERVAL`] and keeps the set of revoked ids in memory, so checking a token
//! costs a hash lookup, not a query. WebSocket sessions opened with a token hold a
//! [`SessionWatch`] on its id: when the id is revoked, the watch is cancelled and the
//! session closes with 4401.

use crate::session_watch::{SessionWatch, WatchSet};
use crate::timed_ids::TimedIds;
use std::sync::Arc;
use std::time::Duration;
use synctv_core::clock::now_ms;
use synctv_core::storage::{Database, Revocation, StorageError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often each node reads new revocations. Well inside the contract's 5 s.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How far back each poll looks before the newest revocation already seen: covers clock
/// differences between nodes and revocations committed late.
const POLL_OVERLAP_MS: i64 = 60_000;
/// Polls between two purges of expired tickets and revocations.
const PURGE_EVERY: u32 = 60;

pub struct Revocations {
    /// Revoked token ids, with when each would have expired anyway (ms).
    revoked: TimedIds,
    /// The sessions watching each token id.
    watches: Arc<WatchSet>,
}

impl Revocations {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            revoked: TimedIds::default(),
            watches: WatchSet::new(),
        })
    }

    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.revoked.contains(token_id)
    }

    /// Revokes a token on this node at once, and on the others through the database.
    pub async fn revoke(
        &self,
        db: &Database,
        token_id: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        let revocation = Revocation {
            token_id: token_id.to_owned(),
            revoked_at: now_ms(),
            expires_at,
        };
        db.revoke_token(&revocation).await?;
        self.apply(&revocation);
        Ok(())
    }

    /// A watch on `token_id`: cancelled when the token is revoked (at once if it already
    /// is). Held by a session for as long as it lives.
    pub fn watch(&self, token_id: &str) -> SessionWatch {
        self.watches.watch(token_id, self.is_revoked(token_id))
    }

    /// Polls the database until `stop` is cancelled. The first poll reads every
    /// revocation still in force, so a node that starts late knows them all.
    pub fn spawn_poller(
        self: &Arc<Self>,
        db: Database,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        let this = Arc::clone(self);
        tracker.spawn(async move {
            let mut since = 0;
            let mut polls = 0u32;
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                match db.revocations_since(since, now_ms()).await {
                    Ok(found) => {
                        for revocation in &found {
                            since = since.max(revocation.revoked_at - POLL_OVERLAP_MS);
                            this.apply(revocation);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read token revocations"),
                }
                polls += 1;
                if polls.is_multiple_of(PURGE_EVERY) {
                    this.forget_expired(now_ms());
                    if let Err(e) = db.purge_expired_credentials(now_ms()).await {
                        tracing::warn!(error = %e, "cannot purge expired tickets and revocations");
                    }
                }
            }
        });
    }

    fn apply(&self, revocation: &Revocation) {
        self.revoked
            .insert(&revocation.token_id, revocation.expires_at);
        self.watches.cancel(&revocation.token_id);
    }

    /// Expired tokens are refused by their signature; their revocations can go.
    fn forget_expired(&self, now_ms: i64) {
        self.revoked.forget_before(now_ms + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(id: &str) -> Revocation {
        Revocation {
            token_id: id.into(),
            revoked_at: 1,
            expires_at: 1000,
        }
    }

    #[tokio::test]
    async fn a_revocation_cancels_the_watches_of_that_token_only() {
        let revocations = Revocations::new();
        let a1 = revocations.watch("a");
        let a2 = revocations.watch("a");
        let b = revocations.watch("b");
        revocations.apply(&revocation("a"));
        a1.cancelled().await;
        a2.cancelled().await;
        assert!(!b.is_cancelled());
        assert!(revocations.is_revoked("a") && !revocations.is_revoked("b"));
        // A session opened after the revocation is cancelled at once.
        revocations.watch("a").cancelled().await;
    }

    #[test]
    fn expired_revocations_are_forgotten() {
        let revocations = Revocations::new();
        revocations.apply(&revocation("a"));
        revocations.forget_expired(999);
        assert!(revocations.is_revoked("a"));
        revocations.forget_expired(1000);
        assert!(!revocations.is_revoked("a"));
    }
}
