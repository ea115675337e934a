use crate::helpers::{spawn_app, spawn_app_with, Backend};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The page's scripts, as served: `/app.js` and every module in `web/js/`.
fn scripts() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/js");
    let mut paths = vec!["/app.js".to_owned()];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        paths.push(format!("/js/{}", entry.file_name().to_string_lossy()));
    }
    paths
}

#[tokio::test]
async fn web_client_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut files = vec![
        ("/".to_owned(), "text/html"),
        ("/style.css".to_owned(), "text/css"),
    ];
    files.extend(scripts().into_iter().map(|p| (p, "application/javascript")));
    for (path, content_type) in files {
        let path = path.as_str();
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        assert!(!resp.text().await.unwrap().is_empty());
    }
    let config: Value = app.get("/config.json").await.json().await.unwrap();
    assert_eq!(config["servers"], json!([]));
    assert_eq!(config["region"], "default");
    let nodes = config["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{config}");
    assert_eq!(nodes[0]["node_id"], app.ctx.cluster.node_id());
    assert_eq!(nodes[0]["region"], "default");
}

#[tokio::test]
async fn config_json_lists_public_urls() {
    let urls = vec![
        "https://a.example".to_owned(),
        "https://b.example".to_owned(),
    ];
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.server.public_urls = urls.clone();
        c.cluster.region = "eu-west".into();
    })
    .await;
    let config: Value = app.get("/config.json").await.json().await.unwrap();
    assert_eq!(config["servers"], json!(urls));
    assert_eq!(config["region"], "eu-west");
    assert_eq!(config["nodes"][0]["region"], "eu-west");
}

#[tokio::test]
async fn the_page_carries_its_content_security_policy_and_security_headers() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.server.public_urls = vec!["https://b.example".into()]
    })
    .await;
    let resp = app.get("/").await;
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "media-src 'self' http: https: blob:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive}: {csp}");
    }
    let own = format!("ws://127.0.0.1:{}", app.port);
    assert!(
        csp.contains(&own) && csp.contains("wss://b.example"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    // The page has no inline script or style for the policy to refuse.
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="));
    for path in ["/", "/app.js", "/api/v1/rooms", "/no-such-path"] {
        let resp = app.get(path).await;
        let headers = resp.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
}

#[tokio::test]
async fn the_page_never_puts_its_token_in_a_url() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut script = String::new();
    for path in scripts() {
        script.push_str(&app.get(&path).await.text().await.unwrap());
    }
    assert!(
        script.contains("/ws?ticket="),
        "the page connects with tickets"
    );
    assert!(
        !script.contains("?token="),
        "the page puts a token in a URL"
    );
    assert!(script.contains("/api/v1/auth/refresh"));
}
