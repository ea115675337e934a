//! Logged-out tokens, refused on every node within the contract's 5 s.
//!
//! A logout writes the token's id to `revoked_tokens`; each node polls the recent rows
//! every [`POLL_INTERVAL`] and keeps the set of revoked ids in memory, so checking a token
//! costs a hash lookup, not a query. WebSocket sessions opened with a token hold a
//! [`RevocationWatch`] on its id: when the id is revoked, the watch is cancelled and the
//! session closes with 4401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
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

#[derive(Default)]
pub struct Revocations {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Revoked token ids, with when each would have expired anyway (ms).
    revoked: HashMap<String, i64>,
    /// The sessions watching each token id.
    watched: HashMap<String, Watched>,
}

struct Watched {
    cancel: CancellationToken,
    sessions: usize,
}

impl Revocations {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.lock().revoked.contains_key(token_id)
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
    pub fn watch(self: &Arc<Self>, token_id: &str) -> RevocationWatch {
        let mut state = self.lock();
        let already = state.revoked.contains_key(token_id);
        let watched = state
            .watched
            .entry(token_id.to_owned())
            .or_insert_with(|| Watched {
                cancel: CancellationToken::new(),
                sessions: 0,
            });
        watched.sessions += 1;
        if already {
            watched.cancel.cancel();
        }
        RevocationWatch {
            revoked: watched.cancel.clone(),
            token_id: token_id.to_owned(),
            owner: Arc::clone(self),
        }
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
        let mut state = self.lock();
        state
            .revoked
            .insert(revocation.token_id.clone(), revocation.expires_at);
        if let Some(watched) = state.watched.get(&revocation.token_id) {
            watched.cancel.cancel();
        }
    }

    /// Expired tokens are refused by their signature; their revocations can go.
    fn forget_expired(&self, now_ms: i64) {
        self.lock()
            .revoked
            .retain(|_, expires_at| *expires_at > now_ms);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is one insert
        // or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A session's interest in its token: `revoked()` resolves once the token is revoked.
pub struct RevocationWatch {
    revoked: CancellationToken,
    token_id: String,
    owner: Arc<Revocations>,
}

impl RevocationWatch {
    pub async fn revoked(&self) {
        self.revoked.cancelled().await
    }
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        let mut state = self.owner.lock();
        if let Some(watched) = state.watched.get_mut(&self.token_id) {
            watched.sessions -= 1;
            if watched.sessions == 0 {
                state.watched.remove(&self.token_id);
            }
        }
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
        a1.revoked().await;
        a2.revoked().await;
        assert!(!b.revoked.is_cancelled());
        assert!(revocations.is_revoked("a") && !revocations.is_revoked("b"));
        // A session opened after the revocation is cancelled at once.
        revocations.watch("a").revoked().await;
    }

    #[test]
    fn watches_are_forgotten_with_their_last_session() {
        let revocations = Revocations::new();
        let first = revocations.watch("a");
        let second = revocations.watch("a");
        drop(first);
        assert_eq!(revocations.lock().watched.len(), 1);
        drop(second);
        assert!(revocations.lock().watched.is_empty());
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
