//! Roles and moderation (1.1) on one node: roles given by the owner, kick and ban,
//! mutes, `control: hosts`, and every error of the section.

use crate::both_backends;
use crate::helpers::{spawn_app, Backend};
use crate::party::{assert_code, Party};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    joined_carries_roles_and_the_owner_gives_admin,
    only_the_owner_gives_roles_and_never_to_itself,
    a_kick_removes_every_connection_and_a_ban_refuses_the_join,
    admins_kick_members_only,
    a_muted_member_cannot_chat_until_unmuted,
    hosts_control_reserves_playback_to_owner_and_admins,
    moderation_survives_a_restart,
    members_endpoint_lists_roles_and_mutes,
);

async fn joined_carries_roles_and_the_owner_gives_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    let ack = p
        .ask(
            0,
            1,
            json!({"type": "role", "user_id": bob, "role": "admin"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_i64().unwrap();
    for i in 0..2 {
        let event = p.next_event(i).await;
        assert_eq!(event["kind"], "role");
        assert_eq!(event["seq"], seq);
        assert_eq!(event["data"], json!({"user_id": bob, "role": "admin"}));
        assert_eq!(event["by"]["user_id"], p.user(0));
    }
    // A new connection of bob sees its role, and everyone's.
    let mut again = WsClient::connect(&app.ws_url(), &p.people[1].token).await;
    let joined = again.join(&p.room).await;
    assert_eq!(joined["role"], "admin");
    let members = joined["members"].as_array().unwrap();
    let role_of = |id: &str| {
        members
            .iter()
            .find(|m| m["user_id"] == id)
            .map(|m| m["role"].clone())
    };
    assert_eq!(role_of(p.user(0)), Some(json!("owner")));
    assert_eq!(role_of(&bob), Some(json!("admin")));
    assert_eq!(joined["queue"], json!([]));
}

async fn only_the_owner_gives_roles_and_never_to_itself(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob", "carol"]).await;
    let (alice, carol) = (p.user(0).to_owned(), p.user(2).to_owned());
    let refused = p
        .ask(
            1,
            1,
            json!({"type": "role", "user_id": carol, "role": "admin"}),
        )
        .await;
    assert_code(&refused, "forbidden");
    let refused = p
        .ask(
            0,
            2,
            json!({"type": "role", "user_id": alice, "role": "member"}),
        )
        .await;
    assert_code(&refused, "forbidden");
    let unknown = p
        .ask(
            0,
            3,
            json!({"type": "role", "user_id": "nobody", "role": "admin"}),
        )
        .await;
    assert_code(&unknown, "not_found");
    for bad in [json!("owner"), json!("king"), json!(3)] {
        let answer = p
            .ask(0, 4, json!({"type": "role", "user_id": carol, "role": bad}))
            .await;
        assert_code(&answer, "bad_request");
    }
    let missing = p.ask(0, 5, json!({"type": "role", "role": "admin"})).await;
    assert_code(&missing, "bad_request");
    // A user who is not present can still be given a role.
    let absent = app.guest("dave").await;
    let ack = p
        .ask(
            0,
            6,
            json!({"type": "role", "user_id": absent.user_id, "role": "admin"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn a_kick_removes_every_connection_and_a_ban_refuses_the_join(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    // Bob's second connection in the same room.
    let mut second = WsClient::connect(&app.ws_url(), &p.people[1].token).await;
    second.join(&p.room).await;
    for bad in [json!(-1), json!(31_536_001), json!("x"), json!(1.5)] {
        let answer = p
            .ask(
                0,
                1,
                json!({"type": "kick", "user_id": bob, "ban_secs": bad}),
            )
            .await;
        assert_code(&answer, "bad_request");
    }
    let ack = p
        .ask(
            0,
            2,
            json!({"type": "kick", "user_id": bob, "ban_secs": 3600}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let kick = p.next_event(0).await;
    assert_eq!(kick["kind"], "member_kicked");
    let until = kick["data"]["banned_until"].as_i64().unwrap();
    assert!(until > kick["server_time"].as_i64().unwrap() + 3_599_000);
    // Both of bob's connections receive the kick, then nothing more of the room.
    for client in [&mut p.clients[1], &mut second] {
        let (event, _) = client.recv_until("event").await;
        assert_eq!(event["kind"], "member_kicked", "{event}");
        assert_eq!(event["data"]["user_id"], bob);
    }
    let chat = p.ask(0, 3, json!({"type": "chat", "text": "after"})).await;
    assert_eq!(chat["type"], "ack");
    let answer = p
        .ask(1, 4, json!({"type": "chat", "text": "still here?"}))
        .await;
    assert_code(&answer, "not_found");
    second
        .send(json!({"type": "chat", "room": p.room, "text": "x", "id": 5}))
        .await;
    let answer = second.recv_answer(5).await;
    assert_code(&answer, "not_found");
    // A join before the ban ends answers `banned` with `until`.
    second
        .send(json!({"type": "join", "room": p.room, "id": 6}))
        .await;
    let banned = second.recv_answer(6).await;
    assert_code(&banned, "banned");
    assert_eq!(banned["until"], until);
    // Kicking without a ban lets the user back in.
    let carol = app.guest("carol").await;
    let mut c = WsClient::connect(&app.ws_url(), &carol.token).await;
    c.join(&p.room).await;
    let ack = p
        .ask(0, 7, json!({"type": "kick", "user_id": carol.user_id}))
        .await;
    assert_eq!(ack["type"], "ack");
    let (event, _) = c.recv_until("event").await;
    let event = if event["kind"] == "member_kicked" {
        event
    } else {
        c.recv_until("event").await.0
    };
    assert_eq!(event["data"]["banned_until"], Value::Null);
    c.join(&p.room).await;
}

async fn admins_kick_members_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob", "carol", "dave"]).await;
    let (alice, bob, carol, dave) = (
        p.user(0).to_owned(),
        p.user(1).to_owned(),
        p.user(2).to_owned(),
        p.user(3).to_owned(),
    );
    for (id, who) in [(1, &bob), (2, &carol)] {
        let ack = p
            .ask(
                0,
                id,
                json!({"type": "role", "user_id": who, "role": "admin"}),
            )
            .await;
        assert_eq!(ack["type"], "ack");
    }
    for target in [&alice, &carol, &bob] {
        let refused = p
            .ask(1, 3, json!({"type": "kick", "user_id": target}))
            .await;
        assert_code(&refused, "forbidden");
    }
    let refused = p
        .ask(3, 4, json!({"type": "mute", "user_id": carol, "secs": 5}))
        .await;
    assert_code(&refused, "forbidden");
    let ack = p.ask(1, 5, json!({"type": "kick", "user_id": dave})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn a_muted_member_cannot_chat_until_unmuted(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    for bad in [json!(-1), json!(31_536_001)] {
        let answer = p
            .ask(0, 1, json!({"type": "mute", "user_id": bob, "secs": bad}))
            .await;
        assert_code(&answer, "bad_request");
    }
    let missing = p.ask(0, 1, json!({"type": "mute", "user_id": bob})).await;
    assert_code(&missing, "bad_request");
    let ack = p
        .ask(0, 2, json!({"type": "mute", "user_id": bob, "secs": 600}))
        .await;
    assert_eq!(ack["type"], "ack");
    let muted = p.next_event(1).await;
    assert_eq!(muted["kind"], "member_muted");
    assert!(muted["data"]["muted_until"].as_i64().is_some());
    let refused = p.ask(1, 3, json!({"type": "chat", "text": "hi"})).await;
    assert_code(&refused, "forbidden");
    let ack = p
        .ask(0, 4, json!({"type": "mute", "user_id": bob, "secs": 0}))
        .await;
    assert_eq!(ack["type"], "ack");
    let lifted = p.next_event(1).await;
    assert_eq!(lifted["data"]["muted_until"], Value::Null);
    let ok = p.ask(1, 5, json!({"type": "chat", "text": "hi"})).await;
    assert_eq!(ok["type"], "ack", "{ok}");
}

async fn hosts_control_reserves_playback_to_owner_and_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "hosts", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    let room: Value = app.get_room(&p.room).await.json().await.unwrap();
    assert_eq!(room["control"], "hosts");
    let refused = p
        .ask(1, 1, json!({"type": "playback", "action": "play"}))
        .await;
    assert_code(&refused, "forbidden");
    let refused = p
        .ask(1, 2, json!({"type": "queue_add", "url": "https://x/a.mp4"}))
        .await;
    assert_code(&refused, "forbidden");
    let chat = p
        .ask(1, 3, json!({"type": "chat", "text": "anyone may chat"}))
        .await;
    assert_eq!(chat["type"], "ack");
    p.ask(
        0,
        4,
        json!({"type": "role", "user_id": bob, "role": "admin"}),
    )
    .await;
    let ack = p
        .ask(1, 5, json!({"type": "playback", "action": "play"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack["version"].as_i64().is_some());
}

async fn moderation_survives_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob", "carol"]).await;
    let (bob, carol) = (p.user(1).to_owned(), p.user(2).to_owned());
    p.ask(
        0,
        1,
        json!({"type": "role", "user_id": bob, "role": "admin"}),
    )
    .await;
    p.ask(
        0,
        2,
        json!({"type": "kick", "user_id": carol, "ban_secs": 600}),
    )
    .await;
    let Party { room, people, .. } = p;
    let app = app.restart().await;
    let mut b = WsClient::connect(&app.ws_url(), &people[1].token).await;
    assert_eq!(b.join(&room).await["role"], "admin");
    let mut c = WsClient::connect(&app.ws_url(), &people[2].token).await;
    c.send(json!({"type": "join", "room": room, "id": 1})).await;
    assert_code(&c.recv_answer(1).await, "banned");
}

async fn members_endpoint_lists_roles_and_mutes(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut p = Party::gather(&app, "everyone", &["alice", "bob"]).await;
    let bob = p.user(1).to_owned();
    p.ask(0, 1, json!({"type": "mute", "user_id": bob, "secs": 60}))
        .await;
    let resp = app.get(&format!("/api/v1/rooms/{}/members", p.room)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let alice = members.iter().find(|m| m["user_id"] == p.user(0)).unwrap();
    assert_eq!(alice["role"], "owner");
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["status"], Value::Null);
    assert_eq!(alice["drift_ms"], Value::Null);
    assert_eq!(alice["muted_until"], Value::Null);
    let b = members
        .iter()
        .find(|m| m["user_id"] == bob.as_str())
        .unwrap();
    assert_eq!(b["role"], "member");
    assert!(b["muted_until"].as_i64().is_some());
    let missing = app.get("/api/v1/rooms/nosuchroom/members").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
