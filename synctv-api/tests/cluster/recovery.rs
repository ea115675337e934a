//! Recovery on another node: a member drops from one node, events flow from the others,
//! and it rejoins on a third node with `recover`: `recovered: true` and exactly the
//! events it missed, then live with no gap.

use crate::cluster::{TestBus, TestCluster};
use crate::ws_client::WsClient;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dropped_recovers_on_another_node() {
    recovers_on_another_node(TestBus::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dropped_recovers_on_another_node_on_nats() {
    recovers_on_another_node(TestBus::nats().await).await;
}

async fn recovers_on_another_node(bus: TestBus) {
    let cluster = TestCluster::start_on(3, &bus).await;
    drop_on_node_0_and_recover_on_node_2(&cluster).await;
}

/// `late` joins on node 0 and drops; chats come from nodes 0 and 1; it rejoins on node 2
/// with `recover`.
pub async fn drop_on_node_0_and_recover_on_node_2(cluster: &TestCluster) {
    let alice = cluster.guest(0, "alice").await;
    let bob = cluster.guest(1, "bob").await;
    let late = cluster.guest(2, "late").await;
    let room = cluster.room(0, &alice, "r").await;

    let mut a = WsClient::connect(&cluster.ws_url(0), &alice.token).await;
    a.join(&room).await;
    let mut b = WsClient::connect(&cluster.ws_url(1), &bob.token).await;
    b.join(&room).await;
    // Node 0 has bob's arrival (it may come from another region) before `late` joins.
    let (bob_joined, _) = a.recv_until("event").await;
    assert_eq!(bob_joined["kind"], "member_joined", "{bob_joined}");
    assert_eq!(bob_joined["data"]["user_id"], bob.user_id.as_str());
    // `late` joins on node 0, notes where it was, and drops.
    let mut l = WsClient::connect(&cluster.ws_url(0), &late.token).await;
    let joined = l.join(&room).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    let seq = joined["seq"].as_i64().unwrap();
    l.close().await;
    // Its member_left reaches bob on node 1 before the chats are sent.
    let (joined_event, _) = b.recv_until("event").await;
    assert_eq!(joined_event["kind"], "member_joined");
    assert_eq!(joined_event["data"]["user_id"], late.user_id.as_str());
    let left = b.recv().await;
    assert_eq!(left["kind"], "member_left", "{left}");
    assert_eq!(left["data"]["user_id"], late.user_id.as_str());

    let mut acked = Vec::new();
    for i in 0..10 {
        let (client, text) = if i % 2 == 0 {
            (&mut a, format!("from node 0: {i}"))
        } else {
            (&mut b, format!("from node 1: {i}"))
        };
        let ack = client.chat(&room, &text, i).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push((ack["seq"].as_i64().unwrap(), text));
    }

    // Rejoin on node 2.
    let mut l = WsClient::connect(&cluster.ws_url(2), &late.token).await;
    l.send(json!({"type": "join", "room": room, "id": "r",
        "recover": {"epoch": epoch, "seq": seq}}))
        .await;
    let joined = l.recv_answer("r").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["epoch"], epoch.as_str());
    let last = joined["seq"].as_i64().unwrap();
    let events = joined["events"].as_array().unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        ((seq + 1)..=last).collect::<Vec<_>>(),
        "none missing, none twice"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let mut expected = vec!["member_left"];
    expected.extend(["chat"; 10]);
    expected.push("member_joined");
    assert_eq!(kinds, expected);
    for (seq, text) in &acked {
        let event = events.iter().find(|e| e["seq"] == *seq).unwrap();
        assert_eq!(event["data"]["text"], text.as_str());
    }
    assert_eq!(
        events.last().unwrap()["data"]["user_id"],
        late.user_id.as_str()
    );

    // Live from the next seq, with no gap, from a node it is not on.
    let ack = b.chat(&room, "live", 100).await;
    assert_eq!(ack["seq"], last + 1);
    let event = l.recv().await;
    assert_eq!(
        (event["seq"].as_i64(), event["data"]["text"].as_str()),
        (Some(last + 1), Some("live"))
    );
    // The history agrees with what was recovered.
    let history = cluster.history(&room).await;
    assert_eq!(history.len() as i64, last + 1);
    for event in events {
        let truth = &history[(event["seq"].as_i64().unwrap() - 1) as usize];
        assert_eq!(event["kind"], truth["kind"]);
        assert_eq!(event["data"], truth["data"]);
    }
}
