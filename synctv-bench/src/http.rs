//! The HTTP half of the contract the bench needs: guest tokens and room creation.

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request to {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

#[derive(Debug, Deserialize)]
struct GuestAnswer {
    token: String,
}

#[derive(Debug, Deserialize)]
struct RoomAnswer {
    id: String,
}

/// A small HTTP client bound to no node: every call names its base URL.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
}

impl Api {
    pub fn new() -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|source| HttpError::Request {
                url: String::new(),
                source,
            })?;
        Ok(Self { client })
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        url: String,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Result<T, HttpError> {
        let mut req = self.client.post(&url).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let fail = |source| HttpError::Request {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(fail)?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(HttpError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        resp.json().await.map_err(fail)
    }

    /// `POST /api/v1/auth/guest`: a fresh user and its token.
    pub async fn guest_token(&self, base: &str, name: &str) -> Result<String, HttpError> {
        let url = format!("{base}/api/v1/auth/guest");
        let answer: GuestAnswer = self.post(url, None, json!({ "name": name })).await?;
        Ok(answer.token)
    }

    /// `POST /api/v1/rooms` with the owner's token; returns the room id.
    pub async fn create_room(
        &self,
        base: &str,
        token: &str,
        name: &str,
    ) -> Result<String, HttpError> {
        let url = format!("{base}/api/v1/rooms");
        let answer: RoomAnswer = self.post(url, Some(token), json!({ "name": name })).await?;
        Ok(answer.id)
    }

    /// `n` guest tokens, user `i` created on `bases[i % len]`, `concurrency` requests at a time.
    pub async fn guest_tokens(
        &self,
        bases: &[String],
        prefix: &str,
        n: usize,
        concurrency: usize,
    ) -> Result<Vec<String>, HttpError> {
        stream::iter(0..n)
            .map(|i| {
                let base = &bases[i % bases.len()];
                let name = format!("{prefix}{i}");
                async move { self.guest_token(base, &name).await }
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }
}
