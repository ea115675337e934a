//! The server API (contract 1.1): off without `SYNCTV__API__KEY` (404), its key in
//! `X-API-Key` (401 otherwise), a system message (`chat`, `by: null`), disconnecting a
//! user on every node with close code 4000, and each node's stats.

use crate::both_backends;
use crate::helpers::{
    assert_error, spawn_app, spawn_app_with, spawn_peer, Backend, TestApp, SHARED_JWT_SECRET,
};
use crate::ws_client::WsClient;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

both_backends!(
    the_server_api_is_off_without_a_key,
    every_request_needs_the_key,
    a_system_message_is_a_chat_by_nobody,
    a_kick_from_the_server_is_the_kick_message_by_nobody,
    a_disconnect_closes_every_connection_of_the_user,
    a_disconnect_reaches_another_node_within_five_seconds,
    stats_count_this_nodes_connections_deliveries_and_refusals,
);

pub const API_KEY: &str = "server-api-key-for-tests-0123456789abcdef";

/// The contract's bound for a disconnect to reach every node.
const DISCONNECT_BOUND: Duration = Duration::from_secs(5);

/// An app with the server API on.
pub async fn spawn_with_key(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| c.api.key = Some(API_KEY.into())).await
}

/// A server API request: `body` is sent as JSON when given; `key` as `X-API-Key`.
pub async fn server_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut req = app.client.request(method, app.url(path));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// `GET /api/v1/server/stats` with the key; the body (panics unless 200).
async fn stats(app: &TestApp) -> Value {
    let resp = server_call(
        app,
        reqwest::Method::GET,
        "/api/v1/server/stats",
        Some(API_KEY),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn server_post(app: &TestApp, path: &str, body: Option<Value>) -> Response {
    server_call(app, reqwest::Method::POST, path, Some(API_KEY), body).await
}

async fn the_server_api_is_off_without_a_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "r").await;
    let calls = [
        (reqwest::Method::GET, "/api/v1/server/stats".to_owned()),
        (
            reqwest::Method::POST,
            format!("/api/v1/server/rooms/{room}/messages"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/server/rooms/{room}/kick"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/server/users/{}/disconnect", alice.user_id),
        ),
    ];
    for (method, path) in calls {
        for key in [None, Some(API_KEY)] {
            let resp =
                server_call(&app, method.clone(), &path, key, Some(json!({"text": "x"}))).await;
            assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
        }
    }
}

async fn every_request_needs_the_key(backend: Backend) {
    let app = spawn_with_key(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "r").await;
    let wrong_length = &API_KEY[..API_KEY.len() - 1];
    let one_char_off = format!("{wrong_length}X");
    for key in [
        None,
        Some(""),
        Some(wrong_length),
        Some(one_char_off.as_str()),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, "/api/v1/server/stats".to_owned()),
            (
                reqwest::Method::POST,
                format!("/api/v1/server/rooms/{room}/messages"),
            ),
            (
                reqwest::Method::POST,
                format!("/api/v1/server/users/{}/disconnect", alice.user_id),
            ),
        ] {
            let body = json!({"text": "x", "user_id": alice.user_id});
            let resp = server_call(&app, method, &path, key, Some(body)).await;
            assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    // A user's bearer token is not the key.
    let resp = app
        .client
        .get(app.url("/api/v1/server/stats"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Nothing was published by the refused calls.
    let events: Value = app.room_events(&room, "").await.json().await.unwrap();
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] != "chat"));
    stats(&app).await;
}

async fn a_system_message_is_a_chat_by_nobody(backend: Backend) {
    let app = spawn_with_key(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "announcements").await;
    let mut ws = WsClient::connect(&app.ws_url(), &alice.token).await;
    ws.join(&room).await;

    let path = format!("/api/v1/server/rooms/{room}/messages");
    let resp = server_post(&app, &path, Some(json!({"text": "the stream starts soon"}))).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let seq = body["seq"].as_i64().expect("a seq");
    let events = ws.events_until(&room, seq).await;
    let event = events.last().unwrap();
    assert_eq!(event["seq"], seq, "{event}");
    assert_eq!(event["kind"], "chat", "{event}");
    assert_eq!(event["by"], Value::Null, "{event}");
    assert_eq!(event["data"]["text"], "the stream starts soon", "{event}");
    // Durable, in the room's history at that seq.
    let page: Value = app
        .room_events(&room, &format!("?after={}", seq - 1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"][0]["seq"], seq);
    assert_eq!(page["events"][0]["by"], Value::Null);

    for bad in [
        json!({}),
        json!({"text": ""}),
        json!({"text": 5}),
        json!({"text": "x".repeat(2001)}),
    ] {
        let resp = server_post(&app, &path, Some(bad)).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let resp = server_post(&app, &path, None).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = server_post(
        &app,
        "/api/v1/server/rooms/no-such-room/messages",
        Some(json!({"text": "hello"})),
    )
    .await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    // An archived room takes no more messages.
    let resp = app.delete_room(&room, Some(&alice.token)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = server_post(&app, &path, Some(json!({"text": "late"}))).await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_kick_from_the_server_is_the_kick_message_by_nobody(backend: Backend) {
    let app = spawn_with_key(backend).await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let room = app.room_id(&alice, "moderated").await;
    let mut owner = WsClient::connect(&app.ws_url(), &alice.token).await;
    owner.join(&room).await;
    let mut member = WsClient::connect(&app.ws_url(), &bob.token).await;
    member.join(&room).await;

    let path = format!("/api/v1/server/rooms/{room}/kick");
    // Even the owner may be kicked by the server; here a member, banned for a minute.
    let resp = server_post(
        &app,
        &path,
        Some(json!({"user_id": bob.user_id, "ban_secs": 60})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seq = resp.json::<Value>().await.unwrap()["seq"]
        .as_i64()
        .expect("a seq");
    let events = owner.events_until(&room, seq).await;
    let kicked = events.last().unwrap();
    assert_eq!(kicked["kind"], "member_kicked", "{kicked}");
    assert_eq!(kicked["by"], Value::Null, "{kicked}");
    assert_eq!(kicked["data"]["user_id"], bob.user_id.as_str(), "{kicked}");
    let until = kicked["data"]["banned_until"].as_i64().expect("a ban");
    // Bob is out of the room and may not come back before the ban ends.
    member
        .send(json!({"type": "chat", "room": room, "text": "x", "id": 1}))
        .await;
    assert_eq!(member.recv_answer(1).await["code"], "not_found");
    member
        .send(json!({"type": "join", "room": room, "id": 2}))
        .await;
    let banned = member.recv_answer(2).await;
    assert_eq!(banned["code"], "banned", "{banned}");
    assert_eq!(banned["until"], until, "{banned}");

    for (body, status, code) in [
        (
            json!({"user_id": "nobody"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"user_id": bob.user_id, "ban_secs": -1}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"user_id": 5}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let resp = server_post(&app, &path, Some(body)).await;
        assert_error(resp, status, code).await;
    }
    let resp = server_post(
        &app,
        "/api/v1/server/rooms/no-such-room/kick",
        Some(json!({"user_id": bob.user_id})),
    )
    .await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_disconnect_closes_every_connection_of_the_user(backend: Backend) {
    let app = spawn_with_key(backend).await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let room = app.room_id(&alice, "r").await;
    let mut first = WsClient::connect(&app.ws_url(), &alice.token).await;
    first.join(&room).await;
    let ticket = app.ticket(&alice.token).await;
    let mut second = WsClient::try_connect(&app.ticket_url(&ticket), None)
        .await
        .unwrap();
    let mut bystander = WsClient::connect(&app.ws_url(), &bob.token).await;
    bystander.join(&room).await;

    let path = format!("/api/v1/server/users/{}/disconnect", alice.user_id);
    let resp = server_post(&app, &path, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"connections": 2}));
    for ws in [&mut first, &mut second] {
        let (_, code) = ws.until_closed().await;
        assert_eq!(code, Some(4000));
    }
    // Bob is untouched, and sees alice leave the room.
    let ack = bystander.chat(&room, "still here", 1).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Alice is not banned: a new connection works and stays open.
    let mut again = WsClient::connect(&app.ws_url(), &alice.token).await;
    again.join(&room).await;
    let ack = again.chat(&room, "back", 2).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Nobody left to close: zero.
    let other = app.guest("carol").await;
    let resp = server_post(
        &app,
        &format!("/api/v1/server/users/{}/disconnect", other.user_id),
        None,
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"connections": 0})
    );
    let resp = server_post(&app, "/api/v1/server/users/nobody/disconnect", None).await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found").await;
}

async fn a_disconnect_reaches_another_node_within_five_seconds(backend: Backend) {
    let first = spawn_app_with(backend, |c| {
        c.auth.jwt_secret = Some(SHARED_JWT_SECRET.into());
        c.api.key = Some(API_KEY.into());
    })
    .await;
    let second = spawn_peer(backend, &first).await;
    let alice = first.guest("alice").await;
    let room = first.room_id(&alice, "two nodes").await;
    let mut on_second = WsClient::connect(&second.ws_url(), &alice.token).await;
    on_second.join(&room).await;

    let started = Instant::now();
    let path = format!("/api/v1/server/users/{}/disconnect", alice.user_id);
    let resp = server_post(&first, &path, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, code) = on_second.until_closed().await;
    assert_eq!(code, Some(4000));
    assert!(
        started.elapsed() < DISCONNECT_BOUND,
        "node 2 closed the connection after {:?}",
        started.elapsed()
    );
}

async fn stats_count_this_nodes_connections_deliveries_and_refusals(backend: Backend) {
    let app = spawn_with_key(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "r").await;
    let mut ws = WsClient::connect(&app.ws_url(), &alice.token).await;
    ws.join(&room).await;
    let ack = ws.chat(&room, "hi", 1).await;
    assert_eq!(ack["type"], "ack");
    let refused = WsClient::try_connect(&format!("{}?token=garbage", app.ws_url()), None).await;
    assert_eq!(refused.err().map(|r| r.status), Some(401));

    let body = stats(&app).await;
    let nodes = body["nodes"].as_array().expect("a nodes array");
    assert_eq!(nodes.len(), 1, "{body}");
    let node = &nodes[0];
    assert_eq!(node["node_id"], app.ctx.cluster.node_id(), "{body}");
    assert_eq!(node["region"], "default", "{body}");
    assert_eq!(node["connections"], 1, "{body}");
    assert_eq!(node["rooms"], 1, "{body}");
    // joined, member_joined, the chat and its ack at least.
    assert!(node["deliveries_total"].as_u64().unwrap() >= 3, "{body}");
    assert_eq!(node["refusals_total"], 1, "{body}");
}
