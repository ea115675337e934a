//! A `ClusterManager` leaves no task behind: started and stopped in a loop, alone on a
//! SQLite file or in cluster mode on a throwaway Redis, the runtime's live task count
//! comes back to what it was before the first start, whether the manager was shut down
//! or merely dropped.

use crate::redis::RedisServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synctv_cluster::{ClusterManager, JoinRequest, Member, MemberSink, Outbox};
use synctv_core::clock::now_ms;
use synctv_core::storage::{ChangeOutcome, Database, NewRoom, RoomChange, RoomChangeKind};
use synctv_core::{Actor, Config, Control, RoomId};
use tempfile::TempDir;

/// How long tasks that were told to stop may take to end on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);
const ROUNDS: usize = 4;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until the runtime runs no more tasks than `baseline`.
async fn settles_back_to(baseline: usize, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while alive_tasks() > baseline {
        assert!(
            Instant::now() < deadline,
            "{what}: {} tasks still alive, {baseline} before the first start",
            alive_tasks()
        );
        // Pacing, not synchronisation: the loop ends on the task count above.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sqlite() -> (TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let db = Database::connect(Some(&url), &[], 4, Duration::from_secs(10))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

async fn start(db: &Database, config: &Config) -> Arc<ClusterManager> {
    ClusterManager::start(
        db.clone(),
        config,
        "lifecycle-node".into(),
        "http://127.0.0.1:1".into(),
        100,
    )
    .await
    .unwrap()
}

/// Gives every kind of task something to do: a join (presence, the room's channel), a
/// committed chat line (the writer, the fan-out, the publisher), a leave.
async fn exercise(manager: &ClusterManager, db: &Database, round: usize) {
    let owner = db.create_user("owner", now_ms()).await.unwrap();
    let room = db
        .create_room(
            NewRoom {
                name: "lifecycle",
                owner_id: &owner.id,
                control: Control::Everyone,
                password_hash: None,
            },
            now_ms(),
        )
        .await
        .unwrap();
    let actor = Actor {
        user_id: owner.id.clone(),
        name: owner.name.clone(),
    };
    let outbox = Outbox::new(std::sync::Arc::new(Unread));
    let member = Member {
        conn: round as u64 + 1,
        actor: actor.clone(),
        outbox,
    };
    manager
        .join(&member, join(&room.id), |_, _| {
            bytes::Bytes::from_static(b"{}")
        })
        .await
        .unwrap();
    let outcome = manager.submit(chat(&room.id, &actor, round)).await.unwrap();
    assert!(matches!(outcome, ChangeOutcome::Committed(_)));
    manager.leave(&member, &room.id).await;
}

fn join(room: &RoomId) -> JoinRequest<'_> {
    JoinRequest {
        room,
        password: None,
        recover: None,
        again: false,
    }
}

fn chat(room: &RoomId, by: &Actor, round: usize) -> RoomChange {
    RoomChange {
        room: room.clone(),
        by: Some(by.clone()),
        kind: RoomChangeKind::Chat(format!("round {round}")),
    }
}

async fn start_and_stop_in_a_loop(config: Config) {
    let (_dir, db) = sqlite().await;
    let baseline = alive_tasks();
    for round in 0..ROUNDS {
        let manager = start(&db, &config).await;
        assert!(manager.running_tasks() > 0);
        exercise(&manager, &db, round).await;
        manager.shutdown().await;
        assert_eq!(manager.running_tasks(), 0, "shutdown awaited every task");
        drop(manager);
        settles_back_to(baseline, "after shutdown").await;

        let manager = start(&db, &config).await;
        exercise(&manager, &db, round).await;
        drop(manager);
        settles_back_to(baseline, "after a drop without shutdown").await;
    }
}

#[tokio::test]
async fn a_single_node_manager_leaves_no_task_behind() {
    start_and_stop_in_a_loop(Config::default()).await;
}

#[tokio::test]
async fn a_cluster_manager_leaves_no_task_behind() {
    let redis = RedisServer::start().await;
    let mut config = Config::default();
    config.redis.url = Some(redis.url());
    config.cluster.heartbeat_secs = 1;
    start_and_stop_in_a_loop(config).await;
}

/// A member that never reads: what it is sent is dropped.
struct Unread;

impl MemberSink for Unread {
    fn frame(&self, _frame: &bytes::Bytes, _accepted: std::time::Instant) -> bool {
        true
    }

    fn room_closed(&self, _room: &RoomId) {}
}
