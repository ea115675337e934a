//! Catching a room up from the durable history: the gap filler and the reconciler.
//!
//! A node learns of other nodes' events through Redis, but Redis may lose a publish, go
//! away for a while, or a node may die between its commit and its publish. The history
//! table holds every event in order, so whenever a room on this node is behind (a gap
//! was seen, or the periodic check finds the database ahead), the missing events are
//! read from it and applied in order; if too many are missing, members get `resync`.

use crate::background::BackgroundTasks;
use crate::deduplicator::Deduplicator;
use crate::delivery::{encode_event, Delivery};
use crate::hub::{PublishOutcome, RoomMessageHub};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use synctv_core::clock::now_ms;
use synctv_core::storage::{Database, StorageError};
use synctv_core::{Event, RoomId};
use tokio::sync::mpsc;

/// The most events replayed into a room at once; further behind, members get `resync`.
const MAX_REPLAY: i64 = 1000;
/// How long a gap may wait for Redis to fill it before the history is read.
const GAP_GRACE: Duration = Duration::from_millis(150);

/// Catches rooms up, now (`fill`) or soon (`request`, batched on the catch-up task).
/// Cheap to clone.
#[derive(Clone)]
pub struct CatchUp {
    db: Database,
    hub: Arc<RoomMessageHub>,
    /// Cluster mode: events applied from the history are marked seen, so their late
    /// copies from Redis are dropped before they are decoded.
    dedup: Option<Arc<Deduplicator>>,
    requests: mpsc::UnboundedSender<RoomId>,
}

impl CatchUp {
    /// Starts the catch-up task on `tasks`.
    pub fn spawn(
        db: Database,
        hub: Arc<RoomMessageHub>,
        dedup: Option<Arc<Deduplicator>>,
        tasks: &BackgroundTasks,
    ) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        let catch_up = Self {
            db,
            hub,
            dedup,
            requests,
        };
        let worker = catch_up.clone();
        tasks.spawn(|stop| async move {
            stop.run_until_cancelled(worker.run(rx)).await;
        });
        catch_up
    }

    /// Asks for `room` to be caught up soon (after a short grace for Redis to fill it).
    pub fn request(&self, room: RoomId) {
        // Fails only once the task has stopped, when nothing needs catching up anymore.
        let _ = self.requests.send(room);
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<RoomId>) {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(GAP_GRACE).await;
            let mut rooms = HashSet::from([first]);
            while let Ok(room) = rx.try_recv() {
                rooms.insert(room);
            }
            for room in rooms {
                if let Err(e) = self.fill(&room).await {
                    tracing::warn!(room = %room, error = %e, "catch-up from the history failed");
                }
            }
        }
    }

    /// Applies the events the database holds past what this node applied.
    pub async fn fill(&self, room: &RoomId) -> Result<(), StorageError> {
        let Some((_, applied, _)) = self.hub.position(room) else {
            return Ok(());
        };
        let Some((epoch, last_seq, state)) = self.db.room_position(room).await? else {
            return Ok(());
        };
        if last_seq <= applied {
            return Ok(());
        }
        if last_seq - applied > MAX_REPLAY {
            let notice = Event::resync(room.clone(), epoch.clone(), &state, last_seq, now_ms());
            if let Some(notice) = encode_event(&notice) {
                self.hub.resync(room, epoch, last_seq, state, notice);
            }
            return Ok(());
        }
        let events = self
            .db
            .events_between(room, applied, Some(last_seq), MAX_REPLAY)
            .await?;
        metrics::counter!("synctv_catch_up_events_total").increment(events.len() as u64);
        for event in events {
            let Some(frame) = encode_event(&event) else {
                continue;
            };
            if let Some(dedup) = &self.dedup {
                dedup.mark(room, event.seq);
            }
            if let PublishOutcome::Gap { after, before } =
                self.hub.publish(Delivery::of(&event, frame))
            {
                tracing::warn!(room = %room, after, before, "the history itself has a gap");
            }
        }
        Ok(())
    }

    /// In cluster mode: every `every`, asks the database where each room with members
    /// here stands and catches up the ones that are behind (a lost publish, an outage).
    pub fn spawn_reconciler(&self, every: Duration, tasks: &BackgroundTasks) {
        let catch_up = self.clone();
        tasks.every(every, move || {
            let catch_up = catch_up.clone();
            async move { catch_up.reconcile().await }
        });
    }

    async fn reconcile(&self) {
        let rooms = self.hub.member_rooms();
        if rooms.is_empty() {
            return;
        }
        let ids: Vec<RoomId> = rooms.iter().map(|(id, _)| id.clone()).collect();
        match self.db.last_seqs(&ids).await {
            Ok(positions) => {
                for (room, db_seq) in positions {
                    let applied = rooms
                        .iter()
                        .find(|(id, _)| *id == room)
                        .map_or(0, |(_, s)| *s);
                    if db_seq > applied || self.hub.has_gap(&room) {
                        self.request(room);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "reconcile skipped: database unavailable"),
        }
    }
}
