use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend, Guest, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use synctv_core::storage::{ChangeOutcome, RoomChange, RoomChangeKind};
use synctv_core::{Actor, RoomId, UserId};

both_backends!(
    events_page_oldest_first,
    events_bad_query,
    events_of_unknown_room_are_not_found,
);

/// Appends chat lines through the cluster layer, as the WebSocket would.
async fn chat(app: &TestApp, room: &str, by: &Guest, lines: usize) {
    for i in 0..lines {
        let outcome = app
            .ctx
            .cluster
            .submit(RoomChange {
                room: RoomId::from(room),
                by: Some(Actor {
                    user_id: UserId::from(by.user_id.as_str()),
                    name: by.name.clone(),
                }),
                kind: RoomChangeKind::Chat(format!("line {i}")),
            })
            .await
            .unwrap();
        assert!(matches!(outcome, ChangeOutcome::Committed(_)));
    }
}

async fn events_page_oldest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let id = app.room(&alice, "r").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let empty: Value = app.room_events(&id, "").await.json().await.unwrap();
    assert_eq!(empty, json!({"events": [], "next_after": null}));

    chat(&app, &id, &alice, 5).await;
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let resp = app
            .room_events(&id, &format!("?after={after}&limit=2"))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Value = resp.json().await.unwrap();
        for event in page["events"].as_array().unwrap() {
            assert_eq!(event["kind"], "chat");
            assert_eq!(event["data"]["text"], format!("line {}", seqs.len()));
            assert!(event["epoch"].as_str().is_some() && event["server_time"].as_i64().is_some());
            seqs.push(event["seq"].as_i64().unwrap());
        }
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);

    let all: Value = app.room_events(&id, "").await.json().await.unwrap();
    assert_eq!(all["events"].as_array().unwrap().len(), 5);
    let tail: Value = app.room_events(&id, "?after=3").await.json().await.unwrap();
    assert_eq!(tail["events"][0]["seq"], 4);
    let past_end: Value = app
        .room_events(&id, "?after=99")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(past_end, json!({"events": [], "next_after": null}));
}

async fn events_bad_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let id = app.room(&alice, "r").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        "?after=-1",
        "?after=abc",
        "?limit=0",
        "?limit=1001",
        "?limit=-5",
        "?limit=x",
    ] {
        let resp = app.room_events(&id, query).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for query in ["?limit=1", "?limit=1000", "?after=0"] {
        assert_eq!(app.room_events(&id, query).await.status(), StatusCode::OK);
    }
}

async fn events_of_unknown_room_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(
        app.room_events("unknown", "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
