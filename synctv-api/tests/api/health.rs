use crate::both_backends;
use crate::helpers::{assert_error, spawn_app, Backend, TestProcess};
use reqwest::StatusCode;
use serde_json::{json, Value};

both_backends!(
    health_names_the_node,
    ready_when_database_is_up,
    ready_is_unavailable_without_database,
    ready_is_draining_after_shutdown_begins,
    metrics_are_prometheus_text,
    cluster_nodes_lists_this_node,
    unknown_paths_are_json_not_found,
    stop_drains_and_returns,
);

async fn health_names_the_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node_id"], app.ctx.cluster.node_id());
    assert!(body["uptime_seconds"].as_u64().is_some());
}

async fn ready_when_database_is_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/ready").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body: Value = resp.json().await.unwrap();
    // One link, the primary, named without its password (these URLs carry none).
    let links = body["checks"]
        .as_object_mut()
        .and_then(|checks| checks.remove("databases"))
        .expect("checks.databases");
    assert_eq!(
        links,
        json!([{"url": app.config.database.url, "role": "primary", "status": "ok"}])
    );
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"database": "ok", "redis": "disabled"}, "cluster_mode": false})
    );
}

async fn ready_is_unavailable_without_database(backend: Backend) {
    let app = spawn_app(backend).await;
    // Closing the pool is the database going away, as far as the server can tell.
    app.ctx.db.close().await;
    let resp = app.get("/ready").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "down");
    assert_eq!(body["checks"]["databases"][0]["status"], "down");
    // And requests that need it are 503, not 500.
    let resp = app.post_guest(json!({"name": "alice"})).await;
    assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}

async fn ready_is_draining_after_shutdown_begins(backend: Backend) {
    let app = spawn_app(backend).await;
    // The app stops listening once drained; serve its router on a side listener to
    // observe what a load balancer sees during the drain.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let side = format!("http://{}", listener.local_addr().unwrap());
    let router = synctv_api::http::router(app.ctx.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    app.ctx.shutdown.begin();
    let resp = app
        .client
        .get(format!("{side}/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    // /health still answers while the process lives.
    let resp = app
        .client
        .get(format!("{side}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn metrics_are_prometheus_text(backend: Backend) {
    // A process of its own: every series below comes from this test's requests alone.
    let server = TestProcess::spawn(backend, &[]).await;
    // A committed change, so the history histograms have samples.
    let token = server.guest_token("alice").await;
    let id = server.create_room(&token, "r").await;
    let client = reqwest::Client::new();
    let archived = client
        .delete(server.url(&format!("/api/v1/rooms/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(archived.status(), StatusCode::NO_CONTENT);
    let resp = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();
    // Exactly this test's requests: a guest and a room made, a room archived.
    for series in [
        r#"synctv_http_requests_total{status="201"} 2"#,
        r#"synctv_http_requests_total{status="204"} 1"#,
    ] {
        assert!(text.lines().any(|line| line == series), "{series}: {text}");
    }
    // Histograms with the configured buckets, not summaries.
    assert!(
        text.contains(r#"synctv_history_commit_seconds_bucket{le="0.0005"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"synctv_history_batch_size_bucket{le="512"}"#),
        "{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("synctv_"), "{line}");
        assert!(!line.contains("room=") && !line.contains("user="), "{line}");
    }
}

async fn cluster_nodes_lists_this_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/api/v1/cluster/nodes").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    let node = &nodes[0];
    assert_eq!(node["node_id"], app.ctx.cluster.node_id());
    assert!(node["address"]
        .as_str()
        .unwrap()
        .contains(&app.port.to_string()));
    assert_eq!(node["connections"], 0);
    assert_eq!(node["region"], "default");
    assert!(node["rooms"].as_u64().is_some() && node["last_seen"].as_i64().is_some());
}

async fn unknown_paths_are_json_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(
        app.get("/api/v1/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn stop_drains_and_returns(backend: Backend) {
    let app = spawn_app(backend).await;
    let address = app.address.clone();
    app.stop().await;
    assert!(reqwest::get(format!("{address}/health")).await.is_err());
}
