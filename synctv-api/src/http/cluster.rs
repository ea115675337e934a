//! `GET /api/v1/cluster/nodes`: the live nodes (this one alone in single-node mode).

use super::ApiContext;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/api/v1/cluster/nodes", get(nodes))
}

async fn nodes(State(ctx): State<ApiContext>) -> Json<Value> {
    Json(json!({"nodes": ctx.cluster.nodes().await}))
}
