//! The Redis layer of cluster mode: carries committed events between nodes, holds
//! cluster-wide presence and the node registry. The database stays the truth (it orders
//! and keeps every event); Redis only makes delivery fast. When Redis is unreachable the
//! node keeps serving its own clients, and the reconciler catches rooms up from the
//! history until Redis is back.
//!
//! - [`connection`]: the RESP3 link (single server or cluster) with resubscription.
//! - [`keys`]: names, with one hash tag per room.
//! - [`presence`]: per-user presence across nodes, and cleanup after a dead node.

pub mod connection;
pub mod keys;
pub mod presence;

use crate::catch_up::{delivery_of, CatchUp};
use crate::deduplicator::Deduplicator;
use crate::hub::{PublishOutcome, RoomMessageHub};
use bytes::Bytes;
use connection::RedisLink;
use keys::Keys;
use redis::{PushInfo, PushKind, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use synctv_core::{Event, RoomId};
use tokio::sync::mpsc;

/// Publishes waiting at most; past this a publish is dropped (the reconciler delivers it
/// from the history instead), so a slow Redis never holds up commits.
const PUBLISH_QUEUE: usize = 65_536;
/// Publishes sent together.
const PUBLISH_BATCH: usize = 512;
const HEALTH_EVERY: Duration = Duration::from_millis(500);

pub struct RedisLayer {
    link: RedisLink,
    pub keys: Keys,
    node_id: String,
    up: AtomicBool,
    /// Counts returns of Redis after an outage; presence is restored after each.
    recoveries: std::sync::atomic::AtomicU64,
    publishes: mpsc::Sender<(RoomId, Bytes)>,
    subscribed: Mutex<HashSet<RoomId>>,
}

impl RedisLayer {
    /// Connects and starts the publisher, the subscriber and the health check. Fails only
    /// if Redis cannot be reached at all at start.
    pub async fn start(
        url: &str,
        cluster: bool,
        prefix: &str,
        node_id: &str,
        hub: Arc<RoomMessageHub>,
        catch_up: CatchUp,
    ) -> redis::RedisResult<Arc<Self>> {
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let link = RedisLink::connect(url, cluster, push_tx).await?;
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let layer = Arc::new(Self {
            link,
            keys: Keys::new(prefix),
            node_id: node_id.to_owned(),
            up: AtomicBool::new(true),
            recoveries: std::sync::atomic::AtomicU64::new(0),
            publishes,
            subscribed: Mutex::new(HashSet::new()),
        });
        metrics::gauge!("synctv_redis_up").set(1.0);
        tokio::spawn(publish_loop(
            layer.link.clone(),
            layer.keys.clone(),
            node_id.to_owned(),
            publish_rx,
        ));
        let dedup = Arc::new(Deduplicator::new(65_536));
        tokio::spawn(receive_loop(
            Arc::downgrade(&layer),
            push_rx,
            hub,
            catch_up.clone(),
            dedup,
        ));
        tokio::spawn(health_loop(Arc::downgrade(&layer), catch_up));
        Ok(layer)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How many times Redis came back after an outage.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    pub fn link(&self) -> RedisLink {
        self.link.clone()
    }

    /// Queues a committed event for the other nodes; never waits.
    pub fn publish(&self, room: RoomId, frame: Bytes) {
        if self.publishes.try_send((room, frame)).is_err() {
            metrics::counter!("synctv_redis_publish_dropped_total").increment(1);
        }
    }

    /// Receives `room`'s events from now on (idempotent). An error leaves the room to the
    /// reconciler until Redis is back.
    pub async fn subscribe_room(&self, room: &RoomId) {
        let first = self.subscribed_rooms().insert(room.clone());
        if first {
            if let Err(e) = self
                .link
                .clone()
                .subscribe(&self.keys.room_channel(room))
                .await
            {
                tracing::debug!(room = %room, error = %e, "subscribe failed; the reconciler covers the room");
            }
        }
    }

    pub async fn unsubscribe_room(&self, room: &RoomId) {
        if self.subscribed_rooms().remove(room) {
            if let Err(e) = self
                .link
                .clone()
                .unsubscribe(&self.keys.room_channel(room))
                .await
            {
                tracing::debug!(room = %room, error = %e, "unsubscribe failed");
            }
        }
    }

    fn subscribed_rooms(&self) -> std::sync::MutexGuard<'_, HashSet<RoomId>> {
        self.subscribed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was != up {
            metrics::gauge!("synctv_redis_up").set(if up { 1.0 } else { 0.0 });
            if up {
                self.recoveries.fetch_add(1, Ordering::Relaxed);
                tracing::info!("redis is reachable again: rejoining the cluster");
            } else {
                tracing::warn!("redis is unreachable: serving this node's clients only (degraded)");
            }
        }
        was
    }
}

/// Sends queued publishes in batches: the requests of a batch go out together on the
/// multiplexed connection, so throughput is not one round trip per event.
async fn publish_loop(
    link: RedisLink,
    keys: Keys,
    node_id: String,
    mut rx: mpsc::Receiver<(RoomId, Bytes)>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let sends = batch.drain(..).map(|(room, frame)| {
            let mut link = link.clone();
            let channel = keys.room_channel(&room);
            let mut payload = Vec::with_capacity(node_id.len() + 1 + frame.len());
            payload.extend_from_slice(node_id.as_bytes());
            payload.push(b'\n');
            payload.extend_from_slice(&frame);
            async move { link.publish(&channel, &payload).await }
        });
        let results = futures_util::future::join_all(sends).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            metrics::counter!("synctv_redis_publish_failures_total").increment(failed as u64);
        }
        metrics::counter!("synctv_redis_published_total")
            .increment((results.len() - failed) as u64);
    }
}

/// Decodes each message once per node and hands it to the hub in seq order.
async fn receive_loop(
    layer: std::sync::Weak<RedisLayer>,
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    hub: Arc<RoomMessageHub>,
    catch_up: CatchUp,
    dedup: Arc<Deduplicator>,
) {
    while let Some(push) = rx.recv().await {
        let Some(layer) = layer.upgrade() else { break };
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    continue;
                };
                let Some(room) = std::str::from_utf8(&channel)
                    .ok()
                    .and_then(|c| layer.keys.room_of_channel(c))
                else {
                    continue;
                };
                let Some(split) = payload.iter().position(|b| *b == b'\n') else {
                    continue;
                };
                if &payload[..split] == layer.node_id.as_bytes() {
                    continue; // our own event, already delivered here by the commit
                }
                // The event's bytes are the tail of the message: shared, not copied.
                let frame = Bytes::from(payload).slice(split + 1..);
                let Ok(event) = serde_json::from_slice::<Event>(&frame) else {
                    metrics::counter!("synctv_redis_bad_messages_total").increment(1);
                    continue;
                };
                if event.room != room || !dedup.first_sighting(&room, event.seq) {
                    continue;
                }
                metrics::counter!("synctv_redis_received_total").increment(1);
                if let PublishOutcome::Gap { .. } = hub.publish(delivery_of(&event, frame)) {
                    catch_up.request(room);
                }
            }
            PushKind::Disconnection => {
                layer.set_up(false);
            }
            _ => {}
        }
    }
}

/// Watches Redis; when it comes back, renews subscriptions and catches every room up.
async fn health_loop(layer: std::sync::Weak<RedisLayer>, catch_up: CatchUp) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        tick.tick().await;
        let Some(layer) = layer.upgrade() else { break };
        let up = tokio::time::timeout(HEALTH_EVERY * 2, layer.link.clone().ping())
            .await
            .is_ok_and(|r| r.is_ok());
        let was = layer.set_up(up);
        if up && !was {
            let rooms: Vec<RoomId> = layer.subscribed_rooms().iter().cloned().collect();
            for room in rooms {
                if let Err(e) = layer
                    .link
                    .clone()
                    .subscribe(&layer.keys.room_channel(&room))
                    .await
                {
                    tracing::debug!(room = %room, error = %e, "resubscribe failed");
                }
                catch_up.request(room);
            }
        }
    }
}
