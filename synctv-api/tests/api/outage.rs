//! A database outage: every endpoint that needs the database answers 503 `unavailable`
//! (never 500) while it is down, and the server recovers by itself once it is back.

use crate::helpers::{assert_error, spawn_app_with, Backend, TestApp};
use crate::postgres::PostgresServer;
use crate::wait::wait_for;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn database_outage_is_unavailable_then_recovers() {
    let pg = Arc::new(
        tokio::task::spawn_blocking(PostgresServer::private)
            .await
            .unwrap(),
    );
    let url = pg.create_database().await;
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.database.url = Some(url);
        c.database.acquire_timeout_secs = 1;
    })
    .await;
    let alice = app.guest("alice").await;
    let room = app.room(&alice, "r").await;
    let id = room["id"].as_str().unwrap();

    let down = pg.clone();
    tokio::task::spawn_blocking(move || down.stop())
        .await
        .unwrap();

    let resp = app.get("/ready").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "down");
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);

    let started = Instant::now();
    assert_unavailable(app.post_guest(json!({"name": "bob"})).await).await;
    assert_unavailable(app.create_room(&alice.token, json!({"name": "x"})).await).await;
    assert_unavailable(app.get_room(id).await).await;
    assert_unavailable(app.list_rooms("").await).await;
    assert_unavailable(app.room_events(id, "").await).await;
    assert_unavailable(app.delete_room(id, Some(&alice.token)).await).await;
    assert!(started.elapsed() < Duration::from_secs(60));

    let up = pg.clone();
    tokio::task::spawn_blocking(move || up.restart())
        .await
        .unwrap();
    wait_until_ready(&app).await;
    assert_eq!(app.get_room(id).await.status(), StatusCode::OK);
    app.guest("carol").await;
}

async fn assert_unavailable(resp: reqwest::Response) {
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}

async fn wait_until_ready(app: &TestApp) {
    wait_for(Duration::from_secs(30), "ready again", || async {
        (app.get("/ready").await.status() == StatusCode::OK).then_some(())
    })
    .await;
}
