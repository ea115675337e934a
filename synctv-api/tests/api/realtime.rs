//! The WebSocket contract on one node: messages, answers, events, order and presence.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestApp};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

both_backends!(
    chat_reaches_every_member_with_an_ack,
    joined_reports_the_room_and_its_members,
    presence_is_per_user,
    playback_and_media_change_the_state_in_order,
    if_version_conflicts_return_the_state,
    owner_control_reserves_playback_and_media,
    room_passwords_are_checked,
    concurrent_senders_see_one_order_without_gaps,
    archiving_a_room_removes_its_members,
    ping_echoes_t_and_the_id,
    chats_are_acked_while_rooms_are_created_alongside,
);

pub async fn room_with_members(app: &TestApp, n: usize) -> (String, Vec<WsClient>) {
    let owner = app.guest("owner").await;
    let room = app.room_id(&owner, "movie night").await;
    let mut clients = Vec::new();
    for i in 0..n {
        let token = if i == 0 {
            owner.token.clone()
        } else {
            app.guest(&format!("member{i}")).await.token
        };
        let mut client = WsClient::connect(&app.ws_url(), &token).await;
        client.join(&room).await;
        clients.push(client);
    }
    // Let each earlier member see the later joins, so tests start from a quiet room.
    for (i, client) in clients.iter_mut().enumerate() {
        let last = n as i64;
        if i + 1 < n {
            client.events_until(&room, last).await;
        }
    }
    (room, clients)
}

async fn chat_reaches_every_member_with_an_ack(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut clients) = room_with_members(&app, 3).await;
    clients[1]
        .send(json!({"type": "chat", "room": room, "text": "hello", "id": 42}))
        .await;
    let (ack, before) = clients[1].recv_until("ack").await;
    assert_eq!(ack["id"], 42);
    assert_eq!(ack["room"], room.as_str());
    let seq = ack["seq"].as_i64().unwrap();
    assert!(
        ack.get("version").is_none(),
        "chat acks carry no version: {ack}"
    );
    // The sender receives its own event, before the ack.
    assert_eq!(before.len(), 1);
    for (i, client) in clients.iter_mut().enumerate() {
        let event = if i == 1 {
            before[0].clone()
        } else {
            client.events_until(&room, seq).await.pop().unwrap()
        };
        assert_eq!(event["seq"], seq);
        assert_eq!(event["kind"], "chat");
        assert_eq!(event["data"]["text"], "hello");
        assert_eq!(event["by"]["name"], "member1");
        assert!(event["server_time"].as_i64().unwrap() > 0);
    }
    // The ack means it is in the durable history.
    let history: Value = app
        .room_events(&room, &format!("?after={}", seq - 1))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["events"][0]["data"]["text"], "hello", "{history}");
}

async fn joined_reports_the_room_and_its_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let room = app.room_id(&alice, "r").await;
    let mut a = WsClient::connect(&app.ws_url(), &alice.token).await;
    let joined = a.join(&room).await;
    assert_eq!(
        joined["seq"], 1,
        "the joiner's own member_joined is included"
    );
    assert_eq!(joined["recovered"], false);
    assert_eq!(joined["events"], json!([]));
    assert_eq!(joined["state"]["version"], 0);
    assert_eq!(joined["state"]["media"], Value::Null);
    assert_eq!(
        joined["members"],
        json!([{"user_id": alice.user_id, "name": "alice", "role": "owner"}])
    );
    assert!(!joined["epoch"].as_str().unwrap().is_empty());
    let mut b = WsClient::connect(&app.ws_url(), &bob.token).await;
    let joined = b.join(&room).await;
    assert_eq!(joined["seq"], 2);
    assert_eq!(joined["members"].as_array().unwrap().len(), 2);
    let event = a.recv().await;
    assert_eq!(
        (event["kind"].as_str(), event["seq"].as_i64()),
        (Some("member_joined"), Some(2))
    );
    assert_eq!(
        event["data"],
        json!({"user_id": bob.user_id, "name": "bob"})
    );
    // The Room of the HTTP API counts members.
    let room_json: Value = app.get_room(&room).await.json().await.unwrap();
    assert_eq!(room_json["members"], 2);
    b.send(json!({"type": "leave", "room": room, "id": "l"}))
        .await;
    assert_eq!(
        b.recv_answer("l").await,
        json!({"type": "left", "id": "l", "room": room})
    );
    let event = a.recv().await;
    assert_eq!(event["kind"], "member_left");
    assert_eq!(event["data"]["user_id"], bob.user_id.as_str());
}

async fn presence_is_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let room = app.room_id(&alice, "r").await;
    let mut a = WsClient::connect(&app.ws_url(), &alice.token).await;
    a.join(&room).await;
    let mut b1 = WsClient::connect(&app.ws_url(), &bob.token).await;
    b1.join(&room).await;
    a.events_until(&room, 2).await;
    // Bob's second connection makes no member_joined, and its closing no member_left.
    let mut b2 = WsClient::connect(&app.ws_url(), &bob.token).await;
    assert_eq!(b2.join(&room).await["seq"], 2);
    b2.close().await;
    a.expect_silence(Duration::from_millis(300)).await;
    // Bob's last connection dropping (no leave sent) makes member_left.
    b1.close().await;
    let event = a.recv().await;
    assert_eq!(
        (event["kind"].as_str(), event["seq"].as_i64()),
        (Some("member_left"), Some(3))
    );
    let room_json: Value = app.get_room(&room).await.json().await.unwrap();
    assert_eq!(room_json["members"], 1);
}

async fn playback_and_media_change_the_state_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 2).await;
    let steps = [
        (
            json!({"type": "media", "url": "https://example.com/v.mp4", "title": "V"}),
            "media",
            1,
        ),
        (json!({"type": "playback", "action": "play"}), "playback", 2),
        (
            json!({"type": "playback", "action": "seek", "position": 42.5}),
            "playback",
            3,
        ),
        (
            json!({"type": "playback", "action": "rate", "rate": 1.5}),
            "playback",
            4,
        ),
        (
            json!({"type": "playback", "action": "pause", "position": 50}),
            "playback",
            5,
        ),
    ];
    for (i, (mut message, kind, version)) in steps.into_iter().enumerate() {
        message["room"] = json!(room);
        message["id"] = json!(i);
        c[0].send(message).await;
        let ack = c[0].recv_answer(i as i64).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["version"], version);
        let event = c[1]
            .events_until(&room, ack["seq"].as_i64().unwrap())
            .await
            .pop()
            .unwrap();
        assert_eq!(event["kind"], kind);
        assert_eq!(event["data"]["state"]["version"], version);
    }
    let room_json: Value = app.get_room(&room).await.json().await.unwrap();
    let state = &room_json["state"];
    assert_eq!(
        state["media"],
        json!({"url": "https://example.com/v.mp4", "title": "V"})
    );
    assert_eq!(
        (
            state["playing"].as_bool(),
            state["position"].as_f64(),
            state["rate"].as_f64()
        ),
        (Some(false), Some(50.0), Some(1.5))
    );
    assert_eq!(state["version"], 5);
    // New media pauses at 0 and keeps the rate; a missing title is null.
    c[1].send(
        json!({"type": "media", "room": room, "url": "http://example.com/w.webm", "id": "m"}),
    )
    .await;
    let ack = c[1].recv_answer("m").await;
    let event = c[0]
        .events_until(&room, ack["seq"].as_i64().unwrap())
        .await
        .pop()
        .unwrap();
    assert_eq!(event["data"]["state"]["media"]["title"], Value::Null);
    assert_eq!(
        (
            event["data"]["state"]["position"].as_f64(),
            event["data"]["state"]["rate"].as_f64()
        ),
        (Some(0.0), Some(1.5))
    );
}

async fn if_version_conflicts_return_the_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    c[0].send(
        json!({"type": "playback", "room": room, "action": "play", "if_version": 0, "id": 1}),
    )
    .await;
    assert_eq!(c[0].recv_answer(1).await["version"], 1);
    c[0].send(
        json!({"type": "playback", "room": room, "action": "pause", "if_version": 0, "id": 2}),
    )
    .await;
    let error = c[0].recv_answer(2).await;
    assert_eq!(error["code"], "conflict");
    assert_eq!(error["state"]["version"], 1);
    assert_eq!(error["state"]["playing"], true);
}

async fn owner_control_reserves_playback_and_media(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.guest("owner").await;
    let guest = app.guest("guest").await;
    let resp = app
        .create_room(&owner.token, json!({"name": "r", "control": "owner"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let room = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut o = WsClient::connect(&app.ws_url(), &owner.token).await;
    o.join(&room).await;
    let mut g = WsClient::connect(&app.ws_url(), &guest.token).await;
    g.join(&room).await;
    g.send(json!({"type": "playback", "room": room, "action": "play", "id": 1}))
        .await;
    assert_eq!(g.recv_answer(1).await["code"], "forbidden");
    g.send(json!({"type": "media", "room": room, "url": "https://e.com/x.mp4", "id": 2}))
        .await;
    assert_eq!(g.recv_answer(2).await["code"], "forbidden");
    assert_eq!(g.chat(&room, "anyone may chat", 3).await["type"], "ack");
    o.send(json!({"type": "playback", "room": room, "action": "play", "id": 4}))
        .await;
    assert_eq!(o.recv_answer(4).await["type"], "ack");
}

async fn room_passwords_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.guest("owner").await;
    let resp = app
        .create_room(&owner.token, json!({"name": "r", "password": "s3cret"}))
        .await;
    let room = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = WsClient::connect(&app.ws_url(), &owner.token).await;
    c.send(json!({"type": "join", "room": room, "id": 1})).await;
    assert_eq!(c.recv_answer(1).await["code"], "forbidden");
    c.send(json!({"type": "join", "room": room, "password": "wrong", "id": 2}))
        .await;
    assert_eq!(c.recv_answer(2).await["code"], "forbidden");
    c.send(json!({"type": "join", "room": room, "password": "s3cret", "id": 3}))
        .await;
    assert_eq!(c.recv_answer(3).await["type"], "joined");
}

async fn concurrent_senders_see_one_order_without_gaps(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.messages_per_second = 1000).await;
    let (room, clients) = room_with_members(&app, 4).await;
    let start_seq = 4;
    let per_sender = 25;
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_sender {
                client
                    .send(
                        json!({"type": "chat", "room": room, "text": format!("{i}:{n}"), "id": n}),
                    )
                    .await;
            }
            let last = start_seq + 4 * per_sender;
            let events = client.events_until(&room, last).await;
            events
                .iter()
                .map(|e| (e["seq"].as_i64().unwrap(), e["data"]["text"].clone()))
                .collect::<Vec<_>>()
        }));
    }
    let mut orders = Vec::new();
    for task in tasks {
        orders.push(task.await.unwrap());
    }
    let seqs: Vec<i64> = orders[0].iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        ((start_seq + 1)..=(start_seq + 4 * per_sender)).collect::<Vec<_>>()
    );
    for order in &orders[1..] {
        assert_eq!(order, &orders[0], "every member sees the same order");
    }
    let history: Value = app
        .room_events(
            &room,
            &format!("?after={start_seq}&limit={}", 4 * per_sender),
        )
        .await
        .json()
        .await
        .unwrap();
    let stored: Vec<(i64, Value)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["seq"].as_i64().unwrap(), e["data"]["text"].clone()))
        .collect();
    assert_eq!(
        stored, orders[0],
        "the history has the same order, without gaps"
    );
}

async fn archiving_a_room_removes_its_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.guest("owner").await;
    let room = app.room_id(&owner, "r").await;
    let mut c = WsClient::connect(&app.ws_url(), &owner.token).await;
    c.join(&room).await;
    assert_eq!(
        app.delete_room(&room, Some(&owner.token)).await.status(),
        StatusCode::NO_CONTENT
    );
    let event = c.recv().await;
    assert_eq!(event["kind"], "room_archived");
    c.send(json!({"type": "chat", "room": room, "text": "still here?", "id": 1}))
        .await;
    assert_eq!(c.recv_answer(1).await["code"], "not_found");
    c.send(json!({"type": "join", "room": room, "id": 2})).await;
    assert_eq!(c.recv_answer(2).await["code"], "not_found");
    let history: Value = app.room_events(&room, "").await.json().await.unwrap();
    assert_eq!(
        history["events"].as_array().unwrap().last().unwrap()["kind"],
        "room_archived"
    );
}

async fn ping_echoes_t_and_the_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let guest = app.guest("p").await;
    let mut c = WsClient::connect(&app.ws_url(), &guest.token).await;
    c.send(json!({"type": "ping", "t": 1234.5, "id": "x"}))
        .await;
    let pong = c.recv().await;
    assert_eq!(
        (
            pong["type"].as_str(),
            pong["id"].as_str(),
            pong["t"].as_f64()
        ),
        (Some("pong"), Some("x"), Some(1234.5))
    );
    assert!(pong["server_time"].as_i64().unwrap() > 0);
    c.send(json!({"type": "ping"})).await;
    let pong = c.recv().await;
    assert!(pong.get("id").is_none() && pong["t"].is_null());
}

async fn chats_are_acked_while_rooms_are_created_alongside(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.messages_per_second = 10_000).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    let owner = app.guest("creator").await;
    // Other writers commit between the group commit's read and its write.
    let creating = async {
        for i in 0..60 {
            app.room_id(&owner, &format!("side {i}")).await;
        }
    };
    let chatting = async {
        for i in 0..300 {
            c[0].send(json!({"type": "chat", "room": room, "text": format!("c{i}"), "id": i}))
                .await;
        }
        let mut acked = 0;
        while acked < 300 {
            let frame = c[0].recv().await;
            assert_ne!(frame["type"], "error", "a chat was refused: {frame}");
            if frame["type"] == "ack" {
                acked += 1;
            }
        }
    };
    tokio::join!(creating, chatting);
}
