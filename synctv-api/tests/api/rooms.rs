use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    create_room_answers_a_room,
    create_room_with_password_and_owner_control,
    create_room_bad_input,
    get_room_and_unknown_room,
    list_rooms_pages_newest_first,
    list_rooms_bad_query,
    archive_room_by_owner_only,
    archived_room_leaves_listing_and_get,
);

async fn create_room_answers_a_room(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let resp = app
        .create_room(&alice.token, json!({"name": "  movie night "}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let room: Value = resp.json().await.unwrap();
    assert_eq!(room["name"], "movie night");
    assert_eq!(room["owner_id"], alice.user_id.as_str());
    assert_eq!(room["control"], "everyone");
    assert_eq!(room["has_password"], false);
    assert_eq!(room["members"], 0);
    assert!(room["created_at"].as_i64().unwrap() > 0);
    assert!(!room["id"].as_str().unwrap().is_empty());
    let state = &room["state"];
    assert_eq!(state["media"], Value::Null);
    assert_eq!(state["playing"], false);
    assert_eq!(state["position"], 0.0);
    assert_eq!(state["rate"], 1.0);
    assert_eq!(state["version"], 0);
    assert!(state["updated_at"].as_i64().unwrap() > 0);
}

async fn create_room_with_password_and_owner_control(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let body = json!({"name": "secret", "password": "hunter2", "control": "owner"});
    let resp = app.create_room(&alice.token, body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let room: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(room["has_password"], true);
    assert_eq!(room["control"], "owner");

    // Stored hashed, as the WebSocket join checks it.
    let id = synctv_core::RoomId::from(room["id"].as_str().unwrap());
    let record = app.ctx.db.room(&id).await.unwrap().unwrap();
    let stored = record.password_hash.as_deref().unwrap();
    assert!(stored.starts_with("$argon2"));
    let verify = synctv_core::password::verify_password;
    assert!(verify(stored, "hunter2"));
    assert!(!verify(stored, "hunter3"));

    // Explicit nulls mean the defaults.
    let body = json!({"name": "open", "password": null, "control": null});
    let room: Value = app
        .create_room(&alice.token, body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(room["has_password"], false);
    assert_eq!(room["control"], "everyone");
}

async fn create_room_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "a".repeat(101)}),
        json!({"name": "é".repeat(101)}),
        json!({"name": 7}),
        json!({}),
        json!({"name": "x", "control": "admin"}),
        json!({"name": "x", "control": 1}),
        json!({"name": "x", "password": ""}),
        json!({"name": "x", "password": 1234}),
        json!([]),
    ] {
        let resp = app.create_room(&alice.token, body.clone()).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let path = "/api/v1/rooms";
    let token = Some(alice.token.as_str());
    for (ct, body) in [
        (Some("application/json"), "{\"name\":"),
        (Some("application/json"), ""),
        (None, "{\"name\":\"x\"}"),
    ] {
        let resp = app.post_raw(path, token, ct, body).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let huge = json!({"name": "x", "padding": "p".repeat(70 * 1024)}).to_string();
    let resp = app
        .post_raw(path, token, Some("application/json"), huge)
        .await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;

    // Exactly at the limits passes.
    for name in ["a".repeat(100), "é".repeat(100)] {
        let resp = app.create_room(&alice.token, json!({ "name": name })).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
}

async fn get_room_and_unknown_room(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let created = app.room(&alice, "r").await;
    let resp = app.get_room(created["id"].as_str().unwrap()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let room: Value = resp.json().await.unwrap();
    assert_eq!(room, created);
    for id in ["nope", "0193a7c2f0e07000800000000000000", "%27%20OR%201=1"] {
        assert_error(app.get_room(id).await, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn list_rooms_pages_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let empty: Value = app.list_rooms("").await.json().await.unwrap();
    assert_eq!(empty, json!({"rooms": [], "next_cursor": null}));

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.room(&alice, &format!("room {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let resp = app.list_rooms(&query).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Value = resp.json().await.unwrap();
        pages += 1;
        let rooms = page["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 2);
        seen.extend(rooms.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    let all: Value = app.list_rooms("").await.json().await.unwrap();
    assert_eq!(all["rooms"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["rooms"][0]["name"], "room 4");
}

async fn list_rooms_bad_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    app.room(&alice, "a").await;
    app.room(&alice, "b").await;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("123:abc");
    for query in [
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
        "?limit=-1".to_owned(),
        "?limit=abc".to_owned(),
        "?limit=99999999999".to_owned(),
        "?cursor=garbage!".to_owned(),
        "?cursor=".to_owned(),
        format!("?cursor={forged}"),
    ] {
        let resp = app.list_rooms(&query).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for query in ["?limit=1", "?limit=100"] {
        assert_eq!(app.list_rooms(query).await.status(), StatusCode::OK);
    }
}

async fn archive_room_by_owner_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let bob = app.guest("bob").await;
    let id = app.room(&alice, "r").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_error(
        app.delete_room(&id, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.delete_room(&id, Some("forged")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.delete_room(&id, Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.delete_room("unknown", Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let resp = app.delete_room(&id, Some(&alice.token)).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    // Already archived.
    assert_error(
        app.delete_room(&id, Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn archived_room_leaves_listing_and_get(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let kept = app.room(&alice, "kept").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = app.room(&alice, "gone").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete_room(&gone, Some(&alice.token)).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_error(
        app.get_room(&gone).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list: Value = app.list_rooms("").await.json().await.unwrap();
    let ids: Vec<&str> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept.as_str()]);

    // Its history stays, ending with the archive.
    let resp = app.room_events(&gone, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.unwrap();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "room_archived");
    assert_eq!(events[0]["type"], "event");
    assert_eq!(events[0]["room"], gone.as_str());
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["by"]["user_id"], alice.user_id.as_str());
    assert_eq!(page["next_after"], Value::Null);
}
