//! Cluster mode on a 3-master Redis Cluster (`SYNCTV__REDIS__CLUSTER_MODE=true`, each node
//! given a different master): cross-node delivery and one order in several rooms, whose
//! channels hash to different shards.

use crate::cluster::{wait_for, TestCluster};
use crate::delivery::publish_everywhere_and_check;
use crate::redis::RedisCluster;
use crate::ws_client::WsClient;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_deliver_in_order() {
    let redis = RedisCluster::start().await;
    let cluster = TestCluster::start_with(
        3,
        |i| redis.url(i),
        &[("SYNCTV__REDIS__CLUSTER_MODE", "true".to_owned())],
    )
    .await;
    publish_everywhere_and_check(&cluster, 4, 1, 15).await;
    for node in 0..3 {
        let (status, body) = cluster.ready(node).await;
        assert_eq!(
            (status.as_u16(), &body["checks"]["redis"]),
            (200, &serde_json::Value::from("ok")),
            "{body}"
        );
    }

    // A room's events use one sharded channel, on the master that owns its slot, to which
    // exactly the nodes serving the room subscribe.
    let owner = cluster.guest(0, "owner").await;
    let room = cluster.room(0, &owner, "sharded").await;
    let mut clients = Vec::new();
    for node in [0, 1] {
        let guest = cluster.guest(node, &format!("s{node}")).await;
        let mut client = WsClient::connect(&cluster.ws_url(node), &guest.token).await;
        client.join(&room).await;
        clients.push(client);
    }
    let subscribed = |n: u64| {
        let redis = &redis;
        let room = &room;
        move || async move {
            let channels = redis.shard_channels(room).await;
            (channels.len() == 1 && channels[0].2 == n).then_some(channels)
        }
    };
    wait_for(
        Duration::from_secs(10),
        "one sharded channel for the room, subscribed by its two nodes",
        subscribed(2),
    )
    .await;
    clients.pop().unwrap().close().await;
    wait_for(
        Duration::from_secs(10),
        "the node whose last member left unsubscribes",
        subscribed(1),
    )
    .await;
}
