//! `ServerKey`: the extractor every server API handler takes first. Without a configured
//! key the server API does not exist (404); with one, `X-API-Key` must match it (401
//! otherwise), compared in constant time.

use super::{ApiContext, ApiError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const API_KEY_HEADER: &str = "x-api-key";

/// Proof that the request carried the server API's key.
pub struct ServerKey;

impl FromRequestParts<ApiContext> for ServerKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = ctx.config.api.key.as_deref() else {
            return Err(ApiError::NotFound(
                "the server API is off (SYNCTV__API__KEY is not set)".into(),
            ));
        };
        let given = parts
            .headers
            .get(API_KEY_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if keys_match(given, expected.as_bytes()) {
            Ok(ServerKey)
        } else {
            Err(ApiError::Unauthorized(
                "a valid X-API-Key header is required".into(),
            ))
        }
    }
}

/// Compares digests, so the time taken says nothing about the key, its length included.
fn keys_match(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::keys_match;

    #[test]
    fn only_the_exact_key_matches() {
        let key = b"0123456789abcdef0123456789abcdef";
        assert!(keys_match(key, key));
        assert!(!keys_match(b"", key));
        assert!(!keys_match(&key[..31], key));
        assert!(!keys_match(b"0123456789abcdef0123456789abcdeF", key));
    }
}
