//! `NodeCounters`: this node's totals of deliveries and refusals, counted beside their
//! Prometheus metrics (`synctv_deliveries_total`, `synctv_refusals_total`) because a
//! node's heartbeat carries them to the others (the server API's stats list every live
//! node) and the Prometheus recorder is process-wide, not per node.

use metrics::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

/// Resolved once: the macro looks the metric up by name on every call, and this one is
/// counted for every frame that reaches a socket.
static DELIVERIES: LazyLock<Counter> =
    LazyLock::new(|| metrics::counter!("synctv_deliveries_total"));

#[derive(Debug, Default)]
pub struct NodeCounters {
    deliveries: AtomicU64,
    refusals: AtomicU64,
}

impl NodeCounters {
    /// `frames` frames reached sockets.
    pub fn delivered(&self, frames: u64) {
        DELIVERIES.increment(frames);
        self.deliveries.fetch_add(frames, Ordering::Relaxed);
    }

    /// Something was refused, for `reason` (the metric's label).
    pub fn refused(&self, reason: &'static str) {
        metrics::counter!("synctv_refusals_total", "reason" => reason).increment(1);
        self.refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let counters = NodeCounters::default();
        counters.delivered(3);
        counters.delivered(2);
        counters.refused("node_full");
        assert_eq!((counters.deliveries(), counters.refusals()), (5, 1));
    }
}
