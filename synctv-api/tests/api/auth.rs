use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, spawn_first_node, spawn_peer, Backend};
use reqwest::StatusCode;
use serde_json::{json, Value};
use synctv_core::{User, UserId};

both_backends!(
    guest_gets_a_token,
    guest_names_are_counted_in_characters,
    guest_bad_bodies_are_bad_requests,
    missing_forged_and_expired_tokens_are_unauthorized,
    generated_secret_survives_a_restart,
    configured_secret_is_shared_between_nodes,
);

async fn guest_gets_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.post_guest(json!({"name": "  alice  "})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "alice");
    assert!(!body["user_id"].as_str().unwrap().is_empty());
    assert!(!body["token"].as_str().unwrap().is_empty());
    let expires_at = body["expires_at"].as_i64().unwrap();
    assert!(expires_at > synctv_core::clock::now_ms());
    // The token works.
    let token = body["token"].as_str().unwrap();
    let room = app.create_room(token, json!({"name": "x"})).await;
    assert_eq!(room.status(), StatusCode::CREATED);
}

async fn guest_names_are_counted_in_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in ["", "   ", &"a".repeat(65), &"é".repeat(65)] {
        let resp = app.post_guest(json!({ "name": name })).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for name in [
        "a".repeat(64),
        "é".repeat(64),
        format!("  {}  ", "z".repeat(64)),
    ] {
        let guest = app.guest(&name).await;
        assert_eq!(guest.name, name.trim());
    }
}

async fn guest_bad_bodies_are_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let path = "/api/v1/auth/guest";
    let json_ct = Some("application/json");
    for (content_type, body) in [
        (json_ct, ""),
        (json_ct, "{not json"),
        (json_ct, "[1, 2]"),
        (json_ct, "{}"),
        (json_ct, r#"{"name": 5}"#),
        (json_ct, r#"{"name": null}"#),
        (None, r#"{"name": "alice"}"#),
        (Some("text/plain"), r#"{"name": "alice"}"#),
    ] {
        let resp = app.post_raw(path, None, content_type, body).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    // Unknown fields are ignored.
    let resp = app.post_guest(json!({"name": "bob", "extra": true})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

async fn missing_forged_and_expired_tokens_are_unauthorized(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let body = json!({"name": "room"});

    let no_token = app
        .client
        .post(app.url("/api/v1/rooms"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(no_token, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let forger = synctv_api::auth::TokenService::new(b"not-the-server-secret-at-all", 3600);
    let user = User {
        id: UserId::from(alice.user_id.as_str()),
        name: "alice".into(),
        created_at: 0,
    };
    let (forged, _) = forger.issue(&user).unwrap();
    let now = synctv_core::clock::now_ms() as u64 / 1000;
    let (expired, _) = app
        .ctx
        .tokens
        .issue_at(&user, now - app.config.auth.token_ttl_secs - 5)
        .unwrap();
    let mut tampered = alice.token.clone();
    tampered.pop();
    // Signed with the right secret, for a user this database never made.
    let ghost = User {
        id: UserId::from("ghost"),
        name: "ghost".into(),
        created_at: 0,
    };
    let (ghost, _) = app.ctx.tokens.issue(&ghost).unwrap();
    for token in [
        forged.as_str(),
        expired.as_str(),
        "garbage",
        tampered.as_str(),
        ghost.as_str(),
    ] {
        let resp = app.create_room(token, body.clone()).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let basic = app
        .client
        .post(app.url("/api/v1/rooms"))
        .header("authorization", format!("Basic {}", alice.token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn generated_secret_survives_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let app = app.restart().await;
    let resp = app
        .create_room(&alice.token, json!({"name": "after restart"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

async fn configured_secret_is_shared_between_nodes(backend: Backend) {
    let first = spawn_first_node(backend).await;
    let alice = first.guest("alice").await;
    // A second node on the same database, with the same configured secret.
    let second = spawn_peer(backend, &first).await;
    let resp = second
        .create_room(&alice.token, json!({"name": "shared"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // A node with another secret refuses it.
    let other = spawn_app(backend).await;
    let resp = other.create_room(&alice.token, json!({"name": "x"})).await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
