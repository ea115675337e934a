//! `Deduplicator`: a bounded LRU of recently seen `(room, seq)` pairs. It drops a node's
//! own echoes from Redis and the overlap between live pub/sub and catch-up from the
//! history, before any decoding beyond the header.

use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use synctv_core::RoomId;

pub struct Deduplicator {
    seen: Mutex<LruCache<(RoomId, i64), ()>>,
}

impl Deduplicator {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            seen: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// `true` the first time `(room, seq)` is offered; `false` (and a metric) after.
    pub fn first_sighting(&self, room: &RoomId, seq: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.put((room.clone(), seq), ()).is_some() {
            metrics::counter!("synctv_dedup_hits_total").increment(1);
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_caught_until_evicted() {
        let dedup = Deduplicator::new(2);
        let room = RoomId::from("r");
        assert!(dedup.first_sighting(&room, 1));
        assert!(!dedup.first_sighting(&room, 1));
        assert!(dedup.first_sighting(&room, 2));
        assert!(dedup.first_sighting(&room, 3));
        assert!(dedup.first_sighting(&room, 1), "evicted, so seen anew");
    }
}
