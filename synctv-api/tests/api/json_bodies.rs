//! Every body of the contract is a JSON object: any other JSON (an array, a string, a
//! number, `null`, a boolean) is 400 `bad_request` on every endpoint that takes a body,
//! even an array serde could read as the endpoint's struct field by field.

use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend};
use reqwest::StatusCode;

both_backends!(non_object_bodies_are_bad_requests_on_every_endpoint);

/// Bodies that are JSON but not an object. The first of each endpoint's list is an array
/// holding that endpoint's fields in order, which serde alone would accept.
const NOT_OBJECTS: [&str; 7] = ["[]", r#""x""#, "3", "-0.5", "null", "true", " \n false"];

async fn non_object_bodies_are_bad_requests_on_every_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.guest("alice").await;
    // Every endpoint that takes a body, with its token when it needs one.
    let endpoints = [
        ("/api/v1/auth/guest", None, r#"["alice"]"#),
        (
            "/api/v1/rooms",
            Some(alice.token.as_str()),
            r#"["r", null, null]"#,
        ),
    ];
    for (path, token, fields_in_order) in endpoints {
        let spaced = format!("  {fields_in_order}");
        for body in [fields_in_order, spaced.as_str()]
            .into_iter()
            .chain(NOT_OBJECTS)
        {
            let resp = app
                .post_raw(path, token, Some("application/json"), body.to_owned())
                .await;
            assert_eq!(
                resp.status(),
                StatusCode::BAD_REQUEST,
                "POST {path} with {body:?}"
            );
            assert_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
        }
        // The same fields as an object are accepted, so the refusals above were about the
        // shape alone.
        let object = match path {
            "/api/v1/auth/guest" => r#"{"name": "alice"}"#,
            _ => r#"{"name": "r", "password": null, "control": null}"#,
        };
        let resp = app
            .post_raw(path, token, Some("application/json"), object)
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "POST {path} {object}");
    }
    // Nothing was made from the refused bodies: only the room made from the object.
    let rooms: serde_json::Value = app.list_rooms("").await.json().await.unwrap();
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(1), "{rooms}");
}
