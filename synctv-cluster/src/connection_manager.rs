//! `ConnectionManager`: admission of WebSocket connections on this node (per user, per
//! node), and [`Refusal`], what the cluster layer refuses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use synctv_core::config::LimitsConfig;
use synctv_core::UserId;

use crate::hub::ConnectionId;
use crate::node_counters::NodeCounters;

/// What the cluster layer refuses; the `reason` label of `synctv_refusals_total` (the
/// API counts its own refusals under the same metric with its own labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyForUser,
    NodeFull,
    RoomFull,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooManyForUser => "too_many_for_user",
            Refusal::NodeFull => "node_full",
            Refusal::RoomFull => "room_full",
        }
    }

    /// Counts this refusal in `/metrics` and in the node's totals.
    pub fn record(self, counters: &NodeCounters) -> Self {
        counters.refused(self.as_str());
        self
    }
}

struct Counts {
    global: AtomicUsize,
    per_user: Mutex<HashMap<UserId, usize>>,
}

/// Admits connections within the per-user and per-node limits.
pub struct ConnectionManager {
    counts: Arc<Counts>,
    next_id: AtomicU64,
    per_user: usize,
    global: usize,
    /// This node's deliveries and refusals, which its heartbeat carries.
    node_counters: Arc<NodeCounters>,
}

/// Held for a connection's lifetime; releases its place when dropped.
pub struct ConnectionPermit {
    pub id: ConnectionId,
    user: UserId,
    counts: Arc<Counts>,
}

impl ConnectionManager {
    /// `global` is the node's limit after the file-descriptor ceiling was applied.
    pub fn new(limits: &LimitsConfig, global: usize) -> Self {
        Self {
            counts: Arc::new(Counts {
                global: AtomicUsize::new(0),
                per_user: Mutex::new(HashMap::new()),
            }),
            next_id: AtomicU64::new(1),
            per_user: limits.per_user,
            global,
            node_counters: Arc::default(),
        }
    }

    pub fn admit(&self, user: &UserId) -> Result<ConnectionPermit, Refusal> {
        let mut per_user = self
            .counts
            .per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.counts.global.load(Ordering::Relaxed) >= self.global {
            return Err(Refusal::NodeFull.record(&self.node_counters));
        }
        let count = per_user.entry(user.clone()).or_insert(0);
        if *count >= self.per_user {
            return Err(Refusal::TooManyForUser.record(&self.node_counters));
        }
        *count += 1;
        let total = self.counts.global.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("synctv_connections").set(total as f64);
        Ok(ConnectionPermit {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user: user.clone(),
            counts: self.counts.clone(),
        })
    }

    /// This node's totals of deliveries and refusals.
    pub fn counters(&self) -> &Arc<NodeCounters> {
        &self.node_counters
    }

    /// Open connections on this node.
    pub fn count(&self) -> usize {
        self.counts.global.load(Ordering::Relaxed)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut per_user = self
            .counts
            .per_user
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
        let total = self.counts.global.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("synctv_connections").set(total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_node_and_permits_release() {
        let limits = LimitsConfig {
            per_user: 2,
            ..LimitsConfig::default()
        };
        let manager = ConnectionManager::new(&limits, 3);
        let (a, b) = (UserId::from("a"), UserId::from("b"));
        let p1 = manager.admit(&a).unwrap();
        let _p2 = manager.admit(&a).unwrap();
        assert_eq!(manager.admit(&a).err(), Some(Refusal::TooManyForUser));
        let _p3 = manager.admit(&b).unwrap();
        assert_eq!(manager.admit(&b).err(), Some(Refusal::NodeFull));
        drop(p1);
        assert!(manager.admit(&b).is_ok());
        assert_ne!(_p2.id, _p3.id);
    }
}
