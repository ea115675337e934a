//! Rooms people run (1.1) across three nodes: the same roles and queue everywhere, a kick
//! and a ban effective on every node, one start decision when waiters on two nodes get
//! ready together, the wait's timeout firing after the nodes of the waited-for member and
//! of the member who pressed play died, and drift shown on any node.

use crate::cluster::{wait_for, Guest, TestBus, TestCluster};
use crate::ws_client::WsClient;
use serde_json::{json, Value};
use std::time::Duration;

/// Alice (the owner) on node 0, bob on node 1, carol on node 2, all joined to one room.
struct Room3 {
    room: String,
    people: Vec<Guest>,
    clients: Vec<WsClient>,
}

impl Room3 {
    async fn gather(cluster: &TestCluster) -> Room3 {
        let mut people = Vec::new();
        for (node, name) in ["alice", "bob", "carol"].into_iter().enumerate() {
            people.push(cluster.guest(node, name).await);
        }
        let room = cluster.room(0, &people[0], "three nodes").await;
        let mut clients = Vec::new();
        for (node, person) in people.iter().enumerate() {
            let mut client = WsClient::connect(&cluster.ws_url(node), &person.token).await;
            client.join(&room).await;
            clients.push(client);
        }
        // Everyone has seen everyone's arrival: the room is quiet.
        for client in clients.iter_mut().take(2) {
            client.events_until(&room, 3).await;
        }
        Room3 {
            room,
            people,
            clients,
        }
    }

    fn user(&self, i: usize) -> &str {
        &self.people[i].user_id
    }

    async fn send(&mut self, i: usize, id: i64, mut message: Value) {
        message["room"] = json!(self.room);
        message["id"] = json!(id);
        self.clients[i].send(message).await;
    }

    /// The next event of `kind` that client `i` receives (answers and others skipped).
    async fn event(&mut self, i: usize, kind: &str) -> Value {
        loop {
            let (event, _) = self.clients[i].recv_until("event").await;
            if event["kind"] == kind {
                return event;
            }
        }
    }
}

async fn get_json(cluster: &TestCluster, node: usize, path: &str) -> Value {
    cluster.get(node, path).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_queue_kick_and_ban_hold_on_every_node() {
    let bus = TestBus::redis().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    roles_queue_kick_and_ban(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_queue_kick_and_ban_hold_on_every_node_on_nats() {
    let bus = TestBus::nats().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    roles_queue_kick_and_ban(&cluster).await;
}

async fn roles_queue_kick_and_ban(cluster: &TestCluster) {
    let mut r = Room3::gather(cluster).await;
    let (bob, carol) = (r.user(1).to_owned(), r.user(2).to_owned());
    // A role given on node 0 is everyone's on every node.
    r.send(
        0,
        1,
        json!({"type": "role", "user_id": bob, "role": "admin"}),
    )
    .await;
    for i in 0..3 {
        let role = r.event(i, "role").await;
        assert_eq!(role["data"], json!({"user_id": bob, "role": "admin"}));
    }
    // The queue, changed on node 1, is the same on node 2.
    r.send(
        1,
        2,
        json!({"type": "queue_add", "url": "https://x/a.mp4", "title": "A"}),
    )
    .await;
    let added = r.event(2, "queue").await;
    assert_eq!(added["data"]["item"]["url"], "https://x/a.mp4");
    let path = format!("/api/v1/rooms/{}/queue", r.room);
    for node in 0..3 {
        let queue = get_json(cluster, node, &path).await;
        assert_eq!(queue["queue"][0]["title"], "A", "node {node}: {queue}");
    }
    let members = get_json(cluster, 2, &format!("/api/v1/rooms/{}/members", r.room)).await;
    let role_of = |id: &str| {
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == id)
            .map(|m| m["role"].clone())
    };
    assert_eq!(role_of(&bob), Some(json!("admin")));
    assert_eq!(role_of(r.user(0)), Some(json!("owner")));
    // Carol joins again on node 0 and is told the queue and her role.
    let mut again = WsClient::connect(&cluster.ws_url(0), &r.people[2].token).await;
    let joined = again.join(&r.room).await;
    assert_eq!(joined["role"], "member");
    assert_eq!(joined["queue"][0]["url"], "https://x/a.mp4");
    // Bob, an admin on node 1, kicks carol, connected on nodes 2 and 0, with a ban.
    r.send(
        1,
        3,
        json!({"type": "kick", "user_id": carol, "ban_secs": 600}),
    )
    .await;
    let kick = r.event(2, "member_kicked").await;
    let until = kick["data"]["banned_until"].as_i64().unwrap();
    let (kicked_too, _) = again.recv_until("event").await;
    assert_eq!(kicked_too["kind"], "member_kicked");
    // Nothing more of the room reaches carol on either node; her messages are not_found.
    r.send(0, 4, json!({"type": "chat", "text": "after the kick"}))
        .await;
    r.event(1, "chat").await;
    let room = r.room.clone();
    for client in [&mut r.clients[2], &mut again] {
        client
            .send(json!({"type": "chat", "room": room, "text": "x", "id": 5}))
            .await;
        let answer = client.recv().await;
        assert_eq!(answer["code"], "not_found", "{answer}");
        assert_eq!(answer["id"], 5);
    }
    // The ban holds at a join on any node.
    for node in 0..3 {
        let mut c = WsClient::connect(&cluster.ws_url(node), &r.people[2].token).await;
        c.send(json!({"type": "join", "room": room, "id": 6})).await;
        let banned = c.recv_answer(6).await;
        assert_eq!(banned["code"], "banned", "node {node}: {banned}");
        assert_eq!(banned["until"], until);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_two_nodes_ready_together_start_the_room_once() {
    let bus = TestBus::redis().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    let mut r = Room3::gather(&cluster).await;
    for i in 1..3 {
        r.send(i, 1, json!({"type": "status", "state": "buffering"}))
            .await;
        r.clients[i].recv_answer(1).await;
    }
    r.send(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let held = r.event(0, "playback").await;
    assert_eq!(held["data"]["state"]["playing"], false);
    // Both waiters get ready at once, on their own nodes.
    for i in 1..3 {
        r.send(i, 3, json!({"type": "status", "state": "ready"}))
            .await;
    }
    let mut starts = Vec::new();
    for i in 0..3 {
        let start = loop {
            let e = r.event(i, "playback").await;
            if e["data"]["waited"] == true {
                break e;
            }
        };
        starts.push(start["seq"].clone());
    }
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{starts:?}");
    let waited = cluster
        .history(&r.room)
        .await
        .into_iter()
        .filter(|e| e["data"]["waited"] == true)
        .count();
    assert_eq!(waited, 1, "one start decision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_starts_the_room_after_the_waiting_members_node_died() {
    let bus = TestBus::redis().await;
    // Shorter than the survivors take to notice a dead node (three 1 s heartbeats), so
    // the timeout, not bob's departure, starts the room.
    let timeout = ("SYNCTV__ROOMS__READY_TIMEOUT_SECS", "2".to_owned());
    let mut cluster = TestCluster::start_env(3, |_| vec![bus.setting()], &[timeout]).await;
    let mut r = Room3::gather(&cluster).await;
    // Bob (node 1) buffers and never reports ready; alice (node 0) presses play.
    r.send(1, 1, json!({"type": "status", "state": "buffering"}))
        .await;
    r.clients[1].recv_answer(1).await;
    r.send(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let held = r.event(2, "playback").await;
    let until = held["data"]["state"]["wait_until"].as_i64().unwrap();
    assert_eq!(held["data"]["state"]["waiting_for"], json!([r.user(1)]));
    // Both their nodes die before the wait ends; carol's node starts the room alone.
    cluster.kill9(1);
    cluster.kill9(0);
    let start = r.event(2, "playback").await;
    assert_eq!(start["data"]["waited"], true, "{start}");
    assert_eq!(start["data"]["state"]["playing"], true);
    assert!(start["server_time"].as_i64().unwrap() >= until);
    let history = cluster.history(&r.room).await;
    let waited: Vec<&Value> = history
        .iter()
        .filter(|e| e["data"]["waited"] == true)
        .collect();
    assert_eq!(waited.len(), 1);
    assert_eq!(waited[0]["seq"], start["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reported_on_one_node_shows_on_every_node() {
    let bus = TestBus::nats().await;
    let cluster = TestCluster::start_on(3, &bus).await;
    let mut r = Room3::gather(&cluster).await;
    r.send(
        0,
        1,
        json!({"type": "playback", "action": "seek", "position": 20.0}),
    )
    .await;
    r.event(1, "playback").await;
    r.send(
        1,
        2,
        json!({"type": "report", "position": 19.9, "rtt_ms": 10}),
    )
    .await;
    r.clients[1].recv_answer(2).await;
    let path = format!("/api/v1/rooms/{}/members", r.room);
    let bob = r.user(1).to_owned();
    for node in [0, 2] {
        let drift = wait_for(
            Duration::from_secs(15),
            "bob's drift on another node",
            || {
                let (path, bob) = (&path, &bob);
                let cluster = &cluster;
                async move {
                    let members = get_json(cluster, node, path).await;
                    members["members"]
                        .as_array()?
                        .iter()
                        .find(|m| m["user_id"] == bob.as_str())
                        .and_then(|m| m["drift_ms"].as_f64())
                }
            },
        )
        .await;
        assert_eq!(drift, -100.0, "node {node}");
    }
}
