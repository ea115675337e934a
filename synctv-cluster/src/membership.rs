//! Cluster membership: each heartbeat a node announces itself, learns who else is alive,
//! cleans up after dead nodes (their users get `member_left`), and, after a bus outage,
//! writes its presence back (users the others took for gone get `member_joined`). All of
//! it through the [`Bus`], Redis or NATS.

use crate::bus::Bus;
use crate::history_writer::HistoryWriter;
use crate::node_registry::{NodeInfo, ThisNode};
use crate::presence_book::PresenceBook;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synctv_core::storage::{Database, RoomChange, RoomChangeKind};
use synctv_core::{Actor, EventKind, RoomId};

/// What a membership round works with; shared by the manager and the round's task.
pub(crate) struct Membership {
    pub(crate) bus: Arc<Bus>,
    pub(crate) this_node: Arc<ThisNode>,
    presence: Arc<PresenceBook>,
    db: Database,
    writer: HistoryWriter,
    /// Bus recoveries already answered by restoring presence.
    restored: AtomicU64,
    /// The last scan of the registry, and when it was made.
    live_nodes: Mutex<(Vec<NodeInfo>, Option<Instant>)>,
    heartbeat: Duration,
}

impl Membership {
    pub(crate) fn new(
        bus: Arc<Bus>,
        this_node: Arc<ThisNode>,
        presence: Arc<PresenceBook>,
        db: Database,
        writer: HistoryWriter,
        heartbeat: Duration,
    ) -> Self {
        Self {
            bus,
            this_node,
            presence,
            db,
            writer,
            restored: AtomicU64::new(0),
            live_nodes: Mutex::new((Vec::new(), None)),
            heartbeat,
        }
    }

    pub(crate) fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The other live nodes as the last registry scan saw them; empty when that scan is
    /// older than the heartbeat keys' lifetime.
    pub(crate) fn other_nodes(&self) -> Vec<NodeInfo> {
        let (nodes, scanned) = &*self.live_nodes.lock().unwrap_or_else(|p| p.into_inner());
        if !scanned.is_some_and(|t| t.elapsed() < self.heartbeat * 3) {
            return Vec::new();
        }
        nodes
            .iter()
            .filter(|n| n.node_id != self.this_node.node_id)
            .cloned()
            .collect()
    }

    /// One registry round: beat, list, and clean up after dead nodes.
    pub(crate) async fn round(&self) {
        let bus = &self.bus;
        // The bus came back: it may have lost our presence (a restart), or a survivor may
        // have reaped it (a partition looked like a death). Write it again.
        let recoveries = bus.recoveries();
        if self.restored.swap(recoveries, Ordering::Relaxed) != recoveries {
            self.announce_returned_users().await;
        }
        if let Err(e) = bus.beat(&self.this_node.info()).await {
            tracing::debug!(error = %e, "heartbeat failed");
            return;
        }
        for (room, actor) in bus.due_departures() {
            self.record_departure(&room, actor).await;
        }
        match bus.scan().await {
            Ok((live, dead)) => {
                *self.live_nodes.lock().unwrap_or_else(|p| p.into_inner()) =
                    (live, Some(Instant::now()));
                for node in dead {
                    if node != self.this_node.node_id
                        && bus.claim_reaping(&node).await.unwrap_or(false)
                    {
                        tracing::info!(node = %node, "a node died: removing its members");
                        self.reap_node(&node).await;
                        if let Err(e) = bus.forget(&node).await {
                            tracing::debug!(node = %node, error = %e, "a dead node stays listed until the next round");
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "registry scan failed"),
        }
    }

    /// Writes this node's presence back after an outage; users the rest of the cluster
    /// recorded as gone meanwhile are back, and the history says so.
    async fn announce_returned_users(&self) {
        for (room, users) in self.presence.restore().await {
            for actor in users {
                // Only where the history says they left (a partition taken for a death);
                // after a plain restart of the bus nobody left.
                match self.db.last_presence_event(&room, &actor.user_id).await {
                    Ok(Some(EventKind::MemberLeft)) => {}
                    _ => continue,
                }
                let change = RoomChange {
                    room: room.clone(),
                    by: Some(actor.clone()),
                    kind: RoomChangeKind::MemberJoined(actor),
                };
                if let Err(e) = self.writer.submit(change).await {
                    tracing::warn!(room = %room, error = %e, "member_joined after an outage was not recorded");
                }
            }
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
                self.record_departure(&room, actor).await;
            }
        }
    }

    /// Records `member_left` for a user no node holds any more, if the history holds them
    /// as present: a dead node's share, or a view across regions, may be older than it.
    async fn record_departure(&self, room: &RoomId, actor: Actor) {
        match self.db.last_presence_event(room, &actor.user_id).await {
            Ok(Some(EventKind::MemberJoined)) => {}
            _ => return,
        }
        let change = RoomChange {
            room: room.clone(),
            by: Some(actor.clone()),
            kind: RoomChangeKind::MemberLeft(actor),
        };
        if let Err(e) = self.writer.submit(change).await {
            tracing::warn!(room = %room, error = %e, "member_left of a departed user was not recorded");
        }
    }
}
