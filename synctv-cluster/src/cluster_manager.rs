//! `ClusterManager`: the cluster layer's front door. The API changes rooms (`submit`,
//! `enqueue`), makes connections members of them (`join`, in join.rs; `leave`), and reads
//! presence and the node list through it; it hides whether this node runs alone or in a
//! cluster, and owns every background task the node runs.
//!
//! Data path: `enqueue` -> `HistoryWriter` (group commit, seq assigned by the database)
//! -> `FanOut` -> `RoomMessageHub` -> each member's `Outbox`.

use crate::background::BackgroundTasks;
use crate::bus::{Bus, BusStatus};
use crate::catch_up::CatchUp;
use crate::connection_manager::ConnectionManager;
use crate::deduplicator::Deduplicator;
use crate::drift_book::{DriftBook, REPORT_EVERY};
use crate::error::ClusterError;
use crate::fan_out::FanOut;
use crate::history_writer::{HistoryWriter, PendingCommit};
use crate::hub::{ConnectionId, RoomMessageHub};
use crate::membership::Membership;
use crate::node_registry::{NodeInfo, ThisNode};
use crate::outbox::Outbox;
use crate::presence_book::PresenceBook;
use crate::wait_timer::{WaitAlarms, WaitTimer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use synctv_core::storage::{ChangeOutcome, Database, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Config, RoomId, UserId};
use tokio::task::JoinHandle;

/// One member connection, as the cluster layer knows it.
#[derive(Clone, Debug)]
pub struct Member {
    pub conn: ConnectionId,
    pub actor: Actor,
    pub outbox: Outbox,
}

/// How often room channels without members or events are dropped, and after how long.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often the read replicas are asked where they are, so their lag metrics move
/// without traffic (reads and `/ready` refresh them too).
const REPLICA_CHECK_EVERY: Duration = Duration::from_secs(2);
const SWEEP_IDLE: Duration = Duration::from_secs(60);
/// `(room, seq)` pairs the deduplicator remembers.
const DEDUP_CAPACITY: usize = 65_536;

pub struct ClusterManager {
    this_node: Arc<ThisNode>,
    pub(crate) db: Database,
    pub(crate) hub: Arc<RoomMessageHub>,
    pub(crate) catch_up: CatchUp,
    writer: HistoryWriter,
    writer_task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) presence: Arc<PresenceBook>,
    /// Cluster mode only.
    pub(crate) membership: Option<Arc<Membership>>,
    pub(crate) max_recovery_events: i64,
    /// The latest drift reports of members here, written to the database each second.
    pub(crate) drift: Arc<DriftBook>,
    /// Every task this node started; stopped by `shutdown`, or cancelled on drop.
    tasks: BackgroundTasks,
}

impl ClusterManager {
    /// Starts the node's history writer and, when a bus (Redis or NATS) is configured,
    /// joins the cluster.
    /// `global_limit` is the connection ceiling after the file-descriptor limit.
    pub async fn start(
        db: Database,
        config: &Config,
        node_id: String,
        address: String,
        global_limit: usize,
    ) -> Result<Arc<Self>, ClusterError> {
        let tasks = BackgroundTasks::new();
        let history = &config.history;
        let (wait_alarms, wait_queue) = WaitAlarms::new();
        let hub = Arc::new(RoomMessageHub::new(
            history.recent_events,
            history.max_recovery_events,
            wait_alarms,
        ));
        let dedup = (config.redis.url.is_some() || config.nats.url.is_some())
            .then(|| Arc::new(Deduplicator::new(DEDUP_CAPACITY)));
        let catch_up = CatchUp::spawn(db.clone(), hub.clone(), dedup.clone(), &tasks);
        let bus = match Bus::start(
            config,
            &node_id,
            hub.clone(),
            catch_up.clone(),
            dedup,
            &tasks,
        )
        .await
        {
            Ok(bus) => bus.map(Arc::new),
            Err(e) => {
                tasks.stop().await;
                return Err(e);
            }
        };
        let fan_out = FanOut {
            hub: hub.clone(),
            catch_up: catch_up.clone(),
            bus: bus.clone(),
        };
        let (writer, writer_task) = HistoryWriter::spawn(
            db.clone(),
            fan_out,
            history.max_batch,
            Duration::from_secs(config.rooms.ready_timeout_secs),
            &tasks,
        );
        WaitTimer::spawn(wait_queue, writer.clone(), &tasks);
        let this_node = Arc::new(ThisNode {
            node_id,
            address,
            region: config.cluster.region.clone(),
            connections: Arc::new(ConnectionManager::new(&config.limits, global_limit)),
            hub: hub.clone(),
        });
        let presence = Arc::new(PresenceBook::new(bus.clone(), config.limits.per_room));
        let membership = bus.map(|bus| {
            Arc::new(Membership::new(
                bus,
                this_node.clone(),
                presence.clone(),
                db.clone(),
                writer.clone(),
                Duration::from_secs(config.cluster.heartbeat_secs),
            ))
        });
        if let Some(membership) = &membership {
            catch_up.spawn_reconciler(Duration::from_secs(config.cluster.reconcile_secs), &tasks);
            // A previous run under this node id left presence behind: clean it up now.
            membership.reap_node(&this_node.node_id).await;
            let round = membership.clone();
            tasks.every(membership.heartbeat(), move || {
                let round = round.clone();
                async move { round.round().await }
            });
        }
        let swept = hub.clone();
        tasks.every(SWEEP_EVERY, move || {
            swept.sweep(SWEEP_IDLE);
            metrics::gauge!("synctv_rooms_active").set(swept.active_rooms() as f64);
            std::future::ready(())
        });
        let drift = Arc::new(DriftBook::default());
        let (reported, drift_db) = (drift.clone(), db.clone());
        tasks.every(REPORT_EVERY, move || {
            let reports = reported.unsaved();
            let db = drift_db.clone();
            async move {
                if reports.is_empty() {
                    return;
                }
                if let Err(e) = db.save_drifts(&reports).await {
                    tracing::warn!(error = %e, "drift reports could not be saved");
                }
            }
        });
        if db.has_replicas() {
            let watched = db.clone();
            tasks.every(REPLICA_CHECK_EVERY, move || {
                let db = watched.clone();
                async move { db.refresh_replica_metrics().await }
            });
        }
        Ok(Arc::new(Self {
            this_node,
            db,
            hub,
            catch_up,
            writer,
            writer_task: Mutex::new(Some(writer_task)),
            presence,
            membership,
            max_recovery_events: i64::try_from(history.max_recovery_events).unwrap_or(i64::MAX),
            drift,
            tasks,
        }))
    }

    pub fn node_id(&self) -> &str {
        &self.this_node.node_id
    }

    pub fn connections(&self) -> &ConnectionManager {
        &self.this_node.connections
    }

    /// Commits a change to a room and fans out its event; the outcome is durable.
    pub async fn submit(&self, change: RoomChange) -> Result<ChangeOutcome, ClusterError> {
        self.writer.submit(change).await
    }

    /// Queues a change and returns at once; see [`HistoryWriter::enqueue`].
    pub async fn enqueue(&self, change: RoomChange) -> Result<PendingCommit, ClusterError> {
        self.writer.enqueue(change).await
    }

    /// Ends `member`'s membership of `room`; the user's last connection there produces
    /// `member_left` (a failure to record it is logged: the member is gone either way).
    pub async fn leave(&self, member: &Member, room: &RoomId) {
        self.hub.unsubscribe(room, member.conn);
        self.drift.forget(room, &member.actor.user_id);
        self.depart(member, room).await;
    }

    pub(crate) async fn depart(&self, member: &Member, room: &RoomId) {
        if self.depart_presence(room, &member.actor.user_id).await {
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

    /// The room was archived, or the member kicked from it (the event says it left):
    /// forget it without a `member_left`.
    pub async fn forget(&self, member: &Member, room: &RoomId) {
        self.hub.unsubscribe(room, member.conn);
        self.drift.forget(room, &member.actor.user_id);
        self.depart_presence(room, &member.actor.user_id).await;
    }

    /// Counts a departure; `true` when it was the user's last connection in the room.
    /// The room's channel is dropped when no member is left on this node.
    pub(crate) async fn depart_presence(&self, room: &RoomId, user: &UserId) -> bool {
        let departure = self.presence.depart(room, user).await;
        if departure.room_empty_here {
            if let Some(membership) = &self.membership {
                membership.bus.unsubscribe_room(room).await;
            }
        }
        departure.last
    }

    /// Distinct users in `room`, across the cluster (this node's alone while degraded).
    pub async fn room_members(&self, room: &RoomId) -> usize {
        self.presence.count(room).await
    }

    /// The bus's health as `/ready` reports it: `(redis, nats)`; `nats` is `None` unless
    /// NATS is the bus (then `redis` says `disabled`).
    pub fn bus_status(&self) -> (BusStatus, Option<BusStatus>) {
        let Some(membership) = &self.membership else {
            return (BusStatus::Disabled, None);
        };
        let status = if membership.bus.is_up() {
            BusStatus::Ok
        } else {
            BusStatus::Down
        };
        if membership.bus.is_nats() {
            (BusStatus::Disabled, Some(status))
        } else {
            (status, None)
        }
    }

    /// Live nodes: from the registry in cluster mode, this one alone otherwise.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes = self
            .membership
            .as_ref()
            .map(|membership| membership.other_nodes())
            .unwrap_or_default();
        nodes.push(self.this_node.info());
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        nodes
    }

    /// Stops the node's background work. Call after every connection has left: changes
    /// already queued are committed and answered first (new ones are refused with
    /// `ShuttingDown`), then every task is stopped and awaited.
    pub async fn shutdown(&self) {
        let writer_task = self
            .writer_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.writer.close();
        if let Some(task) = writer_task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the history writer ended abnormally");
            }
        }
        self.tasks.stop().await;
    }

    /// Background tasks of this node still running (none after `shutdown`).
    pub fn running_tasks(&self) -> usize {
        self.tasks.running()
    }
}

impl Drop for ClusterManager {
    /// A manager dropped without `shutdown` still stops everything it started.
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}
