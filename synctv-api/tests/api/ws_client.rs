//! A WebSocket test client that speaks the contract: each helper is one protocol step.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame the server owes.
const PATIENCE: Duration = Duration::from_secs(10);

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// A refused upgrade: the HTTP status and the JSON error body.
#[allow(dead_code)] // tests/cluster shares this file and does not use this
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

impl Refused {
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl WsClient {
    pub async fn connect(ws_url: &str, token: &str) -> WsClient {
        Self::try_connect(&format!("{ws_url}?token={token}"), None)
            .await
            .expect("upgrade refused")
    }

    /// Connects with the token in the `Authorization` header (or none).
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn connect_with_header(ws_url: &str, token: &str) -> Result<WsClient, Refused> {
        Self::try_connect(ws_url, Some(token)).await
    }

    pub async fn try_connect(url: &str, bearer: Option<&str>) -> Result<WsClient, Refused> {
        let authorization = bearer.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        Self::try_connect_with(url, &headers).await
    }

    /// Connects with extra request headers (`Origin`, `Authorization`, …).
    pub async fn try_connect_with(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, Refused> {
        let mut request = url.into_client_request().expect("valid url");
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().expect("a header name");
            request
                .headers_mut()
                .insert(name, value.parse().expect("a header value"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err(Refused { status, body })
            }
            // No HTTP answer at all (a reset, a node dying mid-handshake): status 0.
            Err(e) => Err(Refused {
                status: 0,
                body: json!({"error": {"code": "", "message": e.to_string()}}),
            }),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("send");
    }

    /// The next JSON frame; panics if none comes in time or the connection closes.
    pub async fn recv(&mut self) -> Value {
        match self.next_frame(PATIENCE).await {
            Some(v) => v,
            None => panic!("the connection closed while a frame was expected"),
        }
    }

    /// The next JSON frame, or `None` once the server closed the connection.
    pub async fn next_frame(&mut self, patience: Duration) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(patience, self.stream.next())
                .await
                .expect("no frame in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("JSON frame"))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Frames until one of type `kind` (returned); the others are returned too, in order.
    pub async fn recv_until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == kind {
                return (frame, skipped);
            }
            skipped.push(frame);
        }
    }

    /// Nothing arrives within `wait` (the connection stays quiet).
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(wait, self.stream.next()).await
        {
            panic!("unexpected frame: {text}");
        }
    }

    /// Sends `join` and returns `joined` (panics on an error frame).
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "id": "j", "room": room}))
            .await;
        let answer = self.recv_answer("j").await;
        assert_eq!(answer["type"], "joined", "join refused: {answer}");
        answer
    }

    /// The answer (ack, joined, left, pong or error) carrying `id`, skipping events.
    pub async fn recv_answer(&mut self, id: impl Into<Value>) -> Value {
        let id = id.into();
        loop {
            let frame = self.recv().await;
            if frame["type"] != "event" && frame["id"] == id {
                return frame;
            }
        }
    }

    pub async fn chat(&mut self, room: &str, text: &str, id: i64) -> Value {
        self.send(json!({"type": "chat", "room": room, "text": text, "id": id}))
            .await;
        self.recv_answer(id).await
    }

    /// Events of `room` until (and including) seq `up_to`.
    pub async fn events_until(&mut self, room: &str, up_to: i64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == "event" && frame["room"] == room {
                let seq = frame["seq"].as_i64().unwrap_or_default();
                events.push(frame);
                if seq >= up_to {
                    return events;
                }
            }
        }
    }

    /// Reads until the server closes the connection: the frames before the close, and its
    /// close code (`None` when the connection ended without a close frame).
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    pub async fn until_closed(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            let next = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("the connection was not closed in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    frames.push(serde_json::from_str(&text).expect("JSON frame"))
                }
                Some(Ok(Message::Close(frame))) => {
                    return (frames, frame.map(|f| u16::from(f.code)))
                }
                None | Some(Err(_)) => return (frames, None),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
