//! Drift reports (1.1) on one node: answered only with an `id`, at most one a second
//! taken, shown in `GET /members`, counted in `synctv_member_drift_seconds`.

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, TestProcess};
use crate::party::{assert_code, Party};
use crate::wait::wait_for;
use crate::ws_client::WsClient;
use serde_json::{json, Value};
use std::time::Duration;

both_backends!(
    a_report_shows_the_members_drift,
    reports_are_answered_only_with_an_id,
    the_drift_histogram_counts_reports,
);

async fn drift_of(app: &crate::helpers::TestApp, room: &str, user: &str) -> Value {
    let members: Value = app
        .get(&format!("/api/v1/rooms/{room}/members"))
        .await
        .json()
        .await
        .unwrap();
    members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user)
        .map(|m| m["drift_ms"].clone())
        .unwrap_or(Value::Null)
}

async fn a_report_shows_the_members_drift(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    // Paused at 10 s: a player at 10.25 s is 250 ms ahead, whatever the round trip.
    p.ask(
        0,
        1,
        json!({"type": "playback", "action": "seek", "position": 10.0}),
    )
    .await;
    let ack = p
        .ask(
            1,
            2,
            json!({"type": "report", "position": 10.25, "rtt_ms": 40}),
        )
        .await;
    assert_eq!(
        ack,
        json!({"type": "ack", "id": 2, "room": p.room, "seq": null})
    );
    let (room, bob) = (p.room.clone(), p.user(1).to_owned());
    let drift = wait_for(Duration::from_secs(10), "bob's drift shown", || async {
        Some(drift_of(&app, &room, &bob).await).filter(|d| !d.is_null())
    })
    .await;
    assert_eq!(drift.as_f64(), Some(250.0));
    assert_eq!(drift_of(&app, &room, p.user(0)).await, Value::Null);
    // Nothing entered the history.
    let history: Value = app.room_events(&p.room, "").await.json().await.unwrap();
    assert!(history["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] != "report"));
}

async fn reports_are_answered_only_with_an_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice"]).await;
    let room = p.room.clone();
    p.clients[0]
        .send(json!({"type": "report", "room": room, "position": 1.0}))
        .await;
    p.clients[0].send(json!({"type": "ping", "id": "p"})).await;
    let next = p.clients[0].recv().await;
    assert_eq!(
        next["type"], "pong",
        "a report without id is not answered: {next}"
    );
    // Over one a second: ignored, not an error.
    let ack = p
        .ask(0, 1, json!({"type": "report", "position": 1.0}))
        .await;
    assert_eq!(ack["type"], "ack");
    for bad in [json!(-1), json!("x"), Value::Null] {
        let answer = p
            .ask(0, 2, json!({"type": "report", "position": bad}))
            .await;
        assert_code(&answer, "bad_request");
    }
    let answer = p
        .ask(0, 3, json!({"type": "report", "position": 1, "rtt_ms": -5}))
        .await;
    assert_code(&answer, "bad_request");
    let mut stranger = WsClient::connect(&app.ws_url(), &app.guest("x").await.token).await;
    stranger
        .send(json!({"type": "report", "room": room, "position": 1, "id": 4}))
        .await;
    assert_code(&stranger.recv_answer(4).await, "not_found");
}

async fn the_drift_histogram_counts_reports(backend: Backend) {
    let server = TestProcess::spawn(backend, &[]).await;
    let token = server.guest_token("alice").await;
    let room = server.create_room(&token, "r").await;
    let mut client = WsClient::connect(&server.ws_url(), &token).await;
    client.join(&room).await;
    client
        .send(json!({"type": "report", "room": room, "position": 0.5, "id": 1}))
        .await;
    client.recv_answer(1).await;
    let count = server.metric("synctv_member_drift_seconds_count").await;
    assert_eq!(count, 1.0);
}
