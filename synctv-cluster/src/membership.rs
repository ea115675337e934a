//! Cluster membership: each heartbeat a node announces itself, learns who else is alive,
//! cleans up after dead nodes (their users get `member_left`), and, after a Redis outage,
//! writes its presence back (users the others took for gone get `member_joined`).

use crate::cluster_manager::ClusterManager;
use std::sync::Weak;
use std::time::{Duration, Instant};
use synctv_core::storage::{RoomChange, RoomChangeKind};
use synctv_core::EventKind;

/// Runs a membership round every `every` while the manager lives.
pub(crate) fn spawn(manager: Weak<ClusterManager>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(manager) = manager.upgrade() else {
                break;
            };
            manager.registry_round().await;
        }
    });
}

impl ClusterManager {
    /// One registry round: beat, list, and clean up after dead nodes.
    async fn registry_round(&self) {
        let Some(parts) = &self.cluster else { return };
        let mut link = parts.redis.link();
        // Redis came back: it may have lost our presence (a restart), or a survivor may
        // have reaped it (a partition looked like a death). Write it again.
        let recoveries = parts.redis.recoveries();
        if parts
            .restored
            .swap(recoveries, std::sync::atomic::Ordering::Relaxed)
            != recoveries
        {
            // Users the rest of the cluster recorded as gone meanwhile are back: say so.
            for (room, users) in self.presence.restore().await {
                for actor in users {
                    // Only where the history says they left (a partition taken for a
                    // death); after a plain Redis restart nobody left.
                    match self.db.last_presence_event(&room, &actor.user_id).await {
                        Ok(Some(EventKind::MemberLeft)) => {}
                        _ => continue,
                    }
                    let change = RoomChange {
                        room: room.clone(),
                        by: Some(actor.clone()),
                        kind: RoomChangeKind::MemberJoined(actor),
                    };
                    if let Err(e) = self.submit(change).await {
                        tracing::warn!(room = %room, error = %e, "member_joined after an outage was not recorded");
                    }
                }
            }
        }
        if let Err(e) = parts.registry.beat(&mut link, &self.this_node()).await {
            tracing::debug!(error = %e, "heartbeat failed");
            return;
        }
        match parts.registry.scan(&mut link).await {
            Ok((live, dead)) => {
                *parts.live_nodes.lock().unwrap_or_else(|p| p.into_inner()) =
                    (live, Some(Instant::now()));
                for node in dead {
                    if node != self.node_id
                        && parts
                            .registry
                            .claim_reaping(&mut link, &node)
                            .await
                            .unwrap_or(false)
                    {
                        tracing::info!(node = %node, "a node died: removing its members");
                        self.reap_node(&node).await;
                        let _ = parts.registry.forget(&mut link, &node).await;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "registry scan failed"),
        }
    }

    /// Removes `node`'s presence and records `member_left` for the users only it held.
    pub(crate) async fn reap_node(&self, node: &str) {
        let departed = match self.presence.reap(node).await {
            Ok(departed) => departed,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "cleaning up after a node failed");
                return;
            }
        };
        for (room, actors) in departed {
            for actor in actors {
                let change = RoomChange {
                    room: room.clone(),
                    by: Some(actor.clone()),
                    kind: RoomChangeKind::MemberLeft(actor),
                };
                if let Err(e) = self.submit(change).await {
                    tracing::warn!(room = %room, error = %e, "member_left of a dead node's user was not recorded");
                }
            }
        }
    }
}
