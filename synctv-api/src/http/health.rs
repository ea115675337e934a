//! `GET /health` (the process lives) and `GET /ready` (this node should get traffic).

use super::ApiContext;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::time::Duration;
use synctv_cluster::BusStatus;

/// How long `/ready` waits for the database before calling it down.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node_id: String,
    uptime_seconds: u64,
}

async fn health(State(ctx): State<ApiContext>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: ctx.cluster.node_id().to_owned(),
        uptime_seconds: ctx.started_at.elapsed().as_secs(),
    })
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Checks,
    cluster_mode: bool,
}

#[derive(Serialize)]
struct Checks {
    /// The primary, as in version 1.
    database: &'static str,
    /// Every database link: the primary, then each replica.
    databases: Vec<DatabaseLink>,
    redis: BusStatus,
    /// Only when NATS is the bus (contract 1.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<BusStatus>,
}

#[derive(Serialize)]
struct DatabaseLink {
    /// Without its password.
    url: String,
    role: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag_ms: Option<i64>,
}

fn up_or_down(up: bool) -> &'static str {
    if up {
        "ok"
    } else {
        "down"
    }
}

/// The primary and every replica, each asked at once, none waited for longer than
/// [`DB_PING_TIMEOUT`].
async fn database_links(ctx: &ApiContext) -> Vec<DatabaseLink> {
    let Ok((primary, replicas)) = tokio::time::timeout(DB_PING_TIMEOUT, ctx.db.links()).await
    else {
        return vec![DatabaseLink {
            url: ctx.db.primary_url(),
            role: "primary",
            status: "down",
            lag_ms: None,
        }];
    };
    let mut links = vec![DatabaseLink {
        url: primary.url,
        role: "primary",
        status: up_or_down(primary.up),
        lag_ms: None,
    }];
    links.extend(replicas.into_iter().map(|r| DatabaseLink {
        url: r.url,
        role: "replica",
        status: up_or_down(r.up),
        lag_ms: r.lag_ms,
    }));
    links
}

async fn ready(State(ctx): State<ApiContext>) -> (StatusCode, Json<Readiness>) {
    let databases = database_links(&ctx).await;
    let database_up = databases.first().is_some_and(|link| link.status == "ok");
    let (redis, nats) = ctx.cluster.bus_status();
    // Draining wins over a dead database: the node is leaving either way.
    let (status, code) = if ctx.shutdown.is_draining() {
        ("draining", StatusCode::SERVICE_UNAVAILABLE)
    } else if !database_up {
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    } else if redis == BusStatus::Down || nats == Some(BusStatus::Down) {
        // Its own clients are still served; only cross-node delivery waits.
        ("degraded", StatusCode::OK)
    } else {
        ("ready", StatusCode::OK)
    };
    let body = Readiness {
        status,
        checks: Checks {
            database: up_or_down(database_up),
            databases,
            redis,
            nats,
        },
        cluster_mode: ctx.config.cluster_mode(),
    };
    (code, Json(body))
}
