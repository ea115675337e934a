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

use crate::background::{next_batch, BackgroundTasks};
use crate::catch_up::CatchUp;
use crate::deduplicator::Deduplicator;
use crate::delivery::Delivery;
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
use tokio_util::sync::CancellationToken;

/// Publishes waiting at most; past this a publish is dropped (the reconciler delivers it
/// from the history instead), so a slow Redis never holds up commits.
const PUBLISH_QUEUE: usize = 65_536;
/// Publishes sent together.
const PUBLISH_BATCH: usize = 512;
const HEALTH_EVERY: Duration = Duration::from_millis(500);

pub struct RedisLayer {
    link: RedisLink,
    pub keys: Keys,
    up: AtomicBool,
    /// Counts returns of Redis after an outage; presence is restored after each.
    recoveries: std::sync::atomic::AtomicU64,
    publishes: mpsc::Sender<(RoomId, i64, Bytes)>,
    subscribed: Mutex<HashSet<RoomId>>,
    /// Events this node has seen (its own, and those applied from the history or from
    /// Redis): their copies arriving from Redis are dropped before they are decoded.
    dedup: Arc<Deduplicator>,
}

impl RedisLayer {
    /// Connects and starts the publisher, the subscriber and the health check on `tasks`.
    /// Fails only if Redis cannot be reached at all at start.
    pub async fn start(
        url: &str,
        cluster: bool,
        prefix: &str,
        hub: Arc<RoomMessageHub>,
        catch_up: CatchUp,
        dedup: Arc<Deduplicator>,
        tasks: &BackgroundTasks,
    ) -> redis::RedisResult<Arc<Self>> {
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let link = RedisLink::connect(url, cluster, push_tx).await?;
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let layer = Arc::new(Self {
            link,
            keys: Keys::new(prefix),
            up: AtomicBool::new(true),
            recoveries: std::sync::atomic::AtomicU64::new(0),
            publishes,
            subscribed: Mutex::new(HashSet::new()),
            dedup,
        });
        metrics::gauge!("synctv_redis_up").set(1.0);
        let (link, keys) = (layer.link.clone(), layer.keys.clone());
        tasks.spawn(|stop| publish_loop(link, keys, publish_rx, stop));
        let receiver = layer.clone();
        let behind = catch_up.clone();
        tasks.spawn(|stop| async move {
            stop.run_until_cancelled(receive_loop(receiver, push_rx, hub, behind))
                .await;
        });
        let watched = layer.clone();
        tasks.every(HEALTH_EVERY, move || {
            let (layer, catch_up) = (watched.clone(), catch_up.clone());
            async move { layer.check_health(&catch_up).await }
        });
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

    /// Queues a committed event for the other nodes; never waits. Its echo (this node
    /// hears its own room channels) is dropped by the deduplicator.
    pub fn publish(&self, room: &RoomId, seq: i64, frame: Bytes) {
        self.dedup.mark(room, seq);
        if self.publishes.try_send((room.clone(), seq, frame)).is_err() {
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

    /// One health check: when Redis is back after an outage, renews the subscriptions and
    /// catches every room up.
    async fn check_health(&self, catch_up: &CatchUp) {
        let up = tokio::time::timeout(HEALTH_EVERY * 2, self.link.clone().ping())
            .await
            .is_ok_and(|r| r.is_ok());
        let was = self.set_up(up);
        if up && !was {
            let rooms: Vec<RoomId> = self.subscribed_rooms().iter().cloned().collect();
            for room in rooms {
                if let Err(e) = self
                    .link
                    .clone()
                    .subscribe(&self.keys.room_channel(&room))
                    .await
                {
                    tracing::debug!(room = %room, error = %e, "resubscribe failed");
                }
                catch_up.request(room);
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
/// multiplexed connection, so throughput is not one round trip per event. Once stopped,
/// what is still queued (the last commits of a node shutting down) goes out, then it ends.
async fn publish_loop(
    link: RedisLink,
    keys: Keys,
    mut rx: mpsc::Receiver<(RoomId, i64, Bytes)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        if next_batch(&mut rx, &mut batch, PUBLISH_BATCH, &stop).await == 0 {
            return;
        }
        publish_batch(&link, &keys, &mut batch).await;
    }
}

/// A message is `<seq>\n<event frame>`: the seq is a header the receivers read without
/// decoding the event, so that copies they have seen are dropped before any decoding.
async fn publish_batch(link: &RedisLink, keys: &Keys, batch: &mut Vec<(RoomId, i64, Bytes)>) {
    let sends = batch.drain(..).map(|(room, seq, frame)| {
        let mut link = link.clone();
        let channel = keys.room_channel(&room);
        let header = format!("{seq}\n");
        let mut payload = Vec::with_capacity(header.len() + frame.len());
        payload.extend_from_slice(header.as_bytes());
        payload.extend_from_slice(&frame);
        async move { link.publish(&channel, &payload).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        metrics::counter!("synctv_redis_publish_failures_total").increment(failed as u64);
    }
    metrics::counter!("synctv_redis_published_total").increment((results.len() - failed) as u64);
}

/// Reads each message's room (from the channel) and seq (from the header), drops what
/// the deduplicator has seen, decodes the rest once per node and hands it to the hub,
/// which applies it in seq order.
async fn receive_loop(
    layer: Arc<RedisLayer>,
    mut rx: mpsc::UnboundedReceiver<PushInfo>,
    hub: Arc<RoomMessageHub>,
    catch_up: CatchUp,
) {
    while let Some(push) = rx.recv().await {
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
                let Some((seq, split)) = read_header(&payload) else {
                    metrics::counter!("synctv_redis_bad_messages_total").increment(1);
                    continue;
                };
                if !layer.dedup.first_sighting(&room, seq) {
                    continue; // our own event, or one already applied here
                }
                // The event's bytes are the tail of the message: shared, not copied.
                let frame = Bytes::from(payload).slice(split + 1..);
                let event = match serde_json::from_slice::<Event>(&frame) {
                    Ok(event) if event.room == room && event.seq == seq => event,
                    _ => {
                        metrics::counter!("synctv_redis_bad_messages_total").increment(1);
                        continue;
                    }
                };
                metrics::counter!("synctv_redis_received_total").increment(1);
                if let PublishOutcome::Gap { .. } = hub.publish(Delivery::of(&event, frame)) {
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

/// The seq of a message and where its header ends, without decoding the event.
fn read_header(payload: &[u8]) -> Option<(i64, usize)> {
    let split = payload.iter().take(21).position(|b| *b == b'\n')?;
    let seq = std::str::from_utf8(&payload[..split]).ok()?.parse().ok()?;
    Some((seq, split))
}

#[cfg(test)]
mod tests {
    use super::read_header;

    #[test]
    fn the_header_gives_the_seq_without_decoding() {
        assert_eq!(read_header(b"42\n{\"type\":\"event\"}"), Some((42, 2)));
        assert_eq!(read_header(b"node-1\n{}"), None);
        assert_eq!(read_header(b"{\"no\":\"header\"}"), None);
        assert_eq!(read_header(&[b'9'; 40]), None);
    }
}
