//! A room of named people, each connected and joined, for the 1.1 "rooms people run"
//! tests: the owner first, then the others, every earlier member having seen every later
//! join, so a test starts from a quiet room.

use crate::helpers::{Guest, TestApp};
use crate::ws_client::WsClient;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::VecDeque;

pub struct Party {
    pub room: String,
    pub people: Vec<Guest>,
    pub clients: Vec<WsClient>,
    /// Events each client received while waiting for an answer, not yet looked at.
    seen: Vec<VecDeque<Value>>,
}

impl Party {
    /// `names[0]` creates the room (with `control`) and everyone joins, in order.
    pub async fn gather(app: &TestApp, control: &str, names: &[&str]) -> Party {
        let mut people = Vec::new();
        for name in names {
            people.push(app.guest(name).await);
        }
        let resp = app
            .create_room(
                &people[0].token,
                json!({"name": "party", "control": control}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let room: Value = resp.json().await.unwrap();
        let room = room["id"].as_str().unwrap().to_owned();
        let mut clients = Vec::new();
        for person in &people {
            let mut client = WsClient::connect(&app.ws_url(), &person.token).await;
            client.join(&room).await;
            clients.push(client);
        }
        let last = names.len() as i64;
        for client in clients.iter_mut().take(names.len() - 1) {
            client.events_until(&room, last).await;
        }
        Party {
            room,
            seen: vec![VecDeque::new(); people.len()],
            people,
            clients,
        }
    }

    pub fn user(&self, i: usize) -> &str {
        &self.people[i].user_id
    }

    /// Client `i` sends `message` (its `room` and `id` filled in) and gets the answer.
    pub async fn ask(&mut self, i: usize, id: i64, mut message: Value) -> Value {
        message["room"] = json!(self.room);
        message["id"] = json!(id);
        self.clients[i].send(message).await;
        self.answer(i, id).await
    }

    /// The answer carrying `id` on client `i`; the events before it are kept for
    /// `next_event`.
    pub async fn answer(&mut self, i: usize, id: i64) -> Value {
        loop {
            let frame = self.clients[i].recv().await;
            if frame["type"] == "event" {
                self.seen[i].push_back(frame);
            } else if frame["id"] == id {
                return frame;
            }
        }
    }

    /// The next event of the room that client `i` receives, skipping answers.
    pub async fn next_event(&mut self, i: usize) -> Value {
        while let Some(event) = self.seen[i].pop_front() {
            if event["room"] == self.room.as_str() {
                return event;
            }
        }
        loop {
            let frame = self.clients[i].recv().await;
            if frame["type"] == "event" && frame["room"] == self.room.as_str() {
                return frame;
            }
        }
    }
}

/// Asserts an `error` answer with `code`.
pub fn assert_code(answer: &Value, code: &str) {
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}
