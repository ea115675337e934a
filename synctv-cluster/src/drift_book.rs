//! `DriftBook`: the latest drift report of each member connected here (contract 1.1,
//! "Drift reports"). A report is taken at most once a second per member and room (the
//! rest are ignored), measured against the room's state on this node, counted in the
//! histogram `synctv_member_drift_seconds`, and written to the database with the others
//! once a second, so that `GET /members` on any node shows it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use synctv_core::storage::DriftReport;
use synctv_core::{RoomId, UserId};

/// The least time between two reports taken from one member in one room.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long a report is shown: a member that stopped reporting shows `null` after it.
pub const DRIFT_SHOWN_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct DriftBook {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    last_taken: HashMap<(RoomId, UserId), Instant>,
    unsaved: HashMap<(RoomId, UserId), (f64, i64)>,
}

impl DriftBook {
    /// Whether a report of `user` in `room` arriving at `now` is taken (one a second).
    pub fn take(&self, room: &RoomId, user: &UserId, now: Instant) -> bool {
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (room.clone(), user.clone());
        match book.last_taken.get(&key) {
            Some(last) if now.duration_since(*last) < REPORT_EVERY => false,
            _ => {
                book.last_taken.insert(key, now);
                true
            }
        }
    }

    /// Records a taken report's drift (ms), reported at `at_ms`.
    pub fn record(&self, room: &RoomId, user: &UserId, drift_ms: f64, at_ms: i64) {
        metrics::histogram!("synctv_member_drift_seconds").record(drift_ms.abs() / 1000.0);
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        book.unsaved
            .insert((room.clone(), user.clone()), (drift_ms, at_ms));
    }

    /// The member left the room on this node: forget its rate limit.
    pub fn forget(&self, room: &RoomId, user: &UserId) {
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        book.last_taken.remove(&(room.clone(), user.clone()));
    }

    /// The reports to write, taken out of the book.
    pub fn unsaved(&self) -> Vec<DriftReport> {
        let mut book = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        book.unsaved
            .drain()
            .map(|((room, user), (drift, at))| (room, user, drift, at))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_a_second_per_member_and_room() {
        let book = DriftBook::default();
        let (r, u, v) = (RoomId::from("r"), UserId::from("u"), UserId::from("v"));
        let t = Instant::now();
        assert!(book.take(&r, &u, t));
        assert!(!book.take(&r, &u, t + Duration::from_millis(999)));
        assert!(book.take(&r, &v, t), "another member is counted apart");
        assert!(book.take(&r, &u, t + Duration::from_millis(1000)));
        book.record(&r, &u, 12.0, 5);
        book.record(&r, &u, 15.0, 6);
        assert_eq!(book.unsaved(), vec![(r, u, 15.0, 6)]);
        assert!(book.unsaved().is_empty());
    }
}
