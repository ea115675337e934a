//! `FanOut`: what happens to each event this node commits. It is encoded once, queued for
//! the other nodes (cluster mode), and handed to the local hub in seq order.

use crate::bus::Bus;
use crate::catch_up::CatchUp;
use crate::delivery::{encode_event, Delivery};
use crate::history_writer::CommitSink;
use crate::hub::{PublishOutcome, RoomMessageHub};
use std::sync::Arc;
use synctv_core::storage::CommittedChange;

pub struct FanOut {
    pub hub: Arc<RoomMessageHub>,
    pub catch_up: CatchUp,
    /// Cluster mode only.
    pub bus: Option<Arc<Bus>>,
}

impl CommitSink for FanOut {
    fn committed(&self, change: &CommittedChange) {
        for event in &change.events {
            let Some(frame) = encode_event(event) else {
                continue;
            };
            metrics::counter!("synctv_events_published_total").increment(1);
            if let Some(bus) = &self.bus {
                bus.publish(&event.room, event.seq, frame.clone());
            }
            // Another node committed the events in between; they arrive through the bus
            // or, failing that, from the history.
            if let PublishOutcome::Gap { .. } = self.hub.publish(Delivery::of(event, frame)) {
                self.catch_up.request(event.room.clone());
            }
        }
    }
}
