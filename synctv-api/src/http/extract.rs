//! `Json` and `Query` extractors whose rejections are the contract's 400 (or 413) JSON
//! errors instead of axum's plain-text ones.

use super::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A JSON object body. Missing, non-JSON, mistyped or oversized bodies are refused with
/// `bad_request` (or `too_large`), and so is JSON that is not an object: every body of the
/// contract is one, and serde would otherwise read a struct from an array (`["alice"]`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // First the body as JSON text (content type, size and syntax checked), then the
        // object check, then the fields.
        let raw = match axum::Json::<Box<RawValue>>::from_request(req, state).await {
            Ok(axum::Json(raw)) => raw,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if !raw.get().trim_start().starts_with('{') {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        match axum::Json::<T>::from_bytes(raw.get().as_bytes()) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge("the request body is too large".into());
    }
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    ApiError::BadRequest(message)
}

/// A query string. Values that do not parse are refused with `bad_request`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}
