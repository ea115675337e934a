//! `GET /metrics`: Prometheus text from the process-wide recorder.

use super::ApiContext;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(ctx): State<ApiContext>) -> impl IntoResponse {
    ::metrics::gauge!("synctv_connections").set(ctx.cluster.connections().count() as f64);
    ::metrics::gauge!("synctv_uptime_seconds").set(ctx.started_at.elapsed().as_secs_f64());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        ctx.metrics.render(),
    )
}
