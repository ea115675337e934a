//! Webhooks survive the death of the node sending them: `kill -9` of the lease holder
//! while the receiver holds one of its deliveries open; the other node takes the lease
//! once it expires and sends every delivery, the interrupted one again under the same
//! `delivery_id`, in the room's order.

use crate::cluster::{wait_for, TestBus, TestCluster};
use crate::webhook_receiver::{check_signatures_and_retries, types, Answer, WebhookReceiver};
use crate::ws_client::WsClient;
use std::time::Duration;

const SECRET: &str = "webhook-secret-for-cluster-tests-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_killed_mid_delivery_loses_nothing() {
    let receiver = WebhookReceiver::start().await;
    // The first request is held open until long after the sender is gone.
    receiver.then(&[Answer::Hang(Duration::from_secs(60))]);
    let bus = TestBus::redis().await;
    let mut cluster = TestCluster::start_env(
        2,
        |_| vec![bus.setting()],
        &[
            ("SYNCTV__WEBHOOKS__URL", receiver.url.clone()),
            ("SYNCTV__WEBHOOKS__SECRET", SECRET.to_owned()),
            ("SYNCTV__WEBHOOKS__TIMEOUT_SECS", "3".to_owned()),
        ],
    )
    .await;
    let sender = wait_for(
        Duration::from_secs(30),
        "one node holds the webhook lease",
        || async {
            for i in 0..2 {
                if cluster.node(i).metric("synctv_webhook_sender").await == 1.0 {
                    return Some(i);
                }
            }
            None
        },
    )
    .await;
    let survivor = 1 - sender;

    let alice = cluster.guest(survivor, "alice").await;
    let room = cluster.room(survivor, &alice, "watched").await;
    let mut ws = WsClient::connect(&cluster.ws_url(survivor), &alice.token).await;
    ws.join(&room).await;
    ws.close().await;
    wait_for(
        Duration::from_secs(30),
        "the first delivery is in flight",
        || async { (!receiver.received().is_empty()).then_some(()) },
    )
    .await;
    let interrupted = receiver.received()[0].body.clone();
    assert_eq!(interrupted["type"], "room_occupied", "{interrupted}");
    cluster.kill9(sender);

    let deliveries = receiver
        .until_delivered(&room, "room_vacated", Duration::from_secs(90))
        .await;
    let kinds = types(&deliveries);
    assert_eq!(
        kinds,
        [
            "room_occupied",
            "member_joined",
            "member_left",
            "room_vacated"
        ],
        "{deliveries:#?}"
    );
    assert_eq!(deliveries[0]["delivery_id"], interrupted["delivery_id"]);
    let history = cluster.history(&room).await;
    let members: Vec<i64> = history
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("member_"))
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        members,
        [
            deliveries[1]["seq"].as_i64().unwrap(),
            deliveries[2]["seq"].as_i64().unwrap()
        ]
    );
    check_signatures_and_retries(&receiver.received(), SECRET);
}
