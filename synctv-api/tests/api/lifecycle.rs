//! A connection's life: idle timeout, maximum duration, slow consumers, and the drain.

use crate::both_backends;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestProcess};
use crate::process::SynctvProcess;
use crate::realtime::room_with_members;
use crate::wait::wait_for;
use crate::ws_client::WsClient;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

both_backends!(
    idle_connections_are_closed_and_messages_keep_them_open,
    connections_past_their_maximum_duration_are_asked_to_reconnect,
    a_slow_consumer_is_told_to_reconnect_and_recovers,
    draining_asks_clients_to_reconnect_and_refuses_new_ones,
);

async fn idle_connections_are_closed_and_messages_keep_them_open(backend: Backend) {
    const IDLE: Duration = Duration::from_secs(2);
    let app = spawn_app_with(backend, |c| c.limits.idle_timeout_secs = IDLE.as_secs()).await;
    let guest = app.guest("g").await;
    let connecting = Instant::now();
    let mut idle = WsClient::connect(&app.ws_url(), &guest.token).await;
    let mut busy = WsClient::connect(&app.ws_url(), &guest.token).await;
    // The idle one is closed, and not before its timeout: measured from before the
    // upgrade, a bound that holds however slow the machine is.
    let idle = tokio::spawn(async move {
        let frame = idle.next_frame(IDLE + Duration::from_secs(30)).await;
        (frame, connecting.elapsed())
    });
    // The busy one pings ten times per timeout (a pace under the message rate) until then,
    // and once after: it stays open. The server
    // closes a connection once it has seen nothing from it for IDLE, so if a stall of the
    // machine ever closes the busy one too, it must be at least IDLE after the last ping
    // the server answered; sooner is the bug this test looks for.
    let mut id = 0;
    let mut answered_ping_sent = Instant::now();
    let mut pace = tokio::time::interval(IDLE / 10);
    // After a stall, no catching up in a burst that the rate limit would refuse.
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        pace.tick().await;
        let done = idle.is_finished();
        id += 1;
        let sent = Instant::now();
        busy.send(json!({"type": "ping", "id": id})).await;
        match busy.next_frame(Duration::from_secs(30)).await {
            Some(frame) => {
                assert_eq!(
                    (frame["type"].as_str(), &frame["id"]),
                    (Some("pong"), &json!(id))
                );
                answered_ping_sent = sent;
            }
            None => {
                let silent = answered_ping_sent.elapsed();
                assert!(
                    silent >= IDLE,
                    "the busy connection was closed {silent:?} after a ping was answered"
                );
                eprintln!("the machine stalled for {silent:?}: the busy connection timed out too");
                break;
            }
        }
        if done {
            break;
        }
    }
    let (frame, lived) = idle.await.unwrap();
    assert!(
        frame.is_none(),
        "the idle connection was closed, not sent {frame:?}"
    );
    assert!(
        lived >= IDLE,
        "the idle connection was closed after {lived:?}"
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
    // A process of its own, so the slow-consumer counter below is this test's alone.
    let server = TestProcess::spawn(
        backend,
        &[
            ("SYNCTV__LIMITS__OUTBOUND_QUEUE", "256".into()),
            ("SYNCTV__HISTORY__MAX_RECOVERY_EVENTS", "10000".into()),
            ("SYNCTV__LIMITS__MESSAGES_PER_SECOND", "100000".into()),
        ],
    )
    .await;
    let owner = server.guest_token("owner").await;
    let room = server.create_room(&owner, "movie night").await;
    let mut sender = WsClient::connect(&server.ws_url(), &owner).await;
    sender.join(&room).await;
    let member = server.guest_token("member").await;
    let mut fast = WsClient::connect(&server.ws_url(), &member).await;
    fast.join(&room).await;
    // Both joins are in the history (seqs 1 and 2) once the first member has seen the
    // second's; joining again then answers where the room is now.
    sender.events_until(&room, 2).await;
    let joined = fast.join(&room).await;
    let (epoch, seq) = (joined["epoch"].clone(), joined["seq"].as_i64().unwrap());
    let sent = 5000;
    // A member that keeps reading gets everything, in order, unslowed by the slow one: it
    // reads up to the last chat.
    let fast_room = room.clone();
    let fast = tokio::spawn(async move {
        let (mut events, mut chats) = (Vec::new(), 0);
        while chats < sent {
            let frame = fast.recv().await;
            if frame["type"] == "event" && frame["room"] == fast_room {
                chats += i64::from(frame["kind"] == "chat");
                events.push(frame);
            }
        }
        events
    });
    // A reader with a tiny socket buffer that reads nothing for now.
    let slow_guest = server.guest_token("slow").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}?token={}", server.ws_url(), slow_guest);
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
    let flood_room = room.clone();
    let flood = tokio::spawn(async move {
        let mut last_ack = 0;
        for i in 0..sent {
            let chat = json!({"type": "chat", "room": flood_room, "text": text, "id": i});
            sender.send(chat).await;
            if i % 50 == 49 {
                last_ack = sender.recv_answer(i).await["seq"].as_i64().unwrap();
            }
        }
        last_ack
    });
    // The server flags the slow member once its queue is full. Only then does it start
    // reading: a member that read nothing for `WRITE_TIMEOUT` (10 s) would be dropped
    // without a word, so waiting for the flag, not for the flood's end, keeps this test
    // about the queue whatever the machine's pace.
    wait_for(
        Duration::from_secs(60),
        "the server flags the slow member",
        || async {
            (server
                .metric("synctv_slow_consumer_disconnects_total")
                .await
                >= 1.0)
                .then_some(())
        },
    )
    .await;
    // It finds `reconnect (overloaded)` after what fitted, then the close.
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
    let last_ack = flood.await.unwrap();
    let events = fast.await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, ((seq + 1)..=last_ack).collect::<Vec<_>>());
    // Besides the chats, the slow member came, and went if the server closed it before the
    // last chat (how soon depends on the machine's pace, so either is right).
    let others: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] != "chat")
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert!(
        others == ["member_joined"] || others == ["member_joined", "member_left"],
        "{others:?}"
    );
    let reconnect = reconnect.expect("a reconnect frame");
    assert_eq!(reconnect["reason"], "overloaded");
    assert_eq!(
        server
            .metric("synctv_slow_consumer_disconnects_total")
            .await,
        1.0,
        "the slow member, and only it, was disconnected"
    );
    // The slow member recovers what it missed on reconnect.
    let seq = last_seen;
    assert!(seq > 0 && seq < last_ack, "it fell behind at {seq}");
    let mut again = WsClient::connect(&server.ws_url(), &slow_guest).await;
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
