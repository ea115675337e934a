//! Rooms: create, read, list (newest first, cursor paging), archive, and read history.

use super::{ApiContext, ApiError, ApiJson, ApiQuery};
use crate::auth::AuthUser;
use crate::guard::ClientAddress;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use synctv_core::clock::now_ms;
use synctv_core::room::MAX_ROOM_NAME_CHARS;
use synctv_core::storage::{
    ChangeOutcome, EventPage, NewRoom, Rejection, RoomChange, RoomChangeKind, RoomCursor,
};
use synctv_core::user::normalize_name;
use synctv_core::{Control, Event, Room, RoomId, RoomRecord};

/// Longest accepted room password, in characters; bounds the hashing work per request.
const MAX_PASSWORD_CHARS: usize = 1024;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/v1/rooms", get(list_rooms).post(create_room))
        .route("/api/v1/rooms/{id}", get(get_room).delete(archive_room))
        .route("/api/v1/rooms/{id}/events", get(room_events))
}

#[derive(Deserialize)]
struct CreateRoom {
    name: String,
    /// Absent or null: no password. An empty string is refused rather than read as "no
    /// password", so a client bug cannot silently open a room meant to be closed.
    password: Option<String>,
    control: Option<Control>,
}

async fn create_room(
    State(ctx): State<ApiContext>,
    ClientAddress(addr): ClientAddress,
    AuthUser(claims): AuthUser,
    ApiJson(req): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    ctx.guards
        .rooms
        .check(addr)
        .map_err(|retry| super::auth::rate_limited("rooms", retry))?;
    let name = normalize_name(&req.name, MAX_ROOM_NAME_CHARS).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "name must be 1 to {MAX_ROOM_NAME_CHARS} characters after trimming"
        ))
    })?;
    let password_hash = match req.password {
        None => None,
        Some(p) if p.is_empty() || p.chars().count() > MAX_PASSWORD_CHARS => {
            return Err(ApiError::BadRequest(format!(
                "password must be 1 to {MAX_PASSWORD_CHARS} characters; omit it for an open room"
            )))
        }
        Some(p) => Some(hash_password(p).await?),
    };
    let owner_id = claims.user_id();
    // A token signed with a shared secret may name a user this database never saw.
    if ctx.db.user(&owner_id).await?.is_none() {
        return Err(ApiError::Unauthorized("unknown user; sign in again".into()));
    }
    let record = ctx
        .db
        .create_room(
            NewRoom {
                name: &name,
                owner_id: &owner_id,
                control: req.control.unwrap_or_default(),
                password_hash: password_hash.as_deref(),
            },
            now_ms(),
        )
        .await?;
    tracing::info!(room = %record.id, owner = %owner_id, "room created");
    Ok((StatusCode::CREATED, Json(record.to_room(0))))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct RoomList {
    rooms: Vec<Room>,
    next_cursor: Option<String>,
}

async fn list_rooms(
    State(ctx): State<ApiContext>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<RoomList>, ApiError> {
    let limit = in_range("limit", query.limit.unwrap_or(20), 1, 100)?;
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(RoomCursor::decode(raw).ok_or_else(bad_cursor)?),
    };
    let page = ctx
        .db
        .list_rooms(limit, cursor.as_ref())
        .await?
        .ok_or_else(bad_cursor)?;
    Ok(Json(RoomList {
        rooms: futures_util::future::join_all(page.rooms.iter().map(|r| room_view(&ctx, r))).await,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

async fn get_room(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Room>, ApiError> {
    let record = live_room(&ctx, &RoomId::from(id)).await?;
    Ok(Json(room_view(&ctx, &record).await))
}

/// Archives the room: it leaves listings, its members get `room_archived` and are
/// removed, and its history stays readable.
async fn archive_room(
    State(ctx): State<ApiContext>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = live_room(&ctx, &RoomId::from(id)).await?;
    if record.owner_id != claims.user_id() {
        return Err(ApiError::Forbidden(
            "only the room's owner may archive it".into(),
        ));
    }
    let outcome = ctx
        .cluster
        .submit(RoomChange {
            room: record.id.clone(),
            by: Some(claims.actor()),
            kind: RoomChangeKind::Archive,
        })
        .await?;
    match outcome {
        ChangeOutcome::Committed(_) => {
            tracing::info!(room = %record.id, "room archived");
            Ok(StatusCode::NO_CONTENT)
        }
        // Someone archived it between our read and the commit.
        ChangeOutcome::Rejected(Rejection::NotFound) => Err(ApiError::room_not_found()),
        ChangeOutcome::Rejected(_) => Err(ApiError::Conflict("the room changed meanwhile".into())),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct EventList {
    events: Vec<Event>,
    next_after: Option<i64>,
}

async fn room_events(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest("after must be 0 or more".into()));
    }
    let limit = in_range("limit", query.limit.unwrap_or(100), 1, 1000)?;
    let room = RoomId::from(id);
    // Archived rooms keep a readable history; only unknown ones are 404.
    if ctx.db.room(&room).await?.is_none() {
        return Err(ApiError::room_not_found());
    }
    let EventPage { events, next_after } = ctx.db.events_after(&room, after, limit).await?;
    Ok(Json(EventList { events, next_after }))
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    // Argon2 is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || synctv_core::password::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// A room that exists and is not archived; 404 otherwise.
async fn live_room(ctx: &ApiContext, id: &RoomId) -> Result<RoomRecord, ApiError> {
    match ctx.db.room(id).await? {
        Some(record) if record.archived_at.is_none() => Ok(record),
        _ => Err(ApiError::room_not_found()),
    }
}

async fn room_view(ctx: &ApiContext, record: &RoomRecord) -> Room {
    record.to_room(ctx.cluster.room_members(&record.id).await)
}

fn in_range(key: &str, value: u32, min: u32, max: u32) -> Result<u32, ApiError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!(
            "{key} must be between {min} and {max}"
        )))
    }
}

fn bad_cursor() -> ApiError {
    ApiError::BadRequest("cursor was not issued by this server".into())
}
