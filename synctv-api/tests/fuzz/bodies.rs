use crate::any_json::any_json;
use crate::helpers::Guest;
use crate::helpers::{spawn_app_with, Backend, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value};

/// The server API's key in the fuzzed app.
const API_KEY: &str = "fuzzed-server-api-key-0123456789abcdef";

/// Requests per property; each is a real HTTP round trip (and some hash a password).
const CASES: u32 = 300;

/// An object with the fields the endpoints read, holding anything.
fn body_like() -> impl Strategy<Value = Value> {
    let fields = vec!["name", "password", "control", "text", "user_id", "extra"];
    prop::collection::vec((prop::sample::select(fields), any_json(120)), 0..5).prop_map(|pairs| {
        let mut object = Map::new();
        for (name, value) in pairs {
            object.insert(name.into(), value);
        }
        Value::Object(object)
    })
}

/// What goes in the body: JSON shaped like the endpoints', any JSON, or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        body_like().prop_map(|v| v.to_string().into_bytes()),
        any_json(120).prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Guest,
    CreateRoom,
    Ticket,
    Refresh,
    ArchiveRoom,
    ListRooms,
    RoomEvents,
    ServerMessage,
    ServerKick,
    ServerDisconnect,
    ServerStats,
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop::sample::select(vec![
        Endpoint::Guest,
        Endpoint::CreateRoom,
        Endpoint::Ticket,
        Endpoint::Refresh,
        Endpoint::ArchiveRoom,
        Endpoint::ListRooms,
        Endpoint::RoomEvents,
        Endpoint::ServerMessage,
        Endpoint::ServerKick,
        Endpoint::ServerDisconnect,
        Endpoint::ServerStats,
    ])
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        4 => Just(Some("application/json")),
        1 => Just(None),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/json; charset=utf-8")),
    ]
}

/// Any body (or query string, for the GET endpoints) at any endpoint is answered with a
/// success or the contract's JSON error, never a server error.
#[test]
fn every_endpoint_answers_any_input_without_a_server_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, guest, room) = rt.block_on(async {
        let app = spawn_app_with(Backend::Sqlite, |c| c.api.key = Some(API_KEY.into())).await;
        let guest = app.guest("fuzzer").await;
        let room = app.room_id(&guest, "fuzzed").await;
        (app, guest, room)
    });
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let query = "[ -~]{0,60}";
    let result = runner.run(
        &(endpoint(), body(), content_type(), query),
        |(endpoint, body, content_type, query)| {
            let (status, answer) = rt.block_on(send(
                &app,
                &guest,
                &room,
                endpoint,
                body,
                content_type,
                &query,
            ));
            prop_assert!(
                status < 500,
                "{:?} answered {}: {}",
                endpoint,
                status,
                answer
            );
            if status >= 400 {
                let parsed: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
                prop_assert!(
                    parsed["error"]["code"].is_string(),
                    "{:?}: {}",
                    endpoint,
                    answer
                );
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn send(
    app: &TestApp,
    guest: &Guest,
    room: &str,
    endpoint: Endpoint,
    body: Vec<u8>,
    content_type: Option<&str>,
    query: &str,
) -> (u16, String) {
    let query = query.replace(['#', ' '], "");
    let token = guest.token.as_str();
    let (method, path, authorized) = match endpoint {
        Endpoint::Guest => (Method::POST, "/api/v1/auth/guest".to_owned(), false),
        Endpoint::CreateRoom => (Method::POST, "/api/v1/rooms".to_owned(), true),
        Endpoint::Ticket => (Method::POST, "/api/v1/auth/ticket".to_owned(), true),
        Endpoint::Refresh => (Method::POST, "/api/v1/auth/refresh".to_owned(), true),
        // Another user's room: never archived, so the room stays for the other cases.
        Endpoint::ArchiveRoom => (Method::DELETE, format!("/api/v1/rooms/{room}x"), true),
        Endpoint::ListRooms => (Method::GET, format!("/api/v1/rooms?{query}"), false),
        Endpoint::RoomEvents => (
            Method::GET,
            format!("/api/v1/rooms/{room}/events?{query}"),
            false,
        ),
        Endpoint::ServerMessage => (
            Method::POST,
            format!("/api/v1/server/rooms/{room}/messages"),
            false,
        ),
        Endpoint::ServerKick => (
            Method::POST,
            format!("/api/v1/server/rooms/{room}/kick"),
            false,
        ),
        Endpoint::ServerDisconnect => (
            Method::POST,
            format!("/api/v1/server/users/{}/disconnect", guest.user_id),
            false,
        ),
        Endpoint::ServerStats => (Method::GET, format!("/api/v1/server/stats?{query}"), false),
    };
    let mut request = app.client.request(method, app.url(&path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if authorized {
        request = request.bearer_auth(token);
    }
    if matches!(
        endpoint,
        Endpoint::ServerMessage
            | Endpoint::ServerKick
            | Endpoint::ServerDisconnect
            | Endpoint::ServerStats
    ) {
        request = request.header("x-api-key", API_KEY);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
