//! `WatchSet`: sessions keyed by a name (a token id, a user id), each holding a
//! [`SessionWatch`] that resolves when its key is cancelled. What logout (close 4401) and
//! the server API's disconnect (close 4000) share: the set counts who is watching, and a
//! cancel reaches exactly the sessions watching at that moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct WatchSet {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    watched: HashMap<String, Watched>,
    next_generation: u64,
}

/// The sessions watching one key. A cancel removes the entry, so a session opened later
/// gets a fresh token (and the generation tells a stale watch's drop to leave it alone).
struct Watched {
    cancel: CancellationToken,
    sessions: usize,
    generation: u64,
}

impl WatchSet {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A watch on `key`, cancelled by the next [`WatchSet::cancel`] of that key (or at once
    /// when `already_cancelled`).
    pub fn watch(self: &Arc<Self>, key: &str, already_cancelled: bool) -> SessionWatch {
        let mut state = self.lock();
        state.next_generation += 1;
        let generation = state.next_generation;
        let watched = state
            .watched
            .entry(key.to_owned())
            .or_insert_with(|| Watched {
                cancel: CancellationToken::new(),
                sessions: 0,
                generation,
            });
        watched.sessions += 1;
        let cancelled = if already_cancelled {
            // This session alone: the others watching the key were not asked to stop.
            let token = CancellationToken::new();
            token.cancel();
            token
        } else {
            watched.cancel.clone()
        };
        SessionWatch {
            cancelled,
            key: key.to_owned(),
            generation: watched.generation,
            owner: Arc::clone(self),
        }
    }

    /// Cancels every session watching `key` now; how many there were.
    pub fn cancel(&self, key: &str) -> usize {
        match self.lock().watched.remove(key) {
            Some(watched) => {
                watched.cancel.cancel();
                watched.sessions
            }
            None => 0,
        }
    }

    /// Sessions watching `key` now.
    pub fn watching(&self, key: &str) -> usize {
        self.lock().watched.get(key).map_or(0, |w| w.sessions)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is one insert
        // or remove.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A session's interest in one key: `cancelled()` resolves once the key is cancelled.
pub struct SessionWatch {
    cancelled: CancellationToken,
    key: String,
    generation: u64,
    owner: Arc<WatchSet>,
}

impl SessionWatch {
    pub async fn cancelled(&self) {
        self.cancelled.cancelled().await
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut state = self.owner.lock();
        if let Some(watched) = state.watched.get_mut(&self.key) {
            if watched.generation == self.generation {
                watched.sessions -= 1;
                if watched.sessions == 0 {
                    state.watched.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_the_sessions_of_that_key_only() {
        let set = WatchSet::new();
        let a1 = set.watch("a", false);
        let a2 = set.watch("a", false);
        let b = set.watch("b", false);
        assert_eq!(set.cancel("a"), 2);
        a1.cancelled().await;
        a2.cancelled().await;
        assert!(!b.is_cancelled());
        // A session opened after the cancel is not affected by it.
        let later = set.watch("a", false);
        assert!(!later.is_cancelled());
        assert_eq!(set.watching("a"), 1);
        // Dropping the old watches leaves the new entry's count alone.
        drop((a1, a2));
        assert_eq!(set.watching("a"), 1);
        assert!(set.watch("a", true).is_cancelled());
        assert!(!later.is_cancelled());
    }

    #[test]
    fn keys_are_forgotten_with_their_last_session() {
        let set = WatchSet::new();
        let first = set.watch("a", false);
        let second = set.watch("a", false);
        drop(first);
        assert_eq!(set.watching("a"), 1);
        drop(second);
        assert!(set.lock().watched.is_empty());
        assert_eq!(set.cancel("a"), 0);
    }
}
