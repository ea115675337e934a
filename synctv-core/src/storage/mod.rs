//! Storage through sqlx, over SQLite (the embedded default) or Postgres, chosen by URL.
//!
//! Both backends run the same portable SQL through `sqlx::AnyPool` (`$N` placeholders,
//! integers for booleans), so every endpoint behaves the same on each. Each concern has
//! its file: [`users`], [`rooms`], [`history`] (reading the log), [`commit`] (the group
//! commit that appends to it and assigns `seq`), [`settings`], [`credentials`] (WebSocket
//! tickets and token revocations), [`disconnects`] (the server API's disconnect requests
//! and each node's count), [`webhooks`] (the webhook outbox, cursors and lease).
//! [`sqlite_file`] reads a configured `sqlite:` URL the
//! way the embedded default is read. The group commit runs on [`sqlite_writer`] (a thread
//! owning the write connection) for an SQLite file, and through the pool
//! ([`pooled_commit`]) otherwise. Where a statement runs: [`hosts`] splits a
//! libpq-style multi-host URL, [`primary`] finds the writable host and moves when it
//! fails, [`replicas`] picks a streaming replica fresh enough for a read.

mod commit;
mod credentials;
mod disconnects;
mod drift;
mod history;
mod hosts;
mod pooled_commit;
mod primary;
mod replicas;
mod room_row;
mod rooms;
mod settings;
mod sqlite_file;
mod sqlite_writer;
mod users;
mod webhooks;

pub use commit::{
    ChangeOutcome, CommittedChange, Rejection, RoomChange, RoomChangeKind, RoomRow, Sequencer,
};
pub use credentials::{Revocation, TicketGrant};
pub use disconnects::UserDisconnect;
pub use drift::DriftReport;
pub use history::EventPage;
pub use hosts::{redact, split_hosts, HostListError};
pub use primary::{PrimaryStatus, FAILOVER_WAIT};
pub use replicas::ReplicaStatus;
pub use room_row::RoomSnapshot;
pub use rooms::{NewRoom, RoomCursor, RoomPage};
pub use webhooks::OutboxDelivery;

use primary::PrimaryLink;
use replicas::ReplicaSet;
use sqlite_writer::SqliteWriter;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Longest a statement (or a whole commit) may take before its host counts as gone: a
/// host cut off the network answers nothing, and the writer must not hang on it.
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// Where the embedded SQLite file lives when no URL is configured.
pub const DEFAULT_SQLITE_PATH: &str = "data/synctv.db";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the SQLite database {file}: its directory {dir} does not exist")]
    NoSqliteDir { file: String, dir: String },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("invalid database URL {url}: {source}")]
    Url { url: String, source: HostListError },
    #[error("no writable database host among {0}")]
    NoWritableHost(String),
    #[error("the database did not answer within {QUERY_DEADLINE:?}")]
    Timeout,
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the sqlite writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    #[error("the sqlite writer has stopped")]
    WriterStopped,
}

/// SQLSTATEs that mean "this host cannot take writes now": read-only transaction (a
/// standby), the server shutting down or starting, and the connection-exception class.
fn host_lost_state(code: &str) -> bool {
    matches!(code, "25006" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

impl StorageError {
    /// Whether the database could not be reached (as opposed to refusing a statement).
    pub fn is_unavailable(&self) -> bool {
        self.means_host_lost()
            || matches!(
                self,
                StorageError::Database(sqlx::Error::PoolClosed) | StorageError::WriterStopped
            )
            || matches!(
                self,
                StorageError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DiskFull
                )
            )
    }

    /// Whether the host that answered is gone or cannot write: what makes the primary
    /// link search for another.
    pub(crate) fn means_host_lost(&self) -> bool {
        match self {
            StorageError::NoWritableHost(_) | StorageError::Timeout => true,
            StorageError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_),
            ) => true,
            StorageError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|code| host_lost_state(&code))
            }
            _ => false,
        }
    }
}

/// The database handle: the primary link, the read replicas, and which backend they
/// speak. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    primary: Arc<PrimaryLink>,
    replicas: Arc<ReplicaSet>,
    backend: Backend,
    /// On an SQLite file: the thread that runs the group commits.
    sqlite_writer: Option<Arc<SqliteWriter>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url`, or to the embedded SQLite file when `url` is `None` (creating
    /// `./data/` and the file on first start, WAL mode). A Postgres URL may name several
    /// hosts; `replica_urls` are streaming replicas that may serve reads.
    pub async fn connect(
        url: Option<&str>,
        replica_urls: &[String],
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let url = match url {
            Some(url) if url.starts_with("sqlite:") => sqlite_file::prepare_url(url)?,
            Some(url) => url.to_owned(),
            None => {
                let dir = Path::new(DEFAULT_SQLITE_PATH)
                    .parent()
                    .unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                format!("sqlite://{DEFAULT_SQLITE_PATH}?mode=rwc")
            }
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout);
        let primary = match backend {
            Backend::Sqlite => {
                // WAL lets readers proceed beside the one writer; FULL syncs the WAL on each
                // commit, which group commit amortizes over many events.
                let pool = options
                    .clone()
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                PrimaryLink::fixed(&url, pool, options.clone())
            }
            Backend::Postgres => {
                let hosts = split_hosts(&url).map_err(|source| StorageError::Url {
                    url: redact(&url),
                    source,
                })?;
                let link = PrimaryLink::postgres(&hosts, options.clone())?;
                // Start only once some host takes writes (migrations need one anyway).
                link.writer(acquire_timeout.max(FAILOVER_WAIT)).await?;
                link
            }
        };
        for replica in replica_urls {
            let single = split_hosts(replica).map_err(|source| StorageError::Url {
                url: redact(replica),
                source,
            })?;
            if single.len() != 1 {
                return Err(StorageError::Url {
                    url: redact(replica),
                    source: HostListError::BadHost("a replica URL names one host".into()),
                });
            }
        }
        let replicas = ReplicaSet::new(replica_urls, &options)?;
        // Opened after the pool, which created the file (`mode=rwc`).
        let sqlite_writer = match writer_file(&url, backend)? {
            Some(path) => Some(Arc::new(SqliteWriter::open(&path)?)),
            None => None,
        };
        Ok(Self {
            primary: Arc::new(primary),
            replicas: Arc::new(replicas),
            backend,
            sqlite_writer,
        })
    }

    /// Runs the pending migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        let pool = self.primary.writer(FAILOVER_WAIT).await?;
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip to the primary, for readiness (one search at most, no waiting
    /// for a failover).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.on_primary_within(primary::PROBE_TIMEOUT, |pool| async move {
            sqlx::query("SELECT 1").execute(&pool).await?;
            Ok(())
        })
        .await
    }

    /// The primary's URL (without password) as the link knows it now.
    pub fn primary_url(&self) -> String {
        self.primary.status(false).url
    }

    /// Whether read replicas are configured.
    pub fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// Asks every replica where it is, which refreshes the replica lag and up metrics.
    pub async fn refresh_replica_metrics(&self) {
        self.replicas.statuses().await;
    }

    /// The primary link and each replica, as `/ready` lists them.
    pub async fn links(&self) -> (PrimaryStatus, Vec<ReplicaStatus>) {
        let (up, replicas) =
            futures_util::future::join(self.ping(), self.replicas.statuses()).await;
        (self.primary.status(up.is_ok()), replicas)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close();
        }
        self.primary.close().await;
        self.replicas.close().await;
    }

    /// Runs `work` on the primary (waiting up to [`FAILOVER_WAIT`] for one to be
    /// writable), bounded by [`QUERY_DEADLINE`]; an error that says the host is gone makes
    /// the link search again.
    pub(crate) async fn on_primary<T, F, Fut>(&self, work: F) -> Result<T, StorageError>
    where
        F: FnOnce(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        self.on_primary_within(FAILOVER_WAIT, work).await
    }

    async fn on_primary_within<T, F, Fut>(&self, wait: Duration, work: F) -> Result<T, StorageError>
    where
        F: FnOnce(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let pool = self.primary.writer(wait).await?;
        let result = tokio::time::timeout(QUERY_DEADLINE, work(pool))
            .await
            .unwrap_or(Err(StorageError::Timeout));
        if let Err(e) = &result {
            self.primary.observe(e);
        }
        result
    }

    /// Runs the read `work` where it may run: on a replica that has replayed every commit
    /// made before now (the WAL fence, see [`replicas`]), else on the primary.
    pub(crate) async fn on_fresh_reader<T, F, Fut>(&self, work: F) -> Result<T, StorageError>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        if self.replicas.is_empty() {
            return self.on_primary(work).await;
        }
        let fence = self.on_primary(|pool| async move { replicas::current_fence(&pool).await });
        let fence = fence.await?;
        if let Some(answer) = self.on_replica(fence, &work).await {
            return Ok(answer);
        }
        metrics::counter!("synctv_database_reads_total", "target" => "primary").increment(1);
        self.on_primary(work).await
    }

    /// Runs `work` on a replica past `fence`; `None` when no replica could answer (the
    /// caller asks the primary).
    async fn on_replica<T, F, Fut>(&self, fence: replicas::Fence, work: &F) -> Option<T>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let (i, pool) = self.replicas.pick(fence).await?;
        let answer = tokio::time::timeout(QUERY_DEADLINE, work(pool))
            .await
            .unwrap_or(Err(StorageError::Timeout));
        match answer {
            Ok(answer) => {
                metrics::counter!("synctv_database_reads_total", "target" => "replica")
                    .increment(1);
                Some(answer)
            }
            Err(e) => {
                self.replicas.failed(i, &e);
                None
            }
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that read first could not upgrade after another
    /// connection committed (`SQLITE_BUSY_SNAPSHOT`, which the busy timeout does not
    /// retry), while an immediate one just waits its turn.
    pub(crate) async fn begin_write(
        &self,
        pool: &AnyPool,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StorageError> {
        Ok(match self.backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => pool.begin().await?,
        })
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite serializes writers anyway.
    pub(crate) fn lock_clause(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// The file the SQLite writer thread opens; `None` for Postgres, for an in-memory
/// database (which a second connection would not see) and for a read-only one: their
/// commits go through the pool.
fn writer_file(url: &str, backend: Backend) -> Result<Option<PathBuf>, StorageError> {
    if backend != Backend::Sqlite {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    let own_file = !(url.contains("mode=memory")
        || url.contains("mode=ro")
        || path.as_os_str() == ":memory:"
        || path.to_string_lossy().starts_with("file:"));
    Ok(own_file.then(|| path.to_path_buf()))
}

/// Reads a column, turning a type mismatch into [`StorageError::Corrupt`].
pub(crate) fn column<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StorageError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|e| StorageError::Corrupt(format!("column {name}: {e}")))
}
