//! The embedded browser client: the page, its script and style, and `/config.json`
//! (which servers the page may connect to). The page is served with its
//! Content-Security-Policy (see [`crate::guard::headers`]).

use super::ApiContext;
use crate::guard::headers::page_policy;
use axum::extract::State;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/", get(page))
        .route(
            "/app.js",
            get(|| async { asset("application/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/config.json", get(client_config))
}

async fn page(State(ctx): State<ApiContext>, headers: HeaderMap) -> impl IntoResponse {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let policy = page_policy(host, &ctx.config.server.public_urls);
    let policy = HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CONTENT_SECURITY_POLICY, policy),
        ],
        INDEX_HTML,
    )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, content_type)], body)
}

/// The servers the page may use, this node's region, and every live node with its region
/// (contract 1.1, "Regions").
async fn client_config(State(ctx): State<ApiContext>) -> Json<Value> {
    let nodes: Vec<Value> = ctx
        .cluster
        .nodes()
        .await
        .into_iter()
        .map(|n| json!({"node_id": n.node_id, "address": n.address, "region": n.region}))
        .collect();
    Json(json!({
        "servers": ctx.config.server.public_urls,
        "region": ctx.config.cluster.region,
        "nodes": nodes,
    }))
}
