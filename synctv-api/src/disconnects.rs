//! The server API's disconnect: every connection of a user, on every node, closed within
//! the contract's 5 s with close code 4000.
//!
//! The request is a row of `user_disconnects`; each node polls the recent rows every
//! [`POLL_INTERVAL`], closes the sessions of that user it holds (each holds a
//! [`SessionWatch`] on its user id) and writes how many in `user_disconnect_counts`. The
//! node that took the request closes its own at once and sums the counts the live nodes
//! wrote, waiting for them at most [`COUNT_WAIT`]: a node that has not answered by then
//! still closes its connections, but they are not in the count.

use crate::session_watch::{SessionWatch, WatchSet};
use crate::timed_ids::TimedIds;
use std::sync::Arc;
use std::time::Duration;
use synctv_core::clock::now_ms;
use synctv_core::storage::{Database, StorageError, UserDisconnect};
use synctv_core::UserId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often each node reads new disconnect requests. Well inside the contract's 5 s.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest the requesting node waits for the other live nodes' counts.
pub const COUNT_WAIT: Duration = Duration::from_secs(3);
/// How far back each poll looks before the newest request seen: covers clock differences
/// between nodes and requests committed late. Requests are remembered this long, so none
/// is applied twice.
const POLL_OVERLAP_MS: i64 = 60_000;
/// Requests older than this are deleted from the database.
const KEEP_MS: i64 = 10 * 60_000;
/// Polls between two purges.
const PURGE_EVERY: u32 = 60;

pub struct Disconnects {
    node_id: String,
    watches: Arc<WatchSet>,
    /// Requests this node applied, with when each was made (ms), so none is applied twice.
    applied: TimedIds,
}

impl Disconnects {
    pub fn new(node_id: &str) -> Arc<Self> {
        Arc::new(Self {
            node_id: node_id.to_owned(),
            watches: WatchSet::new(),
            applied: TimedIds::default(),
        })
    }

    /// A watch on `user`'s connections, held by each session for as long as it lives.
    pub fn watch(&self, user: &UserId) -> SessionWatch {
        self.watches.watch(user.as_str(), false)
    }

    /// Closes every connection of `user` in the cluster; how many, as counted by this node
    /// and by those of `live_nodes` that answered within [`COUNT_WAIT`].
    pub async fn disconnect(
        &self,
        db: &Database,
        user: &UserId,
        live_nodes: &[String],
    ) -> Result<u64, StorageError> {
        let request = UserDisconnect {
            disconnect_id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user.clone(),
            requested_at: now_ms(),
        };
        db.insert_disconnect(&request).await?;
        let here = self.apply(&request);
        db.record_disconnect_count(&request.disconnect_id, &self.node_id, here)
            .await?;
        let deadline = tokio::time::Instant::now() + COUNT_WAIT;
        loop {
            let counts = db.disconnect_counts(&request.disconnect_id).await?;
            let all_answered = live_nodes
                .iter()
                .all(|node| counts.iter().any(|(answered, _)| answered == node));
            if all_answered || tokio::time::Instant::now() >= deadline {
                if !all_answered {
                    tracing::warn!(
                        answered = counts.len(),
                        live = live_nodes.len(),
                        "not every node counted its connections in time; they still close them"
                    );
                }
                return Ok(counts.iter().map(|(_, n)| n).sum());
            }
            // Pacing the reads of a table the other nodes write once a poll.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the database until `stop` is cancelled.
    pub fn spawn_poller(
        self: &Arc<Self>,
        db: Database,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        let this = Arc::clone(self);
        tracker.spawn(async move {
            // Only requests from now on: a node that starts holds no connection an older
            // request could be about.
            let mut since = now_ms() - POLL_OVERLAP_MS;
            let mut polls = 0u32;
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                match db.disconnects_since(since).await {
                    Ok(found) => {
                        for request in found {
                            since = since.max(request.requested_at - POLL_OVERLAP_MS);
                            if this.is_applied(&request.disconnect_id) {
                                continue;
                            }
                            let closed = this.apply(&request);
                            if let Err(e) = db
                                .record_disconnect_count(
                                    &request.disconnect_id,
                                    &this.node_id,
                                    closed,
                                )
                                .await
                            {
                                tracing::warn!(error = %e, "cannot record a disconnect's count");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read disconnect requests"),
                }
                polls += 1;
                if polls.is_multiple_of(PURGE_EVERY) {
                    this.forget_before(since);
                    if let Err(e) = db.purge_disconnects(now_ms() - KEEP_MS).await {
                        tracing::warn!(error = %e, "cannot purge old disconnect requests");
                    }
                }
            }
        });
    }

    /// Closes this node's sessions of the request's user; how many.
    fn apply(&self, request: &UserDisconnect) -> u64 {
        self.applied
            .insert(&request.disconnect_id, request.requested_at);
        self.watches.cancel(request.user_id.as_str()) as u64
    }

    fn is_applied(&self, disconnect_id: &str) -> bool {
        self.applied.contains(disconnect_id)
    }

    /// Requests made before `since_ms` are no longer read, so they need not be remembered.
    fn forget_before(&self, since_ms: i64) {
        self.applied.forget_before(since_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, user: &str) -> UserDisconnect {
        UserDisconnect {
            disconnect_id: id.into(),
            user_id: UserId::from(user),
            requested_at: 1000,
        }
    }

    #[tokio::test]
    async fn a_request_closes_that_users_sessions_once() {
        let disconnects = Disconnects::new("n1");
        let alice = [
            disconnects.watch(&UserId::from("alice")),
            disconnects.watch(&UserId::from("alice")),
        ];
        let bob = disconnects.watch(&UserId::from("bob"));
        assert_eq!(disconnects.apply(&request("d1", "alice")), 2);
        for watch in &alice {
            watch.cancelled().await;
        }
        assert!(!bob.is_cancelled());
        assert!(disconnects.is_applied("d1"));
        // A connection opened after the request stays open.
        let later = disconnects.watch(&UserId::from("alice"));
        assert!(!later.is_cancelled());
        disconnects.forget_before(1001);
        assert!(!disconnects.is_applied("d1"));
    }
}
