//! Building and running the server: `Application::build` does everything that can fail at
//! start, so `run_until_stopped` only serves.

use crate::auth::TokenService;
use crate::disconnects::Disconnects;
use crate::guard::Guards;
use crate::http::{self, ApiContext};
use crate::node;
use crate::revocation::Revocations;
use crate::shutdown::Shutdown;
use crate::webhooks::WebhookSender;
use crate::ws::listener::{Peer, SharedListener};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synctv_cluster::ClusterManager;
use synctv_core::storage::{Database, StorageError};
use synctv_core::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After the drain, how long connections still open get to close before the history is
/// flushed regardless.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Database(#[source] StorageError),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[source] StorageError),
    #[error("cannot load the token secret: {0}")]
    Secret(#[source] StorageError),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[source] synctv_cluster::ClusterError),
    #[error("{0}")]
    Webhooks(#[from] crate::webhooks::WebhookError),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    ctx: ApiContext,
    /// The HTTP layer's own background tasks (the revocation and disconnect pollers),
    /// stopped after the
    /// drain.
    tasks: TaskTracker,
    stop_tasks: CancellationToken,
}

impl Application {
    pub async fn build(mut config: Config) -> Result<Self, StartupError> {
        let node_id = node::resolve_node_id(&mut config);
        let file_limit = node::raise_file_limit();
        let max_connections = node::connection_ceiling(config.limits.global, file_limit);
        match file_limit {
            Some(n) => tracing::info!(
                "file limit {n} allows at most {max_connections} connections (limits.global = {})",
                config.limits.global
            ),
            None => tracing::warn!(
                "file limit unknown; allowing {max_connections} connections (limits.global)"
            ),
        }

        let addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let port = listener.local_addr()?.port();

        let db = connect_database(&config).await?;
        db.migrate().await.map_err(StartupError::Migrate)?;
        let tokens = TokenService::from_config(&config, &db)
            .await
            .map_err(StartupError::Secret)?;
        let metrics = crate::metrics::install_recorder();

        let address = config
            .cluster
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{port}", config.server.host));
        let cluster = ClusterManager::start(
            db.clone(),
            &config,
            node_id.clone(),
            address,
            max_connections,
        )
        .await
        .map_err(StartupError::Cluster)?;

        let tasks = TaskTracker::new();
        let stop_tasks = CancellationToken::new();
        let revocations = Revocations::new();
        revocations.spawn_poller(db.clone(), &tasks, stop_tasks.child_token());
        let disconnects = Disconnects::new(&node_id);
        disconnects.spawn_poller(db.clone(), &tasks, stop_tasks.child_token());
        if let Some(sender) = WebhookSender::start(&config.webhooks, &db, &node_id).await? {
            sender.spawn(&tasks, stop_tasks.child_token());
        }

        let ctx = ApiContext {
            guards: Arc::new(Guards::from_config(&config)),
            config: Arc::new(config),
            db,
            cluster,
            tokens: Arc::new(tokens),
            shutdown: Shutdown::new(),
            started_at: Instant::now(),
            metrics,
            revocations,
            disconnects,
        };
        Ok(Self {
            listener,
            port,
            ctx,
            tasks,
            stop_tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The drain signal: `begin()` it to stop the server gracefully.
    pub fn shutdown(&self) -> Shutdown {
        self.ctx.shutdown.clone()
    }

    pub fn context(&self) -> &ApiContext {
        &self.ctx
    }

    /// Serves until the drain completes: new upgrades are refused, clients are asked to
    /// reconnect and given `server.drain_secs` to leave, then the history is flushed.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let ctx = self.ctx.clone();
        // No `node_id` field: the log formatter stamps every line with it (telemetry.rs).
        tracing::info!(
            port = self.port,
            backend = ?ctx.db.backend(),
            cluster_mode = ctx.config.cluster_mode(),
            "synctv ready"
        );
        let app = http::router(self.ctx).into_make_service_with_connect_info::<Peer>();
        axum::serve(SharedListener(self.listener), app)
            .with_graceful_shutdown(drain(ctx.clone()))
            .await?;
        // Members still connected after the drain had `CLOSE_GRACE` to leave; what they
        // owe the history (their `member_left`) is written before the cluster layer's
        // tasks stop.
        wait_for_connections(&ctx, CLOSE_GRACE).await;
        self.stop_tasks.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        ctx.cluster.shutdown().await;
        ctx.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the configured database, or the embedded SQLite file.
pub async fn connect_database(config: &Config) -> Result<Database, StartupError> {
    Database::connect(
        config.database.url.as_deref(),
        &config.database.replica_urls,
        config.database.max_connections,
        Duration::from_secs(config.database.acquire_timeout_secs),
    )
    .await
    .map_err(StartupError::Database)
}

/// Resolves when the HTTP server should stop: the drain began and the WebSocket clients
/// left, or `server.drain_secs` ran out; then tells the remaining connections to close.
async fn drain(ctx: ApiContext) {
    ctx.shutdown.draining().await;
    let limit = Duration::from_secs(ctx.config.server.drain_secs);
    tracing::info!(
        connections = ctx.cluster.connections().count(),
        drain_secs = limit.as_secs(),
        "draining"
    );
    wait_for_connections(&ctx, limit).await;
    ctx.shutdown.close();
}

async fn wait_for_connections(ctx: &ApiContext, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while ctx.cluster.connections().count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
