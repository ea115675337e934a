//! Bad input and limits on the WebSocket: each gets its code, and the connection (and
//! everyone else) carries on where the contract says so.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestProcess};
use crate::realtime::room_with_members;
use crate::wait::wait_for;
use crate::ws_client::WsClient;
use serde_json::json;
use std::cell::Cell;
use std::time::{Duration, Instant};

both_backends!(
    malformed_messages_get_bad_request_and_the_connection_survives,
    oversize_messages_are_too_large_at_65537_bytes,
    unknown_rooms_and_rooms_not_joined_are_not_found,
    the_seventeenth_room_is_too_many,
    bad_tokens_are_refused_at_the_upgrade,
    per_user_and_per_node_limits_refuse_the_upgrade,
    floods_are_rate_limited_one_error_each,
    a_full_room_refuses_new_users,
);

async fn malformed_messages_get_bad_request_and_the_connection_survives(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 2).await;
    let bad = [
        "not json".to_owned(),
        "[]".to_owned(),
        "42".to_owned(),
        json!({"id": 1}).to_string(),
        json!({"type": 5, "id": 2}).to_string(),
        json!({"type": "dance", "id": 3}).to_string(),
        json!({"type": "chat", "room": room, "id": 4}).to_string(),
        json!({"type": "chat", "room": room, "text": 7, "id": 5}).to_string(),
        json!({"type": "chat", "room": room, "text": "", "id": 6}).to_string(),
        json!({"type": "chat", "room": 1, "text": "x", "id": 7}).to_string(),
        json!({"type": "playback", "room": room, "action": "jump", "id": 8}).to_string(),
        json!({"type": "playback", "room": room, "action": "seek", "id": 9}).to_string(),
        json!({"type": "playback", "room": room, "action": "seek", "position": -1, "id": 10}).to_string(),
        json!({"type": "playback", "room": room, "action": "seek", "position": "3", "id": 11}).to_string(),
        json!({"type": "playback", "room": room, "action": "rate", "rate": 0.2, "id": 12}).to_string(),
        json!({"type": "playback", "room": room, "action": "play", "if_version": "1", "id": 13}).to_string(),
        json!({"type": "media", "room": room, "url": "javascript:alert(1)", "id": 14}).to_string(),
        json!({"type": "media", "room": room, "url": format!("https://e.com/{}", "a".repeat(2040)), "id": 15}).to_string(),
        json!({"type": "join", "id": 16}).to_string(),
        json!({"type": "join", "room": room, "recover": {"epoch": 1, "seq": 2}, "id": 17}).to_string(),
        json!({"type": "ping", "t": "now", "id": 18}).to_string(),
        json!({"type": "chat", "room": room, "text": "x".repeat(2001), "id": 19}).to_string(),
    ];
    for text in &bad {
        c[0].send_text(text).await;
        let error = c[0].recv().await;
        assert_eq!(error["type"], "error", "{text} -> {error}");
        assert_eq!(error["code"], "bad_request", "{text} -> {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        if let Some(id) = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("id").cloned())
        {
            assert_eq!(error["id"], id, "the id is echoed: {text} -> {error}");
        }
    }
    c[0].send_binary(vec![1, 2, 3]).await;
    assert_eq!(c[0].recv().await["code"], "bad_request");
    // Still connected and working, and the other member saw nothing of it.
    assert_eq!(c[0].chat(&room, "still here", 99).await["type"], "ack");
    let events = c[1].events_until(&room, 3).await;
    assert_eq!(events.len(), 1);
}

async fn oversize_messages_are_too_large_at_65537_bytes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    // A message of exactly 65,536 bytes passes the size check (and then fails as a chat
    // that is too long); one byte more is too_large.
    let frame = |size: usize| {
        let head = r#"{"type":"ping","id":1,"pad":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
    };
    let ok = frame(65_536);
    assert_eq!(ok.len(), 65_536);
    c[0].send_text(&ok).await;
    assert_eq!(c[0].recv().await["type"], "pong");
    c[0].send_text(&frame(65_537)).await;
    let error = c[0].recv().await;
    assert_eq!(error["code"], "too_large");
    c[0].send_text(&frame(200_000)).await;
    assert_eq!(c[0].recv().await["code"], "too_large");
    assert_eq!(c[0].chat(&room, "alive", 2).await["type"], "ack");
}

async fn unknown_rooms_and_rooms_not_joined_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.guest("o").await;
    let room = app.room_id(&owner, "r").await;
    let mut c = WsClient::connect(&app.ws_url(), &owner.token).await;
    c.send(json!({"type": "join", "room": "nosuchroom", "id": 1}))
        .await;
    let error = c.recv_answer(1).await;
    assert_eq!(
        (error["code"].as_str(), error["room"].as_str()),
        (Some("not_found"), Some("nosuchroom"))
    );
    c.send(json!({"type": "chat", "room": room, "text": "hi", "id": 2}))
        .await;
    assert_eq!(c.recv_answer(2).await["code"], "not_found");
    c.send(json!({"type": "leave", "room": room, "id": 3}))
        .await;
    assert_eq!(c.recv_answer(3).await["code"], "not_found");
    c.send(json!({"type": "playback", "room": room, "action": "play", "id": 4}))
        .await;
    assert_eq!(c.recv_answer(4).await["code"], "not_found");
}

async fn the_seventeenth_room_is_too_many(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.guest("o").await;
    let mut c = WsClient::connect(&app.ws_url(), &owner.token).await;
    for i in 0..16 {
        let room = app.room_id(&owner, &format!("r{i}")).await;
        c.join(&room).await;
    }
    let room = app.room_id(&owner, "r16").await;
    c.send(json!({"type": "join", "room": room, "id": "17"}))
        .await;
    assert_eq!(c.recv_answer("17").await["code"], "too_many_rooms");
}

async fn bad_tokens_are_refused_at_the_upgrade(backend: Backend) {
    let app = spawn_app(backend).await;
    let guest = app.guest("g").await;
    for url in [
        app.ws_url(),
        format!("{}?token=forged.token.here", app.ws_url()),
    ] {
        let refused = WsClient::try_connect(&url, None)
            .await
            .err()
            .expect("refused");
        assert_eq!((refused.status, refused.code()), (401, "unauthorized"));
    }
    let tampered = format!("{}x", guest.token);
    let refused = WsClient::connect_with_header(&app.ws_url(), &tampered)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401);
    let mut c = WsClient::connect_with_header(&app.ws_url(), &guest.token)
        .await
        .expect("header token works");
    c.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

async fn per_user_and_per_node_limits_refuse_the_upgrade(backend: Backend) {
    // A process of its own: the refusal counters below are this test's alone.
    let server = TestProcess::spawn(
        backend,
        &[
            ("SYNCTV__LIMITS__PER_USER", "2".into()),
            ("SYNCTV__LIMITS__GLOBAL", "3".into()),
        ],
    )
    .await;
    let ws = server.ws_url();
    let a = server.guest_token("a").await;
    let b = server.guest_token("b").await;
    let _a1 = WsClient::connect(&ws, &a).await;
    let a2 = WsClient::connect(&ws, &a).await;
    let refused = WsClient::try_connect(&format!("{ws}?token={a}"), None)
        .await
        .err()
        .unwrap();
    assert_eq!(
        (refused.status, refused.code()),
        (429, "too_many_connections")
    );
    let _b1 = WsClient::connect(&ws, &b).await;
    let b_url = format!("{ws}?token={b}");
    let refused = WsClient::try_connect(&b_url, None).await.err().unwrap();
    assert_eq!(
        (refused.status, refused.code()),
        (429, "too_many_connections")
    );
    // A closed connection gives its place back once the server has seen it close; until
    // then `b` is refused again (and each refusal is counted).
    let node_full = Cell::new(1);
    a2.close().await;
    let _b2 = wait_for(
        Duration::from_secs(15),
        "b admitted in the place a2 gave back",
        || async {
            match WsClient::try_connect(&b_url, None).await {
                Ok(client) => Some(client),
                Err(refused) => {
                    assert_eq!(refused.code(), "too_many_connections");
                    node_full.set(node_full.get() + 1);
                    None
                }
            }
        },
    )
    .await;
    assert_eq!(
        server
            .metric(r#"synctv_refusals_total{reason="too_many_for_user"}"#)
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric(r#"synctv_refusals_total{reason="node_full"}"#)
            .await,
        f64::from(node_full.get())
    );
}

async fn floods_are_rate_limited_one_error_each(backend: Backend) {
    const RATE: u32 = 5;
    const BURST: usize = 2 * RATE as usize;
    let app = spawn_app_with(backend, |c| c.limits.messages_per_second = RATE).await;
    let guest = app.guest("g").await;
    let mut c = WsClient::connect(&app.ws_url(), &guest.token).await;
    // Rounds of pings sent back to back, until one is refused. Every ping gets exactly one
    // answer carrying its id: a pong, or a `rate_limited` error. How many pass depends on
    // how long the flood took, so this checks the bucket's bounds, which hold whatever the
    // timing: the burst always passes, and at most RATE more per second of the flood (the
    // exact counts at given instants are `TokenBucket`'s unit test).
    let started = Instant::now();
    let (mut pongs, mut refused, mut sent) = (0usize, 0usize, 0usize);
    while refused == 0 {
        assert!(sent < 10_000, "{sent} pings and none refused");
        let round: Vec<usize> = (sent..sent + 3 * BURST).collect();
        for id in &round {
            c.send(json!({"type": "ping", "id": id})).await;
        }
        let mut answered = Vec::new();
        for _ in &round {
            let frame = c.recv().await;
            match (frame["type"].as_str(), frame["code"].as_str()) {
                (Some("pong"), _) => pongs += 1,
                (Some("error"), Some("rate_limited")) => refused += 1,
                _ => panic!("a ping answered with {frame}"),
            }
            answered.push(frame["id"].as_u64().expect("the id echoed") as usize);
        }
        answered.sort_unstable();
        assert_eq!(answered, round, "one answer per ping");
        sent += round.len();
    }
    let flood = started.elapsed().as_secs_f64();
    assert!(
        pongs >= BURST,
        "{pongs} of {sent} passed: less than the burst"
    );
    assert!(
        pongs as f64 <= BURST as f64 + f64::from(RATE) * flood + 1e-6,
        "{pongs} of {sent} passed in {flood:.3} s"
    );
    // The connection stays: once the bucket has refilled, a ping is answered again.
    let next_id = Cell::new(sent);
    let c = tokio::sync::Mutex::new(c);
    wait_for(
        Duration::from_secs(10),
        "a pong after the flood",
        || async {
            let mut c = c.lock().await;
            next_id.set(next_id.get() + 1);
            c.send(json!({"type": "ping", "id": next_id.get()})).await;
            let frame = c.recv().await;
            assert_eq!(frame["id"], next_id.get(), "{frame}");
            if frame["type"] == "pong" {
                return Some(());
            }
            assert_eq!(frame["code"], "rate_limited", "{frame}");
            None
        },
    )
    .await;
}

async fn a_full_room_refuses_new_users(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.per_room = 1).await;
    let (room, _members) = room_with_members(&app, 1).await;
    let other = app.guest("late").await;
    let mut c = WsClient::connect(&app.ws_url(), &other.token).await;
    c.send(json!({"type": "join", "room": room, "id": 1})).await;
    assert_eq!(c.recv_answer(1).await["code"], "room_full");
}
