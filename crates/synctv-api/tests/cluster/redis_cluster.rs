//! Cluster mode on a 3-master Redis Cluster (`SYNCTV__REDIS__CLUSTER_MODE=true`, each node
//! given a different master): cross-node delivery and one order in several rooms, whose
//! channels hash to different shards.

use crate::cluster::TestCluster;
use crate::delivery::publish_everywhere_and_check;
use crate::redis::RedisCluster;

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
}
