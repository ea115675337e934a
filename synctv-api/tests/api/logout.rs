//! Refresh and logout (contract 1.1): a refreshed token is a new token for the same user;
//! a logged-out token is refused on every node within 5 s, and the WebSockets opened
//! with it get `error` `unauthorized` and close code 4401.

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, spawn_first_node, spawn_peer, Backend, TestApp};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

both_backends!(
    refresh_gives_a_new_token_for_the_same_user,
    logout_revokes_the_token_on_this_node,
    logout_reaches_every_node_within_five_seconds,
);

/// The contract's bound for a revocation to reach every node.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);

async fn refresh_gives_a_new_token_for_the_same_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let resp = app.post_auth("refresh", &alice.token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user_id"], alice.user_id.as_str());
    assert_eq!(body["name"], "alice");
    assert!(body["expires_at"].as_i64().unwrap() > synctv_core::clock::now_ms());
    let token = body["token"].as_str().unwrap();
    assert_ne!(token, alice.token);
    let room = app.create_room(token, json!({"name": "fresh"})).await;
    assert_eq!(room.status(), StatusCode::CREATED);
    let room: Value = room.json().await.unwrap();
    assert_eq!(room["owner_id"], alice.user_id.as_str());
    // Refreshing does not log the old token out.
    let old = app.create_room(&alice.token, json!({"name": "old"})).await;
    assert_eq!(old.status(), StatusCode::CREATED);
    for bad in ["", "garbage"] {
        let resp = app.post_auth("refresh", bad).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

async fn logout_revokes_the_token_on_this_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "bye").await;
    // The same user signed in elsewhere: another token, unaffected.
    let other = app.post_auth("refresh", &alice.token).await;
    let other: Value = other.json().await.unwrap();
    let other = other["token"].as_str().unwrap().to_owned();

    let mut by_token = WsClient::connect(&app.ws_url(), &alice.token).await;
    by_token.join(&room).await;
    let ticket = app.ticket(&alice.token).await;
    let mut by_ticket = WsClient::try_connect(&app.ticket_url(&ticket), None)
        .await
        .unwrap();
    let mut bystander = WsClient::connect(&app.ws_url(), &other).await;
    bystander.join(&room).await;

    let resp = app.post_auth("logout", &alice.token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for ws in [&mut by_token, &mut by_ticket] {
        assert_closed_as_revoked(ws).await;
    }
    for action in ["ticket", "refresh", "logout"] {
        let resp = app.post_auth(action, &alice.token).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let resp = app.create_room(&alice.token, json!({"name": "x"})).await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refused = WsClient::try_connect(&format!("{}?token={}", app.ws_url(), alice.token), None)
        .await
        .err()
        .expect("a revoked token is refused at the upgrade");
    assert_eq!((refused.status, refused.code()), (401, "unauthorized"));

    // The other token still works, and its connection is still open.
    let ack = bystander.chat(&room, "still here", 1).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let resp = app.create_room(&other, json!({"name": "y"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

async fn logout_reaches_every_node_within_five_seconds(backend: Backend) {
    let first = spawn_first_node(backend).await;
    let second = spawn_peer(backend, &first).await;
    let alice = first.guest("alice").await;
    let room = first.room_id(&alice, "two nodes").await;
    let mut on_second = WsClient::connect(&second.ws_url(), &alice.token).await;
    on_second.join(&room).await;
    let ticket = first.ticket(&alice.token).await;
    let mut by_ticket_on_second = WsClient::try_connect(&second.ticket_url(&ticket), None)
        .await
        .unwrap();
    // Node 2 accepts the token before the logout.
    let resp = second
        .create_room(&alice.token, json!({"name": "ok"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let started = Instant::now();
    let resp = first.post_auth("logout", &alice.token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for ws in [&mut on_second, &mut by_ticket_on_second] {
        assert_closed_as_revoked(ws).await;
    }
    wait_until_refused(&second, &alice.token, started).await;
    assert!(
        started.elapsed() < REVOCATION_BOUND,
        "node 2 took {:?} to learn of the logout",
        started.elapsed()
    );
    // A node started after the logout knows it from the start.
    let third = spawn_peer(backend, &first).await;
    wait_until_refused(&third, &alice.token, Instant::now()).await;
}

async fn assert_closed_as_revoked(ws: &mut WsClient) {
    let (frames, code) = ws.until_closed().await;
    assert_eq!(code, Some(4401), "frames before the close: {frames:?}");
    let last = frames.last().expect("an error frame before the close");
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["code"], "unauthorized", "{last}");
}

/// Polls `app` until it answers `token` 401, failing past the contract's bound.
async fn wait_until_refused(app: &TestApp, token: &str, since: Instant) {
    loop {
        let resp = app.post_auth("ticket", token).await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert!(
            since.elapsed() < REVOCATION_BOUND,
            "the token is still accepted after {:?}",
            since.elapsed()
        );
        // Pacing, not synchronisation: the loop ends on the condition above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
