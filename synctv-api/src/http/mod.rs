//! The HTTP half of the contract: one module per resource, each with its `router()`, and
//! [`ApiContext`] as the only state.

mod auth;
mod cluster;
mod error;
mod extract;
mod health;
mod metrics;
pub mod rooms;
mod web;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};
pub use rooms::verify_room_password;

use crate::auth::TokenService;
use crate::shutdown::Shutdown;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Instant;
use synctv_cluster::ClusterManager;
use synctv_core::storage::Database;
use synctv_core::Config;
use tower_http::trace::TraceLayer;

/// Largest accepted request body; larger ones are refused with 413 `too_large`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a handler may use. Cheap to clone.
#[derive(Clone)]
pub struct ApiContext {
    pub config: Arc<Config>,
    pub db: Database,
    pub cluster: Arc<ClusterManager>,
    pub tokens: Arc<TokenService>,
    pub shutdown: Shutdown,
    pub started_at: Instant,
    pub metrics: PrometheusHandle,
}

pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(rooms::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(cluster::router())
        .merge(web::router())
        .merge(crate::ws::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(ctx)
}

/// `synctv_http_requests_total{status}` and `synctv_http_request_seconds`; no path label,
/// so room ids never become label values.
async fn count_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    ::metrics::counter!("synctv_http_requests_total", "status" => status).increment(1);
    ::metrics::histogram!("synctv_http_request_seconds").record(started.elapsed().as_secs_f64());
    response
}
