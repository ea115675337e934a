//! `ClusterManager`: the one interface the API uses to change rooms and to make a
//! connection a member of one. It hides whether this node runs alone or in a cluster.
//!
//! Data path: `submit` -> `HistoryWriter` (group commit, seq assigned by the database)
//! -> `FanOut` -> `RoomMessageHub` -> each member's `Outbox`.

use crate::connection_manager::{ConnectionManager, Refusal};
use crate::error::ClusterError;
use crate::history_writer::{CommitSink, HistoryWriter, PendingCommit};
use crate::hub::{
    ConnectionId, Delivery, JoinView, PublishOutcome, RoomMessageHub, SubscribeOutcome,
};
use crate::outbox::Outbox;
use crate::presence::{Arrival, Presence};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, CommittedChange, Database, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Config, Epoch, EventKind, RoomId};
use tokio::task::JoinHandle;

/// One member connection, as the cluster layer knows it.
#[derive(Clone, Debug)]
pub struct Member {
    pub conn: ConnectionId,
    pub actor: Actor,
    pub outbox: Outbox,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("no such room")]
    NotFound,
    #[error("the room is full")]
    RoomFull,
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Whether Redis carries this node's events to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisStatus {
    Disabled,
    Ok,
    Down,
}

/// A row of `/api/v1/cluster/nodes`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub address: String,
    pub connections: usize,
    pub rooms: usize,
    pub last_seen: i64,
}

/// Hands each committed event to the local hub, encoded once.
struct FanOut {
    hub: Arc<RoomMessageHub>,
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
        let outcome = self.hub.publish(Delivery {
            room: change.event.room.clone(),
            epoch: change.event.epoch.clone(),
            seq: change.event.seq,
            state: Arc::new(change.state.clone()),
            frame,
            closes_room: change.event.kind == EventKind::RoomArchived,
            accepted: Instant::now(),
        });
        if let PublishOutcome::Gap { after, before } = outcome {
            tracing::warn!(room = %change.event.room, after, before, "room events arrived out of order");
        }
    }
}

pub struct ClusterManager {
    node_id: String,
    address: String,
    db: Database,
    hub: Arc<RoomMessageHub>,
    writer: HistoryWriter,
    writer_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    presence: Presence,
    connections: ConnectionManager,
    per_room: usize,
}

impl ClusterManager {
    /// Starts the node's history writer. `global_limit` is the connection ceiling after
    /// the file-descriptor limit was applied.
    pub fn start(
        db: Database,
        config: &Config,
        node_id: String,
        address: String,
        global_limit: usize,
    ) -> Arc<Self> {
        let hub = Arc::new(RoomMessageHub::new(
            config.history.recent_events,
            config.history.max_recovery_events,
        ));
        let (writer, task) = HistoryWriter::spawn(
            db.clone(),
            FanOut { hub: hub.clone() },
            config.history.max_batch,
        );
        let manager = Arc::new(Self {
            node_id,
            address,
            db,
            hub: hub.clone(),
            writer,
            writer_task: std::sync::Mutex::new(Some(task)),
            presence: Presence::default(),
            connections: ConnectionManager::new(&config.limits, global_limit),
            per_room: config.limits.per_room,
        });
        let sweeper = Arc::downgrade(&manager);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                let Some(manager) = sweeper.upgrade() else {
                    break;
                };
                manager.hub.sweep(Duration::from_secs(60));
                metrics::gauge!("synctv_rooms_active").set(manager.hub.active_rooms() as f64);
            }
        });
        manager
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn connections(&self) -> &ConnectionManager {
        &self.connections
    }

    /// Commits a change to a room and fans out its event; the outcome is durable.
    pub async fn submit(&self, change: RoomChange) -> Result<ChangeOutcome, ClusterError> {
        self.writer.submit(change).await
    }

    /// Queues a change and returns at once; see [`HistoryWriter::enqueue`].
    pub async fn enqueue(&self, change: RoomChange) -> Result<PendingCommit, ClusterError> {
        self.writer.enqueue(change).await
    }

    /// Makes `member` a member of `room` and queues its `joined` frame, built by
    /// `make_joined` from the room's position and the members present.
    pub async fn join(
        &self,
        member: &Member,
        room: &RoomId,
        recover: Option<(Epoch, i64)>,
        make_joined: impl Fn(JoinView<'_>, &[Actor]) -> Bytes,
    ) -> Result<bool, JoinError> {
        match self.presence.arrive(room, &member.actor, self.per_room) {
            Arrival::Full => {
                Refusal::RoomFull.record();
                return Err(JoinError::RoomFull);
            }
            Arrival::First => {
                let change = RoomChange {
                    room: room.clone(),
                    by: Some(member.actor.clone()),
                    kind: RoomChangeKind::MemberJoined(member.actor.clone()),
                };
                match self.submit(change).await {
                    Ok(ChangeOutcome::Committed(_)) => {}
                    Ok(ChangeOutcome::Rejected(_)) => {
                        self.presence.depart(room, &member.actor.user_id);
                        return Err(JoinError::NotFound);
                    }
                    Err(e) => {
                        self.presence.depart(room, &member.actor.user_id);
                        return Err(e.into());
                    }
                }
            }
            Arrival::Again => {}
        }
        match self.subscribe(member, room, recover, &make_joined).await {
            Ok(recovered) => Ok(recovered),
            Err(e) => {
                self.depart(member, room).await;
                Err(e)
            }
        }
    }

    /// Queues a fresh `joined` for a connection that is already a member (a repeated
    /// `join`), recovering from `recover` if asked; presence is unchanged.
    pub async fn subscribe(
        &self,
        member: &Member,
        room: &RoomId,
        recover: Option<(Epoch, i64)>,
        make_joined: &impl Fn(JoinView<'_>, &[Actor]) -> Bytes,
    ) -> Result<bool, JoinError> {
        let mut history: Vec<(i64, Bytes)> = Vec::new();
        // Each retry has more at hand; a handful covers any race with live publishes.
        for _ in 0..8 {
            let members = self.presence.members(room);
            let recover_ref = recover.as_ref().map(|(e, s)| (e, *s));
            let outcome = self.hub.subscribe(
                room,
                member.conn,
                &member.outbox,
                recover_ref,
                &history,
                |view| make_joined(view, &members),
            );
            match outcome {
                SubscribeOutcome::Subscribed { recovered, .. } => return Ok(recovered),
                SubscribeOutcome::NoChannel => {
                    let (epoch, last_seq, state) = self
                        .db
                        .room_position(room)
                        .await
                        .map_err(ClusterError::from)?
                        .ok_or(JoinError::NotFound)?;
                    self.hub.open(room, epoch, last_seq, state);
                }
                SubscribeOutcome::NeedHistory { after, up_to } => {
                    let events = self
                        .db
                        .events_between(room, after, Some(up_to), up_to - after)
                        .await
                        .map_err(ClusterError::from)?;
                    history = events
                        .iter()
                        .filter_map(|e| {
                            serde_json::to_vec(e)
                                .ok()
                                .map(|json| (e.seq, Bytes::from(json)))
                        })
                        .collect();
                }
            }
        }
        Err(JoinError::Cluster(ClusterError::Timeout))
    }

    /// Ends `member`'s membership of `room`; the user's last connection there produces
    /// `member_left`.
    pub async fn leave(&self, member: &Member, room: &RoomId) -> Result<(), ClusterError> {
        self.hub.unsubscribe(room, member.conn);
        self.depart(member, room).await;
        Ok(())
    }

    async fn depart(&self, member: &Member, room: &RoomId) {
        if self.presence.depart(room, &member.actor.user_id) {
            let change = RoomChange {
                room: room.clone(),
                by: Some(member.actor.clone()),
                kind: RoomChangeKind::MemberLeft(member.actor.clone()),
            };
            if let Err(e) = self.submit(change).await {
                tracing::warn!(room = %room, error = %e, "member_left could not be recorded");
            }
        }
    }

    /// The room was archived under `member`: forget it without a `member_left`.
    pub fn forget(&self, member: &Member, room: &RoomId) {
        self.hub.unsubscribe(room, member.conn);
        self.presence.depart(room, &member.actor.user_id);
    }

    /// Distinct users in `room` (across the cluster).
    pub fn room_members(&self, room: &RoomId) -> usize {
        self.presence.count(room)
    }

    pub fn redis_status(&self) -> RedisStatus {
        RedisStatus::Disabled
    }

    /// Live nodes: this one alone in single-node mode.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        vec![NodeInfo {
            node_id: self.node_id.clone(),
            address: self.address.clone(),
            connections: self.connections.count(),
            rooms: self.hub.active_rooms(),
            last_seen: now_ms(),
        }]
    }

    /// Lets pending history writes finish; call after every connection has left.
    pub async fn flush(&self) {
        let task = self
            .writer_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.writer.close();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the history writer ended abnormally");
            }
        }
    }
}
