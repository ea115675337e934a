//! synctv-api: the `synctv` server, the only crate that wires storage, the cluster layer
//! and the network together.
//!
//! A short tour:
//! - [`startup`]: [`Application::build`](startup::Application::build) binds the listener,
//!   opens and migrates the database, resolves the JWT secret and starts the
//!   `ClusterManager`; `run_until_stopped` serves until a drain completes.
//! - [`http`]: the axum router; one module per resource, [`ApiContext`](http::ApiContext)
//!   as the only state, [`ApiError`](http::ApiError) as the only error body.
//! - [`ws`]: the WebSocket endpoint (`GET /ws`), the realtime half of the contract.
//! - [`auth`]: guest tokens (HS256 JWT, each with an id), WebSocket tickets, and the
//!   `AuthUser` extractor.
//! - [`revocation`]: logged-out tokens, polled from the database so every node refuses
//!   them within seconds, and the watches that close their WebSockets.
//! - [`disconnects`]: the server API's disconnect of a user, on every node (polled like
//!   revocations), with a count across nodes; [`session_watch`]: the watches both use to
//!   close a session from outside; [`timed_ids`]: the ids each remembers for a while.
//! - [`guard`]: the Origin rule, trusted proxies and client addresses, per-address
//!   limits, and credentials redacted from logged URLs.
//! - [`refusal`]: what the API refuses, counted in `synctv_refusals_total`.
//! - [`shutdown`]: the drain signal every task watches.
//! - [`node`]: this node's id and the file-descriptor ceiling on connections.
//! - [`telemetry`]: tracing setup, text or JSON lines, the node id on every line.
//! - [`webhooks`]: the lease holder's sender of each room's webhooks, from the outbox the
//!   history feeds.
//! - [`metrics`]: the process-wide Prometheus recorder behind `/metrics`.

pub mod auth;
pub mod disconnects;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod node;
pub mod refusal;
pub mod revocation;
pub mod session_watch;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod timed_ids;
pub mod webhooks;
pub mod ws;

pub use startup::{Application, StartupError};
