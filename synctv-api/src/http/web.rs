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
const STYLE_CSS: &str = include_str!("../../web/style.css");
/// The admin view (`/admin`): its own page, script and style, under the same policy.
const ADMIN_HTML: &str = include_str!("../../web/admin.html");
const ADMIN_JS: &str = include_str!("../../web/admin.js");
const ADMIN_CSS: &str = include_str!("../../web/admin.css");

/// The page's scripts: `app.js` and the ES modules it imports, each at its path.
const SCRIPTS: &[(&str, &str)] = &[
    ("/app.js", include_str!("../../web/app.js")),
    ("/js/api.js", include_str!("../../web/js/api.js")),
    ("/js/clock.js", include_str!("../../web/js/clock.js")),
    (
        "/js/connection.js",
        include_str!("../../web/js/connection.js"),
    ),
    ("/js/forms.js", include_str!("../../web/js/forms.js")),
    ("/js/hook.js", include_str!("../../web/js/hook.js")),
    ("/js/members.js", include_str!("../../web/js/members.js")),
    ("/js/player.js", include_str!("../../web/js/player.js")),
    ("/js/queue.js", include_str!("../../web/js/queue.js")),
    (
        "/js/readiness.js",
        include_str!("../../web/js/readiness.js"),
    ),
    ("/js/room.js", include_str!("../../web/js/room.js")),
    ("/js/servers.js", include_str!("../../web/js/servers.js")),
    ("/js/ui.js", include_str!("../../web/js/ui.js")),
    ("/js/util.js", include_str!("../../web/js/util.js")),
];

pub fn router() -> Router<ApiContext> {
    let mut router = Router::new()
        .route("/", get(|ctx, headers| page(ctx, headers, INDEX_HTML)))
        .route("/admin", get(|ctx, headers| page(ctx, headers, ADMIN_HTML)))
        .route(
            "/admin.js",
            get(|| async { asset("application/javascript; charset=utf-8", ADMIN_JS) }),
        )
        .route(
            "/admin.css",
            get(|| async { asset("text/css; charset=utf-8", ADMIN_CSS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/config.json", get(client_config));
    for &(path, body) in SCRIPTS {
        router = router.route(
            path,
            get(move || async move { asset("application/javascript; charset=utf-8", body) }),
        );
    }
    router
}

/// A page of the client (`document`), with its Content-Security-Policy.
async fn page(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    document: &'static str,
) -> impl IntoResponse {
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
        document,
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

#[cfg(test)]
mod tests {
    use super::SCRIPTS;
    use std::path::Path;

    /// A module added to web/js/ and not listed here would be a 404 in the page.
    #[test]
    fn every_module_in_web_js_is_served() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/js");
        let entries = std::fs::read_dir(&dir).expect("web/js is part of the crate");
        for entry in entries.flatten() {
            let path = format!("/js/{}", entry.file_name().to_string_lossy());
            if path.ends_with(".js") {
                assert!(
                    SCRIPTS.iter().any(|(served, _)| *served == path),
                    "{path} is not served"
                );
            }
        }
    }
}
