use crate::helpers::{spawn_app, spawn_app_with, Backend};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn web_client_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/app.js", "application/javascript"),
        ("/style.css", "text/css"),
    ] {
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
