//! The WebSocket opening handshake (RFC 6455 section 4.2), done here rather than by
//! axum's `WebSocketUpgrade` because the connection keeps its socket: its writer writes
//! into it directly (see `writer.rs`), and only reading goes through the WebSocket
//! library.

use super::listener::{Peer, SharedTcp};
use crate::http::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use std::future::Future;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A valid upgrade request, with what is needed to take the connection over.
pub struct Handshake {
    accept_key: HeaderValue,
    on_upgrade: OnUpgrade,
    socket: SharedTcp,
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let headers = &parts.headers;
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return Err(bad_request("the Connection header must include `upgrade`"));
        }
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return Err(bad_request("the Upgrade header must be `websocket`"));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(bad_request("Sec-WebSocket-Version must be 13"));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(bad_request("the Sec-WebSocket-Key header is missing"));
        };
        let accept_key = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| ApiError::Internal("accept key".into()).into_response())?;
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded (HTTP/1.1 is required)",
            )
                .into_response());
        };
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<Peer>>() else {
            return Err(
                ApiError::Internal("served without a SharedListener".into()).into_response()
            );
        };
        Ok(Handshake {
            accept_key,
            on_upgrade,
            socket: peer.socket.clone(),
        })
    }
}

impl Handshake {
    /// Answers `101 Switching Protocols` and runs `session` on the connection once hyper
    /// hands it over.
    pub fn accept<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(Upgraded, SharedTcp) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Handshake {
            accept_key,
            on_upgrade,
            socket,
        } = self;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => session(upgraded, socket).await,
                Err(e) => tracing::debug!(error = %e, "the upgrade did not complete"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, accept_key),
            ],
        )
            .into_response()
    }
}

/// Whether a comma-separated header holds `token`, in any case.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn bad_request(message: &str) -> Response {
    ApiError::BadRequest(message.into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_are_found_in_lists_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!header_has_token(&headers, header::UPGRADE, "websocket"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!header_has_token(&headers, header::UPGRADE, "websocket"));
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
