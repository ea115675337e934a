//! `TimedIds`: ids a node remembers with a time each (when a token expires, when a
//! disconnect was asked), forgotten by that time. What revocations and disconnects keep.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct TimedIds {
    ids: Mutex<HashMap<String, i64>>,
}

impl TimedIds {
    pub fn insert(&self, id: &str, at_ms: i64) {
        self.lock().insert(id.to_owned(), at_ms);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Forgets the ids whose time is before `cutoff_ms`.
    pub fn forget_before(&self, cutoff_ms: i64) {
        self.lock().retain(|_, at| *at >= cutoff_ms);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        // One insert or retain per update: consistent across a panic elsewhere.
        self.ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::TimedIds;

    #[test]
    fn ids_are_forgotten_by_their_time() {
        let ids = TimedIds::default();
        ids.insert("a", 1000);
        ids.insert("b", 2000);
        ids.forget_before(1000);
        assert!(ids.contains("a") && ids.contains("b"));
        ids.forget_before(1001);
        assert!(!ids.contains("a") && ids.contains("b"));
    }
}
