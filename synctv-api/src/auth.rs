//! Guest tokens: HS256 JWTs naming the user, and the extractor that checks them.
//!
//! The secret is `auth.jwt_secret` when configured (required in cluster mode, so every
//! node accepts every node's tokens); otherwise it is generated once and kept in the
//! database, so tokens survive a restart of a single node.

use crate::http::{ApiContext, ApiError};
use axum::extract::{FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use synctv_core::storage::{Database, StorageError};
use synctv_core::{Actor, Config, User, UserId};

/// The settings key of the generated secret.
const SECRET_SETTING: &str = "jwt_secret";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The name the guest chose.
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
}

impl Claims {
    pub fn user_id(&self) -> UserId {
        UserId::from(self.sub.as_str())
    }

    /// The user as events name them (`by`).
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id(),
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenService {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is exact: a token is good until `exp`, not a minute later.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// The configured secret, else the one kept in the database (generated on first use).
    pub async fn from_config(config: &Config, db: &Database) -> Result<Self, StorageError> {
        let secret = match &config.auth.jwt_secret {
            Some(secret) => secret.clone(),
            None => {
                db.setting_or_insert(SECRET_SETTING, generate_secret)
                    .await?
            }
        };
        Ok(Self::new(secret.as_bytes(), config.auth.token_ttl_secs))
    }

    /// A token for `user`, and when it expires (ms since the Unix epoch).
    pub fn issue(&self, user: &User) -> Result<(String, i64), ApiError> {
        self.issue_at(user, unix_secs())
    }

    /// A token as if issued at `issued_at` (seconds since the Unix epoch).
    pub fn issue_at(&self, user: &User, issued_at: u64) -> Result<(String, i64), ApiError> {
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.name.clone(),
            iat: issued_at,
            exp: issued_at.saturating_add(self.ttl_secs),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
        let expires_at = i64::try_from(claims.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
        Ok((token, expires_at))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The token of `Authorization: Bearer …`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token of a WebSocket upgrade: `?token=` first, else the `Authorization` header
/// (browsers cannot set headers on a WebSocket).
pub fn request_token(parts: &Parts) -> Option<String> {
    let from_query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(mut q)| q.remove("token"))
        .filter(|t| !t.is_empty());
    from_query.or_else(|| bearer_token(&parts.headers).map(str::to_owned))
}

/// A request made with a valid bearer token; 401 otherwise.
#[derive(Clone, Debug)]
pub struct AuthUser(pub Claims);

impl FromRequestParts<ApiContext> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(AuthError::Missing)?;
        Ok(AuthUser(ctx.tokens.verify(token)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User {
            id: UserId::from("u1"),
            name: "alice".into(),
            created_at: 0,
        }
    }

    #[test]
    fn issued_tokens_verify_and_forged_ones_do_not() {
        let tokens = TokenService::new(b"0123456789abcdef0123", 60);
        let (token, _) = tokens.issue(&alice()).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.actor().name, "alice");
        let other = TokenService::new(b"another-secret-entirely", 60);
        assert!(matches!(other.verify(&token), Err(AuthError::Invalid)));
        assert!(matches!(tokens.verify("garbage"), Err(AuthError::Invalid)));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let tokens = TokenService::new(b"0123456789abcdef0123", 60);
        let (token, _) = tokens.issue_at(&alice(), unix_secs() - 120).unwrap();
        assert!(matches!(tokens.verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn bearer_header_is_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
