//! Property tests of everything that parses untrusted input, run on stable Rust with
//! proptest and bounded case counts so that they run in `./scripts/test`:
//!
//! - `credentials`: the token verifier, the ticket parser, the bearer header, and the
//!   redaction of credentials from logged URLs;
//! - `addresses`: `X-Forwarded-For` and the Origin rule;
//! - `bodies`: the JSON body of every HTTP endpoint (the server API's included), sent to a
//!   running server: any body
//!   is answered with a 2xx or the contract's 4xx error, never a 5xx.
//!
//! The WebSocket message decoder's properties sit beside it (`ws::protocol_props`), the
//! configuration overlay's in `synctv-core/tests/config_props.rs`. A failure proptest
//! finds becomes a named regression test next to the property.

#[path = "../../src/ws/any_json.rs"]
mod any_json;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/postgres.rs"]
mod postgres;
#[allow(dead_code)]
#[path = "../api/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../api/wait.rs"]
mod wait;

mod addresses;
mod bodies;
mod credentials;
