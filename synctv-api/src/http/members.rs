//! A room's people and what plays next (1.1): `GET /api/v1/rooms/{id}/members` (the
//! users present on any node, with role, status, drift and mute) and
//! `GET /api/v1/rooms/{id}/queue`.

use super::{ApiContext, ApiError};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use synctv_cluster::MemberView;
use synctv_core::queue::QueueItem;
use synctv_core::RoomId;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/v1/rooms/{id}/members", get(members))
        .route("/api/v1/rooms/{id}/queue", get(queue))
}

#[derive(Serialize)]
struct MemberList {
    members: Vec<MemberView>,
}

async fn members(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<MemberList>, ApiError> {
    let members = ctx
        .cluster
        .member_list(&RoomId::from(id))
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    Ok(Json(MemberList { members }))
}

#[derive(Serialize)]
struct QueueList {
    queue: Vec<QueueItem>,
}

async fn queue(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<QueueList>, ApiError> {
    let queue = ctx
        .cluster
        .queue(&RoomId::from(id))
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    Ok(Json(QueueList { queue }))
}
