//! `Deduplicator`: a bounded LRU of the `(room, seq)` pairs this node has seen, in front
//! of the hub in cluster mode. The node's own events are marked when published, events
//! applied from the history when caught up, and Redis messages when first received; a
//! Redis message whose pair was seen (the echo of this node's own publish, an event that
//! catch-up applied first, a repeat) is dropped after reading its seq header and before
//! its event is decoded. It saves work, not correctness: an evicted pair only means the
//! copy is decoded and the hub's seq check drops it.

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

    /// Records `(room, seq)` as seen (an event this node published or caught up).
    pub fn mark(&self, room: &RoomId, seq: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.put((room.clone(), seq), ());
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
