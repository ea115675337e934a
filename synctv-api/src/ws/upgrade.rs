//! `GET /ws`: authenticate, admit, upgrade. Every refusal is an HTTP answer with the
//! contract's JSON error body, and no WebSocket is opened.

use super::handshake::Handshake;
use super::session::{self, SessionWatches};
use crate::auth::authenticate_upgrade;
use crate::http::{ApiContext, ApiError};
use crate::refusal::Refusal;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use synctv_cluster::Refusal as Admission;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A small read buffer: most connections are idle, and memory per connection is what
/// bounds a node. Messages over the contract's 64 KiB still need to be read whole so that
/// they can be answered with `too_large` on an open connection; past this they close it.
const READ_BUFFER: usize = 1024;
const HARD_MESSAGE_LIMIT: usize = 1024 * 1024;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    ticket: Option<String>,
}

async fn upgrade(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    handshake: Handshake,
) -> Response {
    if ctx.shutdown.is_draining() {
        Refusal::Draining.record(ctx.cluster.connections().counters());
        return ApiError::Unavailable(
            "the server is shutting down: connect to another node".into(),
        )
        .into_response();
    }
    let identity = match authenticate_upgrade(
        &ctx,
        query.ticket.as_deref(),
        query.token.as_deref(),
        &headers,
    )
    .await
    {
        Ok(identity) => identity,
        Err(ApiError::Unauthorized(reason)) => {
            Refusal::BadToken.record(ctx.cluster.connections().counters());
            return ApiError::Unauthorized(format!(
                "{reason}: a valid ?ticket=, ?token= or Authorization: Bearer is required"
            ))
            .into_response();
        }
        Err(other) => return other.into_response(),
    };
    let actor = identity.actor;
    let watches = SessionWatches {
        revoked: ctx.revocations.watch(&identity.token_id),
        disconnected: ctx.disconnects.watch(&actor.user_id),
    };
    let permit = match ctx.cluster.connections().admit(&actor.user_id) {
        Ok(permit) => permit,
        Err(refusal) => {
            let message = match refusal {
                Admission::TooManyForUser => "too many connections for this user on this node",
                _ => "this node is at its connection limit: try another node",
            };
            return ApiError::TooManyConnections(message.into()).into_response();
        }
    };
    // tungstenite only reads (and answers pings): what the server sends goes through the
    // connection's writer, so its write buffer stays empty and is passed on at once.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(
            HARD_MESSAGE_LIMIT.max(ctx.config.limits.max_message_bytes + 1),
        ));
    handshake.accept(move |upgraded, socket| {
        session::run(upgraded, socket, config, ctx, actor, permit, watches)
    })
}
