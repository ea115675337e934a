//! A real local HTTP receiver of webhooks: it records every request (body and signature)
//! and answers each as the test scripts it: accept, fail with a 500, or hold the request
//! open past the sender's timeout.

use crate::wait::wait_for;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Accept,
    #[allow(dead_code)] // tests/cluster shares this file and does not use this
    Fail,
    /// Holds the request open this long, then answers 200 (too late for the sender).
    Hang(Duration),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub raw: String,
    pub signature: Option<String>,
    /// What the receiver answered.
    pub answer: Answer,
}

#[derive(Default)]
struct Script {
    /// Answers for the next requests, in order; then `Accept`.
    next: VecDeque<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct WebhookReceiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl WebhookReceiver {
    /// Listens on a free loopback port, accepting everything not scripted.
    pub async fn start() -> WebhookReceiver {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        WebhookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            script,
        }
    }

    /// The next requests get these answers, in order.
    pub fn then(&self, answers: &[Answer]) {
        self.lock().next.extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The deliveries accepted (answered 2xx in time), in the order they came.
    pub fn accepted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.answer == Answer::Accept)
            .map(|r| r.body)
            .collect()
    }

    /// The distinct deliveries of `room` accepted, once one of type `kind` is among them.
    pub async fn until_delivered(&self, room: &str, kind: &str, patience: Duration) -> Vec<Value> {
        wait_for(
            patience,
            &format!("{kind} reaches the receiver"),
            || async {
                let mine: Vec<Value> = distinct_accepted(&self.accepted())
                    .into_iter()
                    .filter(|d| d["room"] == room)
                    .collect();
                mine.iter().any(|d| d["type"] == kind).then_some(mine)
            },
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let raw = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    let answer = {
        let mut script = script.lock().unwrap();
        let answer = script.next.pop_front().unwrap_or(Answer::Accept);
        script.received.push(Received {
            body: serde_json::from_str(&raw).expect("a JSON body"),
            raw,
            signature: headers
                .get("x-synctv-signature")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            answer,
        });
        answer
    };
    match answer {
        Answer::Accept => StatusCode::OK,
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Hang(time) => {
            tokio::time::sleep(time).await;
            StatusCode::OK
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`, computed here independently of the server.
pub fn expected_signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Every request carried the right signature, and every retry of a delivery carried the
/// same body as its first attempt.
pub fn check_signatures_and_retries(received: &[Received], secret: &str) {
    let mut first_body = std::collections::HashMap::new();
    for r in received {
        assert_eq!(
            r.signature.as_deref(),
            Some(expected_signature(secret, &r.raw).as_str()),
            "bad signature on {}",
            r.raw
        );
        let id = r.body["delivery_id"]
            .as_str()
            .expect("a delivery_id")
            .to_owned();
        let first = first_body.entry(id).or_insert_with(|| r.raw.clone());
        assert_eq!(first, &r.raw, "a retry changed the body");
    }
}

/// The distinct deliveries accepted, in the order first accepted.
pub fn distinct_accepted(accepted: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    accepted
        .iter()
        .filter(|b| seen.insert(b["delivery_id"].as_str().unwrap_or_default().to_owned()))
        .cloned()
        .collect()
}

/// The `type` of each delivery, in order.
pub fn types(deliveries: &[Value]) -> Vec<&str> {
    deliveries
        .iter()
        .map(|d| d["type"].as_str().expect("a type"))
        .collect()
}
