//! The black-box garbage test: a running `synctv` process gets thousands of malformed,
//! oversized, truncated and binary WebSocket frames and garbage HTTP requests while a
//! well-behaved member chats beside them. The process must not crash, nothing may be
//! answered 5xx, and the member's every message must be acked and in the history.

use crate::process::SynctvProcess;
use crate::ws_client::WsClient;
use futures_util::SinkExt;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Garbage WebSocket connections, each sending this many frames (reconnecting when the
/// server closes it, as it may).
const GARBAGE_SOCKETS: usize = 6;
const FRAMES_PER_SOCKET: usize = 500;
/// Garbage HTTP requests, and raw TCP garbage.
const HTTP_REQUESTS: usize = 1200;
const RAW_CONNECTIONS: usize = 100;
/// The well-behaved member's chats, paced under the per-connection rate.
const CHATS: i64 = 100;

#[tokio::test]
async fn garbage_does_not_harm_the_server_or_a_well_behaved_member() {
    let mut server = SynctvProcess::start(&[]).await;
    let token = server.guest_token("good").await;
    let room = server.create_room(&token, "good room").await;
    let mut good = WsClient::connect(&server.ws_url(), &token).await;
    good.join(&room).await;

    let garbage_ws: Vec<_> = (0..GARBAGE_SOCKETS)
        .map(|i| {
            tokio::spawn(garbage_frames(
                server.ws_url(),
                server.url(""),
                room.clone(),
                i as u64,
            ))
        })
        .collect();
    // The garbage requests carry a token of their own: the good member's room is not theirs.
    let garbage_token = server.guest_token("garbage").await;
    let garbage_http = tokio::spawn(garbage_requests(
        server.url(""),
        room.clone(),
        garbage_token,
    ));
    let raw = tokio::spawn(raw_garbage(server.port));

    let mut acked = Vec::new();
    for i in 0..CHATS {
        let answer = good.chat(&room, &format!("good message {i}"), i).await;
        if answer["type"] != "ack" {
            let history =
                reqwest::get(server.url(&format!("/api/v1/rooms/{room}/events?limit=1000")))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
            panic!("the good member was refused: {answer}; history: {history}");
        }
        acked.push((answer["seq"].as_i64().unwrap(), format!("good message {i}")));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let mut frames_sent = 0;
    for task in garbage_ws {
        frames_sent += task.await.unwrap();
    }
    let statuses = garbage_http.await.unwrap();
    raw.await.unwrap();
    assert!(frames_sent >= GARBAGE_SOCKETS * FRAMES_PER_SOCKET);
    assert!(server.is_running(), "the server died");
    let server_errors: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status >= 500)
        .collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("synctv_http_requests_total") && l.contains("status=\"5")),
        "the server counted 5xx answers"
    );

    // The member is unharmed: still connected and answered, and every ack is durable.
    let pong = {
        good.send(json!({"type": "ping", "id": "still", "t": 1}))
            .await;
        good.recv_answer("still").await
    };
    assert_eq!(pong["type"], "pong");
    let history: Value =
        reqwest::get(server.url(&format!("/api/v1/rooms/{room}/events?limit=1000")))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let events = history["events"].as_array().unwrap();
    for (seq, text) in &acked {
        let event = events
            .iter()
            .find(|e| e["seq"] == *seq)
            .unwrap_or_else(|| panic!("seq {seq} missing"));
        assert_eq!(event["kind"], "chat");
        assert_eq!(event["data"]["text"], text.as_str());
    }
    good.close().await;
}

/// One connection's worth of garbage frames; how many were sent.
async fn garbage_frames(ws_url: String, base: String, room: String, seed: u64) -> usize {
    let token = guest(&base, &format!("garbage{seed}")).await;
    let url = format!("{ws_url}?token={token}");
    let mut runner = TestRunner::deterministic();
    let mut sent = 0;
    let mut socket = None;
    while sent < FRAMES_PER_SOCKET {
        if socket.is_none() {
            socket = tokio_tungstenite::connect_async(url.as_str())
                .await
                .ok()
                .map(|(s, _)| s);
            if socket.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let frame = garbage_frame(&mut runner, &room, sent as u64 + seed * 7919);
        sent += 1;
        let Some(stream) = socket.as_mut() else {
            continue;
        };
        if stream.send(frame).await.is_err() {
            // Closed by the server (a flood, a frame over the hard limit): connect again.
            socket = None;
        }
    }
    if let Some(mut stream) = socket {
        let _ = stream.close(None).await;
    }
    sent
}

fn garbage_frame(runner: &mut TestRunner, room: &str, n: u64) -> Message {
    let valid = json!({"type": "chat", "id": n, "room": room, "text": "x"}).to_string();
    match n % 12 {
        0 => Message::binary(random_bytes(runner, 0..300)),
        1 => Message::text(String::from_utf8_lossy(&random_bytes(runner, 0..300)).into_owned()),
        2 => Message::text(valid[..(n as usize % valid.len())].to_owned()),
        3 => Message::text(format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
        4 => Message::text(json!({"type": "chat", "room": room, "text": "y".repeat(70_000)}).to_string()),
        5 => Message::text("z".repeat(if n % 24 == 5 { 1_500_000 } else { 65_537 })),
        6 => Message::text(json!({"type": ["join"], "id": {"x": 1}}).to_string()),
        7 => Message::text(json!({"type": "playback", "room": room, "action": "seek", "position": -1e308}).to_string()),
        8 => Message::text(json!({"type": "join", "room": "\u{0}".repeat(100), "recover": {"epoch": 5, "seq": "x"}}).to_string()),
        9 => Message::text(json!({"type": "media", "room": room, "url": "javascript:alert(1)"}).to_string()),
        10 => Message::text("{\"type\":\"ping\",\"t\":1e999999}".to_owned()),
        _ => Message::text(String::new()),
    }
}

fn random_bytes(runner: &mut TestRunner, len: std::ops::Range<usize>) -> Vec<u8> {
    proptest::collection::vec(proptest::num::u8::ANY, len)
        .new_tree(runner)
        .map(|tree| tree.current())
        .unwrap_or_default()
}

/// Garbage HTTP requests; their statuses and paths.
async fn garbage_requests(base: String, room: String, token: String) -> Vec<(u16, String)> {
    let client = reqwest::Client::new();
    let mut runner = TestRunner::deterministic();
    let paths = [
        "/api/v1/auth/guest".to_owned(),
        "/api/v1/auth/ticket".to_owned(),
        "/api/v1/auth/refresh".to_owned(),
        "/api/v1/rooms".to_owned(),
        format!("/api/v1/rooms/{room}"),
        format!("/api/v1/rooms/{room}/events?after=-1&limit=99999"),
        "/api/v1/rooms?limit=0&cursor=%00".to_owned(),
        "/ws?ticket=%ZZ&token=".to_owned(),
        "/api/v1/rooms/..%2f..%2fetc/events".to_owned(),
        "/%FF%FE".to_owned(),
    ];
    let methods = [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ];
    let mut statuses = Vec::with_capacity(HTTP_REQUESTS);
    for n in 0..HTTP_REQUESTS {
        let path = &paths[n % paths.len()];
        let method = methods[(n / paths.len()) % methods.len()].clone();
        let body = match n % 5 {
            0 => random_bytes(&mut runner, 0..500),
            1 => b"{\"name\": \"".repeat(100),
            2 => json!({"name": "n".repeat(70), "password": "", "control": 7})
                .to_string()
                .into_bytes(),
            3 => vec![b'a'; 70 * 1024],
            _ => Vec::new(),
        };
        let mut request = client.request(method, format!("{base}{path}")).body(body);
        request = match n % 4 {
            0 => request
                .header("content-type", "application/json")
                .bearer_auth(&token),
            1 => request.header("authorization", "Bearer not..a.token"),
            2 => request
                .header("x-forwarded-for", "999.1.1.1, ::::, garbage")
                .header("origin", "null"),
            _ => request.header("content-type", "application/json; charset=utf-7"),
        };
        match request.send().await {
            Ok(response) => statuses.push((response.status().as_u16(), path.clone())),
            // A refusal answered before the body was read may reset the connection while
            // the client still sends it; the server must still be there.
            Err(_) => {
                let health = client.get(format!("{base}/health")).send().await;
                assert!(
                    health.is_ok_and(|r| r.status().is_success()),
                    "{path}: the server is gone"
                );
            }
        }
    }
    statuses
}

/// Bytes that are not HTTP at all, on raw TCP connections.
async fn raw_garbage(port: u16) {
    let mut runner = TestRunner::deterministic();
    for n in 0..RAW_CONNECTIONS {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            panic!("the server stopped accepting connections");
        };
        let bytes = match n % 3 {
            0 => random_bytes(&mut runner, 1..2000),
            1 => b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\n\r\n".to_vec(),
            _ => format!("POST /api/v1/auth/guest HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}", "{".repeat(100)).into_bytes(),
        };
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        if sink.starts_with(b"HTTP/1.1 5") {
            panic!(
                "raw garbage answered {}",
                String::from_utf8_lossy(&sink[..sink.len().min(80)])
            );
        }
    }
}

async fn guest(base: &str, name: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/guest"))
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}
