//! Presence across nodes (`joined.members` and the Room's `members` count users on every
//! node; presence is per user), and the node list: every live node from any node, a node
//! killed with -9 gone within three heartbeats, its members `member_left` on the others.

use crate::cluster::{death_bound, node_ids, wait_for, TestBus, TestCluster, HEARTBEAT_SECS};
use crate::proxy::TcpProxy;
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn user_ids(members: &Value) -> Vec<String> {
    let mut ids: Vec<String> = members
        .as_array()
        .expect("members is an array")
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn members_everywhere(cluster: &TestCluster, room: &str, n: i64) {
    members_everywhere_within(cluster, room, n, Duration::from_secs(3 * HEARTBEAT_SECS)).await
}

async fn members_everywhere_within(cluster: &TestCluster, room: &str, n: i64, patience: Duration) {
    for node in cluster.live() {
        wait_for(
            patience,
            &format!("node-{node} counts {n} members"),
            || async { (cluster.get_room(node, room).await["members"] == n).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_counted_across_nodes_per_user() {
    counted_across_nodes_per_user(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_counted_across_nodes_per_user_on_nats() {
    counted_across_nodes_per_user(TestBus::nats().await).await;
}

async fn counted_across_nodes_per_user(bus: TestBus) {
    let cluster = TestCluster::start_on(3, &bus).await;
    let alice = cluster.guest(0, "alice").await;
    let bob = cluster.guest(1, "bob").await;
    let carol = cluster.guest(2, "carol").await;
    let room = cluster.room(0, &alice, "r").await;

    let mut a = WsClient::connect(&cluster.ws_url(0), &alice.token).await;
    a.join(&room).await;
    let mut b = WsClient::connect(&cluster.ws_url(1), &bob.token).await;
    let joined = b.join(&room).await;
    assert_eq!(
        user_ids(&joined["members"]),
        sorted(&[&alice.user_id, &bob.user_id])
    );
    let mut c = WsClient::connect(&cluster.ws_url(2), &carol.token).await;
    let joined = c.join(&room).await;
    let everyone = sorted(&[&alice.user_id, &bob.user_id, &carol.user_id]);
    assert_eq!(user_ids(&joined["members"]), everyone, "{joined}");
    let names: Vec<&str> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"bob"),
        "{joined}"
    );
    let seq = joined["seq"].as_i64().unwrap();
    members_everywhere(&cluster, &room, 3).await;

    // Alice again, on node 2: no member_joined, and still three members.
    let mut a2 = WsClient::connect(&cluster.ws_url(2), &alice.token).await;
    let joined = a2.join(&room).await;
    assert_eq!(
        joined["seq"], seq,
        "a second connection makes no event: {joined}"
    );
    assert_eq!(user_ids(&joined["members"]), everyone);
    members_everywhere(&cluster, &room, 3).await;
    let ack = b.chat(&room, "after alice's second join", 1).await;
    assert_eq!(ack["seq"], seq + 1, "nothing between: {ack}");
    let event = c.recv().await;
    assert_eq!(
        (event["seq"].as_i64(), event["kind"].as_str()),
        (Some(seq + 1), Some("chat"))
    );

    // Her second connection goes: she stays (her first is on node 0).
    a2.close().await;
    let ack = b.chat(&room, "after alice's second left", 2).await;
    assert_eq!(ack["seq"], seq + 2, "no member_left: {ack}");
    members_everywhere(&cluster, &room, 3).await;

    // Her last connection leaves: one member_left, seen on the other nodes.
    a.send(json!({"type": "leave", "room": room, "id": "l"}))
        .await;
    assert_eq!(a.recv_answer("l").await["type"], "left");
    for client in [&mut b, &mut c] {
        let (event, _) = loop_until_kind(client, "member_left").await;
        assert_eq!(event["data"]["user_id"], alice.user_id.as_str());
        assert_eq!(event["seq"], seq + 3);
    }
    members_everywhere(&cluster, &room, 2).await;
    let history = cluster.history(&room).await;
    let count = |kind: &str| {
        history
            .iter()
            .filter(|e| e["kind"] == kind && e["data"]["user_id"] == alice.user_id.as_str())
            .count()
    };
    assert_eq!((count("member_joined"), count("member_left")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_list_shows_live_nodes_and_forgets_a_killed_one() {
    node_list_forgets_a_killed_node(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_list_shows_live_nodes_and_forgets_a_killed_one_on_nats() {
    node_list_forgets_a_killed_node(TestBus::nats().await).await;
}

async fn node_list_forgets_a_killed_node(bus: TestBus) {
    let mut cluster = TestCluster::start_on(3, &bus).await;
    let all = node_ids(0..3);
    for node in 0..3 {
        wait_for(
            death_bound(),
            &format!("node-{node} lists all three nodes"),
            || async { (cluster.node_ids(node).await == all).then_some(()) },
        )
        .await;
    }
    let listed = cluster.nodes(1).await;
    let mut addresses = Vec::new();
    for node in &listed {
        assert!(
            node["address"].as_str().is_some_and(|a| !a.is_empty()),
            "{node}"
        );
        assert!(node["connections"].is_u64(), "{node}");
        assert!(node["rooms"].is_u64(), "{node}");
        assert!(node["last_seen"].as_i64().is_some_and(|t| t > 0), "{node}");
        assert_eq!(node["region"], "default", "{node}");
        addresses.push(node["address"].as_str().unwrap().to_owned());
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "one address per node: {listed:?}");

    // A member on every node.
    let owner = cluster.guest(0, "owner").await;
    let room = cluster.room(0, &owner, "r").await;
    let mut clients = Vec::new();
    let mut guests = Vec::new();
    for node in 0..3 {
        let guest = cluster.guest(node, &format!("u{node}")).await;
        let mut client = WsClient::connect(&cluster.ws_url(node), &guest.token).await;
        client.join(&room).await;
        clients.push(client);
        guests.push(guest);
    }
    wait_for(
        death_bound(),
        "node-0 sees node-2's connection and room",
        || async {
            let nodes = cluster.nodes(0).await;
            nodes
                .iter()
                .any(|n| n["node_id"] == "node-2" && n["connections"] == 1 && n["rooms"] == 1)
                .then_some(())
        },
    )
    .await;
    for client in &mut clients[..2] {
        client.events_until(&room, 3).await;
    }

    cluster.kill9(2);
    let killed = Instant::now();
    let survivors = node_ids(0..2);
    for node in 0..2 {
        wait_for(
            death_bound().saturating_sub(killed.elapsed()),
            &format!("node-{node} forgets node-2"),
            || async { (cluster.node_ids(node).await == survivors).then_some(()) },
        )
        .await;
    }
    for client in &mut clients[..2] {
        let patience = death_bound().saturating_sub(killed.elapsed());
        let event = tokio::time::timeout(patience, loop_until_kind(client, "member_left"))
            .await
            .expect("member_left for the dead node's member in time")
            .0;
        assert_eq!(event["data"]["user_id"], guests[2].user_id.as_str());
    }
    members_everywhere(&cluster, &room, 2).await;
    let lefts = cluster
        .history(&room)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "member_left")
        .count();
    assert_eq!(lefts, 1, "one member_left, not one per surviving node");
}

/// Frames until an event of `kind`.
async fn loop_until_kind(client: &mut WsClient, kind: &str) -> (Value, Vec<Value>) {
    let mut skipped = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["type"] == "event" && frame["kind"] == kind {
            return (frame, skipped);
        }
        skipped.push(frame);
    }
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

/// A member on every node of a fresh room: the room's id and the clients.
async fn one_member_per_node(cluster: &TestCluster) -> (String, Vec<WsClient>) {
    let owner = cluster.guest(0, "owner").await;
    let room = cluster.room(0, &owner, "r").await;
    let mut clients = Vec::new();
    for node in 0..cluster.len() {
        let guest = cluster.guest(node, &format!("u{node}")).await;
        let mut client = WsClient::connect(&cluster.ws_url(node), &guest.token).await;
        client.join(&room).await;
        clients.push(client);
    }
    members_everywhere(cluster, &room, cluster.len() as i64).await;
    (room, clients)
}

async fn ready_on(cluster: &TestCluster, node: usize, status: &str, bus: &str, state: &str) {
    wait_for(
        Duration::from_secs(15),
        &format!("node-{node} says {status} with {bus} {state}"),
        || async {
            let (code, body) = cluster.ready(node).await;
            (code == StatusCode::OK && body["status"] == status && body["checks"][bus] == state)
                .then_some(())
        },
    )
    .await;
}

/// Redis restarts empty: the nodes announce their members again, and every node counts
/// them all within the contract's 10 s of the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_rebuilt_after_a_redis_restart() {
    rebuilt_after_a_bus_restart(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_rebuilt_after_a_nats_restart() {
    rebuilt_after_a_bus_restart(TestBus::nats().await).await;
}

async fn rebuilt_after_a_bus_restart(bus: TestBus) {
    let cluster = TestCluster::start_on(3, &bus).await;
    let (room, _clients) = one_member_per_node(&cluster).await;
    bus.stop();
    for node in 0..3 {
        ready_on(&cluster, node, "degraded", bus.check(), "down").await;
    }
    bus.restart().await;
    let restarted = Instant::now();
    for node in 0..3 {
        ready_on(&cluster, node, "ready", bus.check(), "ok").await;
    }
    members_everywhere_within(
        &cluster,
        &room,
        3,
        Duration::from_secs(10).saturating_sub(restarted.elapsed()),
    )
    .await;
    // Nobody left, so the history says nothing more than the three arrivals.
    let presence = presence_events(&cluster, &room).await;
    assert_eq!(presence.len(), 3, "{presence:?}");
    assert!(
        presence.iter().all(|(kind, _)| kind == "member_joined"),
        "{presence:?}"
    );
    let joined = WsClient::connect(&cluster.ws_url(1), &cluster.guest(1, "late").await.token)
        .await
        .join(&room)
        .await;
    assert_eq!(joined["members"].as_array().unwrap().len(), 4, "{joined}");
}

/// The room's presence events, oldest first: (kind, user name).
async fn presence_events(cluster: &TestCluster, room: &str) -> Vec<(String, String)> {
    cluster
        .history(room)
        .await
        .iter()
        .filter(|e| e["kind"] == "member_joined" || e["kind"] == "member_left")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["data"]["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A node cut off from Redis long enough to be taken for dead comes back: it is listed
/// again and its members, connected all along, count again on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_restored_when_a_partition_heals() {
    restored_when_a_partition_heals(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_restored_when_a_partition_heals_on_nats() {
    restored_when_a_partition_heals(TestBus::nats().await).await;
}

async fn restored_when_a_partition_heals(bus: TestBus) {
    let proxy = TcpProxy::start(([127, 0, 0, 1], bus.port()).into()).await;
    let cluster = TestCluster::start_env(
        3,
        |i| {
            if i == 2 {
                vec![bus.setting_through(&proxy)]
            } else {
                vec![bus.setting()]
            }
        },
        &[],
    )
    .await;
    let (room, _clients) = one_member_per_node(&cluster).await;
    proxy.cut();
    ready_on(&cluster, 2, "degraded", bus.check(), "down").await;
    wait_for(death_bound(), "the others forget node-2", || async {
        (cluster.node_ids(0).await == node_ids(0..2)).then_some(())
    })
    .await;
    proxy.restore();
    let healed = Instant::now();
    ready_on(&cluster, 2, "ready", bus.check(), "ok").await;
    wait_for(death_bound(), "node-2 listed again", || async {
        (cluster.node_ids(0).await == node_ids(0..3)).then_some(())
    })
    .await;
    members_everywhere_within(
        &cluster,
        &room,
        3,
        Duration::from_secs(10).saturating_sub(healed.elapsed()),
    )
    .await;
    // The survivors recorded node-2's member as gone; once back, the history says it
    // joined again, so the history ends with who is really there.
    let expected: Vec<(String, String)> = ["member_joined", "member_left", "member_joined"]
        .iter()
        .map(|kind| (kind.to_string(), "u2".to_owned()))
        .collect();
    wait_for(death_bound(), "u2 joins again in the history", || async {
        let u2: Vec<(String, String)> = presence_events(&cluster, &room)
            .await
            .into_iter()
            .filter(|(_, name)| name == "u2")
            .collect();
        (u2 == expected).then_some(())
    })
    .await;
}
