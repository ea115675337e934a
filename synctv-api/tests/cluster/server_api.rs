//! The server API across nodes, on Redis and on NATS: stats list every live node with
//! the counters its heartbeat carries, a kick asked of one node removes the user from
//! the room on another, and a disconnect asked of one node closes the user's connections
//! on every node (close code 4000) and counts them all.

use crate::cluster::{wait_for, TestBus, TestCluster};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const API_KEY: &str = "server-api-key-for-cluster-tests-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_disconnect_span_the_cluster_on_redis() {
    stats_and_disconnect_span_the_cluster(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_disconnect_span_the_cluster_on_nats() {
    stats_and_disconnect_span_the_cluster(TestBus::nats().await).await;
}

async fn stats_and_disconnect_span_the_cluster(bus: TestBus) {
    let cluster = TestCluster::start_env(
        2,
        |i| {
            vec![
                bus.setting(),
                ("SYNCTV__CLUSTER__REGION", format!("region-{i}")),
            ]
        },
        &[("SYNCTV__API__KEY", API_KEY.to_owned())],
    )
    .await;
    let client = reqwest::Client::new();
    let alice = cluster.guest(0, "alice").await;
    let bob = cluster.guest(0, "bob").await;
    let room = cluster.room(0, &alice, "r").await;
    let mut on_first = WsClient::connect(&cluster.ws_url(0), &alice.token).await;
    on_first.join(&room).await;
    let mut on_second = Vec::new();
    for _ in 0..2 {
        let mut ws = WsClient::connect(&cluster.ws_url(1), &alice.token).await;
        ws.join(&room).await;
        on_second.push(ws);
    }
    let mut bystander = WsClient::connect(&cluster.ws_url(1), &bob.token).await;
    bystander.join(&room).await;

    // Node 0 lists node 1 with what node 1 holds, once a heartbeat carried it.
    let stats = |node: usize| {
        let client = client.clone();
        let url = cluster.node(node).url("/api/v1/server/stats");
        async move {
            let resp = client
                .get(url)
                .header("x-api-key", API_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.json::<Value>().await.unwrap()
        }
    };
    let second = wait_for(
        Duration::from_secs(20),
        "node 0's stats show node 1's three connections",
        || async {
            let body = stats(0).await;
            let nodes = body["nodes"].as_array()?.clone();
            let second = nodes.iter().find(|n| n["node_id"] == "node-1")?.clone();
            (nodes.len() == 2 && second["connections"] == 3).then_some(second)
        },
    )
    .await;
    assert_eq!(second["region"], "region-1", "{second}");
    assert_eq!(second["rooms"], 1, "{second}");
    assert!(second["deliveries_total"].as_u64().unwrap() > 0, "{second}");
    assert!(second["refusals_total"].as_u64().is_some(), "{second}");

    // Carol, on node 1, is kicked through node 0: out of the room there.
    let carol = cluster.guest(0, "carol").await;
    let mut kicked = WsClient::connect(&cluster.ws_url(1), &carol.token).await;
    kicked.join(&room).await;
    let resp = client
        .post(
            cluster
                .node(0)
                .url(&format!("/api/v1/server/rooms/{room}/kick")),
        )
        .header("x-api-key", API_KEY)
        .json(&json!({"user_id": carol.user_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seq = resp.json::<Value>().await.unwrap()["seq"].as_i64().unwrap();
    let events = kicked.events_until(&room, seq).await;
    assert_eq!(events.last().unwrap()["kind"], "member_kicked");
    kicked
        .send(json!({"type": "chat", "room": room, "text": "x", "id": 9}))
        .await;
    assert_eq!(kicked.recv_answer(9).await["code"], "not_found");

    let started = Instant::now();
    let resp = client
        .post(cluster.node(0).url(&format!(
            "/api/v1/server/users/{}/disconnect",
            alice.user_id
        )))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"connections": 3})
    );
    for ws in std::iter::once(&mut on_first).chain(on_second.iter_mut()) {
        let (_, code) = ws.until_closed().await;
        assert_eq!(code, Some(4000));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closing took {:?}",
        started.elapsed()
    );
    let ack = bystander.chat(&room, "still here", 1).await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
