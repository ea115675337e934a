//! Waiting for everyone (1.1) on one node: statuses, the held start, the start when the
//! last waiter is ready, the timeout, `force`, `pause`, and version 1 clients never
//! waited for.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::party::{assert_code, Party};
use crate::ws_client::WsClient;
use serde_json::{json, Value};

both_backends!(
    status_is_acked_and_a_repeat_changes_nothing,
    a_play_waits_for_the_buffering_waiter_then_starts_once,
    the_timeout_starts_without_the_straggler,
    force_starts_at_once_and_pause_ends_the_wait,
    version_1_clients_are_never_waited_for,
    a_joiner_during_a_wait_sees_who_is_still_waited_for,
);

/// The next `playback` event client `i` receives.
async fn next_playback(p: &mut Party, i: usize) -> Value {
    loop {
        let event = p.next_event(i).await;
        if event["kind"] == "playback" {
            return event;
        }
    }
}

async fn status_is_acked_and_a_repeat_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let ack = p
        .ask(1, 1, json!({"type": "status", "state": "ready"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_i64().expect("a seq");
    let event = p.next_event(0).await;
    assert_eq!(event["kind"], "member_status");
    assert_eq!(event["seq"], seq);
    assert_eq!(
        event["data"],
        json!({"user_id": p.user(1), "state": "ready"})
    );
    let again = p
        .ask(1, 2, json!({"type": "status", "state": "ready"}))
        .await;
    assert_eq!(again["type"], "ack");
    assert_eq!(again["seq"], Value::Null);
    for bad in [json!("playing"), json!(1), Value::Null] {
        let answer = p.ask(1, 3, json!({"type": "status", "state": bad})).await;
        assert_code(&answer, "bad_request");
    }
    let members: Value = app
        .get(&format!("/api/v1/rooms/{}/members", p.room))
        .await
        .json()
        .await
        .unwrap();
    let bob = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == p.user(1))
        .cloned()
        .unwrap();
    assert_eq!(bob["status"], "ready");
}

async fn a_play_waits_for_the_buffering_waiter_then_starts_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    p.ask(1, 1, json!({"type": "status", "state": "ready"}))
        .await;
    // A seek marks every waiter buffering; the play is then held for bob.
    p.ask(
        0,
        2,
        json!({"type": "playback", "action": "seek", "position": 42.0}),
    )
    .await;
    let play = p
        .ask(0, 3, json!({"type": "playback", "action": "play"}))
        .await;
    assert_eq!(play["type"], "ack", "{play}");
    let held = next_playback(&mut p, 1).await;
    let held = next_playback_after(&mut p, 1, held, "play").await;
    let state = &held["data"]["state"];
    assert_eq!(state["playing"], false);
    assert_eq!(state["waiting_for"], json!([bob]));
    assert!(state["wait_until"].as_i64().is_some());
    let ready = p
        .ask(1, 4, json!({"type": "status", "state": "ready"}))
        .await;
    let start = loop {
        let event = next_playback(&mut p, 0).await;
        if event["data"]["waited"] == true {
            break event;
        }
    };
    assert_eq!(start["data"]["action"], "play");
    assert_eq!(start["data"]["waited"], true);
    assert_eq!(start["by"], Value::Null);
    assert_eq!(start["seq"], ready["seq"].as_i64().unwrap() + 1);
    let state = &start["data"]["state"];
    assert_eq!(state["playing"], true);
    assert_eq!(state["position"], 42.0);
    assert_eq!(state["waiting_for"], json!([]));
    let ahead = state["updated_at"].as_i64().unwrap() - start["server_time"].as_i64().unwrap();
    assert!(
        (0..=1000).contains(&ahead),
        "updated_at at most 1 s ahead: {ahead}"
    );
    // One start in the history.
    let history: Value = app
        .room_events(&p.room, "?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let starts = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["waited"] == true)
        .count();
    assert_eq!(starts, 1);
}

/// Skips `first` (and later playback events) until one whose action is `action`.
async fn next_playback_after(p: &mut Party, i: usize, first: Value, action: &str) -> Value {
    let mut event = first;
    while event["data"]["action"] != action {
        event = next_playback(p, i).await;
    }
    event
}

async fn the_timeout_starts_without_the_straggler(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rooms.ready_timeout_secs = 1).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    p.ask(1, 1, json!({"type": "status", "state": "buffering"}))
        .await;
    let play = p
        .ask(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let held = next_playback(&mut p, 0).await;
    assert_eq!(held["seq"], play["seq"]);
    let until = held["data"]["state"]["wait_until"].as_i64().unwrap();
    assert_eq!(until - held["server_time"].as_i64().unwrap(), 1000);
    let start = next_playback(&mut p, 0).await;
    assert_eq!(start["data"]["waited"], true);
    assert!(start["server_time"].as_i64().unwrap() >= until);
    assert_eq!(start["data"]["state"]["playing"], true);
    // Bob still buffering was not waited for beyond the timeout; nothing else starts.
    let chat = p.ask(0, 3, json!({"type": "chat", "text": "after"})).await;
    assert_eq!(chat["seq"], start["seq"].as_i64().unwrap() + 1);
}

async fn force_starts_at_once_and_pause_ends_the_wait(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    p.ask(1, 1, json!({"type": "status", "state": "buffering"}))
        .await;
    p.ask(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let pause = p
        .ask(0, 3, json!({"type": "playback", "action": "pause"}))
        .await;
    assert_eq!(pause["type"], "ack");
    let paused = next_playback_after(&mut p, 0, json!({}), "pause").await;
    assert_eq!(paused["data"]["state"]["waiting_for"], json!([]));
    assert_eq!(paused["data"]["state"]["playing"], false);
    let forced = p
        .ask(
            0,
            4,
            json!({"type": "playback", "action": "play", "force": true}),
        )
        .await;
    assert_eq!(forced["type"], "ack");
    let started = next_playback_after(&mut p, 0, json!({}), "play").await;
    assert_eq!(started["data"]["state"]["playing"], true);
    assert_eq!(started["data"]["state"]["waiting_for"], json!([]));
}

async fn version_1_clients_are_never_waited_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    p.ask(
        0,
        1,
        json!({"type": "playback", "action": "seek", "position": 5}),
    )
    .await;
    p.ask(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let started = next_playback_after(&mut p, 1, json!({}), "play").await;
    assert_eq!(started["data"]["state"]["playing"], true);
    assert_eq!(started["data"]["state"]["waiting_for"], json!([]));
}

async fn a_joiner_during_a_wait_sees_who_is_still_waited_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob", "carol"]).await;
    for i in 1..3 {
        p.ask(i, 1, json!({"type": "status", "state": "buffering"}))
            .await;
    }
    p.ask(0, 2, json!({"type": "playback", "action": "play"}))
        .await;
    let ready = p
        .ask(1, 3, json!({"type": "status", "state": "ready"}))
        .await;
    let seq = ready["seq"].as_i64().unwrap();
    let dave = app.guest("dave").await;
    let mut d = WsClient::connect(&app.ws_url(), &dave.token).await;
    let joined = d.join(&p.room).await;
    assert!(joined["seq"].as_i64().unwrap() > seq);
    assert_eq!(joined["state"]["playing"], false);
    assert_eq!(joined["state"]["waiting_for"], json!([p.user(2)]));
}
