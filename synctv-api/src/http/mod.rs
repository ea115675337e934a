//! The HTTP half of the contract: one module per resource, each with its `router()`, and
//! [`ApiContext`] as the only state.

mod auth;
mod cluster;
mod error;
mod extract;
mod health;
mod members;
mod metrics;
mod rooms;
mod server_api;
mod server_key;
mod web;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};

use crate::auth::TokenService;
use crate::disconnects::Disconnects;
use crate::guard::redact::redact_uri;
use crate::guard::{Guards, OriginPolicy};
use crate::revocation::Revocations;
use crate::shutdown::Shutdown;
use crate::ws::listener::Peer;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
    /// Logged-out tokens, kept in step with the other nodes.
    pub revocations: Arc<Revocations>,
    /// The server API's disconnects, kept in step with the other nodes.
    pub disconnects: Arc<Disconnects>,
    /// The Origin rule, trusted proxies and per-address limits.
    pub guards: Arc<Guards>,
}

pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(rooms::router())
        .merge(members::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(cluster::router())
        .merge(server_api::router())
        .merge(web::router())
        .merge(crate::ws::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this endpoint does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(ctx.clone(), check_origin))
        .layer(crate::guard::origin::cors(Arc::clone(&ctx.guards)))
        .layer(middleware::from_fn(crate::guard::headers::security_headers))
        .layer(middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(ctx)
}

/// The request's span, with credentials redacted from its URL (the default span logs
/// the URL as it came, `?token=` included).
fn request_span(req: &Request) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redact_uri(&req.uri().to_string()),
        version = ?req.version(),
    )
}

/// The Origin rule, before any handler (a refused upgrade opens no socket).
async fn check_origin(State(ctx): State<ApiContext>, req: Request, next: Next) -> Response {
    if OriginPolicy::applies_to(req.method(), req.uri().path(), req.headers()) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .map(|ConnectInfo(peer)| peer.addr.ip());
        if let Err(refused) = ctx
            .guards
            .origins
            .check(req.headers(), peer, &ctx.guards.proxies)
        {
            return refused.into_response();
        }
    }
    next.run(req).await
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
