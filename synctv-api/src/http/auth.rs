//! `POST /api/v1/auth/guest`: a guest picks a name and gets a token.

use super::{ApiContext, ApiError, ApiJson};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use synctv_core::clock::now_ms;
use synctv_core::user::{normalize_name, MAX_USER_NAME_CHARS};
use synctv_core::UserId;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/api/v1/auth/guest", post(guest))
}

#[derive(Deserialize)]
struct GuestRequest {
    name: String,
}

#[derive(Serialize)]
struct GuestResponse {
    user_id: UserId,
    name: String,
    token: String,
    expires_at: i64,
}

async fn guest(
    State(ctx): State<ApiContext>,
    ApiJson(req): ApiJson<GuestRequest>,
) -> Result<(StatusCode, Json<GuestResponse>), ApiError> {
    let name = normalize_name(&req.name, MAX_USER_NAME_CHARS).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "name must be 1 to {MAX_USER_NAME_CHARS} characters after trimming"
        ))
    })?;
    let user = ctx.db.create_user(&name, now_ms()).await?;
    let (token, expires_at) = ctx.tokens.issue(&user)?;
    tracing::info!(user_id = %user.id, "guest signed in");
    Ok((
        StatusCode::CREATED,
        Json(GuestResponse {
            user_id: user.id,
            name: user.name,
            token,
            expires_at,
        }),
    ))
}
