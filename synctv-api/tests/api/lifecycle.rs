//! A connection's life: idle timeout, maximum duration, slow consumers, and the drain.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend};
use crate::process::SynctvProcess;
use crate::realtime::room_with_members;
use crate::ws_client::WsClient;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

both_backends!(
    idle_connections_are_closed_and_messages_keep_them_open,
    connections_past_their_maximum_duration_are_asked_to_reconnect,
    a_slow_consumer_is_told_to_reconnect_and_recovers,
    draining_asks_clients_to_reconnect_and_refuses_new_ones,
);

async fn idle_connections_are_closed_and_messages_keep_them_open(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.idle_timeout_secs = 1).await;
    let guest = app.guest("g").await;
    let mut idle = WsClient::connect(&app.ws_url(), &guest.token).await;
    let mut busy = WsClient::connect(&app.ws_url(), &guest.token).await;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.send(json!({"type": "ping", "id": i})).await;
        assert_eq!(busy.recv().await["type"], "pong");
    }
    assert!(
        idle.next_frame(Duration::from_secs(3)).await.is_none(),
        "the idle connection was closed"
    );
}

async fn connections_past_their_maximum_duration_are_asked_to_reconnect(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.max_duration_secs = 1).await;
    let guest = app.guest("g").await;
    let mut c = WsClient::connect(&app.ws_url(), &guest.token).await;
    let frame = c.recv().await;
    assert_eq!(
        (frame["type"].as_str(), frame["reason"].as_str()),
        (Some("reconnect"), Some("max_duration"))
    );
    assert!(frame["after_ms"].is_u64());
}

async fn a_slow_consumer_is_told_to_reconnect_and_recovers(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.outbound_queue = 1024;
        c.history.max_recovery_events = 10_000;
        c.limits.messages_per_second = 100_000;
    })
    .await;
    let (room, mut c) = room_with_members(&app, 2).await;
    let joined = c[1].join(&room).await;
    let (epoch, seq) = (joined["epoch"].clone(), joined["seq"].as_i64().unwrap());
    let sent = 5000;
    // A member that keeps reading gets everything, in order, unslowed by the slow one.
    let mut fast = c.pop().unwrap();
    let fast_room = room.clone();
    let fast = tokio::spawn(async move { fast.events_until(&fast_room, seq + 1 + sent).await });
    // A reader with a tiny socket buffer that reads nothing for now.
    let slow_guest = app.guest("slow").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}?token={}", app.ws_url(), slow_guest.token);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut slow, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .unwrap();
    use futures_util::SinkExt;
    slow.send(
        json!({"type": "join", "room": room, "id": "j"})
            .to_string()
            .into(),
    )
    .await
    .unwrap();
    let text = "x".repeat(2000);
    let mut last_ack = 0;
    for i in 0..sent {
        let chat = json!({"type": "chat", "room": room, "text": text, "id": i});
        c[0].send(chat).await;
        if i % 50 == 49 {
            last_ack = c[0].recv_answer(i).await["seq"].as_i64().unwrap();
        }
    }
    assert_eq!(last_ack, seq + 1 + sent);
    let events = fast.await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, ((seq + 1)..=(seq + 1 + sent)).collect::<Vec<_>>());
    // The slow one finds `reconnect (overloaded)` after what fitted, then the close.
    let mut reconnect = None;
    let mut last_seen = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(20), slow.next()).await
    {
        if let Ok(text) = message.to_text() {
            let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            match frame["type"].as_str() {
                Some("reconnect") => reconnect = Some(frame),
                Some("event") | Some("joined") => last_seen = frame["seq"].as_i64().unwrap_or(0),
                _ => {}
            }
        }
    }
    let reconnect = reconnect.expect("a reconnect frame");
    assert_eq!(reconnect["reason"], "overloaded");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("synctv_slow_consumer_disconnects_total"),
        "{metrics}"
    );
    // The slow member recovers what it missed on reconnect.
    let seq = last_seen;
    assert!(seq > 0 && seq < last_ack, "it fell behind at {seq}");
    let mut again = WsClient::connect(&app.ws_url(), &slow_guest.token).await;
    again
        .send(
            json!({"type": "join", "room": room, "id": 1, "recover": {"epoch": epoch, "seq": seq}}),
        )
        .await;
    let joined = again.recv_answer(1).await;
    assert_eq!(joined["recovered"], true);
    let count = joined["events"].as_array().unwrap().len() as i64;
    assert_eq!(count, joined["seq"].as_i64().unwrap() - seq);
}

async fn draining_asks_clients_to_reconnect_and_refuses_new_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let (room, mut c) = room_with_members(&app, 1).await;
    let guest = app.guest("late").await;
    app.ctx.shutdown.begin();
    let frame = c[0].recv().await;
    assert_eq!(
        (frame["type"].as_str(), frame["reason"].as_str()),
        (Some("reconnect"), Some("shutdown"))
    );
    // While draining: /ready is 503 and upgrades are refused with 503.
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    let refused = WsClient::try_connect(&format!("{}?token={}", app.ws_url(), guest.token), None)
        .await
        .err()
        .unwrap();
    assert_eq!((refused.status, refused.code()), (503, "unavailable"));
    c.pop().unwrap().close().await;
    let data = app.stop().await;
    drop(data);
    let _ = room;
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "SYNCTV__DATABASE__URL",
        format!("sqlite://{}/t.db?mode=rwc", dir.path().display()),
    )];
    let mut server = SynctvProcess::start(&env).await;
    let token = server.guest_token("t").await;
    let mut ws = WsClient::connect(&server.ws_url(), &token).await;
    server.terminate();
    let frame = ws.recv().await;
    assert_eq!(frame["reason"], "shutdown");
    ws.close().await;
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}
