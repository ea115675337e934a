//! `FanOut`: what happens to each event this node commits. It is encoded once, handed to
//! the local hub in seq order, and (in cluster mode) queued for the other nodes.

use crate::bus::Bus;
use crate::catch_up::CatchUp;
use crate::history_writer::CommitSink;
use crate::hub::{Delivery, PublishOutcome, RoomMessageHub};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use synctv_core::storage::CommittedChange;
use synctv_core::EventKind;

pub struct FanOut {
    pub hub: Arc<RoomMessageHub>,
    pub catch_up: CatchUp,
    /// Set once the bus is connected (cluster mode only).
    pub bus: Arc<OnceLock<Arc<Bus>>>,
}

impl CommitSink for FanOut {
    fn committed(&self, change: &CommittedChange) {
        let frame = match serde_json::to_vec(&change.event) {
            Ok(json) => Bytes::from(json),
            Err(e) => {
                tracing::error!(error = %e, "an event could not be encoded");
                return;
            }
        };
        metrics::counter!("synctv_events_published_total").increment(1);
        if let Some(bus) = self.bus.get() {
            bus.publish(change.event.room.clone(), frame.clone());
        }
        let outcome = self.hub.publish(Delivery {
            room: change.event.room.clone(),
            epoch: change.event.epoch.clone(),
            seq: change.event.seq,
            state: Some(Arc::new(change.state.clone())),
            frame,
            closes_room: change.event.kind == EventKind::RoomArchived,
            accepted: Instant::now(),
        });
        // Another node committed the events in between; they arrive through the bus or,
        // failing that, from the history.
        if let PublishOutcome::Gap { .. } = outcome {
            self.catch_up.request(change.event.room.clone());
        }
    }
}
