//! Guest tokens: HS256 JWTs naming the user, and the extractor that checks them;
//! WebSocket tickets, which stand in for a token in a URL.
//!
//! Each token carries an id (`jti`) so that it can be revoked (see
//! [`crate::revocation`]). A ticket is 32 random bytes, base64url; the database keeps
//! only its SHA-256, and hands it out once.
//!
//! The secret is `auth.jwt_secret` when configured (required in cluster mode, so every
//! node accepts every node's tokens); otherwise it is generated once and kept in the
//! database, so tokens survive a restart of a single node.

use crate::http::{ApiContext, ApiError};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};
use synctv_core::clock::now_ms;
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
    /// The token's id, by which it is revoked. Tokens issued before ids existed have
    /// none; [`Claims::token_id`] names them by user and issue time instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
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

    /// The id a revocation names this token by.
    pub fn token_id(&self) -> String {
        if self.jti.is_empty() {
            format!("{}@{}", self.sub, self.iat)
        } else {
            self.jti.clone()
        }
    }

    /// When the token expires, ms since the Unix epoch.
    pub fn expires_at_ms(&self) -> i64 {
        i64::try_from(self.exp.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    pub fn identity(&self) -> Identity {
        Identity {
            actor: self.actor(),
            token_id: self.token_id(),
        }
    }
}

/// Who a WebSocket connection belongs to, and the token it was opened with (directly or
/// through a ticket), whose revocation closes it.
#[derive(Clone, Debug)]
pub struct Identity {
    pub actor: Actor,
    pub token_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token has been revoked (logged out)")]
    Revoked,
    #[error("the ticket is unknown, used or expired")]
    BadTicket,
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
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
        Ok((token, claims.expires_at_ms()))
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

/// How long a WebSocket ticket is good for.
pub const TICKET_TTL_MS: i64 = 30_000;
/// Random bytes in a ticket.
const TICKET_BYTES: usize = 32;

/// A new ticket: what the client is given, and the hash the database keeps.
pub fn new_ticket() -> (String, String) {
    let mut bytes = [0u8; TICKET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    let ticket = URL_SAFE_NO_PAD.encode(bytes);
    let hash = ticket_hash(&bytes);
    (ticket, hash)
}

/// The hash under which a presented ticket is stored, or `None` for a string that no
/// ticket could be (so garbage never reaches the database).
pub fn parse_ticket(ticket: &str) -> Option<String> {
    if ticket.len() != 43 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(ticket).ok()?;
    let bytes: [u8; TICKET_BYTES] = bytes.try_into().ok()?;
    Some(ticket_hash(&bytes))
}

fn ticket_hash(bytes: &[u8; TICKET_BYTES]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Who a WebSocket upgrade authenticates as: a `?ticket=` (taken from the database, so
/// it works once, on any node), else a token in `?token=` or `Authorization: Bearer`.
pub async fn authenticate_upgrade(
    ctx: &ApiContext,
    ticket: Option<&str>,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Result<Identity, ApiError> {
    if let Some(ticket) = ticket {
        let hash = parse_ticket(ticket).ok_or(AuthError::BadTicket)?;
        let grant = ctx
            .db
            .take_ticket(&hash, now_ms())
            .await?
            .ok_or(AuthError::BadTicket)?;
        if ctx.revocations.is_revoked(&grant.token_id) {
            return Err(AuthError::Revoked.into());
        }
        return Ok(Identity {
            actor: Actor {
                user_id: grant.user_id,
                name: grant.name,
            },
            token_id: grant.token_id,
        });
    }
    let token = token
        .filter(|t| !t.is_empty())
        .or_else(|| bearer_token(headers))
        .ok_or(AuthError::Missing)?;
    Ok(verify_live(ctx, token)?.identity())
}

/// A token's claims, if it verifies and has not been revoked.
pub fn verify_live(ctx: &ApiContext, token: &str) -> Result<Claims, AuthError> {
    let claims = ctx.tokens.verify(token)?;
    if ctx.revocations.is_revoked(&claims.token_id()) {
        return Err(AuthError::Revoked);
    }
    Ok(claims)
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
        Ok(AuthUser(verify_live(ctx, token)?))
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

    #[test]
    fn tickets_parse_to_their_hash_and_nothing_else_does() {
        let (ticket, hash) = new_ticket();
        assert_eq!(ticket.len(), 43);
        assert_eq!(parse_ticket(&ticket), Some(hash));
        let mut other = ticket.clone();
        other.pop();
        assert_eq!(parse_ticket(&other), None);
        assert_eq!(parse_ticket(&format!("{other}!")), None);
        assert_eq!(parse_ticket(""), None);
        assert_eq!(parse_ticket(&"a".repeat(44)), None);
    }

    #[test]
    fn each_token_has_its_own_id() {
        let tokens = TokenService::new(b"0123456789abcdef0123", 60);
        let first = tokens.verify(&tokens.issue(&alice()).unwrap().0).unwrap();
        let second = tokens.verify(&tokens.issue(&alice()).unwrap().0).unwrap();
        assert_eq!(first.jti.len(), 32);
        assert_ne!(first.token_id(), second.token_id());
    }
}
