//! WebSocket tickets (contract 1.1): single use, 30 s, on any node, and a used, unknown
//! or expired ticket is 401 at the upgrade.

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, spawn_first_node, spawn_peer, Backend};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::Value;
use synctv_core::clock::now_ms;
use synctv_core::storage::TicketGrant;
use synctv_core::UserId;

both_backends!(
    a_ticket_opens_one_connection_as_its_user,
    used_unknown_and_expired_tickets_are_refused,
    a_ticket_needs_a_valid_token,
    a_ticket_works_on_another_node_once,
);

async fn a_ticket_opens_one_connection_as_its_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "tickets").await;
    let resp = app.post_auth("ticket", &alice.token).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let ticket = body["ticket"].as_str().unwrap();
    let expires_at = body["expires_at"].as_i64().unwrap();
    let now = now_ms();
    assert!(
        expires_at > now + 25_000 && expires_at <= now + 30_000,
        "{expires_at}"
    );
    assert!(!ticket.contains(&alice.token));

    let mut ws = WsClient::try_connect(&app.ticket_url(ticket), None)
        .await
        .expect("the ticket is accepted");
    let joined = ws.join(&room).await;
    assert_eq!(joined["members"][0]["user_id"], alice.user_id.as_str());
    assert_eq!(joined["members"][0]["name"], "alice");
}

async fn used_unknown_and_expired_tickets_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let ticket = app.ticket(&alice.token).await;
    let first = WsClient::try_connect(&app.ticket_url(&ticket), None).await;
    assert!(first.is_ok(), "first use refused");
    let again = WsClient::try_connect(&app.ticket_url(&ticket), None)
        .await
        .err()
        .expect("a used ticket is refused");
    assert_eq!((again.status, again.code()), (401, "unauthorized"));

    let (unknown, _) = synctv_api::auth::new_ticket();
    let (expired, expired_hash) = synctv_api::auth::new_ticket();
    app.ctx
        .db
        .insert_ticket(
            &expired_hash,
            &TicketGrant {
                user_id: UserId::from(alice.user_id.as_str()),
                name: alice.name.clone(),
                token_id: "some-token".into(),
                expires_at: now_ms() - 1,
            },
        )
        .await
        .unwrap();
    for ticket in [unknown.as_str(), expired.as_str(), "", "garbage", "%00"] {
        let refused = WsClient::try_connect(&app.ticket_url(ticket), None)
            .await
            .err()
            .unwrap_or_else(|| panic!("ticket {ticket:?} accepted"));
        assert_eq!((refused.status, refused.code()), (401, "unauthorized"));
    }
    // A ticket, even a bad one, is what the upgrade goes by: a token beside it does not
    // rescue it.
    let url = format!("{}&token={}", app.ticket_url(&unknown), alice.token);
    let refused = WsClient::try_connect(&url, None).await.err().unwrap();
    assert_eq!(refused.status, 401);
}

async fn a_ticket_needs_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/ticket"))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.post_auth("ticket", "garbage").await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// Tickets live in the shared database: minted on one node, taken on another, and two
/// nodes racing for one ticket let exactly one connection in.
async fn a_ticket_works_on_another_node_once(backend: Backend) {
    let first = spawn_first_node(backend).await;
    let second = spawn_peer(backend, &first).await;
    let alice = first.guest("alice").await;
    let ticket = first.ticket(&alice.token).await;
    let ws = WsClient::try_connect(&second.ticket_url(&ticket), None).await;
    assert!(ws.is_ok(), "a ticket from node 1 is refused on node 2");

    for _ in 0..5 {
        let ticket = first.ticket(&alice.token).await;
        let (on_first, on_second) = (first.ticket_url(&ticket), second.ticket_url(&ticket));
        let (a, b) = tokio::join!(
            WsClient::try_connect(&on_first, None),
            WsClient::try_connect(&on_second, None),
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "one ticket, two connections"
        );
    }
}
