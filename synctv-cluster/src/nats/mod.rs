//! The NATS bus: cluster mode over core NATS (subjects, request/reply, gateways between
//! regions), never JetStream, whose quorum cannot survive a cut link between two regions.
//! The database stays the sequencer and the truth; NATS only carries committed events
//! (each room on its own subject, so a gateway forwards a room only where it has
//! members) and the nodes' heartbeats, which also carry presence (see [`view`]).
//!
//! When NATS is unreachable the node serves its own clients and the reconciler moves
//! events between nodes from the history; when NATS is back (the client reconnects and
//! resubscribes by itself), every room here is caught up and presence is announced again.
//!
//! - [`subjects`]: subject names; [`messages`]: heartbeats and presence announcements;
//!   [`view`]: what this node knows of the others (liveness, presence).

pub mod messages;
pub mod subjects;
pub mod view;

use crate::background::{next_batch, BackgroundTasks};
use crate::catch_up::CatchUp;
use crate::deduplicator::Deduplicator;
use crate::delivery::Delivery;
use crate::hub::{PublishOutcome, RoomMessageHub};
use crate::node_registry::NodeInfo;
use crate::presence::Arrival;
use async_nats::connection::State;
use bytes::Bytes;
use futures_util::StreamExt;
use messages::{ClusterMessage, NodeShare};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subjects::Subjects;
use synctv_core::{Actor, Event, RoomId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use view::ClusterView;

/// Publishes waiting at most; past this one is dropped and the reconciler delivers it
/// from the history, so a slow bus never holds up commits.
const PUBLISH_QUEUE: usize = 65_536;
const PUBLISH_BATCH: usize = 512;
const HEALTH_EVERY: Duration = Duration::from_millis(500);
/// How long an announcement may wait for the client; past it the heartbeat repairs.
const ANNOUNCE_PATIENCE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to nats: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("nats is unreachable")]
    Down,
    #[error("nats publish failed: {0}")]
    Publish(#[from] async_nats::PublishError),
}

pub struct NatsBus {
    client: async_nats::Client,
    subjects: Subjects,
    node_id: String,
    up: AtomicBool,
    recoveries: AtomicU64,
    publishes: mpsc::Sender<(RoomId, Bytes)>,
    /// Rooms served here: `Some` while a subscription delivers their events.
    rooms: Mutex<HashMap<RoomId, Option<CancellationToken>>>,
    view: Mutex<ClusterView>,
    /// Held while an announcement is built and sent, so that announcements leave in the
    /// order of the states they describe.
    announcing: tokio::sync::Mutex<()>,
    inbound: Arc<Inbound>,
    tasks: BackgroundTasks,
}

/// What a room's subscription needs to apply what arrives.
struct Inbound {
    hub: Arc<RoomMessageHub>,
    catch_up: CatchUp,
    dedup: Arc<Deduplicator>,
}

impl NatsBus {
    /// Connects to `urls` (any of them; the client moves between them by itself) and
    /// starts the publisher, the cluster listener and the health check on `tasks`. Fails
    /// only if no server can be reached at start.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        urls: &[String],
        prefix: &str,
        node_id: &str,
        heartbeat: Duration,
        hub: Arc<RoomMessageHub>,
        catch_up: CatchUp,
        dedup: Arc<Deduplicator>,
        tasks: &BackgroundTasks,
    ) -> Result<Arc<Self>, NatsError> {
        let addrs: Vec<async_nats::ServerAddr> =
            urls.iter().filter_map(|u| u.parse().ok()).collect();
        let client = async_nats::ConnectOptions::new()
            .name(format!("synctv {node_id}"))
            // A node hears its own events from its commits, not back from the bus.
            .no_echo()
            .connection_timeout(Duration::from_millis(1500))
            .ping_interval(Duration::from_secs(2))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(1000))
            })
            .subscription_capacity(65_536)
            .connect(addrs)
            .await?;
        let (publishes, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(Self {
            client,
            subjects: Subjects::new(prefix),
            node_id: node_id.to_owned(),
            up: AtomicBool::new(true),
            recoveries: AtomicU64::new(0),
            publishes,
            rooms: Mutex::new(HashMap::new()),
            view: Mutex::new(ClusterView::new(node_id, heartbeat * 3)),
            announcing: tokio::sync::Mutex::new(()),
            inbound: Arc::new(Inbound {
                hub,
                catch_up,
                dedup,
            }),
            tasks: tasks.clone(),
        });
        metrics::gauge!("synctv_nats_up").set(1.0);
        let cluster = bus
            .client
            .subscribe(bus.subjects.cluster())
            .await
            .map_err(|_| NatsError::Down)?;
        let listener = bus.clone();
        tasks.spawn(|stop| async move {
            stop.run_until_cancelled(listener.listen(cluster)).await;
        });
        let (client, subjects) = (bus.client.clone(), bus.subjects.clone());
        tasks.spawn(|stop| publish_loop(client, subjects, publish_rx, stop));
        let watched = bus.clone();
        tasks.every(HEALTH_EVERY, move || {
            let bus = watched.clone();
            async move { bus.check_health().await }
        });
        Ok(bus)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How many times NATS came back after an outage.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Queues a committed event for the other nodes; never waits.
    pub fn publish(&self, room: RoomId, frame: Bytes) {
        if self.publishes.try_send((room, frame)).is_err() {
            metrics::counter!("synctv_nats_publish_dropped_total").increment(1);
        }
    }

    /// Receives `room`'s events from now on (idempotent). A failure leaves the room to
    /// the reconciler until the health check subscribes again.
    pub async fn subscribe_room(&self, room: &RoomId) {
        let first = {
            let mut rooms = self.served();
            let first = !rooms.contains_key(room);
            rooms.entry(room.clone()).or_insert(None);
            first
        };
        if first {
            self.open_subscription(room).await;
        }
    }

    pub async fn unsubscribe_room(&self, room: &RoomId) {
        if let Some(Some(token)) = self.served().remove(room) {
            token.cancel();
        }
    }

    fn served(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Option<CancellationToken>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn open_subscription(&self, room: &RoomId) {
        let subscribe = self.client.subscribe(self.subjects.room(room));
        let subscriber = match tokio::time::timeout(ANNOUNCE_PATIENCE, subscribe).await {
            Ok(Ok(subscriber)) => subscriber,
            _ => {
                tracing::debug!(room = %room, "subscribe failed; the reconciler covers the room");
                return;
            }
        };
        let token = {
            let mut rooms = self.served();
            match rooms.get_mut(room) {
                // Left meanwhile: drop the subscription again.
                None => return,
                Some(slot) => slot.get_or_insert_with(CancellationToken::new).clone(),
            }
        };
        let (inbound, room) = (self.inbound.clone(), room.clone());
        self.tasks.spawn(move |stop| async move {
            tokio::select! {
                _ = receive(inbound, &room, subscriber) => {}
                _ = token.cancelled() => {}
                _ = stop.cancelled() => {}
            }
        });
    }

    /// Applies what the other nodes announce.
    async fn listen(self: Arc<Self>, mut cluster: async_nats::Subscriber) {
        while let Some(message) = cluster.next().await {
            let Ok(message) = serde_json::from_slice::<ClusterMessage>(&message.payload) else {
                metrics::counter!("synctv_nats_bad_messages_total").increment(1);
                continue;
            };
            let now = Instant::now();
            match message {
                ClusterMessage::Heartbeat { info, rooms } => {
                    self.view().heartbeat(info, rooms, now);
                }
                ClusterMessage::Share(share) => self.view().share(share, now),
            }
        }
    }

    /// One health check: connected and answering a ping. When NATS is back after an
    /// outage, subscriptions that failed are opened and every room here catches up.
    async fn check_health(&self) {
        let connected = self.client.connection_state() == State::Connected;
        let up = connected
            && tokio::time::timeout(HEALTH_EVERY * 2, self.client.flush())
                .await
                .is_ok_and(|r| r.is_ok());
        let was = self.up.swap(up, Ordering::Relaxed);
        if was == up {
            return;
        }
        metrics::gauge!("synctv_nats_up").set(if up { 1.0 } else { 0.0 });
        if !up {
            tracing::warn!("nats is unreachable: serving this node's clients only (degraded)");
            return;
        }
        self.view().pardon(Instant::now());
        self.recoveries.fetch_add(1, Ordering::Relaxed);
        tracing::info!("nats is reachable again: rejoining the cluster");
        let rooms: Vec<(RoomId, bool)> = self
            .served()
            .iter()
            .map(|(room, sub)| (room.clone(), sub.is_some()))
            .collect();
        for (room, subscribed) in rooms {
            if !subscribed {
                self.open_subscription(&room).await;
            }
            self.inbound.catch_up.request(room);
        }
    }

    /// Sends `message` to every node, in order with this node's other announcements.
    async fn announce(
        &self,
        build: impl FnOnce(&ClusterView) -> ClusterMessage,
    ) -> Result<(), NatsError> {
        if !self.is_up() {
            return Err(NatsError::Down);
        }
        let _order = self.announcing.lock().await;
        let message = build(&self.view());
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        let send = self.client.publish(self.subjects.cluster(), payload.into());
        match tokio::time::timeout(ANNOUNCE_PATIENCE, send).await {
            Ok(result) => result.map_err(NatsError::from),
            Err(_) => Err(NatsError::Down),
        }
    }

    async fn announce_room(&self, room: &RoomId) -> Result<(), NatsError> {
        let node = self.node_id.clone();
        self.announce(|view| {
            ClusterMessage::Share(NodeShare {
                node,
                room: view.own_room(room),
            })
        })
        .await
    }

    // Presence.

    pub async fn arrive(
        &self,
        room: &RoomId,
        who: &Actor,
        limit: usize,
    ) -> Result<Arrival, NatsError> {
        if !self.is_up() {
            return Err(NatsError::Down);
        }
        let arrival = self.view().arrive(room, who, limit, Instant::now());
        if arrival != Arrival::Full {
            self.announce_room(room).await?;
        }
        Ok(arrival)
    }

    pub async fn depart(&self, room: &RoomId, user: &UserId) -> Result<bool, NatsError> {
        let last = self.view().depart(room, user, Instant::now());
        self.announce_room(room).await?;
        Ok(last)
    }

    pub fn members(&self, room: &RoomId) -> Vec<Actor> {
        self.view().members(room, Instant::now())
    }

    pub fn count(&self, room: &RoomId) -> usize {
        self.view().count(room, Instant::now())
    }

    /// Announces this node's share of `room` again (after an outage); returns the users
    /// no other live node holds.
    pub async fn restore(
        &self,
        room: &RoomId,
        users: &[(Actor, usize)],
    ) -> Result<Vec<Actor>, NatsError> {
        let alone = self.view().restore(room, users, Instant::now());
        self.announce_room(room).await?;
        Ok(alone)
    }

    /// The users only the dead `node` held, per room.
    pub fn reap(&self, node: &str) -> Vec<(RoomId, Vec<Actor>)> {
        self.view().departed_with(node, Instant::now())
    }

    // The node registry.

    /// Announces this node and everyone it holds.
    pub async fn beat(&self, info: &NodeInfo) -> Result<(), NatsError> {
        let info = info.clone();
        self.announce(|view| ClusterMessage::Heartbeat {
            info,
            rooms: view.own_rooms(),
        })
        .await
    }

    /// Departures nobody recorded because two nodes let a user go at once; see
    /// [`ClusterView::due_departures`].
    pub fn due_departures(&self) -> Vec<(RoomId, Actor)> {
        self.view().due_departures(Instant::now())
    }

    pub fn scan(&self) -> (Vec<NodeInfo>, Vec<String>) {
        self.view().scan(Instant::now())
    }

    /// `true` when this node is the survivor that cleans up after `node`; a node that is
    /// not forgets the dead one at once (the reaper records the departures).
    pub fn claim_reaping(&self, node: &str) -> bool {
        let mut view = self.view();
        if view.reaps(Instant::now()) {
            true
        } else {
            view.forget(node);
            false
        }
    }

    pub fn forget(&self, node: &str) {
        self.view().forget(node);
    }
}

/// Applies a room's events as they arrive, in seq order; a gap asks for catch-up.
async fn receive(inbound: Arc<Inbound>, room: &RoomId, mut subscriber: async_nats::Subscriber) {
    while let Some(message) = subscriber.next().await {
        let frame = message.payload;
        let Ok(event) = serde_json::from_slice::<Event>(&frame) else {
            metrics::counter!("synctv_nats_bad_messages_total").increment(1);
            continue;
        };
        if event.room != *room || !inbound.dedup.first_sighting(room, event.seq) {
            continue;
        }
        metrics::counter!("synctv_nats_received_total").increment(1);
        if let PublishOutcome::Gap { .. } = inbound.hub.publish(Delivery::of(&event, frame)) {
            inbound.catch_up.request(room.clone());
        }
    }
    let _ = subscriber.unsubscribe().await;
}

/// Sends queued publishes; once stopped, what is still queued goes out, then it ends.
async fn publish_loop(
    client: async_nats::Client,
    subjects: Subjects,
    mut rx: mpsc::Receiver<(RoomId, Bytes)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        if next_batch(&mut rx, &mut batch, PUBLISH_BATCH, &stop).await == 0 {
            return;
        }
        let mut failed = 0u64;
        let sent = batch.len() as u64;
        for (room, frame) in batch.drain(..) {
            // While disconnected the client would hold these until it reconnects and the
            // queue would stall: the reconciler delivers them from the history instead.
            let delivered = client.connection_state() == State::Connected
                && tokio::time::timeout(
                    ANNOUNCE_PATIENCE,
                    client.publish(subjects.room(&room), frame),
                )
                .await
                .is_ok_and(|r| r.is_ok());
            if !delivered {
                failed += 1;
            }
        }
        if failed > 0 {
            metrics::counter!("synctv_nats_publish_failures_total").increment(failed);
        }
        metrics::counter!("synctv_nats_published_total").increment(sent - failed);
    }
}
