//! `Bus`: what the nodes of a cluster need from each other, behind one interface: carry a
//! room's committed events to the nodes serving it, presence across nodes (first and
//! last connections decided cluster-wide), the node registry (heartbeats, who is alive,
//! who cleans up after a dead node), and outage detection with recovery. Two
//! implementations: [`redis`](crate::redis) (the default; presence and the registry live
//! in Redis keys, decided by Lua scripts) and [`nats`](crate::nats) (core NATS; presence
//! and the registry ride on heartbeats, each node keeping its own view).
//!
//! Either way the database is the sequencer and the truth: a bus only makes delivery
//! fast, and everything it loses is filled from the history.

use crate::background::BackgroundTasks;
use crate::catch_up::CatchUp;
use crate::deduplicator::Deduplicator;
use crate::error::ClusterError;
use crate::hub::RoomMessageHub;
use crate::nats::{NatsBus, NatsError};
use crate::node_registry::{NodeInfo, NodeRegistry};
use crate::presence::Arrival;
use crate::redis::presence::ClusterPresence;
use crate::redis::RedisLayer;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use synctv_core::config::NatsUrls;
use synctv_core::{Actor, Config, RoomId, UserId};

/// Whether a bus carries this node's events to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BusStatus {
    Disabled,
    Ok,
    Down,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Nats(#[from] NatsError),
}

pub enum Bus {
    Redis(RedisBus),
    Nats(Arc<NatsBus>),
}

/// The Redis implementation's parts.
pub struct RedisBus {
    layer: Arc<RedisLayer>,
    presence: ClusterPresence,
    registry: NodeRegistry,
}

impl Bus {
    /// The bus `config` names (Redis or NATS; the configuration allows one at most),
    /// started on `tasks`; `None` for a single node. `dedup` is the node's deduplicator
    /// (present exactly when a bus is configured).
    pub async fn start(
        config: &Config,
        node_id: &str,
        hub: Arc<RoomMessageHub>,
        catch_up: CatchUp,
        dedup: Option<Arc<Deduplicator>>,
        tasks: &BackgroundTasks,
    ) -> Result<Option<Bus>, ClusterError> {
        let Some(dedup) = dedup else {
            return Ok(None);
        };
        let heartbeat = Duration::from_secs(config.cluster.heartbeat_secs);
        if let Some(url) = &config.redis.url {
            let layer = RedisLayer::start(
                url,
                config.redis.cluster_mode,
                &config.redis.key_prefix,
                hub,
                catch_up,
                dedup,
                tasks,
            )
            .await
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
            return Ok(Some(Bus::Redis(RedisBus {
                presence: ClusterPresence::new(layer.keys.clone(), node_id),
                registry: NodeRegistry::new(layer.keys.clone(), node_id, heartbeat),
                layer,
            })));
        }
        if let Some(urls) = &config.nats.url {
            let bus = NatsBus::start(
                &NatsUrls::list(urls),
                &config.nats.subject_prefix,
                node_id,
                heartbeat,
                hub,
                catch_up,
                dedup,
                tasks,
            )
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
            return Ok(Some(Bus::Nats(bus)));
        }
        Ok(None)
    }

    pub fn is_up(&self) -> bool {
        match self {
            Bus::Redis(r) => r.layer.is_up(),
            Bus::Nats(n) => n.is_up(),
        }
    }

    /// How many times the bus came back after an outage.
    pub fn recoveries(&self) -> u64 {
        match self {
            Bus::Redis(r) => r.layer.recoveries(),
            Bus::Nats(n) => n.recoveries(),
        }
    }

    pub fn is_nats(&self) -> bool {
        matches!(self, Bus::Nats(_))
    }

    // Events.

    /// Queues a committed event (seq `seq` of `room`) for the other nodes; never waits.
    pub fn publish(&self, room: &RoomId, seq: i64, frame: Bytes) {
        match self {
            Bus::Redis(r) => r.layer.publish(room, seq, frame),
            Bus::Nats(n) => n.publish(room.clone(), frame),
        }
    }

    /// Receives `room`'s events from now on (idempotent).
    pub async fn subscribe_room(&self, room: &RoomId) {
        match self {
            Bus::Redis(r) => r.layer.subscribe_room(room).await,
            Bus::Nats(n) => n.subscribe_room(room).await,
        }
    }

    pub async fn unsubscribe_room(&self, room: &RoomId) {
        match self {
            Bus::Redis(r) => r.layer.unsubscribe_room(room).await,
            Bus::Nats(n) => n.unsubscribe_room(room).await,
        }
    }

    // Presence across nodes.

    /// One more connection of `who` in `room` on this node, unless the room holds
    /// `limit` users cluster-wide.
    pub async fn arrive(
        &self,
        room: &RoomId,
        who: &Actor,
        limit: usize,
    ) -> Result<Arrival, BusError> {
        match self {
            Bus::Redis(r) => Ok(r
                .presence
                .arrive(&mut r.layer.link(), room, who, limit)
                .await?),
            Bus::Nats(n) => Ok(n.arrive(room, who, limit).await?),
        }
    }

    /// One connection fewer; `true` when it was the user's last in the cluster.
    pub async fn depart(&self, room: &RoomId, user: &UserId) -> Result<bool, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.presence.depart(&mut r.layer.link(), room, user).await?),
            Bus::Nats(n) => Ok(n.depart(room, user).await?),
        }
    }

    pub async fn members(&self, room: &RoomId) -> Result<Vec<Actor>, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.presence.members(&mut r.layer.link(), room).await?),
            Bus::Nats(n) => Ok(n.members(room)),
        }
    }

    pub async fn count(&self, room: &RoomId) -> Result<usize, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.presence.count(&mut r.layer.link(), room).await?),
            Bus::Nats(n) => Ok(n.count(room)),
        }
    }

    /// Writes this node's share of `room` again after an outage; returns the users the
    /// rest of the cluster did not count.
    pub async fn restore(
        &self,
        room: &RoomId,
        users: &[(Actor, usize)],
    ) -> Result<Vec<Actor>, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.presence.restore(&mut r.layer.link(), room, users).await?),
            Bus::Nats(n) => Ok(n.restore(room, users).await?),
        }
    }

    /// Removes a dead node's share of presence; returns, per room, the users only it held.
    pub async fn reap(&self, node: &str) -> Result<Vec<(RoomId, Vec<Actor>)>, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.presence.reap(&mut r.layer.link(), node).await?),
            Bus::Nats(n) => Ok(n.reap(node)),
        }
    }

    /// Users whose last connections left two nodes at once, each node believing the
    /// other still held them, so that neither recorded `member_left` (NATS only: Redis
    /// decides the last connection atomically).
    pub fn due_departures(&self) -> Vec<(RoomId, Actor)> {
        match self {
            Bus::Redis(_) => Vec::new(),
            Bus::Nats(n) => n.due_departures(),
        }
    }

    // The node registry.

    /// Announces this node as alive.
    pub async fn beat(&self, info: &NodeInfo) -> Result<(), BusError> {
        match self {
            Bus::Redis(r) => Ok(r.registry.beat(&mut r.layer.link(), info).await?),
            Bus::Nats(n) => Ok(n.beat(info).await?),
        }
    }

    /// Live nodes, and the known ids whose heartbeats stopped.
    pub async fn scan(&self) -> Result<(Vec<NodeInfo>, Vec<String>), BusError> {
        match self {
            Bus::Redis(r) => Ok(r.registry.scan(&mut r.layer.link()).await?),
            Bus::Nats(n) => Ok(n.scan()),
        }
    }

    /// Takes the right to clean up after the dead `node` (one survivor wins).
    pub async fn claim_reaping(&self, node: &str) -> Result<bool, BusError> {
        match self {
            Bus::Redis(r) => Ok(r.registry.claim_reaping(&mut r.layer.link(), node).await?),
            Bus::Nats(n) => Ok(n.claim_reaping(node)),
        }
    }

    /// Forgets the dead `node` once its cleanup is done.
    pub async fn forget(&self, node: &str) -> Result<(), BusError> {
        match self {
            Bus::Redis(r) => Ok(r.registry.forget(&mut r.layer.link(), node).await?),
            Bus::Nats(n) => {
                n.forget(node);
                Ok(())
            }
        }
    }
}
