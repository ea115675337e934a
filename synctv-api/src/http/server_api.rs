//! The server API (contract 1.1): what the operator's own backend may do, with the key
//! in `X-API-Key` ([`ServerKey`]): publish a system message, kick a user from a room (as
//! the `kick` message, from the server itself), disconnect a user on every node, and read
//! each live node's counters.

use super::server_key::ServerKey;
use super::{ApiContext, ApiError, ApiJson};
use crate::ws::MAX_CHAT_CHARS;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use synctv_cluster::ModerationError;
use synctv_core::storage::{ChangeOutcome, Rejection, RoomChange, RoomChangeKind};
use synctv_core::{RoomId, UserId};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/v1/server/rooms/{id}/messages", post(system_message))
        .route("/api/v1/server/rooms/{id}/kick", post(kick))
        .route(
            "/api/v1/server/users/{user_id}/disconnect",
            post(disconnect_user),
        )
        .route("/api/v1/server/stats", get(stats))
}

#[derive(Deserialize)]
struct SystemMessage {
    text: String,
}

#[derive(Serialize)]
struct Seq {
    seq: i64,
}

/// A `chat` event with `by: null`, in the room's order like any other.
async fn system_message(
    _: ServerKey,
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SystemMessage>,
) -> Result<(StatusCode, Json<Seq>), ApiError> {
    let chars = body.text.chars().count();
    if !(1..=MAX_CHAT_CHARS).contains(&chars) {
        return Err(ApiError::BadRequest(format!(
            "text must be 1 to {MAX_CHAT_CHARS} characters"
        )));
    }
    let outcome = ctx
        .cluster
        .submit(RoomChange {
            room: RoomId::from(id),
            by: None,
            kind: RoomChangeKind::Chat(body.text),
        })
        .await?;
    match outcome {
        // A chat always makes its one event.
        ChangeOutcome::Committed(done) => match done.seq() {
            Some(seq) => Ok((StatusCode::CREATED, Json(Seq { seq }))),
            None => Err(ApiError::Internal("a chat made no event".into())),
        },
        ChangeOutcome::Rejected(Rejection::NotFound) => Err(ApiError::room_not_found()),
        ChangeOutcome::Rejected(_) => Err(ApiError::Conflict("the room changed meanwhile".into())),
    }
}

#[derive(Deserialize)]
struct Kick {
    user_id: String,
    ban_secs: Option<i64>,
}

/// A `member_kicked` event from the server itself (`by: null`), which may kick anyone:
/// the user's connections leave the room on every node, banned for `ban_secs`.
async fn kick(
    _: ServerKey,
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Kick>,
) -> Result<Json<Seq>, ApiError> {
    let seq = ctx
        .cluster
        .kick(
            &RoomId::from(id),
            &UserId::from(body.user_id),
            body.ban_secs.unwrap_or(0),
            None,
        )
        .await
        .map_err(|e| match e {
            ModerationError::NotFound => ApiError::room_not_found(),
            ModerationError::UnknownUser => ApiError::NotFound("no such user".into()),
            ModerationError::OutOfRange => {
                ApiError::BadRequest("ban_secs must be 0 to 31536000".into())
            }
            ModerationError::Forbidden(why) => ApiError::Forbidden(why.into()),
            ModerationError::Cluster(e) => e.into(),
        })?;
    Ok(Json(Seq { seq }))
}

#[derive(Serialize)]
struct Disconnected {
    connections: u64,
}

/// Closes every connection of the user, on every node, with close code 4000.
async fn disconnect_user(
    _: ServerKey,
    State(ctx): State<ApiContext>,
    Path(user_id): Path<String>,
) -> Result<Json<Disconnected>, ApiError> {
    let user = UserId::from(user_id);
    if ctx.db.user(&user).await?.is_none() {
        return Err(ApiError::NotFound("no such user".into()));
    }
    let live: Vec<String> = ctx
        .cluster
        .nodes()
        .await
        .into_iter()
        .map(|node| node.node_id)
        .collect();
    let connections = ctx.disconnects.disconnect(&ctx.db, &user, &live).await?;
    tracing::info!(user = %user, connections, "user disconnected through the server API");
    Ok(Json(Disconnected { connections }))
}

#[derive(Serialize)]
struct Stats {
    nodes: Vec<NodeStats>,
}

#[derive(Serialize)]
struct NodeStats {
    node_id: String,
    region: String,
    connections: usize,
    rooms: usize,
    deliveries_total: u64,
    refusals_total: u64,
}

/// Every live node's counters, as its last heartbeat carried them (this node's are
/// current).
async fn stats(_: ServerKey, State(ctx): State<ApiContext>) -> Json<Stats> {
    let nodes = ctx
        .cluster
        .nodes()
        .await
        .into_iter()
        .map(|node| NodeStats {
            node_id: node.node_id,
            region: node.region,
            connections: node.connections,
            rooms: node.rooms,
            deliveries_total: node.deliveries_total,
            refusals_total: node.refusals_total,
        })
        .collect();
    Json(Stats { nodes })
}
