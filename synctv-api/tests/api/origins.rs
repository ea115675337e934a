//! The Origin rule (contract 1.1): a WebSocket upgrade, and any POST or DELETE, that
//! carries `Origin` is refused with 403 `forbidden` unless the origin is the server's
//! own, one of `server.public_urls` or one of `server.allowed_origins` (`["*"]`: all).

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp};
use crate::ws_client::WsClient;
use reqwest::{Method, StatusCode};
use serde_json::json;

both_backends!(
    foreign_origins_are_refused_and_the_own_origin_passes,
    configured_origins_pass,
    a_star_allows_every_origin,
    allowed_origins_may_call_the_api_across_origins,
);

const EVIL: &str = "https://evil.example";

async fn foreign_origins_are_refused_and_the_own_origin_passes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    let room = app.room_id(&alice, "origins").await;
    let own = app.address.clone();

    // The WebSocket upgrade.
    let refused = upgrade(&app, &alice.token, Some(EVIL)).await.err().unwrap();
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    for origin in [Some(own.as_str()), None] {
        let ws = upgrade(&app, &alice.token, origin).await;
        assert!(ws.is_ok(), "origin {origin:?} refused");
    }
    // Another port of the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", app.port + 1);
    assert!(upgrade(&app, &alice.token, Some(&other_port))
        .await
        .is_err());

    // POST and DELETE.
    let resp = post_guest_from(&app, Some(EVIL)).await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/rooms/{room}"),
        &alice.token,
        EVIL,
    )
    .await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.get_room(&room).await.status(), StatusCode::OK);
    let resp = send(
        &app,
        Method::POST,
        "/api/v1/auth/logout",
        &alice.token,
        "null",
    )
    .await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        post_guest_from(&app, Some(&own)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        post_guest_from(&app, None).await.status(),
        StatusCode::CREATED
    );
    let resp = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/rooms/{room}"),
        &alice.token,
        &own,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Reads are not writes: a GET from another origin is answered.
    let resp = app
        .client
        .get(app.url("/api/v1/rooms"))
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn configured_origins_pass(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.server.public_urls = vec!["https://node2.example:8443/".into()];
        c.server.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let alice = app.guest("alice").await;
    for origin in ["https://node2.example:8443", "https://app.example"] {
        assert!(
            upgrade(&app, &alice.token, Some(origin)).await.is_ok(),
            "{origin}"
        );
        assert_eq!(
            post_guest_from(&app, Some(origin)).await.status(),
            StatusCode::CREATED
        );
    }
    for origin in [EVIL, "https://node2.example", "http://app.example"] {
        let refused = upgrade(&app, &alice.token, Some(origin))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.status, 403, "{origin}");
        let resp = post_guest_from(&app, Some(origin)).await;
        assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
}

async fn a_star_allows_every_origin(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.server.allowed_origins = vec!["*".into()]).await;
    let alice = app.guest("alice").await;
    assert!(upgrade(&app, &alice.token, Some(EVIL)).await.is_ok());
    assert_eq!(
        post_guest_from(&app, Some("null")).await.status(),
        StatusCode::CREATED
    );
    // The default (no allowed origins) refuses the same request.
    let strict = spawn_app(backend).await;
    let resp = post_guest_from(&strict, Some(EVIL)).await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn upgrade(
    app: &TestApp,
    token: &str,
    origin: Option<&str>,
) -> Result<WsClient, crate::ws_client::Refused> {
    let authorization = format!("Bearer {token}");
    let mut headers = vec![("authorization", authorization.as_str())];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    WsClient::try_connect_with(&app.ws_url(), &headers).await
}

async fn post_guest_from(app: &TestApp, origin: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/auth/guest"))
        .json(&json!({"name": "someone"}));
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await.unwrap()
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    origin: &str,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

/// The page of one node asks another for a ticket: CORS for the allowed origins only.
async fn allowed_origins_may_call_the_api_across_origins(backend: Backend) {
    let peer = "http://node2.example:8080";
    let app = spawn_app_with(backend, |c| c.server.public_urls = vec![peer.into()]).await;
    let alice = app.guest("alice").await;
    for (origin, allowed) in [(peer, true), (EVIL, false)] {
        let preflight = app
            .client
            .request(Method::OPTIONS, app.url("/api/v1/auth/ticket"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        let allow = preflight
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        assert_eq!(allow.is_some_and(|o| o == origin), allowed, "{origin}");
        let resp = send(
            &app,
            Method::POST,
            "/api/v1/auth/ticket",
            &alice.token,
            origin,
        )
        .await;
        let allow = resp.headers().get("access-control-allow-origin").cloned();
        if allowed {
            assert_eq!(resp.status(), StatusCode::CREATED);
            assert_eq!(allow.unwrap(), origin);
        } else {
            assert!(allow.is_none());
            assert_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }
}
