//! Reads from a streaming replica, never stale: right after each ack, the history page
//! read from any node holds the acked event, whether the replica is caught up (it
//! serves), paused (the primary serves), killed (skipped, `/ready` says down) or back.

use crate::nodes::Nodes;
use crate::pg_node::PgNode;
use crate::ws_client::WsClient;
use std::time::{Duration, Instant};

const REPLICA_READS: &str = "synctv_database_reads_total{target=\"replica\"}";
const PRIMARY_READS: &str = "synctv_database_reads_total{target=\"primary\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_reads_use_the_replica_and_never_miss_an_acked_event() {
    let primary = PgNode::primary("rprimary", &[]);
    let replica = PgNode::standby_of(&primary, "rreplica");
    let nodes = Nodes::start(2, &primary.url(), &[replica.url()]).await;
    // Before any read or `/ready`: the nodes watch the replica on their own.
    let lag = format!(
        "synctv_database_replica_up{{replica=\"{}\"}}",
        replica.url()
    );
    let watched = Instant::now() + Duration::from_secs(30);
    while nodes.metric(1, &lag).await != 1.0 {
        assert!(
            Instant::now() < watched,
            "no replica metrics without traffic: {lag}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = nodes.nodes[0].guest_token("g").await;
    let room = nodes.nodes[0].create_room(&token, "reads").await;
    let mut c = WsClient::connect(&nodes.nodes[0].ws_url(), &token).await;
    c.join(&room).await;
    let mut id = 0;
    for stage in [
        "streaming",
        "replay paused",
        "replica killed",
        "replica back",
    ] {
        match stage {
            "replay paused" => {
                replica.psql("postgres", "SELECT pg_wal_replay_pause()");
            }
            "replica killed" => {
                replica.psql("postgres", "SELECT pg_wal_replay_resume()");
                replica.kill9();
            }
            "replica back" => replica.start(),
            _ => {}
        }
        let before = (
            nodes.metric(1, REPLICA_READS).await,
            nodes.metric(1, PRIMARY_READS).await,
        );
        // Twenty acked chats, each read back at once; where the replica should serve,
        // until it did (a restarted one is left alone for 5 s after its failure).
        let serves = matches!(stage, "streaming" | "replica back");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut round = 0;
        while round < 20
            || (serves
                && nodes.metric(1, REPLICA_READS).await == before.0
                && Instant::now() < deadline)
        {
            round += 1;
            id += 1;
            let ack = c.chat(&room, &format!("{stage} {id}"), id).await;
            assert_eq!(ack["type"], "ack", "{ack}");
            let seq = ack["seq"].as_i64().unwrap();
            // On the other node, which did not commit it.
            let history = nodes.history(1, &room).await;
            assert!(
                history.iter().any(|e| e["seq"] == seq),
                "{stage}: seq {seq} acked but missing from the history read after it"
            );
        }
        let after = (
            nodes.metric(1, REPLICA_READS).await,
            nodes.metric(1, PRIMARY_READS).await,
        );
        let ready = nodes.ready(1).await;
        let link = &ready["checks"]["databases"][1];
        println!(
            "DRILL replicas ({stage}): {} reads on the replica, {} on the primary; /ready: {link}",
            after.0 - before.0,
            after.1 - before.1
        );
        assert_eq!(link["role"], "replica");
        match stage {
            "replay paused" => {
                assert_eq!(after.0, before.0, "a paused replica served a read");
            }
            "replica killed" => {
                assert_eq!(link["status"], "down", "{ready}");
                assert_eq!(after.0, before.0, "a dead replica served a read");
            }
            _ => {
                // Caught up or back: some reads went to it (a read racing the replay of
                // the commit it must see goes to the primary instead).
                assert_eq!(link["status"], "ok", "{ready}");
                assert!(after.0 > before.0, "{stage}: no read went to the replica");
            }
        }
    }
}
