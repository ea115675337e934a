//! Webhooks (contract 1.1) against a real local receiver: each room's `room_occupied`,
//! `member_joined`, `member_left` and `room_vacated` in the history's order, signed,
//! retried under the same `delivery_id` while the receiver fails or times out, and sent
//! once per cluster when two nodes share the database.

use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, TestApp, SHARED_JWT_SECRET};
use crate::wait::wait_for;
use crate::webhook_receiver::{
    check_signatures_and_retries, distinct_accepted, types, Answer, WebhookReceiver,
};
use crate::ws_client::WsClient;
use serde_json::Value;
use std::time::Duration;

both_backends!(
    webhooks_follow_each_rooms_history_signed,
    a_failing_then_hanging_receiver_gets_every_delivery_in_order,
    two_nodes_send_each_delivery_once,
    deliveries_outlive_a_restart_of_the_node,
    a_kick_is_delivered_with_the_users_name,
);

pub const WEBHOOK_SECRET: &str = "webhook-secret-for-tests-0123456789";

/// Patience for deliveries, retries included, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

async fn spawn_with_webhooks(backend: Backend, receiver: &WebhookReceiver) -> TestApp {
    let url = receiver.url.clone();
    spawn_app_with(backend, |c| {
        c.auth.jwt_secret = Some(SHARED_JWT_SECRET.into());
        c.webhooks.url = Some(url);
        c.webhooks.secret = Some(WEBHOOK_SECRET.into());
        c.webhooks.timeout_secs = 1;
    })
    .await
}

/// Alice then bob join `room` on `apps[0]` and `apps[last]`, then leave in that order,
/// each step recorded in the history before the next.
async fn visit(apps: &[&TestApp], room: &str) {
    let first = apps[0];
    let last = apps[apps.len() - 1];
    let alice = first.guest("alice").await;
    let bob = first.guest("bob").await;
    let mut a = WsClient::connect(&first.ws_url(), &alice.token).await;
    a.join(room).await;
    let mut b = WsClient::connect(&last.ws_url(), &bob.token).await;
    b.join(room).await;
    a.close().await;
    wait_for_history(first, room, 3).await;
    b.close().await;
    wait_for_history(first, room, 4).await;
}

async fn wait_for_history(app: &TestApp, room: &str, events: usize) {
    wait_for(PATIENCE, "the history grows", || async {
        let page: Value = app.room_events(room, "").await.json().await.ok()?;
        (page["events"].as_array()?.len() >= events).then_some(())
    })
    .await
}

/// The distinct deliveries of `room` the receiver accepted, once `room_vacated` came.
async fn until_vacated(receiver: &WebhookReceiver, room: &str) -> Vec<Value> {
    receiver
        .until_delivered(room, "room_vacated", PATIENCE)
        .await
}

/// The deliveries are the history's member events in order, between occupied and
/// vacated, with the contract's fields.
async fn check_against_history(app: &TestApp, room: &str, deliveries: &[Value]) {
    let kinds = types(deliveries);
    assert_eq!(
        kinds,
        [
            "room_occupied",
            "member_joined",
            "member_joined",
            "member_left",
            "member_left",
            "room_vacated"
        ],
        "{deliveries:#?}"
    );
    let page: Value = app.room_events(room, "").await.json().await.unwrap();
    let members: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("member_"))
        .collect();
    let delivered: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["type"].as_str().unwrap().starts_with("member_"))
        .collect();
    assert_eq!(members.len(), delivered.len());
    for (event, delivery) in members.iter().zip(&delivered) {
        assert_eq!(delivery["type"], event["kind"], "{delivery}");
        assert_eq!(delivery["seq"], event["seq"], "{delivery}");
        assert_eq!(
            delivery["user"]["user_id"], event["data"]["user_id"],
            "{delivery}"
        );
        assert_eq!(
            delivery["user"]["name"], event["data"]["name"],
            "{delivery}"
        );
        assert_eq!(delivery["time"], event["server_time"], "{delivery}");
    }
    for d in deliveries {
        assert!(
            d["delivery_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{d}"
        );
        assert_eq!(d["room"], room, "{d}");
        assert!(
            d["seq"].as_i64().is_some() && d["time"].as_i64().is_some(),
            "{d}"
        );
    }
    // Occupied with the first arrival's seq, vacated with the last departure's.
    assert_eq!(deliveries[0]["seq"], deliveries[1]["seq"]);
    assert_eq!(deliveries[5]["seq"], deliveries[4]["seq"]);
}

async fn webhooks_follow_each_rooms_history_signed(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    let app = spawn_with_webhooks(backend, &receiver).await;
    let owner = app.guest("owner").await;
    let room = app.room_id(&owner, "watched").await;
    visit(&[&app], &room).await;
    let deliveries = until_vacated(&receiver, &room).await;
    check_against_history(&app, &room, &deliveries).await;
    check_signatures_and_retries(&receiver.received(), WEBHOOK_SECRET);
}

async fn a_failing_then_hanging_receiver_gets_every_delivery_in_order(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    // Two 500s, then an answer after the sender's 1 s timeout, then it is back.
    receiver.then(&[
        Answer::Fail,
        Answer::Fail,
        Answer::Hang(Duration::from_secs(3)),
    ]);
    let app = spawn_with_webhooks(backend, &receiver).await;
    let owner = app.guest("owner").await;
    let room = app.room_id(&owner, "flaky receiver").await;
    visit(&[&app], &room).await;
    let deliveries = until_vacated(&receiver, &room).await;
    check_against_history(&app, &room, &deliveries).await;
    let received = receiver.received();
    check_signatures_and_retries(&received, WEBHOOK_SECRET);
    // The first delivery was tried four times, under one id, before anything after it.
    let first_id = &deliveries[0]["delivery_id"];
    assert!(received.len() >= 4 + 5, "{} requests", received.len());
    for r in &received[..4] {
        assert_eq!(&r.body["delivery_id"], first_id, "{}", r.raw);
    }
    assert_eq!(received[3].answer, Answer::Accept);
}

async fn two_nodes_send_each_delivery_once(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    let first = spawn_with_webhooks(backend, &receiver).await;
    let url = first.config.database.url.clone();
    let hook = receiver.url.clone();
    let second = spawn_app_with(backend, |c| {
        c.auth.jwt_secret = Some(SHARED_JWT_SECRET.into());
        c.database.url = url;
        c.webhooks.url = Some(hook);
        c.webhooks.secret = Some(WEBHOOK_SECRET.into());
        c.webhooks.timeout_secs = 1;
    })
    .await;
    let owner = first.guest("owner").await;
    let room = first.room_id(&owner, "two nodes").await;
    visit(&[&first, &second], &room).await;
    let deliveries = until_vacated(&receiver, &room).await;
    check_against_history(&first, &room, &deliveries).await;
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        distinct_accepted(&accepted).len(),
        "a delivery was sent twice: {accepted:#?}"
    );
}

async fn deliveries_outlive_a_restart_of_the_node(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    receiver.then(&[Answer::Fail, Answer::Fail, Answer::Fail]);
    let app = spawn_with_webhooks(backend, &receiver).await;
    let owner = app.guest("owner").await;
    let room = app.room_id(&owner, "restarted").await;
    visit(&[&app], &room).await;
    wait_for(PATIENCE, "a failed attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    // The restarted node (a new node id) takes the lease the old one gave up, and sends
    // what the outbox still holds.
    let app = app.restart().await;
    let deliveries = until_vacated(&receiver, &room).await;
    check_against_history(&app, &room, &deliveries).await;
    check_signatures_and_retries(&receiver.received(), WEBHOOK_SECRET);
}

async fn a_kick_is_delivered_with_the_users_name(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    let url = receiver.url.clone();
    let app = spawn_app_with(backend, |c| {
        c.webhooks.url = Some(url);
        c.webhooks.secret = Some(WEBHOOK_SECRET.into());
        c.webhooks.timeout_secs = 1;
        c.api.key = Some(crate::server_api::API_KEY.into());
    })
    .await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let room = app.room_id(&alice, "kicks").await;
    let mut a = WsClient::connect(&app.ws_url(), &alice.token).await;
    a.join(&room).await;
    let mut b = WsClient::connect(&app.ws_url(), &bob.token).await;
    b.join(&room).await;
    let resp = crate::server_api::server_call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/server/rooms/{room}/kick"),
        Some(crate::server_api::API_KEY),
        Some(serde_json::json!({"user_id": bob.user_id})),
    )
    .await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let seq = resp.json::<Value>().await.unwrap()["seq"].clone();
    let deliveries = receiver
        .until_delivered(&room, "member_kicked", PATIENCE)
        .await;
    let kicked = deliveries.last().unwrap();
    assert_eq!(kicked["seq"], seq, "{kicked}");
    assert_eq!(kicked["user"]["user_id"], bob.user_id.as_str(), "{kicked}");
    assert_eq!(kicked["user"]["name"], "bob", "{kicked}");
    let kinds = types(&deliveries);
    assert_eq!(
        kinds,
        [
            "room_occupied",
            "member_joined",
            "member_joined",
            "member_kicked"
        ],
        "{deliveries:#?}"
    );
}
