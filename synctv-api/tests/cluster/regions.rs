//! Two regions on one machine, as regions would behave: `east` and `west`, each with its
//! own NATS server and synctv nodes, joined by NATS gateways over a link that adds 40 ms
//! each way; all nodes share one database (where it lives is another issue's). The checks
//! are the cluster tests' own, across the link: one order, recovery in the other region,
//! presence, a region's NATS stopped and restarted, a whole region killed. Every fault
//! test ends with the history check: every acked event exactly once.

use crate::cluster::{death_bound, node_ids, wait_for, TestCluster, HEARTBEAT_SECS};
use crate::delivery::publish_everywhere_and_check;
use crate::faults::{
    events_flow_through, kill_9_of_nodes_while_events_flow, reconciler_idle, Fault,
};
use crate::nats::TwoRegions;
use crate::recovery::drop_on_node_0_and_recover_on_node_2;
use crate::ws_client::WsClient;
use std::time::{Duration, Instant};

/// `n` nodes: the first `in_east` in east, the rest in west, each on its region's NATS,
/// with the `extra` settings.
async fn cluster_across(
    regions: &TwoRegions,
    n: usize,
    in_east: usize,
    extra: &[(&'static str, String)],
) -> TestCluster {
    TestCluster::start_env(
        n,
        |i| {
            let (nats, region) = if i < in_east {
                (&regions.east, "east")
            } else {
                (&regions.west, "west")
            };
            vec![
                ("SYNCTV__NATS__URL", nats.url()),
                ("SYNCTV__CLUSTER__REGION", region.to_owned()),
            ]
        },
        extra,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lists_every_node_with_its_region() {
    let regions = TwoRegions::start().await;
    let cluster = cluster_across(&regions, 3, 1, &[]).await;
    for node in 0..3 {
        wait_for(
            death_bound(),
            &format!("node-{node} lists all three nodes"),
            || async { (cluster.node_ids(node).await == node_ids(0..3)).then_some(()) },
        )
        .await;
        let listed = cluster.nodes(node).await;
        let regions: Vec<&str> = listed
            .iter()
            .map(|n| n["region"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(regions, ["east", "west", "west"], "{listed:?}");
        let config: serde_json::Value = cluster
            .get(node, "/config.json")
            .await
            .json()
            .await
            .unwrap();
        let expected = if node == 0 { "east" } else { "west" };
        assert_eq!(config["region"], expected, "{config}");
    }
    let (_, ready) = cluster.ready(0).await;
    assert_eq!(ready["checks"]["nats"], "ok", "{ready}");
    assert_eq!(ready["checks"]["redis"], "disabled", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_in_both_regions_see_one_order() {
    let regions = TwoRegions::start().await;
    let cluster = cluster_across(&regions, 4, 2, &[]).await;
    publish_everywhere_and_check(&cluster, 2, 1, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dropped_in_one_region_recovers_in_the_other() {
    let regions = TwoRegions::start().await;
    // node 0 in east; nodes 1 and 2 in west.
    let cluster = cluster_across(&regions, 3, 1, &[]).await;
    drop_on_node_0_and_recover_on_node_2(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_counted_across_regions() {
    let regions = TwoRegions::start().await;
    let cluster = cluster_across(&regions, 2, 1, &[]).await;
    let alice = cluster.guest(0, "alice").await;
    let bob = cluster.guest(1, "bob").await;
    let room = cluster.room(0, &alice, "r").await;
    let mut a = WsClient::connect(&cluster.ws_url(0), &alice.token).await;
    a.join(&room).await;
    let mut b = WsClient::connect(&cluster.ws_url(1), &bob.token).await;
    b.join(&room).await;
    let patience = Duration::from_secs(3 * HEARTBEAT_SECS);
    for node in 0..2 {
        wait_for(patience, &format!("node-{node} counts 2"), || async {
            (cluster.get_room(node, &room).await["members"] == 2).then_some(())
        })
        .await;
    }
    // Alice again, in west: no event, still two.
    let mut a2 = WsClient::connect(&cluster.ws_url(1), &alice.token).await;
    let joined = a2.join(&room).await;
    let seq = joined["seq"].as_i64().unwrap();
    let ack = b.chat(&room, "after alice's second join", 1).await;
    assert_eq!(
        ack["seq"],
        seq + 1,
        "no member_joined for a second connection"
    );
    // East hears of her west connection (one way over the link) with west's next
    // heartbeat: then her east connection may go.
    wait_for(patience, "east sees both connections in west", || async {
        let nodes = cluster.nodes(0).await;
        nodes
            .iter()
            .any(|n| n["node_id"] == "node-1" && n["connections"] == 2)
            .then_some(())
    })
    .await;
    a.close().await;
    let ack = b.chat(&room, "after alice left east", 2).await;
    assert_eq!(ack["seq"], seq + 2, "no member_left while west holds her");
    // Her last one leaves: one member_left, counted on both sides.
    a2.close().await;
    let left = loop {
        let (event, _) = b.recv_until("event").await;
        if event["kind"] == "member_left" {
            break event;
        }
    };
    assert_eq!(left["seq"], seq + 3, "{left}");
    assert_eq!(left["data"]["user_id"], alice.user_id.as_str());
    for node in 0..2 {
        wait_for(patience, &format!("node-{node} counts 1"), || async {
            (cluster.get_room(node, &room).await["members"] == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_nats_stopped_and_restarted_while_events_flow() {
    let regions = TwoRegions::start().await;
    // node 0 in east; nodes 1 and 2 in west. East's NATS goes away.
    let cluster = cluster_across(&regions, 3, 1, &reconciler_idle()).await;
    events_flow_through(&cluster, "nats", Fault::RegionNatsDown(&regions.east), &[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_region_killed_its_clients_recover_in_the_other() {
    let regions = TwoRegions::start().await;
    // nodes 0 and 1 in east, 2 and 3 in west; east dies whole: nodes and NATS, kill -9.
    let mut cluster = cluster_across(&regions, 4, 2, &[]).await;
    wait_for(death_bound(), "every node listed", || async {
        (cluster.node_ids(3).await == node_ids(0..4)).then_some(())
    })
    .await;
    let started = Instant::now();
    let recovered_within =
        kill_9_of_nodes_while_events_flow(&mut cluster, &[0, 1], || regions.east.stop()).await;
    eprintln!(
        "east killed: every member acked 10 more in west within {} ms (test took {} ms)",
        recovered_within.as_millis(),
        started.elapsed().as_millis()
    );
    wait_for(death_bound(), "west forgets east's nodes", || async {
        (cluster.node_ids(2).await == node_ids(2..4)).then_some(())
    })
    .await;
}
