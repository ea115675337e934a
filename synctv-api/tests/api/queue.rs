//! The queue (1.1) on one node: add, remove, move and `next`, their events, `joined`,
//! `GET /queue`, Room's `queue_length`, and every error of the section.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::party::{assert_code, Party};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    queue_changes_reach_every_member_as_events,
    next_plays_the_first_item_once_for_many_clients,
    queue_errors_follow_the_contract,
    a_501st_item_is_queue_full,
);

async fn queue_changes_reach_every_member_as_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let ack = p
        .ask(
            1,
            1,
            json!({"type": "queue_add", "url": "https://x/a.mp4", "title": "A", "duration": 90.5}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let added = p.next_event(0).await;
    assert_eq!(added["kind"], "queue");
    assert_eq!(added["seq"], ack["seq"]);
    assert_eq!(added["data"]["action"], "add");
    assert_eq!(added["data"]["index"], 0);
    let item = &added["data"]["item"];
    let a = item["item_id"].as_str().unwrap().to_owned();
    assert_eq!(item["url"], "https://x/a.mp4");
    assert_eq!(item["title"], "A");
    assert_eq!(item["duration"], 90.5);
    assert_eq!(item["added_by"]["user_id"], p.user(1));
    assert_eq!(item["added_by"]["name"], "bob");
    p.ask(0, 2, json!({"type": "queue_add", "url": "https://x/b.mp4"}))
        .await;
    let ack = p
        .ask(
            0,
            3,
            json!({"type": "queue_add", "url": "https://x/c.mp4", "index": 0}),
        )
        .await;
    assert_eq!(ack["type"], "ack");
    let queue: Value = app
        .get(&format!("/api/v1/rooms/{}/queue", p.room))
        .await
        .json()
        .await
        .unwrap();
    let urls = |q: &Value| -> Vec<String> {
        q.as_array()
            .unwrap()
            .iter()
            .map(|i| i["url"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        urls(&queue["queue"]),
        ["https://x/c.mp4", "https://x/a.mp4", "https://x/b.mp4"]
    );
    assert_eq!(queue["queue"][2]["title"], Value::Null);
    assert_eq!(queue["queue"][2]["duration"], Value::Null);
    let ack = p
        .ask(
            1,
            4,
            json!({"type": "queue_move", "item_id": a, "index": 2}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let moved = loop {
        let e = p.next_event(0).await;
        if e["data"]["action"] == "move" {
            break e;
        }
    };
    assert_eq!(
        moved["data"],
        json!({"action": "move", "item_id": a, "index": 2})
    );
    let ack = p
        .ask(1, 5, json!({"type": "queue_remove", "item_id": a}))
        .await;
    assert_eq!(ack["type"], "ack");
    let removed = p.next_event(0).await;
    assert_eq!(removed["data"], json!({"action": "remove", "item_id": a}));
    // A joiner sees the queue; the room says how long it is.
    let carol = app.guest("carol").await;
    let mut c = WsClient::connect(&app.ws_url(), &carol.token).await;
    let joined = c.join(&p.room).await;
    assert_eq!(
        urls(&joined["queue"]),
        ["https://x/c.mp4", "https://x/b.mp4"]
    );
    let room: Value = app.get_room(&p.room).await.json().await.unwrap();
    assert_eq!(room["queue_length"], 2);
}

async fn next_plays_the_first_item_once_for_many_clients(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob", "carol"]).await;
    p.ask(
        0,
        1,
        json!({"type": "queue_add", "url": "https://x/a.mp4", "duration": 10}),
    )
    .await;
    p.ask(0, 2, json!({"type": "queue_add", "url": "https://x/b.mp4"}))
        .await;
    let play = p
        .ask(0, 3, json!({"type": "playback", "action": "play"}))
        .await;
    let version = play["version"].as_i64().unwrap();
    // Every client reaches the end at once and sends `next` with the version it holds.
    for i in 0..3 {
        let room = p.room.clone();
        p.clients[i]
            .send(json!({"type": "next", "room": room, "if_version": version, "id": 10 + i}))
            .await;
    }
    let mut acks = 0;
    let mut conflicts = 0;
    for i in 0..3 {
        let answer = p.answer(i, 10 + i as i64).await;
        match answer["type"].as_str() {
            Some("ack") => {
                acks += 1;
                assert_eq!(answer["version"], version + 1);
            }
            _ => {
                assert_code(&answer, "conflict");
                assert!(answer["state"]["version"].as_i64().is_some());
                conflicts += 1;
            }
        }
    }
    assert_eq!((acks, conflicts), (1, 2));
    let media = loop {
        let e = p.next_event(2).await;
        if e["kind"] == "media" {
            break e;
        }
    };
    assert_eq!(media["data"]["from_queue"]["url"], "https://x/a.mp4");
    let state = &media["data"]["state"];
    assert_eq!(state["media"]["url"], "https://x/a.mp4");
    assert_eq!(state["media"]["duration"], 10.0);
    assert_eq!(state["playing"], true, "playing stays as it was");
    assert_eq!(state["position"], 0.0);
    let queue: Value = app
        .get(&format!("/api/v1/rooms/{}/queue", p.room))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queue["queue"].as_array().unwrap().len(), 1);
    // `next` without if_version, then on an empty queue.
    let ack = p.ask(1, 20, json!({"type": "next"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let empty = p.ask(1, 21, json!({"type": "next"})).await;
    assert_code(&empty, "not_found");
}

async fn queue_errors_follow_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice"]).await;
    let bad = [
        json!({"type": "queue_add", "url": "ftp://x/a"}),
        json!({"type": "queue_add"}),
        json!({"type": "queue_add", "url": "https://x/a", "duration": 0}),
        json!({"type": "queue_add", "url": "https://x/a", "duration": -3}),
        json!({"type": "queue_add", "url": "https://x/a", "index": -1}),
        json!({"type": "queue_add", "url": "https://x/a", "index": 1}),
        json!({"type": "queue_move", "item_id": "q1"}),
        json!({"type": "queue_remove"}),
        json!({"type": "next", "if_version": "x"}),
        json!({"type": "media", "url": "https://x/a", "duration": 0}),
    ];
    for (i, message) in bad.into_iter().enumerate() {
        let answer = p.ask(0, i as i64, message.clone()).await;
        assert_code(&answer, "bad_request");
        assert!(answer["message"].as_str().is_some(), "{message}");
    }
    let ack = p
        .ask(0, 50, json!({"type": "queue_add", "url": "https://x/a"}))
        .await;
    let item = ack["seq"].as_i64().map(|_| "q1").unwrap();
    let past = p
        .ask(
            0,
            51,
            json!({"type": "queue_move", "item_id": item, "index": 1}),
        )
        .await;
    assert_code(&past, "bad_request");
    let unknown = p
        .ask(
            0,
            52,
            json!({"type": "queue_move", "item_id": "nope", "index": 0}),
        )
        .await;
    assert_code(&unknown, "not_found");
    let unknown = p
        .ask(0, 53, json!({"type": "queue_remove", "item_id": "nope"}))
        .await;
    assert_code(&unknown, "not_found");
    let media = p
        .ask(
            0,
            54,
            json!({"type": "media", "url": "https://x/m.mp4", "duration": 12.5}),
        )
        .await;
    assert_eq!(media["type"], "ack");
    let missing = app.get("/api/v1/rooms/nosuchroom/queue").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn a_501st_item_is_queue_full(backend: Backend) {
    // The per-connection rate is not what this test is about.
    let app = spawn_app_with(backend, |c| c.limits.messages_per_second = 100_000).await;
    let mut p = Party::gather(&app, "everyone", &["alice"]).await;
    let room = p.room.clone();
    // In rounds of 25, each read before the next is sent: a client that writes without
    // reading would fill both sockets' small buffers and stall itself.
    for round in 0..20 {
        let ids = round * 25..(round + 1) * 25;
        for n in ids.clone() {
            p.clients[0]
                .send(json!({"type": "queue_add", "room": room, "url": format!("https://x/{n}"), "id": n}))
                .await;
        }
        for n in ids {
            let answer = p.clients[0].recv_answer(n).await;
            assert_eq!(answer["type"], "ack", "{answer}");
        }
    }
    let full = p
        .ask(
            0,
            1000,
            json!({"type": "queue_add", "url": "https://x/full"}),
        )
        .await;
    assert_code(&full, "queue_full");
    let room: Value = app.get_room(&p.room).await.json().await.unwrap();
    assert_eq!(room["queue_length"], 500);
}
