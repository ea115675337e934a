//! Catching a room up from the durable history: the gap filler and the reconciler.
//!
//! A node learns of other nodes' events through Redis, but Redis may lose a publish, go
//! away for a while, or a node may die between its commit and its publish. The history
//! table holds every event in order, so whenever a room on this node is behind (a gap
//! was seen, or the periodic check finds the database ahead), the missing events are
//! read from it and applied in order; if too many are missing, members get `resync`.

use crate::background::BackgroundTasks;
use crate::hub::{Delivery, PublishOutcome, RoomMessageHub};
use bytes::Bytes;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synctv_core::clock::now_ms;
use synctv_core::storage::Database;
use synctv_core::{Event, EventKind, PlaybackState, RoomId};
use tokio::sync::mpsc;

/// The most events replayed into a room at once; further behind, members get `resync`.
const MAX_REPLAY: i64 = 1000;
/// How long a gap may wait for Redis to fill it before the history is read.
const GAP_GRACE: Duration = Duration::from_millis(150);

/// Builds the hub's delivery for an event that was committed elsewhere (or read back).
pub fn delivery_of(event: &Event, frame: Bytes) -> Delivery {
    let state = match event.kind {
        EventKind::Playback | EventKind::Media => {
            serde_json::from_value::<PlaybackState>(event.data["state"].clone())
                .ok()
                .map(Arc::new)
        }
        _ => None,
    };
    Delivery {
        room: event.room.clone(),
        epoch: event.epoch.clone(),
        seq: event.seq,
        state,
        frame,
        closes_room: event.kind == EventKind::RoomArchived,
        accepted: Instant::now(),
    }
}

/// The `resync` notice: not part of the history, so it carries no `seq` of its own.
pub fn resync_frame(room: &RoomId, epoch: &str, state: &PlaybackState, seq: i64) -> Bytes {
    let notice = json!({
        "type": "event", "room": room, "epoch": epoch, "kind": "resync", "by": null,
        "data": {"state": state, "seq": seq}, "server_time": now_ms(),
    });
    Bytes::from(notice.to_string())
}

/// Requests catch-up of rooms; cheap to clone.
#[derive(Clone)]
pub struct CatchUp {
    requests: mpsc::UnboundedSender<RoomId>,
}

impl CatchUp {
    pub fn spawn(db: Database, hub: Arc<RoomMessageHub>, tasks: &BackgroundTasks) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        tasks.spawn(|stop| async move {
            stop.run_until_cancelled(run(db, hub, rx)).await;
        });
        Self { requests }
    }

    pub fn request(&self, room: RoomId) {
        let _ = self.requests.send(room);
    }
}

async fn run(db: Database, hub: Arc<RoomMessageHub>, mut rx: mpsc::UnboundedReceiver<RoomId>) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(GAP_GRACE).await;
        let mut rooms = HashSet::from([first]);
        while let Ok(room) = rx.try_recv() {
            rooms.insert(room);
        }
        for room in rooms {
            if let Err(e) = fill(&db, &hub, &room).await {
                tracing::warn!(room = %room, error = %e, "catch-up from the history failed");
            }
        }
    }
}

/// Applies the events the database holds past what this node applied.
pub async fn fill(
    db: &Database,
    hub: &RoomMessageHub,
    room: &RoomId,
) -> Result<(), synctv_core::storage::StorageError> {
    let Some((_, applied, _)) = hub.position(room) else {
        return Ok(());
    };
    let Some((epoch, last_seq, state)) = db.room_position(room).await? else {
        return Ok(());
    };
    if last_seq <= applied {
        return Ok(());
    }
    if last_seq - applied > MAX_REPLAY {
        let epoch_text = epoch.as_str().to_owned();
        hub.resync(room, epoch, last_seq, state, |state, seq| {
            resync_frame(room, &epoch_text, state, seq)
        });
        return Ok(());
    }
    let events = db
        .events_between(room, applied, Some(last_seq), MAX_REPLAY)
        .await?;
    metrics::counter!("synctv_catch_up_events_total").increment(events.len() as u64);
    for event in events {
        let Ok(json) = serde_json::to_vec(&event) else {
            continue;
        };
        if let PublishOutcome::Gap { after, before } =
            hub.publish(delivery_of(&event, Bytes::from(json)))
        {
            tracing::warn!(room = %room, after, before, "the history itself has a gap");
        }
    }
    Ok(())
}

/// In cluster mode: every `every`, asks the database where each room with members here
/// stands and catches up the ones that are behind (a lost publish, an outage).
pub fn spawn_reconciler(
    db: Database,
    hub: Arc<RoomMessageHub>,
    catch_up: CatchUp,
    every: Duration,
    tasks: &BackgroundTasks,
) {
    tasks.every(every, move || {
        let (db, hub, catch_up) = (db.clone(), hub.clone(), catch_up.clone());
        async move { reconcile(&db, &hub, &catch_up).await }
    });
}

async fn reconcile(db: &Database, hub: &RoomMessageHub, catch_up: &CatchUp) {
    let rooms = hub.member_rooms();
    if rooms.is_empty() {
        return;
    }
    let ids: Vec<RoomId> = rooms.iter().map(|(id, _)| id.clone()).collect();
    match db.last_seqs(&ids).await {
        Ok(positions) => {
            for (room, db_seq) in positions {
                let applied = rooms
                    .iter()
                    .find(|(id, _)| *id == room)
                    .map_or(0, |(_, s)| *s);
                if db_seq > applied || hub.has_gap(&room) {
                    catch_up.request(room);
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "reconcile skipped: database unavailable"),
    }
}
