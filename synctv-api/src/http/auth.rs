//! Signing in and staying safe: `POST /api/v1/auth/guest` (a guest picks a name and gets
//! a token), `/auth/ticket` (a single-use WebSocket ticket), `/auth/refresh` (a new
//! token for the same user) and `/auth/logout` (the token is revoked on every node).

use super::{ApiContext, ApiError, ApiJson};
use crate::auth::{new_ticket, AuthUser, TICKET_TTL_MS};
use crate::guard::address_limit::RetryAfter;
use crate::guard::ClientAddress;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use synctv_core::clock::now_ms;
use synctv_core::storage::TicketGrant;
use synctv_core::user::{normalize_name, MAX_USER_NAME_CHARS};
use synctv_core::{User, UserId};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/api/v1/auth/guest", post(guest))
        .route("/api/v1/auth/ticket", post(ticket))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
}

#[derive(Deserialize)]
pub struct GuestRequest {
    pub name: String,
}

#[derive(Serialize)]
struct TokenResponse {
    user_id: UserId,
    name: String,
    token: String,
    expires_at: i64,
}

#[derive(Serialize)]
struct TicketResponse {
    ticket: String,
    expires_at: i64,
}

/// The answer to a request over a per-address limit.
pub fn rate_limited(what: &str, RetryAfter(secs): RetryAfter) -> ApiError {
    ApiError::RateLimited {
        message: format!("too many {what} from this address: retry in {secs} s"),
        retry_after_secs: secs,
    }
}

async fn guest(
    State(ctx): State<ApiContext>,
    ClientAddress(addr): ClientAddress,
    ApiJson(req): ApiJson<GuestRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    ctx.guards
        .guests
        .check(addr)
        .map_err(|retry| rate_limited("guests", retry))?;
    let name = normalize_name(&req.name, MAX_USER_NAME_CHARS).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "name must be 1 to {MAX_USER_NAME_CHARS} characters after trimming"
        ))
    })?;
    let user = ctx.db.create_user(&name, now_ms()).await?;
    tracing::info!(user_id = %user.id, "guest signed in");
    Ok((StatusCode::CREATED, Json(token_for(&ctx, user)?)))
}

async fn ticket(
    State(ctx): State<ApiContext>,
    AuthUser(claims): AuthUser,
) -> Result<(StatusCode, Json<TicketResponse>), ApiError> {
    let (ticket, hash) = new_ticket();
    let grant = TicketGrant {
        user_id: claims.user_id(),
        name: claims.name.clone(),
        token_id: claims.token_id(),
        expires_at: now_ms() + TICKET_TTL_MS,
    };
    ctx.db.insert_ticket(&hash, &grant).await?;
    Ok((
        StatusCode::CREATED,
        Json(TicketResponse {
            ticket,
            expires_at: grant.expires_at,
        }),
    ))
}

async fn refresh(
    State(ctx): State<ApiContext>,
    AuthUser(claims): AuthUser,
) -> Result<Json<TokenResponse>, ApiError> {
    let user = ctx
        .db
        .user(&claims.user_id())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown user; sign in again".into()))?;
    Ok(Json(token_for(&ctx, user)?))
}

async fn logout(
    State(ctx): State<ApiContext>,
    AuthUser(claims): AuthUser,
) -> Result<StatusCode, ApiError> {
    ctx.revocations
        .revoke(&ctx.db, &claims.token_id(), claims.expires_at_ms())
        .await?;
    tracing::info!(user_id = %claims.sub, "token revoked (logout)");
    Ok(StatusCode::NO_CONTENT)
}

fn token_for(ctx: &ApiContext, user: User) -> Result<TokenResponse, ApiError> {
    let (token, expires_at) = ctx.tokens.issue(&user)?;
    Ok(TokenResponse {
        user_id: user.id,
        name: user.name,
        token,
        expires_at,
    })
}
